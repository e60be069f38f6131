package hasql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// PgBouncer 1.18 in transaction mode (default_pool_size 2, so that consecutive transactions of one
// client land on different server connections) in front of a throwaway PostgreSQL: raw pgx fails
// there, hasql with hasql.pooler=transaction (or recognising PgBouncer itself) does not.

// pgbModes are pgx's query execution modes, as default_query_exec_mode spells them.
var pgbModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// pgbSetup makes a fresh database behind the shared PgBouncer with table kv(id int primary key,
// v text) holding rows 1..50 ("v<id>"), and returns the DSN through PgBouncer.
func pgbSetup(t *testing.T) string {
	t.Helper()
	b := testserver.SharedPgBouncer(t)
	dsn := b.FreshDB(t)
	u, _ := url.Parse(dsn)
	if err := b.Backend.ExecIn(strings.TrimPrefix(u.Path, "/"),
		"create table kv(id int primary key, v text not null); insert into kv select g, 'v'||g from generate_series(1,50) g"); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// pgbWorkload runs workers goroutines of n operations each on db, cycling through statement
// shapes whose results it checks (ad-hoc queries of several shapes, an exec, a transaction, and
// *sql.Stmt prepared once and run inside and outside transactions). It returns the errors seen
// (at most 20 kept, all counted) and the number of wrong answers.
func pgbWorkload(t *testing.T, db *sql.DB, workers, n int) (errs []error, nerr, wrong int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stmtGet, err := db.PrepareContext(ctx, "select v from kv where id = $1")
	if err != nil {
		return []error{fmt.Errorf("prepare: %w", err)}, 1, 0
	}
	defer stmtGet.Close()
	stmtAdd, err := db.PrepareContext(ctx, "select $1::int + $2::int, $3::text")
	if err != nil {
		return []error{fmt.Errorf("prepare: %w", err)}, 1, 0
	}
	defer stmtAdd.Close()
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		nerr++
		if len(errs) < 20 {
			errs = append(errs, err)
		}
	}
	bad := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		wrong++
		if wrong <= 5 {
			t.Logf("wrong result: "+format, args...)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n && ctx.Err() == nil; i++ {
				id := 1 + (w*n+i)%50
				switch i % 6 {
				case 0: // ad-hoc, one parameter
					var v string
					if err := db.QueryRowContext(ctx, "select v from kv where id = $1", id).Scan(&v); err != nil {
						fail(err)
					} else if v != fmt.Sprintf("v%d", id) {
						bad("id %d: %q", id, v)
					}
				case 1: // ad-hoc, two parameters of other types
					var s int
					var x string
					if err := db.QueryRowContext(ctx, "select $1::int * 2, $2::text || 'x'", id, "a").Scan(&s, &x); err != nil {
						fail(err)
					} else if s != 2*id || x != "ax" {
						bad("%d %q", s, x)
					}
				case 2: // exec, ad-hoc and through a statement prepared and closed each time
					if _, err := db.ExecContext(ctx, "update kv set v = v where id = $1", id); err != nil {
						fail(err)
					}
					st, err := db.PrepareContext(ctx, "update kv set v = v where id = $1")
					if err != nil {
						fail(err)
						continue
					}
					if r, err := st.ExecContext(ctx, id); err != nil {
						fail(err)
					} else if n, _ := r.RowsAffected(); n != 1 {
						bad("update id %d: %d rows", id, n)
					}
					if err := st.Close(); err != nil {
						fail(err)
					}
				case 3: // transaction: several statements on one server connection
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						fail(err)
						continue
					}
					var v string
					err = tx.QueryRowContext(ctx, "select v from kv where id = $1", id).Scan(&v)
					if err == nil && v != fmt.Sprintf("v%d", id) {
						bad("tx id %d: %q", id, v)
					}
					if err == nil {
						var s int
						if err = tx.StmtContext(ctx, stmtAdd).QueryRowContext(ctx, id, 1, "t").Scan(&s, &v); err == nil && (s != id+1 || v != "t") {
							bad("tx stmt %d %q", s, v)
						}
					}
					if err != nil {
						fail(err)
						_ = tx.Rollback()
						continue
					}
					if err := tx.Commit(); err != nil {
						fail(err)
					}
				case 4: // prepared statement, outside a transaction
					var v string
					if err := stmtGet.QueryRowContext(ctx, id).Scan(&v); err != nil {
						fail(err)
					} else if v != fmt.Sprintf("v%d", id) {
						bad("stmt id %d: %q", id, v)
					}
				case 5: // prepared statement with three parameters
					var s int
					var x string
					if err := stmtAdd.QueryRowContext(ctx, id, 10, "p").Scan(&s, &x); err != nil {
						fail(err)
					} else if s != id+10 || x != "p" {
						bad("stmt %d %q", s, x)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	return errs, nerr, wrong
}

// pgbIsStmtError reports whether err is one of the errors a transaction pooler causes to a
// client that keeps prepared statements: 42P05 (already exists), 26000 (does not exist), or a
// Bind that reached another server connection's unnamed statement (08P01, 22P02, 22P03).
func pgbIsStmtError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P05", "26000", "08P01", "22P02", "22P03":
			return true
		}
	}
	return false
}

// TestPgBouncerRawPgxFails shows the problem is real: raw pgx (its stdlib driver, no hasql)
// through PgBouncer in transaction mode fails in its default mode with 42P05/26000, and gets
// errors or wrong answers in describe_exec; the safe modes (exec, simple_protocol) still fail
// db.Prepare's *sql.Stmt.
func TestPgBouncerRawPgxFails(t *testing.T) {
	dsn := pgbSetup(t)
	for _, mode := range []string{"cache_statement", "describe_exec", "exec"} {
		t.Run(mode, func(t *testing.T) {
			db, err := sql.Open("pgx", dsn+"&default_query_exec_mode="+mode)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(8)
			errs, nerr, wrong := pgbWorkload(t, db, 8, 60)
			stmtErrs := 0
			for _, err := range errs {
				if pgbIsStmtError(err) || strings.Contains(err.Error(), "prepared statement") {
					stmtErrs++
				}
			}
			t.Logf("raw pgx %s: %d errors (first: %v), %d wrong results", mode, nerr, firstErr(errs), wrong)
			if nerr+wrong == 0 {
				t.Fatalf("raw pgx in mode %s through PgBouncer saw no error and no wrong result: the test does not show the problem", mode)
			}
			if stmtErrs == 0 && wrong == 0 {
				t.Fatalf("raw pgx %s failed, but not with a prepared-statement error: %v", mode, errs)
			}
		})
	}
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// TestPgBouncerHasqlEveryMode: through hasql with hasql.pooler=transaction, every pgx mode runs
// the workload (ad-hoc work, transactions, *sql.Stmt reused across many transactions, 8
// concurrent workers) with no error and no wrong result; and so it does with no hasql.pooler key,
// hasql recognising PgBouncer by itself.
func TestPgBouncerHasqlEveryMode(t *testing.T) {
	dsn := pgbSetup(t)
	for _, mode := range pgbModes {
		for _, key := range []string{"&hasql.pooler=transaction", ""} {
			name := mode + "/pooler=transaction"
			if key == "" {
				name = mode + "/detected"
			}
			t.Run(name, func(t *testing.T) {
				db, err := sql.Open("hasql", "pgx:"+dsn+"&default_query_exec_mode="+mode+key)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(8)
				errs, nerr, wrong := pgbWorkload(t, db, 8, 60)
				if nerr > 0 || wrong > 0 {
					t.Fatalf("hasql %s through PgBouncer: %d errors, %d wrong results; errors: %v", name, nerr, wrong, errs)
				}
				c, _ := hasql.ConnectorOf(db)
				st := c.Stats()
				if st.StmtCacheHits == 0 {
					t.Errorf("the statement cache was not used (stats %+v)", st)
				}
			})
		}
	}
}

// TestPgBouncerPrepareReusedAcrossTransactions: one *sql.Stmt, prepared once, run in 200
// transactions in turn on one *sql.Conn: the transactions land on both server connections
// (pg_backend_pid differs), and every execution answers right.
func TestPgBouncerPrepareReusedAcrossTransactions(t *testing.T) {
	dsn := pgbSetup(t)
	db, err := sql.Open("hasql", "pgx:"+dsn+"&hasql.pooler=transaction")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := conn.PrepareContext(ctx, "select v, pg_backend_pid() from kv where id = $1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A second client keeps the other server connection busy now and then, so that PgBouncer
	// hands this one both.
	other, err := sql.Open("pgx", dsn+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	pids := map[int]bool{}
	for i := 0; i < 200; i++ {
		var otx *sql.Tx
		if i%3 == 0 {
			if otx, err = other.BeginTx(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err = otx.ExecContext(ctx, "select 1"); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		id := 1 + i%50
		var v string
		var pid int
		if err := tx.StmtContext(ctx, st).QueryRowContext(ctx, id).Scan(&v, &pid); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if v != fmt.Sprintf("v%d", id) {
			t.Fatalf("transaction %d: got %q for id %d", i, v, id)
		}
		pids[pid] = true
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if otx != nil {
			_ = otx.Rollback()
		}
		// And outside a transaction too.
		if err := st.QueryRowContext(ctx, id).Scan(&v, &pid); err != nil || v != fmt.Sprintf("v%d", id) {
			t.Fatalf("autocommit %d: %q, %v", i, v, err)
		}
		pids[pid] = true
	}
	if len(pids) < 2 {
		t.Fatalf("every transaction ran on server connection %v: the test did not cross server connections", pids)
	}
}

// TestPgBouncerSessionStatePerTransaction: a tagged session whose session callback sets the
// time zone keeps seeing it on every server connection — in transactions, in autocommit queries
// and execs, through a *sql.Stmt — while untagged work, and every server connection PgBouncer
// hands to others, keeps the server's default: the SET never leaks.
func TestPgBouncerSessionStatePerTransaction(t *testing.T) {
	dsn := pgbSetup(t)
	var cbRuns sync.Map
	cb := func(ctx context.Context, s *hasql.Session, tag string) error {
		cbRuns.Store(tag, true)
		if tag == "" {
			return nil
		}
		tz := strings.TrimPrefix(tag, "tz=")
		if err := s.Exec(ctx, "SET timezone = '"+tz+"'"); err != nil {
			return err
		}
		if err := s.Exec(ctx, "SET application_name TO 'tagged'"); err != nil {
			return err
		}
		return s.SetTag(tag)
	}
	db, err := hasql.Open("pgx", dsn+"&hasql.pooler=transaction", hasql.WithSessionCallback(cb))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	raw, err := sql.Open("pgx", dsn+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	tagged := hasql.WithTag(ctx, "tz=Asia/Tokyo")
	st, err := db.PrepareContext(tagged, "select current_setting('TimeZone'), current_setting('application_name'), $1::int")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ctx := ctx
				want := "Etc/UTC"
				if (w+i)%2 == 0 {
					ctx, want = tagged, "Asia/Tokyo"
				}
				var tz, app string
				var n int
				switch i % 4 {
				case 0:
					if err := db.QueryRowContext(ctx, "select current_setting('TimeZone'), current_setting('application_name')").Scan(&tz, &app); err != nil {
						errc <- err
						return
					}
				case 1:
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						errc <- err
						return
					}
					if _, err := tx.ExecContext(ctx, "select 1"); err != nil { // a first statement, then the check
						errc <- err
						return
					}
					if err := tx.QueryRowContext(ctx, "select current_setting('TimeZone'), current_setting('application_name')").Scan(&tz, &app); err != nil {
						errc <- err
						return
					}
					if err := tx.Commit(); err != nil {
						errc <- err
						return
					}
				case 2:
					if ctx == tagged {
						if err := st.QueryRowContext(ctx, i).Scan(&tz, &app, &n); err != nil {
							errc <- err
							return
						}
						if n != i {
							errc <- fmt.Errorf("stmt answered %d for %d", n, i)
							return
						}
					} else if err := db.QueryRowContext(ctx, "select current_setting('TimeZone'), current_setting('application_name')").Scan(&tz, &app); err != nil {
						errc <- err
						return
					}
				case 3:
					if _, err := db.ExecContext(ctx, "update kv set v = v where id = $1", i+1); err != nil {
						errc <- err
						return
					}
					tz, app = want, map[bool]string{true: "tagged"}[want == "Asia/Tokyo"]
				}
				if tz != want || (want == "Asia/Tokyo") != (app == "tagged") {
					errc <- fmt.Errorf("worker %d op %d: TimeZone %q application_name %q, want %q", w, i, tz, app, want)
					return
				}
				// Nothing leaks to other clients of the server connections.
				if err := raw.QueryRowContext(context.Background(), "select current_setting('TimeZone'), current_setting('application_name')").Scan(&tz, &app); err != nil {
					errc <- err
					return
				}
				if tz != "Etc/UTC" || app == "tagged" {
					errc <- fmt.Errorf("another client sees TimeZone %q application_name %q: session state leaked", tz, app)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if _, ok := cbRuns.Load("tz=Asia/Tokyo"); !ok {
		t.Fatal("the session callback never ran for the tag")
	}
	// Session.Exec inside a transaction: the SET applies to it at once, and to the session's
	// later work, and still never to other clients.
	conn, err := hasql.Acquire(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := hasql.SessionOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "SET timezone = 'Europe/Paris'"); err != nil {
		t.Fatal(err)
	}
	var tz string
	if err := tx.QueryRowContext(ctx, "select current_setting('TimeZone')").Scan(&tz); err != nil || tz != "Europe/Paris" {
		t.Fatalf("in the transaction after Session.Exec: %q, %v", tz, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if err := conn.QueryRowContext(ctx, "select current_setting('TimeZone')").Scan(&tz); err != nil || tz != "Europe/Paris" {
			t.Fatalf("autocommit %d after the transaction: %q, %v", i, tz, err)
		}
		if err := raw.QueryRowContext(ctx, "select current_setting('TimeZone')").Scan(&tz); err != nil || tz != "Etc/UTC" {
			t.Fatalf("another client: %q, %v", tz, err)
		}
	}
	conn.Close()
	// A SET the server rejects fails the callback, and so the checkout, at once.
	bad, err := hasql.Open("pgx", dsn+"&hasql.pooler=transaction", hasql.WithSessionCallback(
		func(ctx context.Context, s *hasql.Session, tag string) error {
			return s.Exec(ctx, "SET no_such_setting_at_all = 1")
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	var one int
	if err := bad.QueryRowContext(ctx, "select 1").Scan(&one); err == nil {
		t.Fatal("a session callback setting an unknown parameter succeeded")
	}
	// And the failed check left no transaction open on PgBouncer's server connections.
	for i := 0; i < 4; i++ {
		if err := raw.QueryRowContext(ctx, "select 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPgBouncerDetectedOnlyBehindPooler: with no hasql.pooler key a session directly on
// PostgreSQL is not treated as pooled, one through PgBouncer is.
func TestPgBouncerDetectedOnlyBehindPooler(t *testing.T) {
	dsn := pgbSetup(t)
	b := testserver.SharedPgBouncer(t)
	u, _ := url.Parse(dsn)
	direct := b.Backend.DSN(strings.TrimPrefix(u.Path, "/"))
	for _, tc := range []struct {
		dsn  string
		want bool
	}{{direct, false}, {dsn, true}, {direct + "&hasql.pooler=transaction", true}} {
		db, err := sql.Open("hasql", "pgx:"+tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := hasql.Acquire(context.Background(), db)
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		s, err := hasql.SessionOf(conn)
		if err != nil {
			t.Fatal(err)
		}
		if got := hasql.SessionPooledForTest(s); got != tc.want {
			t.Errorf("%s: pooled = %v, want %v", tc.dsn, got, tc.want)
		}
		conn.Close()
		db.Close()
	}
}

// BenchmarkPgBouncer compares, through the shared PgBouncer, raw pgx in the modes that survive
// transaction pooling for ad-hoc work (exec, cache_describe) with hasql under
// hasql.pooler=transaction (pgx's default mode, run as cache_describe), for an ad-hoc query and
// for a *sql.Stmt (which raw pgx cannot run there at all).
//
//	go test -run '^$' -bench BenchmarkPgBouncer -benchtime 2000x .
func BenchmarkPgBouncer(b *testing.B) {
	bouncer := testserver.SharedPgBouncer(b)
	dsn := bouncer.FreshDB(b)
	u, _ := url.Parse(dsn)
	if err := bouncer.Backend.ExecIn(strings.TrimPrefix(u.Path, "/"),
		"create table kv(id int primary key, v text not null); insert into kv select g, 'v'||g from generate_series(1,50) g"); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, driver, dsn string }{
		{"raw-exec", "pgx", dsn + "&default_query_exec_mode=exec"},
		{"raw-cache_describe", "pgx", dsn + "&default_query_exec_mode=cache_describe"},
		{"hasql-pooler", "hasql", "pgx:" + dsn + "&hasql.pooler=transaction"},
	} {
		db, err := sql.Open(tc.driver, tc.dsn)
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		ctx := context.Background()
		b.Run(tc.name+"/adhoc", func(b *testing.B) {
			var v string
			for i := 0; i < b.N; i++ {
				if err := db.QueryRowContext(ctx, "select v from kv where id = $1", 1+i%50).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
		if tc.driver == "hasql" {
			b.Run(tc.name+"/stmt", func(b *testing.B) {
				st, err := db.PrepareContext(ctx, "select v from kv where id = $1")
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				var v string
				for i := 0; i < b.N; i++ {
					if err := st.QueryRowContext(ctx, 1+i%50).Scan(&v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		db.Close()
	}
}

// TestPgBouncerTxGuard: the commit-outcome guard through PgBouncer in
// transaction mode. Its record's INSERT is not a named prepared statement
// there (it would exist on one server connection only): guarded
// transactions and, with hasql.txguard=all, guarded autocommit writes (an
// exec, and a write query whose statement writes the record itself) commit
// on whichever server connection each transaction lands, and every one
// leaves its record.
func TestPgBouncerTxGuard(t *testing.T) {
	dsn := pgbSetup(t)
	ctx := context.Background()
	for _, mode := range []string{"cache_statement", "simple_protocol"} {
		for _, key := range []string{"&hasql.pooler=transaction", ""} {
			t.Run(mode+key, func(t *testing.T) {
				db, err := sql.Open("hasql", "pgx:"+dsn+"&default_query_exec_mode="+mode+key+"&hasql.txguard=all")
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(1) // one client connection: its transactions meet both server connections
				var records0 int
				_ = db.QueryRowContext(ctx, "select count(*) from hasql_txguard").Scan(&records0) // absent before the first guarded write
				const n = 20
				for i := 0; i < n; i++ {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, "update kv set v = $1 where id = 1", fmt.Sprint("tx", i)); err != nil {
						t.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatalf("guarded commit %d: %v", i, err)
					}
					if _, err := db.ExecContext(ctx, "update kv set v = $1 where id = 2", fmt.Sprint("auto", i)); err != nil {
						t.Fatalf("guarded autocommit write %d: %v", i, err)
					}
					var v string
					if err := db.QueryRowContext(ctx, "update kv set v = $1 where id = 3 returning v", fmt.Sprint("query", i)).Scan(&v); err != nil || v != fmt.Sprint("query", i) {
						t.Fatalf("guarded autocommit write query %d: %q, %v", i, v, err)
					}
				}
				var records int
				if err := db.QueryRowContext(ctx, "select count(*) from hasql_txguard").Scan(&records); err != nil {
					t.Fatal(err)
				}
				if records-records0 != 3*n {
					t.Fatalf("%d guard records written, want %d", records-records0, 3*n)
				}
			})
		}
	}
}
