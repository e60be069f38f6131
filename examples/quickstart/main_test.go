package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunEmbeddedSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, ""); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	t.Logf("output:\n%s", got)
	for _, want := range []string{
		"inserted apple", "inserted banana", "inserted cherry",
		"committed 3 rows",
		"prepared query qty >= 3: apple=5, cherry=12",
		"ad-hoc query: 3 rows, 19 items in total",
		"temporary table holds 2 rows",
		"dropped table hasql_fruit",
		"hasql stats: open=",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestBind(t *testing.T) {
	const q = "SELECT a FROM t WHERE b = ? AND c = ?"
	if got := bind("pgx", q); got != "SELECT a FROM t WHERE b = $1 AND c = $2" {
		t.Errorf("pgx: %q", got)
	}
	for _, d := range []string{"mysql", "sqlite"} {
		if got := bind(d, q); got != q {
			t.Errorf("%s: %q", d, got)
		}
	}
}
