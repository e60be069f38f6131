package hasql_test

// The commit-outcome guard's cost, side by side with the raw driver, for a
// short write transaction (BEGIN; UPDATE one row; COMMIT) on the shared test
// servers:
//
//   BenchmarkTxGuard/{PG,Maria}/{raw,hasql,hasql-txguard}
//
// Ratios for docs/transactions.md: hasql-txguard's ns/op over raw's. The
// servers of internal/testserver run with fsync=off (PostgreSQL) and
// innodb_flush_log_at_trx_commit=2 (MariaDB), so a commit costs no disk
// flush there and the guard's extra work is a larger share than on a
// durable server.

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"
)

func BenchmarkTxGuard(b *testing.B) {
	for _, srv := range []struct {
		name, driver, update string
		dsn                  func(b *testing.B) string
		sep                  string
	}{
		{"PG", "pgx", "UPDATE bench_kv SET v = $1 WHERE id = 1", func(b *testing.B) string { return sharedPG(b).FreshDB(b) }, "&"},
		{"Maria", "mysql", "UPDATE bench_kv SET v = ? WHERE id = 1", func(b *testing.B) string { return sharedMaria(b).FreshDB(b) + "?interpolateParams=true" }, "&"},
	} {
		b.Run(srv.name, func(b *testing.B) {
			dsn := srv.dsn(b)
			engine := ""
			if srv.driver == "mysql" {
				engine = " ENGINE=InnoDB"
			}
			benchCreateTable(b, srv.driver, dsn, "CREATE TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL)"+engine)
			for _, v := range []struct{ name, driver, dsn string }{
				{"raw", srv.driver, dsn},
				{"hasql", "hasql", srv.driver + ":" + dsn},
				{"hasql-txguard", "hasql", srv.driver + ":" + dsn + srv.sep + "hasql.txguard=on"},
			} {
				b.Run(v.name, func(b *testing.B) {
					db := benchOpen(b, v.driver, v.dsn)
					ctx := context.Background()
					tx := func(i int) {
						t, err := db.BeginTx(ctx, nil)
						if err != nil {
							b.Fatal(err)
						}
						if _, err := t.ExecContext(ctx, srv.update, i); err != nil {
							b.Fatal(err)
						}
						if err := t.Commit(); err != nil {
							b.Fatal(err)
						}
					}
					tx(0) // warm: connection, the guard's table
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						tx(i)
					}
				})
			}
		})
	}
}

// guardBenchServers are the servers of the paired guard benchmarks: a
// one-row table bench_kv, the write that updates it, and the suffix that
// makes the write return the value (none on MariaDB).
var guardBenchServers = []guardBenchServer{
	{"PG", "pgx", "UPDATE bench_kv SET v = $1 WHERE id = 1", " RETURNING v", "", func(b *testing.B) string { return sharedPG(b).FreshDB(b) }},
	{"Maria", "mysql", "UPDATE bench_kv SET v = ? WHERE id = 1", "", " ENGINE=InnoDB", func(b *testing.B) string { return sharedMaria(b).FreshDB(b) + "?interpolateParams=true" }},
}

type guardBenchServer struct {
	name, driver, update, returning, engine string
	dsn                                     func(b *testing.B) string
}

// open makes bench_kv in a fresh database and returns the raw driver's
// *sql.DB and hasql's with hasql.txguard=mode on it.
func (srv guardBenchServer) open(b *testing.B, mode string) (raw, guarded *sql.DB) {
	dsn := srv.dsn(b)
	benchCreateTable(b, srv.driver, dsn, "CREATE TABLE bench_kv (id int PRIMARY KEY, v int NOT NULL)"+srv.engine)
	return benchOpen(b, srv.driver, dsn), benchOpen(b, "hasql", srv.driver+":"+dsn+"&hasql.txguard="+mode)
}

// BenchmarkTxGuardPaired measures the same short write transaction through
// the raw driver and through hasql with hasql.txguard=on, alternating one
// with the other within each iteration, so that both meet the same load on
// a shared machine. It reports each one's median time per transaction and
// the ratio of the medians (guard/raw), which is the figure quoted in
// docs/transactions.md.
func BenchmarkTxGuardPaired(b *testing.B) {
	for _, srv := range guardBenchServers {
		b.Run(srv.name, func(b *testing.B) {
			raw, guarded := srv.open(b, "on")
			ctx := context.Background()
			tx := func(db *sql.DB, i int) time.Duration {
				start := time.Now()
				t, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := t.ExecContext(ctx, srv.update, i); err != nil {
					b.Fatal(err)
				}
				if err := t.Commit(); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			tx(raw, 0)
			tx(guarded, 0)
			r, g := pairedMedians(b, func(i int) time.Duration { return tx(raw, i) }, func(i int) time.Duration { return tx(guarded, i) })
			b.ReportMetric(r, "raw-ns/tx")
			b.ReportMetric(g, "txguard-ns/tx")
			b.ReportMetric(g/r, "txguard/raw")
		})
	}
}

// BenchmarkTxGuardAllPaired is BenchmarkTxGuardPaired for hasql.txguard=all:
// an autocommit write (exec: UPDATE one row; query: the same UPDATE ...
// RETURNING, read with QueryRow) through the raw driver and through hasql,
// which runs it with a guard record (PostgreSQL: one round trip, the record
// in a CTE of the statement; MariaDB: BEGIN, the write, the record,
// COMMIT), alternating within each iteration; medians and their ratio.
func BenchmarkTxGuardAllPaired(b *testing.B) {
	for _, srv := range guardBenchServers {
		for _, kind := range []string{"exec", "query"} {
			if kind == "query" && srv.returning == "" {
				continue // MariaDB has no UPDATE ... RETURNING
			}
			b.Run(srv.name+"/"+kind, func(b *testing.B) {
				raw, guarded := srv.open(b, "all")
				ctx := context.Background()
				write := func(db *sql.DB, i int) time.Duration {
					start := time.Now()
					if kind == "exec" {
						if _, err := db.ExecContext(ctx, srv.update, i); err != nil {
							b.Fatal(err)
						}
					} else {
						var v int
						if err := db.QueryRowContext(ctx, srv.update+srv.returning, i).Scan(&v); err != nil || v != i {
							b.Fatal(v, err)
						}
					}
					return time.Since(start)
				}
				write(raw, 0)
				write(guarded, 0)
				r, g := pairedMedians(b, func(i int) time.Duration { return write(raw, i) }, func(i int) time.Duration { return write(guarded, i) })
				b.ReportMetric(r, "raw-ns/op")
				b.ReportMetric(g, "txguard-all-ns/op")
				b.ReportMetric(g/r, "txguard-all/raw")
			})
		}
	}
}

// pairedMedians runs raw and guarded b.N times each, alternating which goes
// first, and returns the median of each one's times in nanoseconds.
func pairedMedians(b *testing.B, raw, guarded func(i int) time.Duration) (r, g float64) {
	rs := make([]time.Duration, 0, b.N)
	gs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			rs = append(rs, raw(i))
			gs = append(gs, guarded(i))
		} else {
			gs = append(gs, guarded(i))
			rs = append(rs, raw(i))
		}
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	return med(rs), med(gs)
}
