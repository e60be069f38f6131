package hasql_test

// Session pool benchmarks.
//
//   BenchmarkAcquireTagged/...   checking out and giving back a session on a no-op in-process
//       driver: raw is database/sql's db.Conn + Close on the driver itself; hasql is
//       hasql.Acquire with a tag whose session is in the pool + hasql.Release with that tag.
//       Goal: hasql/raw ≤ 1.3. For what lies between: hasql-dbconn and hasql-dbconn-tagged are
//       db.Conn + Close through hasql, without and with the tag (the tagged session taken back
//       by the same checkout path Acquire uses); raw-2raw is raw plus the two Conn.Raw calls that
//       Acquire and Release need to reach hasql's handle behind a *sql.Conn (database/sql offers
//       no other way), each doing nothing: the floor for any Acquire/Release on *sql.Conn.
//   BenchmarkStatefulRequestPG/{tagged,untagged}   a request that needs session state X (three
//       SET statements) and then runs one query, on the shared PostgreSQL server. tagged: a
//       session callback applies X once per session and requests ask for the tag; untagged:
//       every request runs the three SETs itself. stmts/op counts the statements sent per
//       request (each is one round trip).
//
//   go test -run '^$' -bench 'Pool|Stateful|Acquire' -benchmem -count 3 .

import (
	"context"
	"database/sql"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// pbCPU returns the process's CPU time (user + system). Reported per op as cpu-ns/op, it moves
// much less than ns/op when other work shares the machine.
func pbCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pbLoop runs body b.N times, timed, and reports cpu-ns/op.
func pbLoop(b *testing.B, body func()) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := pbCPU()
	for i := 0; i < b.N; i++ {
		body()
	}
	b.StopTimer()
	b.ReportMetric(float64(pbCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// ---------------------------------------------------------------------------------------------
// A no-op driver of its own (bench_test.go's "hasql-noop" belongs to another file): fakedb's
// driver with connections that only reset and validate, for free.

const pbNoopName = "hasql-poolbench-noop"

func init() {
	sql.Register(pbNoopName, &hasql.FakeDriver{
		Caps: hasql.FakeSessionResetter | hasql.FakeValidator, DB: hasql.NoopFakeDB(),
	})
}

const pbTag = "nls=fr"

// pbTaggedDB opens hasql over the no-op driver with one pooled session
// tagged pbTag, and returns a context asking for it.
func pbTaggedDB(b *testing.B, ctx context.Context) (*sql.DB, context.Context) {
	db, err := hasql.Open(pbNoopName, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	tctx := hasql.WithTag(ctx, pbTag)
	warm, err := hasql.Acquire(tctx, db)
	if err != nil {
		b.Fatal(err)
	}
	if err := hasql.Release(warm, pbTag); err != nil {
		b.Fatal(err)
	}
	return db, tctx
}

func BenchmarkAcquireTagged(b *testing.B) {
	ctx := context.Background()

	b.Run("raw", func(b *testing.B) {
		db, err := sql.Open(pbNoopName, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		pbLoop(b, func() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		})
	})

	b.Run("raw-2raw", func(b *testing.B) {
		db, err := sql.Open(pbNoopName, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		nothing := func(any) error { return nil }
		pbLoop(b, func() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Raw(nothing)
			c.Raw(nothing)
			c.Close()
		})
	})

	b.Run("hasql-dbconn-tagged", func(b *testing.B) {
		db, tctx := pbTaggedDB(b, ctx)
		pbLoop(b, func() {
			c, err := db.Conn(tctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		})
		c, _ := hasql.ConnectorOf(db)
		if st := c.Stats(); st.TagMisses != 1 || st.Created != 1 || st.TagHits < int64(b.N) {
			b.Fatalf("the tagged session was not reused every time: %+v", st)
		}
	})

	// For reference: the same db.Conn + Close through hasql, untagged.
	b.Run("hasql-dbconn", func(b *testing.B) {
		db, err := hasql.Open(pbNoopName, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		pbLoop(b, func() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		})
	})

	b.Run("hasql", func(b *testing.B) {
		db, tctx := pbTaggedDB(b, ctx)
		pbLoop(b, func() {
			c, err := hasql.Acquire(tctx, db)
			if err != nil {
				b.Fatal(err)
			}
			if err := hasql.Release(c, pbTag); err != nil {
				b.Fatal(err)
			}
		})
		c, _ := hasql.ConnectorOf(db)
		if st := c.Stats(); st.TagMisses != 1 || st.Created != 1 {
			b.Fatalf("the tagged session was not reused every time: %+v", st)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Stateful requests on PostgreSQL.

// pbStateX is the session state every request needs.
var pbStateX = []string{
	"SET TIME ZONE 'Pacific/Chatham'",
	"SET search_path TO s1, public",
	"SET application_name = 'hasql-bench'",
}

const pbQuery = "SELECT v, current_setting('TimeZone'), current_setting('application_name') FROM marker"

func pbCheck(b *testing.B, v, tz, app string) {
	if v != "s1" || tz != "Pacific/Chatham" || app != "hasql-bench" {
		b.Fatalf("request ran without state X: marker %q TimeZone %q application_name %q", v, tz, app)
	}
}

func BenchmarkStatefulRequestPG(b *testing.B) {
	dsn := sharedPG(b).FreshDB(b)
	ctx := context.Background()
	setup, err := hasql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"CREATE SCHEMA s1", "CREATE TABLE s1.marker (v text)", "INSERT INTO s1.marker VALUES ('s1')"} {
		if _, err := setup.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	setup.Close()

	b.Run("tagged", func(b *testing.B) {
		var stmts atomic.Int64
		cb := func(ctx context.Context, s *hasql.Session, requested string) error {
			if requested != "state=x" {
				return s.SetTag(requested)
			}
			for _, q := range pbStateX {
				stmts.Add(1)
				if err := s.Exec(ctx, q); err != nil {
					return err
				}
			}
			return s.SetTag(requested)
		}
		db, err := hasql.Open("pgx", dsn, hasql.WithSessionCallback(cb))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		tctx := hasql.WithTag(ctx, "state=x")
		pbLoop(b, func() {
			var v, tz, app string
			stmts.Add(1)
			if err := db.QueryRowContext(tctx, pbQuery).Scan(&v, &tz, &app); err != nil {
				b.Fatal(err)
			}
			pbCheck(b, v, tz, app)
		})
		b.ReportMetric(float64(stmts.Load())/float64(b.N), "stmts/op")
	})

	b.Run("untagged", func(b *testing.B) {
		var stmts atomic.Int64
		db, err := hasql.Open("pgx", dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		pbLoop(b, func() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, q := range pbStateX {
				stmts.Add(1)
				if _, err := c.ExecContext(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			var v, tz, app string
			stmts.Add(1)
			if err := c.QueryRowContext(ctx, pbQuery).Scan(&v, &tz, &app); err != nil {
				b.Fatal(err)
			}
			pbCheck(b, v, tz, app)
			c.Close()
		})
		b.ReportMetric(float64(stmts.Load())/float64(b.N), "stmts/op")
	})
}
