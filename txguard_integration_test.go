package hasql_test

// The commit-outcome guard on real servers (issue 13): a session cut by the
// fault proxy exactly after COMMIT reached the server, or exactly before,
// and what Commit then says.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// txgServer is one server of the guard's tests: a DSN for hasql through a
// fault proxy, and a way to count rows without hasql.
type txgServer struct {
	driver string
	dsn    string // the inner DSN, pointing at the proxy via hasql.hosts
	fp     *faultProxy
	count  func(q string) int
	exec   func(q string) // runs q without hasql
	ins    string
	commit string // what the guarded commit's message contains
}

func txgSetup(t *testing.T, driverName, keys string) *txgServer {
	t.Helper()
	s := &txgServer{driver: driverName}
	switch driverName {
	case "pgx":
		p := sharedPG(t)
		dsn := p.FreshDB(t)
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		if _, err := raw.Exec("create table t (id text primary key)"); err != nil {
			t.Fatal(err)
		}
		s.fp = newFaultProxy(t, "127.0.0.1:"+strconv.Itoa(p.Port)).PGAware()
		s.dsn = dsn + "&hasql.hosts=" + s.fp.Addr() + "&" + keys
		s.count = func(q string) int {
			var n int
			if err := raw.QueryRow(q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		s.exec = func(q string) {
			if _, err := raw.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		s.ins, s.commit = "insert into t values ($1)", "COMMIT /* hasql.txguard" // the guarded commit's COMMIT, in the pipeline's Parse
	case "mysql":
		m := sharedMaria(t)
		dsn := m.FreshDB(t)
		dbName := dsn[strings.LastIndexByte(dsn, '/')+1:]
		if err := m.ExecIn(dbName, "create table t (id varchar(40) primary key)"); err != nil {
			t.Fatal(err)
		}
		s.fp = newFaultProxy(t, "127.0.0.1:"+strconv.Itoa(m.Port))
		s.dsn = dsn + "?hasql.hosts=" + s.fp.Addr() + "&" + keys
		s.count = func(q string) int {
			out, err := m.QueryIn(dbName, q)
			if err != nil {
				t.Fatal(err)
			}
			n, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			return n
		}
		s.exec = func(q string) {
			if err := m.ExecIn(dbName, q); err != nil {
				t.Fatal(err)
			}
		}
		s.ins, s.commit = "insert into t values (?)", "COMMIT /* hasql.txguard"
	}
	return s
}

func TestTxGuardResolvesALostCommit(t *testing.T) {
	ctx := context.Background()
	for _, driverName := range []string{"pgx", "mysql"} {
		t.Run(driverName, func(t *testing.T) {
			table := "hasql_txguard"
			keys := "hasql.txguard=on"
			if driverName == "mysql" {
				table = "guard_records" // a name of the application's choosing
				keys += "&hasql.txguard_table=" + table
			}
			s := txgSetup(t, driverName, keys)
			db, hc := foOpen(t, driverName, s.dsn)
			for _, tc := range []struct {
				name  string
				after bool // the cut comes after COMMIT was forwarded
			}{{"cut after COMMIT reached the server: committed", true}, {"cut before COMMIT reached the server: not committed", false}} {
				t.Run(tc.name, func(t *testing.T) {
					id := fmt.Sprintf("row-%v", tc.after)
					before := hc.Stats()
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, s.ins, id); err != nil {
						t.Fatal(err)
					}
					cut := s.fp.Cut(s.commit, tc.after, 1)
					err = tx.Commit()
					if !cut.Fired() {
						t.Fatalf("the cut did not happen (commit: %v)", err)
					}
					st := hc.Stats()
					n := s.count("select count(*) from t where id = '" + id + "'")
					if tc.after {
						if err != nil {
							t.Fatalf("commit: %v, want nil (it committed)", err)
						}
						if n != 1 {
							t.Fatalf("Commit returned nil but the row is there %d times", n)
						}
						if st.TxCommittedAfterLoss != before.TxCommittedAfterLoss+1 {
							t.Errorf("TxCommittedAfterLoss %d → %d, want +1", before.TxCommittedAfterLoss, st.TxCommittedAfterLoss)
						}
					} else {
						if !foWraps(err, hasql.ErrTxNotCommitted) || errors.Is(err, hasql.ErrTxResolutionUnknown) {
							t.Fatalf("commit: %v, want ErrTxNotCommitted", err)
						}
						if n != 0 {
							t.Fatalf("Commit said not committed but the row is there %d times", n)
						}
						if st.TxNotCommitted != before.TxNotCommitted+1 {
							t.Errorf("TxNotCommitted %d → %d, want +1", before.TxNotCommitted, st.TxNotCommitted)
						}
					}
					if st.TxUnknown != before.TxUnknown {
						t.Errorf("TxUnknown grew: %d → %d", before.TxUnknown, st.TxUnknown)
					}
					// The pool goes on.
					if _, err := db.ExecContext(ctx, s.ins, id+"-after"); err != nil {
						t.Fatalf("insert after the loss: %v", err)
					}
				})
			}
			t.Run("read-only transaction: no record, nothing to resolve", func(t *testing.T) {
				records := s.count("select count(*) from " + table)
				tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				var n int
				if err := tx.QueryRowContext(ctx, "select count(*) from t").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatalf("commit: %v", err)
				}
				if got := s.count("select count(*) from " + table); got != records {
					t.Fatalf("a read-only transaction wrote %d guard records", got-records)
				}
			})
		})
	}
}

// A user who may not create the guard's table: BeginTx fails, naming the
// table, until an administrator creates it with the documented DDL and
// grants the user its rights; then guarded transactions work.
func TestTxGuardTableMissingAndNotCreatable(t *testing.T) {
	ctx := context.Background()
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	role := "noddl_" + harnessRandHex(4)
	for _, s := range []string{
		"create role " + role + " login",
		"revoke create on schema public from public",
		"create table t (id text primary key)",
		"grant insert, select on t to " + role,
	} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() { _ = p.Exec("drop owned by " + role + " cascade; drop role if exists " + role) })
	userDSN := strings.Replace(dsn, "postgres@", role+"@", 1)
	db, _ := foOpen(t, "pgx", userDSN+"&hasql.txguard=on")
	_, err = db.BeginTx(ctx, nil)
	if !errors.Is(err, hasql.ErrTxGuard) || !strings.Contains(err.Error(), `"hasql_txguard"`) {
		t.Fatalf("BeginTx without the table: %v, want ErrTxGuard naming \"hasql_txguard\"", err)
	}
	// The documented DDL, by an administrator, and the documented rights.
	for _, s := range []string{
		`CREATE TABLE IF NOT EXISTS "hasql_txguard" (id text PRIMARY KEY, tomb boolean NOT NULL DEFAULT false, at timestamptz NOT NULL DEFAULT now())`,
		"grant insert, update, select, delete on hasql_txguard to " + role,
	} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx once the table exists: %v", err)
	}
	if _, err := tx.ExecContext(ctx, "insert into t values ('x')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRow("select count(*) from hasql_txguard").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d guard records (%v), want the transaction's one", n, err)
	}
}

// The janitor deletes records older than the retention (an hour at the
// default outage wait) and keeps newer ones.
func TestTxGuardJanitorDeletesOldRecords(t *testing.T) {
	ctx := context.Background()
	for _, driverName := range []string{"pgx", "mysql"} {
		t.Run(driverName, func(t *testing.T) {
			s := txgSetup(t, driverName, "hasql.txguard=on")
			db, hc := foOpen(t, driverName, s.dsn)
			tx, err := db.BeginTx(ctx, nil) // creates the table
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			old := "now() - interval '2 hours'"
			if driverName == "mysql" {
				old = "NOW(6) - INTERVAL 2 HOUR"
			}
			for i := range 3 {
				if _, err := db.ExecContext(ctx, fmt.Sprintf("insert into hasql_txguard (id, at) values ('old%d', %s)", i, old)); err != nil {
					t.Fatal(err)
				}
			}
			total := s.count("select count(*) from hasql_txguard")
			hasql.TxGuardPurgeRound(hc)
			if n := s.count("select count(*) from hasql_txguard where id like 'old%'"); n != 0 {
				t.Fatalf("%d old records left", n)
			}
			if n := s.count("select count(*) from hasql_txguard"); n != total-3 {
				t.Fatalf("%d records after the purge, want %d: newer ones were deleted", n, total-3)
			}
		})
	}
}

// With replay on as well (issue 13, point 4), a COMMIT lost after it was
// sent that the guard resolves as not committed is not the application's
// problem: the transaction is replayed on a new session and committed
// there, once; Commit returns nil. A replay whose results differ gives
// ErrReplayDiverged wrapping the loss, and nothing is committed.
func TestTxGuardReplaysACommitResolvedNotCommitted(t *testing.T) {
	ctx := context.Background()
	for _, driverName := range []string{"pgx", "mysql"} {
		t.Run(driverName, func(t *testing.T) {
			s := txgSetup(t, driverName, "hasql.txguard=on&hasql.replay=on")
			var intrude atomic.Bool // the recovery function changes the data the replay reads
			db, hc := foOpen(t, driverName, s.dsn, hasql.WithRecovery(func(context.Context, *hasql.Session, error) error {
				if intrude.Swap(false) {
					s.exec("insert into t values ('intruder')")
				}
				return nil
			}))
			for _, tc := range []struct {
				name    string
				diverge bool
				cuts    int // every COMMIT cut, this many times; 0: the first only
			}{
				{"replayed and committed once", false, 0},
				{"replay diverges", true, 0},
				// maxReplays is 3: the fourth lost COMMIT is the application's.
				{"every COMMIT lost: replays are bounded", false, 4},
			} {
				t.Run(tc.name, func(t *testing.T) {
					id := fmt.Sprintf("row-%v-%d", tc.diverge, tc.cuts)
					before := hc.Stats()
					// A transaction context that ends: nothing hasql or the
					// driver watches on it may outlive the test (goleak).
					txCtx, cancel := context.WithCancel(ctx)
					defer cancel()
					tx, err := db.BeginTx(txCtx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, s.ins, id); err != nil {
						t.Fatal(err)
					}
					var n int
					if err := tx.QueryRowContext(ctx, "select count(*) from t").Scan(&n); err != nil {
						t.Fatal(err)
					}
					intrude.Store(tc.diverge)
					if tc.cuts > 0 {
						cut := s.fp.Cut("commit", false, tc.cuts)
						err = tx.Commit()
						cut.Stop()
						if made := cut.Made(); made != int64(tc.cuts) {
							t.Fatalf("%d COMMITs cut, want %d (commit: %v)", made, tc.cuts, err)
						}
					} else {
						cut := s.fp.Cut(s.commit, false, 1)
						err = tx.Commit()
						if !cut.Fired() {
							t.Fatalf("the cut did not happen (commit: %v)", err)
						}
					}
					st := hc.Stats()
					got := s.count("select count(*) from t where id = '" + id + "'")
					switch {
					case tc.cuts > 0:
						if !foWraps(err, hasql.ErrTxNotCommitted) || errors.Is(err, hasql.ErrReplayDiverged) {
							t.Fatalf("commit: %v, want ErrTxNotCommitted", err)
						}
						if got != 0 {
							t.Fatalf("Commit said not committed but the row is there %d times", got)
						}
						if st.Replays != before.Replays+int64(tc.cuts-1) || st.TxNotCommitted != before.TxNotCommitted+1 {
							t.Errorf("Replays %d → %d (want +%d), TxNotCommitted %d → %d (want +1)", before.Replays, st.Replays, tc.cuts-1, before.TxNotCommitted, st.TxNotCommitted)
						}
					case !tc.diverge:
						if err != nil {
							t.Fatalf("commit: %v, want nil (replayed and committed)", err)
						}
						if got != 1 {
							t.Fatalf("Commit returned nil but the row is there %d times", got)
						}
						if st.Replays != before.Replays+1 {
							t.Errorf("Replays %d → %d, want +1", before.Replays, st.Replays)
						}
						if st.TxNotCommitted != before.TxNotCommitted {
							t.Errorf("TxNotCommitted %d → %d, want unchanged (the transaction committed)", before.TxNotCommitted, st.TxNotCommitted)
						}
					default:
						if !errors.Is(err, hasql.ErrReplayDiverged) || !foWraps(err, hasql.ErrTxNotCommitted) {
							t.Fatalf("commit: %v, want ErrReplayDiverged wrapping ErrTxNotCommitted", err)
						}
						if got != 0 {
							t.Fatalf("Commit said diverged but the row is there %d times", got)
						}
						if st.ReplaysDiverged != before.ReplaysDiverged+1 || st.TxNotCommitted != before.TxNotCommitted+1 {
							t.Errorf("ReplaysDiverged %d → %d, TxNotCommitted %d → %d, want +1 each", before.ReplaysDiverged, st.ReplaysDiverged, before.TxNotCommitted, st.TxNotCommitted)
						}
					}
					if st.TxUnknown != before.TxUnknown || st.TxCommittedAfterLoss != before.TxCommittedAfterLoss {
						t.Errorf("TxUnknown %d → %d, TxCommittedAfterLoss %d → %d, want unchanged", before.TxUnknown, st.TxUnknown, before.TxCommittedAfterLoss, st.TxCommittedAfterLoss)
					}
					// The pool goes on.
					if _, err := db.ExecContext(ctx, s.ins, id+"-after"); err != nil {
						t.Fatalf("insert after the loss: %v", err)
					}
				})
			}
		})
	}
}

// A session that dies while its transaction idles is found dead only by
// Commit, after the driver wrote COMMIT: the guard resolves it as not
// committed (the server rolled the transaction back when the session
// ended), and with replay on the transaction is replayed and committed
// once; with replay off Commit says ErrTxNotCommitted.
func TestTxGuardCommitAfterTheSessionDiedIdle(t *testing.T) {
	ctx := context.Background()
	for _, srv := range replayServers(t) {
		t.Run(srv.driver, func(t *testing.T) {
			if err := srv.admin("create table t (id varchar(40) primary key, n int not null)"); err != nil {
				t.Fatal(err)
			}
			count := func(id string) int {
				db, err := sql.Open(srv.driver, strings.Replace(strings.Replace(srv.dsn, "&hasql.replay=on", "", 1), "?hasql.replay=on", "", 1))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var n int
				if err := db.QueryRow(srv.q("select count(*) from t where id = ?"), id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for _, replay := range []bool{true, false} {
				t.Run(fmt.Sprintf("replay %v", replay), func(t *testing.T) {
					dsn := srv.dsn + "&hasql.txguard=on"
					if !replay {
						dsn = strings.Replace(dsn, "hasql.replay=on", "hasql.replay=off", 1)
					}
					db, hc := foOpen(t, srv.driver, dsn)
					id := fmt.Sprintf("idle-%v", replay)
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, srv.q("insert into t values (?, ?)"), id, 1); err != nil {
						t.Fatal(err)
					}
					var n int
					if err := tx.QueryRowContext(ctx, srv.q("select n from t where id = ?"), id).Scan(&n); err != nil || n != 1 {
						t.Fatalf("read: %d, %v", n, err)
					}
					before := hc.Stats()
					srv.kill(t) // while the transaction idles
					time.Sleep(100 * time.Millisecond)
					err = tx.Commit()
					st := hc.Stats()
					got := count(id)
					if replay {
						if err != nil || got != 1 {
							t.Fatalf("commit: %v, the row there %d times; want nil and once (replayed)", err, got)
						}
						if st.Replays != before.Replays+1 {
							t.Errorf("Replays %d → %d, want +1", before.Replays, st.Replays)
						}
					} else {
						if !foWraps(err, hasql.ErrTxNotCommitted) || got != 0 {
							t.Fatalf("commit: %v, the row there %d times; want ErrTxNotCommitted and absent", err, got)
						}
					}
					if st.TxUnknown != before.TxUnknown {
						t.Errorf("TxUnknown %d → %d, want unchanged", before.TxUnknown, st.TxUnknown)
					}
				})
			}
		})
	}
}

// The guarded COMMIT names its record's id in its text on PostgreSQL, so
// that the guard can find (in pg_stat_activity) and end a backend still
// running it when a loss is resolved; a bind parameter would not show.
func TestTxGuardCommitTextNamesTheRecord(t *testing.T) {
	ctx := context.Background()
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	dbName := replayDBName(dsn)
	if err := p.ExecIn(dbName, "create table t (id text primary key)"); err != nil {
		t.Fatal(err)
	}
	db, _ := foOpen(t, "pgx", dsn+"&hasql.txguard=on")
	conn, err := db.Conn(ctx) // keeps the session: its last query stays in pg_stat_activity
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "insert into t values ('x')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	out, err := p.QueryIn(dbName, "select g.id from hasql_txguard g, pg_stat_activity a where a.datname = current_database() and a.pid <> pg_backend_pid() and strpos(a.query, g.id) > 0 and a.query like 'COMMIT /* hasql.txguard %'")
	if err != nil {
		t.Fatal(err)
	}
	if ids := strings.Fields(out); len(ids) != 1 {
		t.Fatalf("backends whose last query is a COMMIT naming a guard record: %q, want the one of the transaction", out)
	}
}
