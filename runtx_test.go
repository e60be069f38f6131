package hasql

// Tests of RunTx (runtx.go) on fakedb: what it runs again and what it
// returns. The real servers' serialization failures and deadlocks are in
// runtx_integration_test.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestRunTxRunsAgainOnlyWhatCertainlyDidNotCommit(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	galera := &mysql.MySQLError{Number: 1213, Message: "WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction"}
	lockWait := &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
	dup := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}
	errApp := errors.New("app: insufficient funds")
	eof := io.ErrUnexpectedEOF
	n := func(f FakeFault, times int) []FakeFault {
		out := make([]FakeFault, times)
		for i := range out {
			out[i] = f
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		dsn     string // hasql.* keys
		faults  []FakeFault
		fnErr   error // fn returns this (on every run) instead of its exec's error
		runs    int   // how often fn runs
		commits int   // commits that reached the server
		want    error // nil: RunTx succeeds
		wantAs  any   // errors.As target that must match, or nil
		same    bool  // RunTx returns exactly fn's error
	}{
		{name: "no fault", runs: 1, commits: 1},
		{name: "deadlock three times, then success", faults: n(FakeFault{Kind: "exec", Nth: 1, Err: deadlock}, 3), runs: 4, commits: 1},
		{name: "Galera certification failure at commit", faults: []FakeFault{{Kind: "commit", Nth: 1, Err: galera}}, runs: 2, commits: 1},
		{name: "lock wait timeout", faults: []FakeFault{{Kind: "exec", Nth: 1, Err: lockWait}}, runs: 2, commits: 1},
		{name: "session lost before commit: not committed, run again", faults: []FakeFault{{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}}, runs: 2, commits: 1},
		{name: "commit lost before it was sent: run again", faults: []FakeFault{{Kind: "commit", Nth: 1, Kill: true}}, runs: 2, commits: 1},
		{name: "begin lost: run", faults: []FakeFault{{Kind: "begin", Nth: 1, Sent: true, Kill: true, Err: eof}}, runs: 1, commits: 1},
		{name: "commit lost after it was sent: unknown, never run again", faults: []FakeFault{{Kind: "commit", Nth: 1, Sent: true, Kill: true, Err: eof}},
			runs: 1, commits: 1, want: ErrTxResolutionUnknown},
		{name: "fn's own error: returned unchanged", fnErr: errApp, runs: 1, commits: 0, want: errApp, same: true},
		{name: "the server's other error: returned unchanged", faults: []FakeFault{{Kind: "exec", Nth: 1, Err: dup}}, runs: 1, commits: 0, want: dup, same: true},
		{name: "retries run out", dsn: "hasql.tx_retries=2", faults: n(FakeFault{Kind: "exec", Nth: 1, Err: deadlock}, 5),
			runs: 3, commits: 0, want: deadlock, wantAs: new(*mysql.MySQLError)},
		{name: "tx_retries=0: one run", dsn: "hasql.tx_retries=0", faults: n(FakeFault{Kind: "exec", Nth: 1, Err: deadlock}, 1),
			runs: 1, commits: 0, want: deadlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb := NoopFakeDB()
			commits := 0
			fdb.OnCommit = func(*FakeConn) error { commits++; return nil }
			for _, f := range tc.faults {
				fdb.Inject(f)
			}
			inner, err := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewConnector(inner)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dsn != "" {
				k, v, _ := strings.Cut(strings.TrimPrefix(tc.dsn, "hasql."), "=")
				if err := c.cfg.set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			c.dialect = dialectMySQL // the fake speaks go-sql-driver/mysql's errors
			db := sql.OpenDB(c)
			defer db.Close()
			runs := 0
			err = RunTx(context.Background(), db, nil, func(ctx context.Context, tx *sql.Tx) error {
				runs++
				if _, err := tx.ExecContext(ctx, "UPDATE accounts SET n = n - 1"); err != nil {
					return err
				}
				return tc.fnErr
			})
			if runs != tc.runs || commits != tc.commits {
				t.Errorf("fn ran %d times, %d commits; want %d and %d", runs, commits, tc.runs, tc.commits)
			}
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("RunTx: %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("RunTx: %v, want %v", err, tc.want)
			case tc.same && err != tc.want:
				t.Fatalf("RunTx: %#v, want fn's error itself %#v", err, tc.want)
			case tc.wantAs != nil && !errors.As(err, tc.wantAs):
				t.Fatalf("RunTx: %v does not reach %T", err, tc.wantAs)
			case tc.wantAs != nil && !strings.HasPrefix(err.Error(), "hasql: RunTx gave up after "):
				t.Fatalf("RunTx: %q does not say it gave up", err)
			}
			if errors.Is(err, driver.ErrBadConn) {
				t.Fatalf("RunTx: %v matches driver.ErrBadConn", err)
			}
			if st := db.Stats(); st.InUse != 0 {
				t.Fatalf("%d connections still in use: a transaction was left open", st.InUse)
			}
		})
	}
}

// RunTx stops waiting when its context ends during the back-off, with the
// context's error and the last one.
func TestRunTxStopsWhenTheContextEnds(t *testing.T) {
	fdb := NoopFakeDB()
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
	fdb.Inject(FakeFault{Kind: "exec", Err: deadlock})
	inner, err := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(inner)
	if err != nil {
		t.Fatal(err)
	}
	c.dialect = dialectMySQL
	db := sql.OpenDB(c)
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	err = RunTx(ctx, db, nil, func(ctx context.Context, tx *sql.Tx) error {
		runs++
		_, err := tx.ExecContext(ctx, "UPDATE t")
		cancel() // the deadlock comes back; the context ends before the back-off
		return err
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, deadlock) {
		t.Fatalf("RunTx: %v, want context.Canceled and the deadlock", err)
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times, want 1: its context ended before the second", runs)
	}
}
