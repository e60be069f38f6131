package hasql_test

// What the statement cache buys, side by side in one run on the shared servers:
//
//   BenchmarkStmtCacheMaria/<op>/g=<n>/<variant>   go-sql-driver/mysql on MariaDB
//     raw              sql.Open("mysql", dsn), ad-hoc db.QueryRowContext / db.ExecContext with
//                      arguments: database/sql prepares, executes and closes per call
//     raw-interpolate  the same with interpolateParams=true: the driver inlines the arguments
//     raw-prepared     one *sql.Stmt prepared up front (per connection by database/sql)
//     hasql            sql.Open("hasql", "mysql:"+dsn), default settings, the same ad-hoc calls as
//                      raw: hasql runs them on statements from each session's cache
//   BenchmarkStmtCachePG/<op>/g=<n>/<variant>      pgx stdlib on PostgreSQL: raw and hasql, ad-hoc
//
// <op> is PointSelect (a parameterised SELECT by primary key over 1000 rows) and Insert (a
// single-row INSERT with one parameter); n is the number of goroutines sharing the *sql.DB (1
// and 8; each *sql.DB keeps up to 8 connections open and idle). Besides ns/op each result
// reports ops/s and, on MariaDB, what the server saw per operation (SHOW GLOBAL STATUS, the
// shared server being used by this benchmark alone):
//
//   rt/op       round trips: Questions (COM_QUERY and COM_STMT_EXECUTE) + Com_stmt_prepare
//   prepare/op  Com_stmt_prepare
//   close/op    Com_stmt_close (a packet without a reply)
//
// BenchmarkStmtCacheInterleaved runs the same variants taking turns, for ratios that hold on a
// busy machine. The README figures come from
//
//   go test -run '^$' -bench 'StmtCacheInterleaved' -benchtime 6000x -count 5 . | tee interleaved.txt
//
// (ops/s: median over the runs; ratios: median over the runs of each run's median per-turn
// ratio), and the per-operation counts from
//
//   go test -run '^$' -bench 'StmtCache(Maria|PG)$' -benchmem -count 1 .

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type scbOp struct {
	name    string
	mysql   string // SQL with ? placeholders
	pg      string // SQL with $n placeholders
	isQuery bool
}

var scbOps = []scbOp{
	{"PointSelect", "SELECT v FROM bench_kv WHERE id = ?", "SELECT v FROM bench_kv WHERE id = $1", true},
	{"Insert", "INSERT INTO bench_ins (v) VALUES (?)", "INSERT INTO bench_ins (v) VALUES ($1)", false},
}

var scbGoroutines = []int{1, 8}

const scbRows = 1000

type scbVariant struct {
	name     string
	db       *sql.DB
	prepared bool
}

// scbRun runs op b.N times on g goroutines and reports ops/s. observe, if not nil, is called
// untimed just before and just after the timed loop.
func scbRun(b *testing.B, g int, op func(ctx context.Context, i int64) error, observe func(after bool)) {
	ctx := context.Background()
	// Warm up: connections opened, statements cached, on as many sessions as goroutines.
	var wg sync.WaitGroup
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := op(ctx, int64(w*20+i)); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	var next atomic.Int64
	var failed atomic.Value
	if observe != nil {
		observe(false)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(ctx, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if observe != nil {
		observe(true)
	}
}

func scbOpen(b *testing.B, driverName, dsn string) *sql.DB {
	b.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.Ping(); err != nil {
		b.Fatal(err)
	}
	return db
}

func scbSetup(b *testing.B, driverName, dsn string, stmts ...string) {
	b.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
}

// scbMariaStatus reads the server-wide counters rt/op and friends are made of.
type scbMariaStatus struct{ questions, prepare, close int64 }

func scbReadMariaStatus(b *testing.B, admin *sql.DB) scbMariaStatus {
	b.Helper()
	rows, err := admin.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_stmt_prepare', 'Com_stmt_close')")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var s scbMariaStatus
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			b.Fatal(err)
		}
		switch strings.ToLower(name) {
		case "questions":
			s.questions = v
		case "com_stmt_prepare":
			s.prepare = v
		case "com_stmt_close":
			s.close = v
		}
	}
	return s
}

func BenchmarkStmtCacheMaria(b *testing.B) {
	dsn := sharedMaria(b).FreshDB(b)
	scbSetup(b, "mysql", dsn,
		"CREATE TABLE bench_kv (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO bench_kv SELECT seq, seq FROM seq_1_to_%d", scbRows),
		"CREATE TABLE bench_ins (id BIGINT AUTO_INCREMENT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB")
	admin := scbOpen(b, "mysql", dsn)
	admin.SetMaxOpenConns(1)
	// What one status read adds to Questions (itself), measured rather than assumed.
	s0 := scbReadMariaStatus(b, admin)
	s1 := scbReadMariaStatus(b, admin)
	readCost := s1.questions - s0.questions

	variants := []scbVariant{
		{"raw", scbOpen(b, "mysql", dsn), false},
		{"raw-interpolate", scbOpen(b, "mysql", dsn+"?interpolateParams=true"), false},
		{"raw-prepared", scbOpen(b, "mysql", dsn), true},
		{"hasql", scbOpen(b, "hasql", "mysql:"+dsn), false},
	}
	for _, op := range scbOps {
		b.Run(op.name, func(b *testing.B) {
			for _, g := range scbGoroutines {
				b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
					for _, v := range variants {
						b.Run(v.name, func(b *testing.B) {
							var before scbMariaStatus
							scbRun(b, g, scbOpFunc(b, v, op, op.mysql), func(after bool) {
								if !after {
									before = scbReadMariaStatus(b, admin)
									return
								}
								now := scbReadMariaStatus(b, admin)
								q := now.questions - before.questions - readCost
								p := now.prepare - before.prepare
								c := now.close - before.close
								n := float64(b.N)
								b.ReportMetric(float64(q+p)/n, "rt/op")
								b.ReportMetric(float64(p)/n, "prepare/op")
								b.ReportMetric(float64(c)/n, "close/op")
							})
						})
					}
				})
			}
		})
	}
}

// scbOpFunc returns the operation for a variant: ad-hoc calls on the *sql.DB, or calls on one
// *sql.Stmt prepared up front.
func scbOpFunc(b *testing.B, v scbVariant, op scbOp, query string) func(ctx context.Context, i int64) error {
	b.Helper()
	if v.prepared {
		st, err := v.db.Prepare(query)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		if op.isQuery {
			return func(ctx context.Context, i int64) error {
				var x int64
				return st.QueryRowContext(ctx, i%scbRows+1).Scan(&x)
			}
		}
		return func(ctx context.Context, i int64) error {
			_, err := st.ExecContext(ctx, i)
			return err
		}
	}
	if op.isQuery {
		return func(ctx context.Context, i int64) error {
			var x int64
			return v.db.QueryRowContext(ctx, query, i%scbRows+1).Scan(&x)
		}
	}
	return func(ctx context.Context, i int64) error {
		_, err := v.db.ExecContext(ctx, query, i)
		return err
	}
}

func BenchmarkStmtCachePG(b *testing.B) {
	dsn := sharedPG(b).FreshDB(b)
	scbSetup(b, "pgx", dsn,
		"CREATE UNLOGGED TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL)",
		fmt.Sprintf("INSERT INTO bench_kv SELECT i, i FROM generate_series(1, %d) i", scbRows),
		"CREATE UNLOGGED TABLE bench_ins (id bigserial PRIMARY KEY, v bigint NOT NULL)")
	variants := []scbVariant{
		{"raw", scbOpen(b, "pgx", dsn), false},
		{"hasql", scbOpen(b, "hasql", "pgx:"+dsn), false},
	}
	for _, op := range scbOps {
		b.Run(op.name, func(b *testing.B) {
			for _, g := range scbGoroutines {
				b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
					for _, v := range variants {
						b.Run(v.name, func(b *testing.B) {
							scbRun(b, g, scbOpFunc(b, v, op, op.pg), nil)
						})
					}
				})
			}
		})
	}
}

// BenchmarkStmtCacheInterleaved measures the same variants as BenchmarkStmtCacheMaria and
// BenchmarkStmtCachePG, but takes turns: batches of 50 operations of each variant in rotation,
// b.N operations per variant in all, so that load that comes and goes on a shared machine lands
// on every variant alike. It reports <variant>-ops/s (all of its operations over all of its time)
// and the ratios hasql/prepared and hasql/raw (MariaDB) or hasql/raw (pgx) as the median over
// turns of the throughput ratio within one turn, which holds even when the absolute figures do
// not. Its ns/op covers all variants together and means nothing.
func BenchmarkStmtCacheInterleaved(b *testing.B) {
	mdsn := sharedMaria(b).FreshDB(b)
	scbSetup(b, "mysql", mdsn,
		"CREATE TABLE bench_kv (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO bench_kv SELECT seq, seq FROM seq_1_to_%d", scbRows),
		"CREATE TABLE bench_ins (id BIGINT AUTO_INCREMENT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB")
	pdsn := sharedPG(b).FreshDB(b)
	scbSetup(b, "pgx", pdsn,
		"CREATE UNLOGGED TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL)",
		fmt.Sprintf("INSERT INTO bench_kv SELECT i, i FROM generate_series(1, %d) i", scbRows),
		"CREATE UNLOGGED TABLE bench_ins (id bigserial PRIMARY KEY, v bigint NOT NULL)")
	suites := []struct {
		name     string
		variants []scbVariant
		pg       bool
	}{
		{"Maria", []scbVariant{
			{"raw", scbOpen(b, "mysql", mdsn), false},
			{"raw-interpolate", scbOpen(b, "mysql", mdsn+"?interpolateParams=true"), false},
			{"raw-prepared", scbOpen(b, "mysql", mdsn), true},
			{"hasql", scbOpen(b, "hasql", "mysql:"+mdsn), false},
		}, false},
		{"PG", []scbVariant{
			{"raw", scbOpen(b, "pgx", pdsn), false},
			{"hasql", scbOpen(b, "hasql", "pgx:"+pdsn), false},
		}, true},
	}
	const batch = 50
	for _, suite := range suites {
		b.Run(suite.name, func(b *testing.B) {
			for _, op := range scbOps {
				b.Run(op.name, func(b *testing.B) {
					for _, g := range scbGoroutines {
						b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
							query := op.mysql
							if suite.pg {
								query = op.pg
							}
							runs := make([]func(context.Context, int64) error, len(suite.variants))
							for i, v := range suite.variants {
								runs[i] = scbOpFunc(b, v, op, query)
								scbTimed(b, g, 20*g, runs[i]) // warm up
							}
							spent := make([]time.Duration, len(suite.variants))
							var turns [][]time.Duration // per turn, per variant (full batches only)
							b.ResetTimer()
							for done, turn := 0, 0; done < b.N; turn++ {
								n := min(batch, b.N-done)
								t := make([]time.Duration, len(suite.variants))
								for k := range suite.variants {
									i := (k + turn) % len(suite.variants) // who goes first rotates too
									t[i] = scbTimed(b, g, n, runs[i])
									spent[i] += t[i]
								}
								if n == batch {
									turns = append(turns, t)
								}
								done += n
							}
							b.StopTimer()
							idx := map[string]int{}
							for i, v := range suite.variants {
								idx[v.name] = i
								b.ReportMetric(float64(b.N)/spent[i].Seconds(), v.name+"-ops/s")
							}
							// Ratios: the median over turns of the throughput ratio within a turn,
							// which a burst of load on the machine moves least.
							ratio := func(a, of string) float64 {
								r := make([]float64, 0, len(turns))
								for _, t := range turns {
									r = append(r, t[idx[of]].Seconds()/t[idx[a]].Seconds())
								}
								if len(r) == 0 {
									return 0
								}
								sort.Float64s(r)
								return r[len(r)/2]
							}
							b.ReportMetric(ratio("hasql", "raw"), "hasql/raw")
							if !suite.pg {
								b.ReportMetric(ratio("hasql", "raw-prepared"), "hasql/prepared")
							}
						})
					}
				})
			}
		})
	}
}

// scbTimed runs op n times on g goroutines and returns the wall time.
func scbTimed(b *testing.B, g, n int, op func(context.Context, int64) error) time.Duration {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := op(ctx, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return d
}
