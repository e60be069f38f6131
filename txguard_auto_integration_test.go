package hasql_test

// hasql.txguard=all on real servers: an autocommit write whose session the
// fault proxy cuts after it was sent, and what the guard's resolution makes
// of it.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hasqlgo/hasql"
)

func TestTxGuardAllResolvesALostAutocommitWrite(t *testing.T) {
	ctx := context.Background()
	for _, driverName := range []string{"pgx", "mysql"} {
		t.Run(driverName, func(t *testing.T) {
			s := txgSetup(t, driverName, "hasql.txguard=all")
			db, hc := foOpen(t, driverName, s.dsn)
			dbOff, hcOff := foOpen(t, driverName, s.dsn+"&hasql.retry=off")
			// Where the cut comes: on PostgreSQL the write and its record
			// go in one message (the row's value is in it), so cutting
			// there after forwarding lets the server commit both, and
			// before forwarding lets it see neither. On MariaDB the write
			// runs in its own transaction and the cut is at its COMMIT.
			cutAt := func(id string) string {
				if driverName == "pgx" {
					return id
				}
				return s.commit
			}
			// Warm up: the guard's table exists, pgx has the statements.
			if _, err := db.ExecContext(ctx, s.ins, "warm"); err != nil {
				t.Fatal(err)
			}
			if _, err := dbOff.ExecContext(ctx, s.ins, "warm-off"); err != nil {
				t.Fatal(err)
			}
			count := func(id string) int { return s.count("select count(*) from t where id = '" + id + "'") }

			t.Run("exec lost after it took effect: nil error, result unknown", func(t *testing.T) {
				id := "applied-exec"
				before := hc.Stats()
				records := s.count("select count(*) from hasql_txguard")
				cut := s.fp.Cut(cutAt(id), true, 1)
				res, err := db.ExecContext(ctx, s.ins, id)
				if !cut.Fired() {
					t.Fatalf("the cut did not happen (exec: %v)", err)
				}
				if err != nil {
					t.Fatalf("exec: %v, want nil (it took effect)", err)
				}
				if _, rerr := res.RowsAffected(); !errors.Is(rerr, hasql.ErrResultUnknown) || !strings.Contains(rerr.Error(), "lost after the work took effect; its result is unknown") {
					t.Fatalf("RowsAffected: %v, want ErrResultUnknown saying the work took effect", rerr)
				}
				if _, rerr := res.LastInsertId(); !errors.Is(rerr, hasql.ErrResultUnknown) {
					t.Fatalf("LastInsertId: %v, want ErrResultUnknown", rerr)
				}
				if n := count(id); n != 1 {
					t.Fatalf("the write is there %d times, want once", n)
				}
				// The write's own record; the resolution's statements are
				// the guard's own work and are not wrapped themselves.
				if n := s.count("select count(*) from hasql_txguard") - records; n != 1 {
					t.Errorf("%d guard records written, want 1 (the write's)", n)
				}
				if st := hc.Stats(); st.TxCommittedAfterLoss != before.TxCommittedAfterLoss+1 || st.TxUnknown != before.TxUnknown {
					t.Errorf("TxCommittedAfterLoss %d → %d (want +1), TxUnknown %d → %d (want unchanged)", before.TxCommittedAfterLoss, st.TxCommittedAfterLoss, before.TxUnknown, st.TxUnknown)
				}
			})

			t.Run("exec lost before it took effect: run again, real result", func(t *testing.T) {
				id := "not-applied-exec"
				before := hc.Stats()
				cut := s.fp.Cut(cutAt(id), false, 1)
				res, err := db.ExecContext(ctx, s.ins, id)
				if !cut.Fired() {
					t.Fatalf("the cut did not happen (exec: %v)", err)
				}
				if err != nil {
					t.Fatalf("exec: %v, want nil (resolved as not applied, run again)", err)
				}
				if n, rerr := res.RowsAffected(); rerr != nil || n != 1 {
					t.Fatalf("RowsAffected: %d, %v; want 1 (the re-run's own result)", n, rerr)
				}
				if n := count(id); n != 1 {
					t.Fatalf("the write is there %d times, want once", n)
				}
				if st := hc.Stats(); st.Retries <= before.Retries || st.TxUnknown != before.TxUnknown {
					t.Errorf("Retries %d → %d (want more), TxUnknown %d → %d (want unchanged)", before.Retries, st.Retries, before.TxUnknown, st.TxUnknown)
				}
			})

			t.Run("exec lost before it took effect, retry off: ErrTxNotCommitted, safe to retry", func(t *testing.T) {
				id := "not-applied-exec-off"
				before := hcOff.Stats()
				cut := s.fp.Cut(cutAt(id), false, 1)
				_, err := dbOff.ExecContext(ctx, s.ins, id)
				if !cut.Fired() {
					t.Fatalf("the cut did not happen (exec: %v)", err)
				}
				var lost *hasql.LostError
				if !foWraps(err, hasql.ErrTxNotCommitted) || !errors.As(err, &lost) || !lost.SafeToRetry() || errors.Is(err, hasql.ErrConnectionLost) {
					t.Fatalf("exec: %v, want a *LostError wrapping ErrTxNotCommitted, SafeToRetry", err)
				}
				if !strings.Contains(err.Error(), "lost; the work did not take effect") {
					t.Errorf("message %q does not say the work did not take effect", err)
				}
				if n := count(id); n != 0 {
					t.Fatalf("said not applied but the write is there %d times", n)
				}
				if st := hcOff.Stats(); st.TxUnknown != before.TxUnknown || st.TxNotCommitted != before.TxNotCommitted+1 {
					t.Errorf("TxUnknown %d → %d (want unchanged), TxNotCommitted %d → %d (want +1)", before.TxUnknown, st.TxUnknown, before.TxNotCommitted, st.TxNotCommitted)
				}
			})

			// A write query. On MariaDB it runs in its own transaction,
			// committed with its record when its rows end: the cut is at
			// that COMMIT. On PostgreSQL the record is written by the
			// statement itself: the cut is at the statement.
			ret := "insert into t values ($1) returning id"
			if driverName == "mysql" {
				ret = "insert into t values (?) returning id"
			}
			for _, after := range []bool{true, false} {
				t.Run(fmt.Sprintf("query lost, took effect %v", after), func(t *testing.T) {
					id := fmt.Sprintf("query-%v", after)
					cut := s.fp.Cut(cutAt(id), after, 1)
					var got string
					err := db.QueryRowContext(ctx, ret, id).Scan(&got)
					if !cut.Fired() {
						t.Fatalf("the cut did not happen (query: %v)", err)
					}
					n := count(id)
					var lost *hasql.LostError
					switch {
					case after && driverName == "pgx":
						// The rows were lost with the session.
						if !foWraps(err, hasql.ErrResultUnknown) || !errors.As(err, &lost) || lost.SafeToRetry() {
							t.Fatalf("query: %v, want a *LostError wrapping ErrResultUnknown", err)
						}
					case after:
						// Every row was read before the COMMIT was lost.
						if err != nil || got != id {
							t.Fatalf("query: %q, %v; want %q, nil (it took effect)", got, err, id)
						}
					case driverName == "pgx":
						// Not applied: run again.
						if err != nil || got != id {
							t.Fatalf("query: %q, %v; want %q, nil (run again)", got, err, id)
						}
					default:
						if !foWraps(err, hasql.ErrTxNotCommitted) || !errors.As(err, &lost) || !lost.SafeToRetry() {
							t.Fatalf("query: %v, want a *LostError wrapping ErrTxNotCommitted, SafeToRetry", err)
						}
						if n != 0 {
							t.Fatalf("said not applied but the write is there %d times", n)
						}
						return
					}
					if n != 1 {
						t.Fatalf("the write is there %d times, want once", n)
					}
				})
			}

			t.Run("reads and transactions write no autocommit record", func(t *testing.T) {
				records := s.count("select count(*) from hasql_txguard")
				var n int
				if err := db.QueryRowContext(ctx, "select count(*) from t").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if got := s.count("select count(*) from hasql_txguard"); got != records {
					t.Fatalf("a read wrote %d guard records", got-records)
				}
			})

			// The pool goes on.
			if _, err := db.ExecContext(ctx, s.ins, "after"); err != nil {
				t.Fatalf("insert after the losses: %v", err)
			}
		})
	}
}

// On PostgreSQL a write on a table whose rules turn it into several
// statements cannot take the record's CTE (the server refuses the WITH
// before anything runs): it is guarded the other way, and works as
// without the guard.
func TestTxGuardAllStatementRewrittenByRules(t *testing.T) {
	ctx := context.Background()
	s := txgSetup(t, "pgx", "hasql.txguard=all")
	s.exec("create table rbase (id text primary key); create table rlog (id text); create rule rlog_also as on insert to rbase do also insert into rlog values (new.id)")
	db, _ := foOpen(t, "pgx", s.dsn)
	if _, err := db.ExecContext(ctx, "insert into t values ('warm')"); err != nil {
		t.Fatal(err)
	}
	records := s.count("select count(*) from hasql_txguard")
	for _, id := range []string{"a", "b"} {
		res, err := db.ExecContext(ctx, "insert into rbase values ($1)", id)
		if err != nil {
			t.Fatalf("insert through a rule: %v", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("RowsAffected: %d, %v; want 1", n, err)
		}
	}
	if n := s.count("select count(*) from rlog"); n != 2 {
		t.Fatalf("the rule ran %d times, want 2", n)
	}
	if n := s.count("select count(*) from hasql_txguard") - records; n != 2 {
		t.Fatalf("%d guard records, want 2", n)
	}
}
