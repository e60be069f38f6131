package hasql_test

// Hot-path cost of hasql against the driver it wraps.
//
//   BenchmarkNoop/<op>/{raw,hasql,hasql-cb}   a no-op in-process driver: hasql's own cost, nothing else
//   BenchmarkPG/<op>/...                      pgx on the shared PostgreSQL server (fresh database)
//   BenchmarkMaria/<op>/...                   go-sql-driver/mysql on the shared MariaDB server
//   BenchmarkMariaInterpolated/<op>/...       the same with interpolateParams=true (see there)
//
// <op> is Exec, Query (iterate and close), QueryRow, PrepareExec (prepare, exec, close) and Tx
// (begin, exec, commit). "hasql-cb" has one no-op entry and one no-op exit callback on FnExec and
// FnQuery. TestHotPathAllocs turns the allocation half of the hot-path promise into a test:
// hasql adds no allocation, with or without callbacks (the issue allows one with them).
//
// Tables for the README: testdata/bench/ratios.sh.

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// ---------------------------------------------------------------------------------------------
// A no-op driver, registered as "hasql-noop": fakedb_test.go's driver in its no-op configuration
// (hasql.NoopFakeDB). It has every optional interface hasql forwards and allocates only what a
// driver must: a Stmt per prepare and a Rows per query (one row, columns id and v).

func init() {
	sql.Register("hasql-noop", &hasql.FakeDriver{Caps: hasql.FakeCapsContext, DB: hasql.NoopFakeDB()})
}

// ---------------------------------------------------------------------------------------------
// The operations, the same for every driver; only the SQL differs.

type benchSQL struct {
	exec  string // one argument, the row's new value
	query string // one argument, the id; returns (id, v), one row
}

var (
	benchNoopSQL = benchSQL{
		exec:  "UPDATE bench_kv SET v = ? WHERE id = 1",
		query: "SELECT id, v FROM bench_kv WHERE id = ?",
	}
	benchPGSQL = benchSQL{
		exec:  "UPDATE bench_kv SET v = $1 WHERE id = 1",
		query: "SELECT id, v FROM bench_kv WHERE id = $1",
	}
	benchMariaSQL = benchNoopSQL
)

type benchOp struct {
	name string
	run  func(ctx context.Context, db *sql.DB, q *benchSQL) error
}

var benchOps = []benchOp{
	{"Exec", func(ctx context.Context, db *sql.DB, q *benchSQL) error {
		_, err := db.ExecContext(ctx, q.exec, 2)
		return err
	}},
	{"Query", func(ctx context.Context, db *sql.DB, q *benchSQL) error {
		rows, err := db.QueryContext(ctx, q.query, 1)
		if err != nil {
			return err
		}
		var id, v int64
		for rows.Next() {
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		return rows.Close()
	}},
	{"QueryRow", func(ctx context.Context, db *sql.DB, q *benchSQL) error {
		var id, v int64
		return db.QueryRowContext(ctx, q.query, 1).Scan(&id, &v)
	}},
	{"PrepareExec", func(ctx context.Context, db *sql.DB, q *benchSQL) error {
		st, err := db.PrepareContext(ctx, q.exec)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, 2); err != nil {
			st.Close()
			return err
		}
		return st.Close()
	}},
	{"Tx", func(ctx context.Context, db *sql.DB, q *benchSQL) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q.exec, 2); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}},
}

// ---------------------------------------------------------------------------------------------
// Opening the variants.

type benchVariant struct {
	name string
	open func(tb testing.TB, innerDriver, dsn string) *sql.DB
}

var benchVariants = []benchVariant{
	{"raw", func(tb testing.TB, name, dsn string) *sql.DB { return benchOpen(tb, name, dsn) }},
	{"hasql", func(tb testing.TB, name, dsn string) *sql.DB { return benchOpen(tb, "hasql", name+":"+dsn) }},
	{"hasql-cb", func(tb testing.TB, name, dsn string) *sql.DB {
		db := benchOpen(tb, "hasql", name+":"+dsn)
		benchRegisterCallbacks(tb, db)
		return db
	}},
}

func benchOpen(tb testing.TB, driverName, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		tb.Fatalf("sql.Open(%q): %v", driverName, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Named functions, so registering them allocates nothing per call.
func benchEntry(*hasql.Call) error { return hasql.Continue }
func benchExit(*hasql.Call) error  { return hasql.Continue }

// benchRegisterCallbacks sets one entry and one exit callback on FnExec and FnQuery.
func benchRegisterCallbacks(tb testing.TB, db *sql.DB) {
	tb.Helper()
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		tb.Fatal("ConnectorOf: not a hasql *sql.DB")
	}
	cbs := c.Callbacks()
	for _, fn := range []hasql.Fn{hasql.FnExec, hasql.FnQuery} {
		cbs.Register(fn, hasql.Entry, benchEntry)
		cbs.Register(fn, hasql.Exit, benchExit)
	}
}

// benchRun runs every op on every variant: b.Run(op).Run(variant), so that benchstat and
// ratios.sh put a variant next to its raw baseline.
func benchRun(b *testing.B, innerDriver, dsn string, q *benchSQL) {
	ctx := context.Background()
	dbs := make([]*sql.DB, len(benchVariants))
	for i, v := range benchVariants {
		dbs[i] = v.open(b, innerDriver, dsn)
		if err := dbs[i].PingContext(ctx); err != nil {
			b.Fatalf("%s: ping: %v", v.name, err)
		}
	}
	// The variants run in a random order, drawn once per process: run after run (ratios.sh runs
	// the test binary several times), no variant always goes first, right after another op.
	order := rand.Perm(len(benchVariants))
	for _, op := range benchOps {
		b.Run(op.name, func(b *testing.B) {
			for _, i := range order {
				v, db := benchVariants[i], dbs[i]
				b.Run(v.name, func(b *testing.B) {
					if err := op.run(ctx, db, q); err != nil { // warm: connection, server caches
						b.Fatalf("%s %s: %v", op.name, v.name, err)
					}
					b.ReportAllocs()
					cpu0 := benchCPUTime()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := op.run(ctx, db, q); err != nil {
							b.Fatalf("%s %s: %v", op.name, v.name, err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(benchCPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
				})
			}
		})
	}
}

// benchCPUTime is the CPU time the test process has used (user and system, every thread). Per
// op, as the cpu-ns/op metric, it is the client side's cost alone (a database server's work is
// not in it) and, unlike ns/op, barely moved by other processes competing for the machine.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkNoop(b *testing.B) {
	benchRun(b, "hasql-noop", "", &benchNoopSQL)
}

func BenchmarkPG(b *testing.B) {
	dsn := sharedPG(b).FreshDB(b)
	benchCreateTable(b, "pgx", dsn, "CREATE UNLOGGED TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL)")
	benchRun(b, "pgx", dsn, &benchPGSQL)
}

func BenchmarkMaria(b *testing.B) {
	dsn := sharedMaria(b).FreshDB(b)
	benchCreateTable(b, "mysql", dsn, "CREATE TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	benchRun(b, "mysql", dsn, &benchMariaSQL)
}

// BenchmarkMariaInterpolated is BenchmarkMaria with interpolateParams=true. By default the mysql
// driver answers an ad-hoc call with arguments with driver.ErrSkip, and database/sql then
// prepares, executes and closes a statement: three round trips, where hasql runs the call on a
// statement from its cache, in one. With client-side interpolation raw and hasql both make one
// round trip, so this measures what hasql itself costs.
func BenchmarkMariaInterpolated(b *testing.B) {
	dsn := sharedMaria(b).FreshDB(b)
	if strings.Contains(dsn, "?") {
		dsn += "&interpolateParams=true"
	} else {
		dsn += "?interpolateParams=true"
	}
	benchCreateTable(b, "mysql", dsn, "CREATE TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	benchRun(b, "mysql", dsn, &benchMariaSQL)
}

func benchCreateTable(b *testing.B, driverName, dsn, ddl string) {
	b.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{ddl, "INSERT INTO bench_kv (id, v) VALUES (1, 1)"} {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", strings.Fields(s)[0], err)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// The allocation promise as a test. Allocation counts are deterministic (timings are not), so
// this belongs in the ordinary test run.

func TestHotPathAllocs(t *testing.T) {
	ctx := context.Background()
	dbs := map[string]*sql.DB{}
	for _, v := range benchVariants {
		dbs[v.name] = v.open(t, "hasql-noop", "")
	}
	// With its statement cache on (the default), hasql prepares less often than raw, which can
	// hide an allocation of its own: check with the cache off too.
	dbs["hasql-nocache"] = benchOpen(t, "hasql", "hasql-noop:?hasql.stmtcache=0")
	// allocs measures one op on one variant. The smallest of a few measurements is taken, so
	// that an allocation made meanwhile by some other goroutine of the test binary (the count is
	// process-wide) cannot fail the test. Each op yields once after it: a Tx starts a goroutine
	// (database/sql's awaitDone), and one that has not exited before the next Tx costs that Tx a
	// new goroutine's allocations, at random.
	allocs := func(op benchOp, variant string) float64 {
		db := dbs[variant]
		if err := op.run(ctx, db, &benchNoopSQL); err != nil {
			t.Fatalf("%s %s: %v", op.name, variant, err)
		}
		best := -1.0
		for try := 0; try < 5; try++ {
			n := testing.AllocsPerRun(200, func() {
				if err := op.run(ctx, db, &benchNoopSQL); err != nil {
					t.Fatalf("%s %s: %v", op.name, variant, err)
				}
				runtime.Gosched()
			})
			if best < 0 || n < best {
				best = n
			}
		}
		return best
	}
	for _, op := range benchOps {
		t.Run(op.name, func(t *testing.T) {
			raw := allocs(op, "raw")
			plain := allocs(op, "hasql")
			nocache := allocs(op, "hasql-nocache")
			cb := allocs(op, "hasql-cb")
			t.Logf("allocs/op: raw %v, hasql %v, hasql (stmtcache=0) %v, hasql-cb %v", raw, plain, nocache, cb)
			if plain > raw {
				t.Errorf("hasql without callbacks: %v allocs/op, raw %v: want no added allocation", plain, raw)
			}
			// With the cache off, each prepare still allocates the statement's bookkeeping
			// (a cachedStmt): one allocation, tolerated here until that is pooled.
			nocacheLimit := raw
			if op.name == "PrepareExec" {
				nocacheLimit = raw + 1
			}
			if nocache > nocacheLimit {
				t.Errorf("hasql without callbacks, statement cache off: %v allocs/op, raw %v: want at most %v", nocache, raw, nocacheLimit)
			}
			// Callbacks are registered on FnExec and FnQuery, which every op but PrepareExec
			// goes through (Tx runs its Exec as an ad-hoc FnExec). The issue allows one
			// allocation more; the handle's reused Call makes it none.
			limit := raw
			if cb > limit {
				t.Errorf("hasql with entry+exit callbacks: %v allocs/op, raw %v: want at most %v", cb, raw, limit)
			}
		})
	}
}
