package hasql_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// TestDurabilityLostPrimarySettledByGuard: under hasql.durability=replicated with
// hasql.txguard=on, a commit whose primary session dies while it waits for the standby (the
// standby's replication black-holed by the proxy) is settled by the commit-outcome guard rather
// than reported unknown:
//   - the connection to a live primary broken (its backend terminated): the guard finds the
//     commit on the same primary, the wait is made again on a new session, and once replication
//     flows the commit returns nil;
//   - the primary killed and the standby promoted: the guard finds the commit absent on the new
//     primary, and Commit returns ErrTxNotCommitted (the row is indeed absent).
func TestDurabilityLostPrimarySettledByGuard(t *testing.T) {
	cl := startRWPG(t)
	db, c := foOpen(t, "pgx", cl.dsn("&hasql.durability=replicated&hasql.durability_wait=60s&hasql.txguard=on&hasql.outage_wait=60s&hasql.reconnect=50ms"))
	commit := commitInBackground(db, "update kv set v = $1 where k = 1")
	// Replication flowing: confirmed (and the guard's table is on the standby).
	if err := <-commit(1); err != nil {
		t.Fatal(err)
	}
	onPrimary := func(v string) func() bool {
		return func() bool {
			out, err := cl.prim.QueryIn("test", "select v from kv where k = 1")
			return err == nil && out == v
		}
	}
	waiter := "select pid from pg_stat_activity where datname = 'test' and query like '%pg_stat_get_wal_senders%' and pid <> pg_backend_pid()"

	// 1. The waiting session's connection is broken; the primary lives.
	cl.proxy.SetMode(fpBlackhole)
	done := commit(2)
	waitUntil(t, 30*time.Second, "commit 2 done on the primary", onPrimary("2"))
	waitUntil(t, 30*time.Second, "the durability wait under way", func() bool {
		out, err := cl.prim.QueryIn("test", waiter)
		return err == nil && out != ""
	})
	if _, err := cl.prim.QueryIn("test", "select pg_terminate_backend(pid) from ("+waiter+") w"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the guard resolves and waits again, replication still cut
	cl.proxy.SetMode(fpPass)
	if err := <-done; err != nil {
		t.Fatalf("commit 2 (on the live primary, then replicated): %v", err)
	}
	if out, err := cl.stby.QueryIn("test", "select v from kv where k = 1"); err != nil || out != "2" {
		t.Fatalf("commit 2 on the standby: %q %v", out, err)
	}

	// 2. The primary dies during the wait and the standby, which lacks the commit, is promoted.
	cl.proxy.SetMode(fpBlackhole)
	done = commit(3)
	waitUntil(t, 30*time.Second, "commit 3 done on the primary", onPrimary("3"))
	if err := cl.prim.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	if err := cl.stby.Promote(); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !errors.Is(err, hasql.ErrTxNotCommitted) {
		t.Fatalf("commit 3 (primary lost before the standby had it): %v, want ErrTxNotCommitted", err)
	}
	if out, err := cl.stby.QueryIn("test", "select v from kv where k = 1"); err != nil || out != "2" {
		t.Fatalf("the new primary: v = %q (%v), want 2 (commit 3 absent)", out, err)
	}
	if st := c.Stats(); st.TxNotCommitted != 1 || st.TxCommittedAfterLoss != 1 {
		t.Fatalf("stats: %d resolved not committed, %d committed after loss; want 1 and 1", st.TxNotCommitted, st.TxCommittedAfterLoss)
	}
}

// TestDurabilityLostPrimarySettledByGuardMariaDB: the same on MariaDB, whose wait runs on the
// replica (MASTER_GTID_WAIT) and only times out when the primary dies: with the replica's SQL
// thread stopped, a commit waits; the primary is killed and the replica promoted (replication
// reset, read_only off); when the wait runs out, the primary's session is found dead and the guard
// finds the commit absent on the new primary: ErrTxNotCommitted, and the row is indeed absent.
func TestDurabilityLostPrimarySettledByGuardMariaDB(t *testing.T) {
	r, name, dsn := startRWMaria(t)
	db, c := foOpen(t, "mysql", dsn+"&hasql.durability=replicated&hasql.durability_wait=3s&hasql.txguard=on&hasql.outage_wait=60s&hasql.reconnect=50ms")
	commit := commitInBackground(db, "UPDATE kv SET v = ? WHERE k = 1")
	// Replica applying: confirmed (and the guard's table is on the replica).
	if err := <-commit(1); err != nil {
		t.Fatal(err)
	}
	if err := r.Replica.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	done := commit(2)
	waitUntil(t, 30*time.Second, "commit 2 done on the primary", func() bool {
		out, err := r.Primary.QueryIn(name, "SELECT v FROM kv WHERE k = 1")
		return err == nil && out == "2"
	})
	if err := r.Primary.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := r.Replica.Exec("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF"); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !errors.Is(err, hasql.ErrTxNotCommitted) {
		t.Fatalf("commit 2 (primary lost before the replica applied it): %v, want ErrTxNotCommitted", err)
	}
	if out, err := r.Replica.QueryIn(name, "SELECT v FROM kv WHERE k = 1"); err != nil || out != "1" {
		t.Fatalf("the new primary: v = %q (%v), want 1 (commit 2 absent)", out, err)
	}
	if st := c.Stats(); st.TxNotCommitted != 1 {
		t.Fatalf("stats: %d resolved not committed, want 1", st.TxNotCommitted)
	}
}

// commitInBackground returns a function that runs update (one argument, v) in a transaction and
// commits it in another goroutine; the returned channel gets the first error, or nil.
func commitInBackground(db *sql.DB, update string) func(v int) <-chan error {
	return func(v int) <-chan error {
		done := make(chan error, 1)
		go func() {
			tx, err := db.BeginTx(context.Background(), nil)
			if err == nil {
				if _, err = tx.Exec(update, v); err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
			}
			done <- err
		}()
		return done
	}
}
