package hasql_test

// The outage prober's port watch on real servers (outage_watch.go): while a
// stopped server's port refuses connections, hasql makes no connect attempts
// beyond the one that found it down; it connects as soon as the restarted
// server listens, whatever the back-off schedule's next interval.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

func TestOutagePortWatchRealServers(t *testing.T) {
	// A budget of 1000 attempts 10ms apart (ten seconds' worth), then an
	// hour: a call across the restart succeeds only if the prober connects
	// when the port opens; the timetable alone would have used up its short
	// delays against the closed port.
	delays := make([]time.Duration, 0, 1001)
	for i := 0; i < 1000; i++ {
		delays = append(delays, 10*time.Millisecond)
	}
	delays = append(delays, time.Hour)
	b := hasql.Backoff{Delays: delays, ConnectTimeout: 5 * time.Second, OutageWait: 2 * time.Minute}

	servers := []struct {
		name, driver string
		start        func(t *testing.T) (dsn string, stop, restart func() error)
	}{
		{"postgres", "pgx", func(t *testing.T) (string, func() error, func() error) {
			p := startPostgres(t)
			return p.DSN("postgres"), func() error { return p.Stop("fast") }, p.Start
		}},
		{"mariadb", "mysql", func(t *testing.T) (string, func() error, func() error) {
			m := startMariaDB(t)
			return m.DSN("mysql") + "?timeout=5s", m.Stop, m.Start
		}},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			dsn, stop, restart := s.start(t)
			db, hc := foOpen(t, s.driver, dsn, hasql.WithBackoff(b))
			var attempts atomic.Int64
			hc.Callbacks().Register(hasql.FnConnect, hasql.Entry, func(*hasql.Call) error {
				attempts.Add(1)
				return hasql.Continue
			})
			ctx := hasql.Idempotent(context.Background())
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			before := attempts.Load()
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				var one int
				done <- db.QueryRowContext(cctx, "select 1").Scan(&one)
			}()
			// The watch begins, or (without it) the timetable's ten
			// seconds of short delays pass.
			deadline := time.Now().Add(12 * time.Second)
			for hc.Stats().PortChecks < 3 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			whileClosed := attempts.Load() - before
			if err := restart(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the call across the restart: %v", err)
			}
			st := hc.Stats()
			t.Logf("%d connect attempts while the port was closed, %d port checks in all", whileClosed, st.PortChecks)
			// The caller's own connect found the port closed and began the
			// outage; the prober then only watched the port.
			if whileClosed > 2 {
				t.Fatalf("%d connect attempts while the port was closed, want at most 2 (the caller's, and the prober's first)", whileClosed)
			}
		})
	}
}
