package hasql_test

// The cost of reads on standbys and of replicated durability, side by side
// with the raw driver on the primary:
//
//   BenchmarkReadAfterWrite{PG,Maria}/<case>  one write then one read of it
//     raw-primary        the raw driver, both on the primary
//     hasql-primary      hasql, reads left on the target (the primary)
//     hasql-standby      hasql.reads=prefer-standby, consistency=session: the
//                        read on the standby once it has replayed the write
//                        (metric standby-%: share of reads the standby served)
//   BenchmarkStandbyRead{PG,Maria}/<case>     reads only (no write between)
//     raw-standby        the raw driver on the standby
//     hasql-standby      ReadOnly through hasql: the standby is known current
//   BenchmarkCommit{PG,Maria}/<case>          begin, update, commit
//     raw, hasql-local, hasql-replicated (hasql.durability=replicated)
//
// Run: go test -run '^$' -bench 'ReadAfterWrite|StandbyRead|Commit(PG|Maria)' -benchtime 2000x .

import (
	"context"
	"database/sql"
	"testing"

	"github.com/hasqlgo/hasql"
)

func benchOpenRaw(b *testing.B, driverName, dsn string) *sql.DB {
	b.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

type rwBenchSetup struct {
	write, read string
	primary     string // raw DSN of the primary
	standby     string // raw DSN of the standby
	hasqlDSN    string // the hasql DSN with both hosts, target primary
	driver      string
}

func benchReadAfterWrite(b *testing.B, s rwBenchSetup) {
	ctx := context.Background()
	loop := func(b *testing.B, db *sql.DB, readCtx context.Context) {
		b.Helper()
		for i := 0; i < b.N; i++ {
			if _, err := db.ExecContext(ctx, s.write, i); err != nil {
				b.Fatal(err)
			}
			var v int
			if err := db.QueryRowContext(readCtx, s.read).Scan(&v); err != nil {
				b.Fatal(err)
			}
			if v != i {
				b.Fatalf("read %d after writing %d", v, i)
			}
		}
	}
	b.Run("raw-primary", func(b *testing.B) { loop(b, benchOpenRaw(b, s.driver, s.primary), ctx) })
	b.Run("hasql-primary", func(b *testing.B) {
		db, _ := foOpen(b, s.driver, s.hasqlDSN)
		loop(b, db, hasql.ReadOnly(ctx))
	})
	b.Run("hasql-standby", func(b *testing.B) {
		db, c := foOpen(b, s.driver, s.hasqlDSN+"&hasql.reads=prefer-standby")
		before := c.Stats()
		b.ResetTimer()
		loop(b, db, hasql.ReadOnly(ctx))
		b.StopTimer()
		after := c.Stats()
		sb, pr := after.StandbyReads-before.StandbyReads, after.PrimaryReads-before.PrimaryReads
		if sb+pr > 0 {
			b.ReportMetric(100*float64(sb)/float64(sb+pr), "standby-%")
		}
	})
}

func benchStandbyRead(b *testing.B, s rwBenchSetup) {
	ctx := context.Background()
	loop := func(b *testing.B, db *sql.DB, readCtx context.Context) {
		b.Helper()
		var v int
		for i := 0; i < b.N; i++ {
			if err := db.QueryRowContext(readCtx, s.read).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw-standby", func(b *testing.B) { loop(b, benchOpenRaw(b, s.driver, s.standby), ctx) })
	b.Run("hasql-standby", func(b *testing.B) {
		db, c := foOpen(b, s.driver, s.hasqlDSN+"&hasql.reads=prefer-standby")
		if _, err := db.ExecContext(ctx, s.write, -1); err != nil {
			b.Fatal(err)
		}
		loop(b, db, hasql.ReadOnly(ctx)) // warms the standby's session and its known position
		before := c.Stats()
		b.ResetTimer()
		loop(b, db, hasql.ReadOnly(ctx))
		b.StopTimer()
		if after := c.Stats(); after.StandbyReads-before.StandbyReads != int64(b.N) {
			b.Fatalf("%d of %d reads on the standby", after.StandbyReads-before.StandbyReads, b.N)
		}
	})
}

func benchCommit(b *testing.B, s rwBenchSetup) {
	ctx := context.Background()
	loop := func(b *testing.B, db *sql.DB) {
		b.Helper()
		for i := 0; i < b.N; i++ {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.Exec(s.write, i); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw", func(b *testing.B) { loop(b, benchOpenRaw(b, s.driver, s.primary)) })
	b.Run("hasql-local", func(b *testing.B) {
		db, _ := foOpen(b, s.driver, s.hasqlDSN)
		loop(b, db)
	})
	b.Run("hasql-replicated", func(b *testing.B) {
		db, _ := foOpen(b, s.driver, s.hasqlDSN+"&hasql.durability=replicated")
		loop(b, db)
	})
}

func pgRWBench(b *testing.B) rwBenchSetup {
	cl := startRWPGVia(b, false)
	return rwBenchSetup{
		write: "update kv set v = $1 where k = 1", read: "select v from kv where k = 1",
		primary: cl.prim.DSN("test"), standby: cl.stby.DSN("test"), hasqlDSN: cl.dsn(""), driver: "pgx",
	}
}

func mariaRWBench(b *testing.B) rwBenchSetup {
	r, name, dsn := startRWMaria(b)
	return rwBenchSetup{
		write: "UPDATE kv SET v = ? WHERE k = 1", read: "SELECT v FROM kv WHERE k = 1",
		primary: r.AppDSN(r.Primary, name), standby: r.AppDSN(r.Replica, name), hasqlDSN: dsn, driver: "mysql",
	}
}

func BenchmarkReadAfterWritePG(b *testing.B)    { benchReadAfterWrite(b, pgRWBench(b)) }
func BenchmarkReadAfterWriteMaria(b *testing.B) { benchReadAfterWrite(b, mariaRWBench(b)) }
func BenchmarkStandbyReadPG(b *testing.B)       { benchStandbyRead(b, pgRWBench(b)) }
func BenchmarkStandbyReadMaria(b *testing.B)    { benchStandbyRead(b, mariaRWBench(b)) }
func BenchmarkCommitPG(b *testing.B)            { benchCommit(b, pgRWBench(b)) }
func BenchmarkCommitMaria(b *testing.B)         { benchCommit(b, mariaRWBench(b)) }
