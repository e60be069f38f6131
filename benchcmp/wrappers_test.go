package benchcmp

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/hasqlgo/hasql"
	"github.com/ngrok/sqlmw"
	"github.com/qustavo/sqlhooks/v2"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Each wrapper wraps NoopDriver with hooks that do nothing, registered under
// its own name.
func init() {
	sql.Register("benchcmp-sqlhooks", sqlhooks.Wrap(NoopDriver{}, noopHooks{}))
	sql.Register("benchcmp-sqlmw", sqlmw.Driver(NoopDriver{}, noopInterceptor{}))
	sql.Register("benchcmp-otelsql", otelsql.WrapDriver(NoopDriver{},
		otelsql.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider())))
}

// noopHooks is sqlhooks' Before and After, doing nothing.
type noopHooks struct{}

func (noopHooks) Before(ctx context.Context, _ string, _ ...any) (context.Context, error) {
	return ctx, nil
}
func (noopHooks) After(ctx context.Context, _ string, _ ...any) (context.Context, error) {
	return ctx, nil
}

// noopInterceptor is sqlmw's interceptor with the two intercepted calls
// spelled out (NullInterceptor passes everything else through).
type noopInterceptor struct{ sqlmw.NullInterceptor }

func (noopInterceptor) ConnExecContext(ctx context.Context, conn driver.ExecerContext, query string, args []driver.NamedValue) (driver.Result, error) {
	return conn.ExecContext(ctx, query, args)
}
func (noopInterceptor) ConnQueryContext(ctx context.Context, conn driver.QueryerContext, query string, args []driver.NamedValue) (context.Context, driver.Rows, error) {
	rows, err := conn.QueryContext(ctx, query, args)
	return ctx, rows, err
}

// hasql's callbacks: one entry and one exit on FnExec and FnQuery.
func hasqlEntry(*hasql.Call) error { return hasql.Continue }
func hasqlExit(*hasql.Call) error  { return hasql.Continue }

type variant struct {
	name       string
	driverName string
	dsn        string
	callbacks  bool
}

var variants = []variant{
	{"raw", "benchcmp-noop", "", false},
	{"hasql", "hasql", "benchcmp-noop:", false},
	{"hasql-cb", "hasql", "benchcmp-noop:", true},
	{"sqlhooks", "benchcmp-sqlhooks", "", false},
	{"sqlmw", "benchcmp-sqlmw", "", false},
	{"otelsql", "benchcmp-otelsql", "", false},
}

func open(tb testing.TB, v variant) *sql.DB {
	tb.Helper()
	db, err := sql.Open(v.driverName, v.dsn)
	if err != nil {
		tb.Fatalf("%s: %v", v.name, err)
	}
	tb.Cleanup(func() { db.Close() })
	if v.callbacks {
		c, ok := hasql.ConnectorOf(db)
		if !ok {
			tb.Fatal("ConnectorOf: not a hasql *sql.DB")
		}
		for _, fn := range []hasql.Fn{hasql.FnExec, hasql.FnQuery} {
			c.Callbacks().Register(fn, hasql.Entry, hasqlEntry)
			c.Callbacks().Register(fn, hasql.Exit, hasqlExit)
		}
	}
	if err := db.Ping(); err != nil {
		tb.Fatalf("%s: ping: %v", v.name, err)
	}
	return db
}

const (
	execSQL  = "UPDATE bench_kv SET v = ? WHERE id = 1"
	querySQL = "SELECT id, v FROM bench_kv WHERE id = ?"
)

type op struct {
	name string
	run  func(ctx context.Context, db *sql.DB) error
}

var ops = []op{
	{"Exec", func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, execSQL, 2)
		return err
	}},
	{"Query", func(ctx context.Context, db *sql.DB) error {
		rows, err := db.QueryContext(ctx, querySQL, 1)
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
}

func BenchmarkWrappers(b *testing.B) {
	ctx := context.Background()
	dbs := make([]*sql.DB, len(variants))
	for i, v := range variants {
		dbs[i] = open(b, v)
	}
	// The variants run in a random order, drawn once per process: run after
	// run (ratios.sh runs the test binary several times), no variant always
	// goes first.
	order := rand.Perm(len(variants))
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			for _, i := range order {
				v, db := variants[i], dbs[i]
				b.Run(v.name, func(b *testing.B) {
					if err := o.run(ctx, db); err != nil {
						b.Fatalf("%s %s: %v", o.name, v.name, err)
					}
					b.ReportAllocs()
					cpu0 := cpuTime()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := o.run(ctx, db); err != nil {
							b.Fatalf("%s %s: %v", o.name, v.name, err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				})
			}
		})
	}
}

// cpuTime is the CPU time the test process has used (user and system, every
// thread). Per op, as the cpu-ns/op metric, it is barely moved by other
// processes competing for the machine, unlike ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestWrappersWork makes sure every variant runs every op, so that a broken
// wrapper setup shows up without running the benchmarks.
func TestWrappersWork(t *testing.T) {
	ctx := context.Background()
	for _, v := range variants {
		db := open(t, v)
		for _, o := range ops {
			if err := o.run(ctx, db); err != nil {
				t.Errorf("%s %s: %v", o.name, v.name, err)
			}
		}
	}
}
