package hasql_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// TestStandbySessionRecheckedAfterPromotion: without discovery, a pooled session opened on a
// standby that is then promoted (pg_ctl promote; the session survives it and becomes writable)
// does not serve standby-only work again: at its next checkout, its check being over a second old,
// its server's role is asked again, and the work goes to the other standby.
func TestStandbySessionRecheckedAfterPromotion(t *testing.T) {
	served, s2, c := readsOnAPromotedStandby(t)
	time.Sleep(1100 * time.Millisecond) // the pooled session's role check is over a second old
	for i := 0; i < 5; i++ {
		if port, rec := served(); port != s2.Port || !rec {
			t.Fatalf("read %d after the promotion on %d (in recovery %v), want the other standby %d (stats %+v)", i, port, rec, s2.Port, c.Stats().Hosts)
		}
	}
}

// TestStandbyPromotionReportedByTheServer: PostgreSQL 14+ reports in_hot_standby = off on a
// session in the answer to its first statement after the promotion; at the next checkout that
// report makes hasql ask the role at once (the time-based re-check is set to an hour here), so at
// most the one statement that carried the report runs on the promoted server.
func TestStandbyPromotionReportedByTheServer(t *testing.T) {
	t.Cleanup(hasql.RoleRecheckTestAfter(time.Hour))
	served, s2, c := readsOnAPromotedStandby(t)
	port, rec := served() // carries the report back, wherever it runs
	t.Logf("the read carrying the report: on %d, in recovery %v", port, rec)
	for i := 0; i < 5; i++ {
		if port, rec := served(); port != s2.Port || !rec {
			t.Fatalf("read %d after the report on %d (in recovery %v), want the other standby %d (stats %+v)", i, port, rec, s2.Port, c.Stats().Hosts)
		}
	}
}

// readsOnAPromotedStandby starts a primary and two standbys, opens a connector whose only hosts
// are the standbys (target=standby, ordered: the first is used while it qualifies) with one
// database/sql connection, reads once on the first standby, and promotes it. served reads the
// port and pg_is_in_recovery() of the server the next read runs on.
func readsOnAPromotedStandby(t *testing.T) (served func() (int, bool), s2 *pgServer, c *hasql.Connector) {
	t.Helper()
	prim := startPostgres(t)
	s1 := prim.StartStandby(t)
	s2 = prim.StartStandby(t)
	S1 := "127.0.0.1:" + strconv.Itoa(s1.Port)
	S2 := "127.0.0.1:" + strconv.Itoa(s2.Port)
	db, c := foOpen(t, "pgx", prim.DSN("test")+"&hasql.hosts="+S1+","+S2+"&hasql.target=standby&hasql.pick=ordered")
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	served = func() (int, bool) {
		t.Helper()
		var port int
		var rec bool
		if err := db.QueryRow("select inet_server_port(), pg_is_in_recovery()").Scan(&port, &rec); err != nil {
			t.Fatal(err)
		}
		return port, rec
	}
	if port, rec := served(); port != s1.Port || !rec {
		t.Fatalf("first read on %d (in recovery %v), want the first standby %d", port, rec, s1.Port)
	}
	if err := s1.Promote(); err != nil {
		t.Fatal(err)
	}
	return served, s2, c
}
