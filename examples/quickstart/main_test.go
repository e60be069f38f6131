package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQuickstartShowsWhatHasqlDid runs the quickstart and checks that its
// output says, part by part, what hasql did: these are the lines a newcomer
// reads, so a change in hasql's behaviour that they describe fails here.
func TestQuickstartShowsWhatHasqlDid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	t.Logf("output:\n%s", got)
	for _, want := range []string{
		`(?m)^   CREATE TABLE, 100 INSERTs in a transaction: .*FnExec 101, FnBegin 1, FnCommit 1`,
		`(?m)^   slowest of the 1\d\d calls: Fn[A-Za-z]+( ".*")?, [0-9.]+(µs|ms|s)$`,
		`(?m)^   raw database/sql: 1000 prepares reached the driver$`,
		`(?m)^   through hasql:       1 prepare, 999 statement-cache hits$`,
		`(?m)^   100 requests with hasql.WithTag\(ctx, "tenant=acme"\): the session callback ran 1 time$`,
		`(?m)^   99 requests found the tagged session and read tenant=acme from its TEMP table$`,
		`(?m)^   hasql: session lost, failover FoBegin → FoEnd, read 50 run again \(1 retry\); 100 reads, 0 errors$`,
		`(?m)^   hasql: session lost, failover FoBegin → FoAbort; the INSERT got hasql.ErrTxNotCommitted: nothing of it is in the database$`,
		`(?m)^   hasql.RunTx ran it again from the start: committed on attempt 2; 3 rows in the table, not 5$`,
		`(?m)^Next, .*\n  cd examples && go run ./cmd/hasql-demo failover$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output lacks a line matching %s", want)
		}
	}
	if n := strings.Count(got, "\n"); n > 40 {
		t.Errorf("output is %d lines; a newcomer should see it on one screen (40)", n)
	}
}
