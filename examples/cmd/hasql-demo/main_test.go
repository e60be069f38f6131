package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// TestFailover runs the demo for 6 s with two restarts and checks the chart
// and what each side saw: hasql, with every operation idempotent and
// retry=idempotent, must return no error to the application.
func TestFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "failover.svg")
	var log bytes.Buffer
	res, err := runFailover(ctx, failoverConfig{
		Duration: 6 * time.Second,
		Restarts: 2,
		Workers:  4,
		Bucket:   250 * time.Millisecond,
		Out:      out,
		Stdout:   &log,
	})
	t.Logf("demo output:\n%s", log.String())
	if errors.Is(err, testserver.ErrNoPostgres) {
		t.Fatalf("%v\n%s", err, testserver.PostgresInstallHint)
	}
	if err != nil {
		t.Fatal(err)
	}

	if len(res.Restarts) != 2 {
		t.Errorf("%d restarts, want 2", len(res.Restarts))
	}
	for _, s := range []*sideStats{&res.Raw, &res.Hasql} {
		if s.OK == 0 {
			t.Errorf("%s: no successful operation", s.Name)
		}
		if s.Ops != s.OK+s.Errors {
			t.Errorf("%s: ops %d != ok %d + errors %d", s.Name, s.Ops, s.OK, s.Errors)
		}
	}
	if res.Hasql.Errors > res.Raw.Errors {
		t.Errorf("hasql returned more errors (%d) than raw pgx (%d)", res.Hasql.Errors, res.Raw.Errors)
	}
	if res.Hasql.Errors != 0 {
		var b strings.Builder
		for _, e := range res.Hasql.ErrorTexts {
			b.WriteString("\n  ")
			b.WriteString(e.Text)
		}
		t.Errorf("hasql returned %d errors to the application for an idempotent workload, want 0:%s", res.Hasql.Errors, b.String())
	}

	svg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	root, texts := parseXML(t, svg)
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	for _, want := range []string{"errors returned to the application", "restart -m fast", "restart -m immediate"} {
		if !strings.Contains(texts, want) {
			t.Errorf("the chart has no text %q", want)
		}
	}
}

// parseXML checks that b is well-formed XML and returns the root element's
// name and all character data.
func parseXML(t *testing.T, b []byte) (root string, text string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var sb strings.Builder
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if root != "" {
					t.Fatalf("second root element %q", tok.Name.Local)
				}
				root = tok.Name.Local
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			sb.Write(tok)
		}
	}
	if depth != 0 || root == "" {
		t.Fatalf("the SVG is incomplete (depth %d, root %q)", depth, root)
	}
	return root, sb.String()
}

// TestRenderSVGEmpty: a run without operations still gives a well-formed chart.
func TestRenderSVGEmpty(t *testing.T) {
	r := &failoverResult{Workers: 1, Duration: time.Second, Bucket: 250 * time.Millisecond,
		Raw:      sideStats{Name: "raw pgx", OKPerBucket: make([]int, 4), ErrPerBucket: make([]int, 4)},
		Hasql:    sideStats{Name: "hasql", OKPerBucket: make([]int, 4), ErrPerBucket: make([]int, 4)},
		Restarts: []restartMark{{Mode: "fast", At: 500 * time.Millisecond, Took: 100 * time.Millisecond}}}
	if root, _ := parseXML(t, renderSVG(r)); root != "svg" {
		t.Errorf("root %q", root)
	}
}

// TestNoPostgres: without the server binaries the command says how to get
// them and exits with status 2.
func TestNoPostgres(t *testing.T) {
	old := testserver.PostgresBinGlob
	testserver.PostgresBinGlob = filepath.Join(t.TempDir(), "nothing", "*", "bin")
	defer func() { testserver.PostgresBinGlob = old }()
	t.Setenv("PATH", t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run([]string{"failover", "-out", ""}, &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "apt-get install -y postgresql") {
		t.Errorf("stderr does not say how to install PostgreSQL:\n%s", stderr.String())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 {
		t.Errorf("no command: exit status %d, want 2", code)
	}
	if code := run([]string{"nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown command: exit status %d, want 2", code)
	}
	if code := run([]string{"failover", "-workers"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: exit status %d, want 2", code)
	}
}
