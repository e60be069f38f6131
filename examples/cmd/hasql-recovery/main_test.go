package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecovery runs the tool with two restarts per server and two workers per
// side, and checks that the table is produced and that hasql returned no
// more read errors than the raw driver. Timings are not asserted: machines
// are noisy.
func TestRecovery(t *testing.T) {
	js := filepath.Join(t.TempDir(), "recovery.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-restarts", "2", "-workers", "2", "-timeout", "150s", "-json", js}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code == 2 && strings.Contains(stderr.String(), "apt-get install") {
		t.Fatalf("the database server binaries are missing: %s", stderr.String())
	}
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	out := stdout.String()
	for _, want := range []string{
		"| server | workload | raw recovery median / p90 (ms) | raw errors to the app (per outage) | hasql recovery median / p90 (ms) | hasql errors to the app | connects/s while down: raw | connects/s while down: hasql | hasql port checks/s |",
		"| server | workload | side | outages | errors/outage mean | errors/outage max | recovery median (ms) | recovery p95 (ms) |",
		"| PostgreSQL | read | raw pgx | 2 |",
		"| PostgreSQL | read | hasql pgx | 2 |",
		"| MariaDB | read | raw mysql | 2 |",
		"| MariaDB | read | hasql mysql | 2 |",
		"- command: `go run ./cmd/hasql-recovery -restarts 2 -workers 2",
		"- machine: nproc ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output has no %q", want)
		}
	}

	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON does not parse: %v", err)
	}
	if len(rep.Servers) != 2 {
		t.Fatalf("%d servers in the JSON, want 2", len(rep.Servers))
	}
	for _, s := range rep.Servers {
		if len(s.Outages) != 2 {
			t.Errorf("%s: %d outages, want 2", s.Label, len(s.Outages))
		}
		readErrs := map[bool]int{}
		for _, o := range s.Outages {
			if o.Err != "" || o.Poll.Err != "" || o.DownMs == nil {
				t.Errorf("%s restart %d: %s %s", s.Label, o.N, o.Err, o.Poll.Err)
			}
			for _, sd := range o.Sides {
				if sd.Workload == "read" {
					readErrs[strings.HasPrefix(sd.Side, "hasql")] += sd.Errors
				}
			}
		}
		for _, sd := range s.Sides {
			if sd.OK == 0 {
				t.Errorf("%s %s %ss: no successful operation", s.Label, sd.Side, sd.Workload)
			}
		}
		if readErrs[true] > readErrs[false] {
			t.Errorf("%s: hasql returned %d read errors, the raw driver %d", s.Label, readErrs[true], readErrs[false])
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{40, 10, 30, 20}
	for _, c := range []struct{ p, want float64 }{{0, 10}, {0.5, 25}, {1, 40}, {0.95, 38.5}} {
		if got := percentile(v, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got == got {
		t.Errorf("percentile of nothing = %v, want NaN", got)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-workers", "0"}, {"-servers", "oracle"}, {"extra"}, {"-restarts"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit status %d, want 2", args, code)
		}
	}
}
