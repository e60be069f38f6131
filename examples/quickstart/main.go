// Command quickstart shows, in about twenty-five printed lines, the four
// things hasql adds to database/sql, on an embedded SQLite database (pure Go,
// in a temporary directory): no server, nothing to install. Run it with
//
//	make quickstart
//
// or cd examples && go run ./quickstart. Its parts:
//
//  1. An interceptor: an entry and an exit callback on every driver call
//     time each call; the slowest is printed.
//  2. The statement cache: a query prepared, run and closed 1,000 times, as
//     code that prepares per request does; the prepares that reach the
//     driver are counted, raw database/sql next to hasql.
//  3. A tagged session: the session callback sets a session's state once;
//     later requests that ask for the tag find that session again.
//  4. A lost connection survived: a fault (hasqltest.Faults) kills the
//     connection in the middle of a loop of idempotent reads and inside a
//     transaction; the loop finishes with no error, hasql.RunTx runs the
//     transaction again and commits it, and the program prints what hasql
//     did.
//
// The SQLite driver is wrapped to count its prepares (counting.go) and
// registered as "sqlite-counted"; hasql wraps it as it would pgx or
// go-sql-driver/mysql: hasql.Open("sqlite-counted", dsn), or
// sql.Open("hasql", "sqlite-counted:"+dsn).
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run creates a fresh SQLite file and runs the four parts on it.
func run(ctx context.Context, w io.Writer) error {
	dir, err := os.MkdirTemp("", "hasql-quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "shop.db") + "?_pragma=busy_timeout(5000)"
	fmt.Fprintln(w, "hasql quickstart: an embedded SQLite database (no server), opened through hasql")
	for _, part := range []func(context.Context, io.Writer, string) error{interceptor, stmtCache, taggedSession, lostConnection} {
		if err := part(ctx, w, dsn); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nNext, hasql next to raw pgx while a real PostgreSQL restarts (needs its server binaries):\n  cd examples && go run ./cmd/hasql-demo failover")
	return nil
}

// interceptor times every driver call with an entry and an exit callback
// while it creates the table the other parts use.
func interceptor(ctx context.Context, w io.Writer, dsn string) error {
	fmt.Fprintln(w, "\n1. Interceptor: an entry and an exit callback time every driver call")
	db, err := hasql.Open("sqlite-counted", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	type startKey struct{}
	var mu sync.Mutex // exit callbacks may run in hasql's goroutines (a session closed in the background)
	var calls [hasql.FnClose + 1]int
	var slowest time.Duration
	var slowestCall string
	c, _ := hasql.ConnectorOf(db)
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		c.Callbacks().Register(fn, hasql.Entry, func(call *hasql.Call) error {
			call.Ctx = context.WithValue(call.Ctx, startKey{}, time.Now())
			return hasql.Continue
		})
		c.Callbacks().Register(fn, hasql.Exit, func(call *hasql.Call) error {
			took := time.Since(call.Ctx.Value(startKey{}).(time.Time))
			mu.Lock()
			defer mu.Unlock()
			if calls[call.Fn]++; took > slowest {
				slowest, slowestCall = took, strings.TrimSuffix(fmt.Sprintf("%v %.30q", call.Fn, call.Query), ` ""`)
			}
			return hasql.Continue // leave the outcome alone
		})
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL)"); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for i := 1; i <= 100; i++ {
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (item, qty) VALUES (?, ?)", fmt.Sprint("item-", i), i%7+1); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	var total int
	var kinds []string
	for fn, n := range calls {
		if total += n; n > 0 {
			kinds = append(kinds, fmt.Sprint(hasql.Fn(fn), " ", n))
		}
	}
	fmt.Fprintf(w, "   CREATE TABLE, 100 INSERTs in a transaction: %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(w, "   slowest of the %d calls: %s, %v\n", total, slowestCall, slowest.Round(10*time.Microsecond))
	return nil
}

// stmtCache prepares, runs and closes one query 1,000 times, raw and
// through hasql, and counts the prepares that reach the driver.
func stmtCache(ctx context.Context, w io.Writer, dsn string) error {
	fmt.Fprintln(w, "\n2. Statement cache: one query prepared, run and closed 1,000 times")
	lookups := func(db *sql.DB) (prepares int64, err error) {
		before := counting.prepares.Load()
		for i := 0; i < 1000; i++ {
			stmt, err := db.PrepareContext(ctx, "SELECT qty FROM orders WHERE id = ?")
			if err != nil {
				return 0, err
			}
			var qty int
			err = stmt.QueryRowContext(ctx, i%100+1).Scan(&qty)
			stmt.Close() // raw: closed on the driver; hasql: back to the session's cache
			if err != nil {
				return 0, err
			}
		}
		return counting.prepares.Load() - before, nil
	}
	raw, err := sql.Open("sqlite-counted", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()
	db, err := hasql.Open("sqlite-counted", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	rawN, err := lookups(raw)
	if err != nil {
		return err
	}
	hasqlN, err := lookups(db)
	if err != nil {
		return err
	}
	c, _ := hasql.ConnectorOf(db)
	fmt.Fprintf(w, "   raw database/sql: %4d prepares reached the driver\n", rawN)
	fmt.Fprintf(w, "   through hasql:    %4d prepare, %d statement-cache hits\n", hasqlN, c.Stats().StmtCacheHits)
	fmt.Fprintln(w, "   (on a server each prepare is a round trip: see docs/benchmarks.md)")
	return nil
}

// taggedSession sets a session's state once, in the session callback, and
// finds it again by tag on every later request.
func taggedSession(ctx context.Context, w io.Writer, dsn string) error {
	fmt.Fprintln(w, "\n3. Tagged session: state set once by the session callback, found again by tag")
	var setups atomic.Int64
	db, err := hasql.Open("sqlite-counted", dsn, hasql.WithSessionCallback(
		func(ctx context.Context, s *hasql.Session, tag string) error {
			setups.Add(1) // runs only for a session that lacks the tag asked for
			tenant := strings.TrimPrefix(tag, "tenant=")
			if err := s.Exec(ctx, "CREATE TEMP TABLE app_session AS SELECT '"+tenant+"' AS tenant"); err != nil {
				return err
			}
			return s.SetTag(tag)
		}))
	if err != nil {
		return err
	}
	defer db.Close()
	tagged := hasql.WithTag(ctx, "tenant=acme")
	var tenant string
	for i := 0; i < 100; i++ {
		if err := db.QueryRowContext(tagged, "SELECT tenant FROM app_session").Scan(&tenant); err != nil {
			return err
		}
	}
	c, _ := hasql.ConnectorOf(db)
	st := c.Stats()
	fmt.Fprintf(w, "   100 requests with hasql.WithTag(ctx, %q): the session callback ran %d time\n", "tenant=acme", setups.Load())
	fmt.Fprintf(w, "   %d requests found the tagged session and read tenant=%s from its TEMP table\n", st.TagHits, tenant)
	return nil
}

// lostConnection kills the connection in the middle of a loop of
// idempotent reads and inside a transaction, and shows what hasql did.
func lostConnection(ctx context.Context, w io.Writer, dsn string) error {
	fmt.Fprintln(w, "\n4. A lost connection survived (faults injected with hasqltest.Faults)")
	var steps []string // failover steps: the callback runs in the goroutine of the call that lost its session
	db, err := hasql.Open("sqlite-counted", dsn, hasql.WithRetry(hasql.RetryIdempotent),
		hasql.WithFailoverCallback(func(ctx context.Context, s *hasql.Session, ev hasql.FailoverEvent) error {
			steps = append(steps, ev.String())
			return nil
		}))
	if err != nil {
		return err
	}
	defer db.Close()
	faults := hasqltest.NewFaults()
	if err := faults.Attach(db); err != nil {
		return err
	}

	faults.LoseAfterSend(`^SELECT qty`, 50) // the 50th read runs, then its connection dies
	for i := 1; i <= 100; i++ {
		var qty int
		if err := db.QueryRowContext(hasql.Idempotent(ctx), "SELECT qty FROM orders WHERE id = ?", i).Scan(&qty); err != nil {
			return fmt.Errorf("read %d: %w", i, err)
		}
	}
	c, _ := hasql.ConnectorOf(db)
	fmt.Fprintln(w, "   100 reads marked hasql.Idempotent; the connection died after read 50 was sent")
	fmt.Fprintf(w, "   hasql: session lost, failover %s, read 50 run again (%d retry); 100 reads, 0 errors\n",
		strings.Join(steps, " → "), c.Stats().Retries)

	steps = nil
	faults.LoseAfterSend(`^INSERT INTO orders`, 2) // the 2nd INSERT of the transaction
	attempts, lost := 0, error(nil)
	err = hasql.RunTx(ctx, db, nil, func(ctx context.Context, tx *sql.Tx) error {
		attempts++
		for _, item := range []string{"pen", "ink", "pad"} {
			if _, err := tx.ExecContext(ctx, "INSERT INTO orders (item, qty) VALUES (?, 1)", item); err != nil {
				lost = err
				return err
			}
		}
		return nil
	})
	var n int
	if err == nil {
		err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE item IN ('pen', 'ink', 'pad')").Scan(&n)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "   a transaction of 3 INSERTs; the connection died after the 2nd was sent")
	got := fmt.Sprint(lost)
	if errors.Is(lost, hasql.ErrTxNotCommitted) {
		got = "hasql.ErrTxNotCommitted: nothing of it is in the database"
	}
	fmt.Fprintf(w, "   hasql: session lost, failover %s; the INSERT got %s\n", strings.Join(steps, " → "), got)
	fmt.Fprintf(w, "   hasql.RunTx ran it again from the start: committed on attempt %d; %d rows in the table, not 5\n", attempts, n)
	return nil
}
