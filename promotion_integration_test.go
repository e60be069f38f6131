package hasql_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

// TestPromotionUnderWayIsAwaitedOnItsSession: discovery (a fake Patroni REST API) names a
// streaming standby the leader while its PostgreSQL is still in recovery, as Patroni does between
// writing the leader key and the end of pg_ctl promote. The session that finds the standby waits
// on the same connection for the promotion and serves the write as soon as it ends, rather than
// being closed to wait for the back-off timetable (here an hour: without the wait the write fails
// when its context ends).
func TestPromotionUnderWayIsAwaitedOnItsSession(t *testing.T) {
	prim := startPostgres(t)
	stby := prim.StartStandby(t)
	t.Cleanup(hasql.PromotionTestWait(time.Minute)) // the test decides when the promotion runs
	if err := prim.ExecIn("test", "create table promo (id int primary key, v int)"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "table on the standby", func() bool {
		_, err := stby.QueryIn("test", "select 1 from promo limit 1")
		return err == nil
	})
	f := newFakePatroni(t)
	f.set(false, []testserver.PatroniMember{
		{Name: "old", Role: "replica", State: "stopped", Host: "127.0.0.1", Port: prim.Port},
		{Name: "new", Role: "leader", State: "running", Host: "127.0.0.1", Port: stby.Port},
	})
	app := "promo_" + harnessRandHex(4)
	dsn := stby.DSN("test") + "&application_name=" + app + "&hasql.target=primary&hasql.discover=patroni&hasql.discover_url=" + f.srv.URL
	sdb, c := clusterOpen(t, "pgx", dsn, hasql.WithBackoff(hasql.Backoff{Delays: []time.Duration{time.Hour},
		ConnectTimeout: time.Minute, OutageWait: time.Minute}))
	type result struct {
		port, pid int
		err       error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var r result
		r.err = sdb.QueryRowContext(ctx, "insert into promo values (1, 1) returning inet_server_port(), pg_backend_pid()").Scan(&r.port, &r.pid)
		done <- r
	}()
	// The session waiting on the standby: the only one of this application name, the same
	// backend in two looks 200ms apart (a connect that found the standby before discovery's first
	// view closed at once).
	var waiting, prev string
	waitUntil(t, 30*time.Second, "a hasql session waiting on the standby", func() bool {
		time.Sleep(200 * time.Millisecond)
		out, err := stby.QueryIn("test", "select pid from pg_stat_activity where application_name = '"+app+"'")
		if err != nil || out == "" || strings.Contains(out, "\n") {
			prev = ""
			return false
		}
		same := out == prev
		waiting, prev = out, out
		return same
	})
	if err := stby.Promote(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("write during the promotion: %v (stats %+v)", r.err, c.Stats().Hosts)
	}
	if r.port != stby.Port {
		t.Fatalf("served by %d, want the promoted standby %d", r.port, stby.Port)
	}
	if strconv.Itoa(r.pid) != waiting {
		t.Fatalf("served by backend %d, want the session that waited for the promotion (%s)", r.pid, waiting)
	}
}
