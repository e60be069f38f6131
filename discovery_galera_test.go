package hasql_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

// Tests on the shared Galera cluster (3 MariaDB nodes). Each leaves all three nodes Synced.

func galeraTable(t *testing.T, g *testserver.Galera) (db, tbl string) {
	t.Helper()
	db = g.FreshDB(t)
	tbl = "load_" + harnessRandHex(4)
	if err := g.Nodes[0].Exec("create table `" + db + "`." + tbl + " (w int, i int, v int, primary key (w, i))"); err != nil {
		t.Fatal(err)
	}
	return db, tbl
}

// galeraDSN: the given node only, discovery finds the rest.
func galeraDSN(n *testserver.GaleraNode, db, extra string) string {
	return n.NodeDSN(db) + "?hasql.discover=galera&hasql.discover_interval=1s&hasql.reconnect=50ms&hasql.blacklist=500ms" + extra
}

func galeraHealthy(t *testing.T, g *testserver.Galera) {
	t.Cleanup(func() {
		for _, n := range g.Nodes {
			if !n.Running() {
				if err := n.RestartNode(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}
		if err := g.WaitSynced(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// TestGaleraDiscovery: from one node in the DSN hasql learns the three members from
// wsrep_incoming_addresses.
func TestGaleraDiscovery(t *testing.T) {
	g := testserver.SharedGalera(t)
	db, _ := galeraTable(t, g)
	sdb, c := clusterOpen(t, "mysql", galeraDSN(g.Nodes[1], db, ""))
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	got := map[string]bool{}
	for _, h := range c.Stats().Hosts {
		got[h.Addr] = true
	}
	for _, a := range g.Addrs() {
		if !got[a] {
			t.Fatalf("hosts %v miss %s", got, a)
		}
	}
	if err := sdb.Ping(); err != nil {
		t.Fatal(err)
	}
}

// TestGaleraNodeKilled: a node killed under 8 workers of idempotent reads and upserts: the work
// moves to the other nodes and no error reaches the application (the survivors' commit stall
// until the dead node is evicted is a pause, not an outage).
func TestGaleraNodeKilled(t *testing.T) {
	g := testserver.SharedGalera(t)
	galeraHealthy(t, g)
	db, tbl := galeraTable(t, g)
	sdb, c := clusterOpen(t, "mysql", galeraDSN(g.Nodes[0], db, "&hasql.retry=idempotent"))
	sdb.SetMaxOpenConns(8)
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	res := &loadResult{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		runUpsertLoad(hasql.Idempotent(context.Background()), sdb, tbl, "insert into "+tbl+" (w, i, v) values (?, ?, 1) on duplicate key update v = values(v)", 8, stop, 60*time.Second, res)
		close(done)
	}()
	victim := g.Nodes[2]
	waitUntil(t, 10*time.Second, "sessions on the victim", func() bool {
		for _, h := range c.Stats().Hosts {
			if h.Addr == victim.Addr() && h.Open > 0 {
				return true
			}
		}
		return false
	})
	before := res.ops.Load()
	if err := victim.KillNode(); err != nil {
		t.Fatal(err)
	}
	res.mark()
	waitUntil(t, 30*time.Second, "work goes on", func() bool { return res.ops.Load() > before+200 })
	close(stop)
	<-done
	t.Logf("node killed: %d idempotent operations, errors %d", res.ops.Load(), len(res.errors()))
	for _, e := range res.errors() {
		t.Errorf("error reached the application: %s", e)
	}
}

// TestGaleraRollingRestart: each node in turn drained (Connector.Drain), stopped, restarted (IST)
// and undrained under 8 workers of mixed load (reads, autocommit writes, transactions): no error.
func TestGaleraRollingRestart(t *testing.T) {
	g := testserver.SharedGalera(t)
	galeraHealthy(t, g)
	db, tbl := galeraTable(t, g)
	sdb, c := clusterOpen(t, "mysql", galeraDSN(g.Nodes[0], db, ""))
	sdb.SetMaxOpenConns(8)
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	res := &loadResult{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		runLoad(context.Background(), sdb, tbl, 8, loadRead|loadWrite|loadTx, false, true, stop, 3*time.Minute, res)
		close(done)
	}()
	for _, n := range g.Nodes {
		time.Sleep(300 * time.Millisecond)
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.Drain(dctx, n.Addr())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.StopNode(); err != nil {
			t.Fatal(err)
		}
		if err := n.RestartNode(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Undrain(n.Addr())
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	t.Logf("rolling restart of 3 nodes: %d operations (reads %d, writes %d, transactions %d), errors %d",
		res.ops.Load(), res.kindCount[0].Load(), res.kindCount[1].Load(), res.kindCount[2].Load(), len(res.errors()))
	for _, e := range res.errors() {
		t.Errorf("error reached the application: %s", e)
	}
}

// TestGaleraNodeNotReady: a node cut off from the others (gmcast.isolate) leaves the primary
// component: it still answers SELECT 1 but fails table access with 1047 (SQLSTATE 08S01). hasql
// does not report that as a lost connection, and with hasql.discover=galera no work is served by
// that node.
func TestGaleraNodeNotReady(t *testing.T) {
	g := testserver.SharedGalera(t)
	galeraHealthy(t, g)
	db, tbl := galeraTable(t, g)
	iso := g.Nodes[1]
	sdb, c := clusterOpen(t, "mysql", galeraDSN(g.Nodes[0], db, "&hasql.pick=roundrobin"))
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	only, _ := clusterOpen(t, "mysql", iso.NodeDSN(db))
	if err := iso.Exec("SET GLOBAL wsrep_provider_options='gmcast.isolate=1'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = iso.Exec("SET GLOBAL wsrep_provider_options='gmcast.isolate=0'")
		if iso.WaitSynced(context.Background()) != nil {
			// Not back by itself: restart it.
			_ = iso.KillNode()
			_ = iso.RestartNode(context.Background())
		}
	})
	waitUntil(t, 30*time.Second, "isolated node out of the primary component", func() bool {
		st, err := iso.Status()
		return err == nil && st["wsrep_ready"] == "OFF"
	})
	var one int
	if err := only.QueryRow("select 1").Scan(&one); err != nil {
		t.Fatalf("SELECT 1 on the isolated node: %v", err)
	}
	var n int
	err := only.QueryRow("select count(*) from " + tbl).Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "1047") {
		t.Fatalf("table access on the isolated node: %v, want error 1047", err)
	}
	if errors.Is(err, hasql.ErrConnectionLost) || errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("1047 reported as a lost connection: %v", err)
	}
	waitUntil(t, 60*time.Second, "discovery drops the isolated node", func() bool {
		// Dropped (it was only discovered) or, had it been given, kept as "none".
		r, listed := hostRoles(c)[iso.Addr()]
		return !listed || r == "none"
	})
	for i := 0; i < 60; i++ {
		var port int
		if err := sdb.QueryRow("select @@port from " + tbl + " limit 1").Scan(&port); err != nil && err != sql.ErrNoRows {
			t.Fatalf("read %d: %v", i, err)
		}
		var p2 int
		if err := sdb.QueryRow("select @@port").Scan(&p2); err != nil {
			t.Fatal(err)
		}
		if p2 == iso.Port {
			t.Fatalf("read %d served by the isolated node", i)
		}
	}
}

// TestGaleraConflictCommit: a transaction whose statement failed with 1213 (a brute-force abort
// after another node wrote the same row) was rolled back by the server; go-sql-driver/mysql's
// Commit then returns nil, hasql's returns ErrTxNotCommitted.
func TestGaleraConflictCommit(t *testing.T) {
	g := testserver.SharedGalera(t)
	db, _ := galeraTable(t, g)
	a, b := g.Nodes[0], g.Nodes[1]
	if err := a.Exec("create table `" + db + "`.acct (id int primary key, v int); insert into `" + db + "`.acct values (1, 0)"); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("mysql", b.NodeDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hdb, _ := clusterOpen(t, "mysql", b.NodeDSN(db))
	for _, tc := range []struct {
		name string
		db   *sql.DB
	}{{"raw", raw}, {"hasql", hdb}} {
		ctx := context.Background()
		tx, err := tc.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("update acct set v = 100 where id = 1"); err != nil {
			t.Fatal(err)
		}
		// Another node writes the same row: b's transaction is aborted.
		if err := a.Exec("update `" + db + "`.acct set v = v + 1 where id = 1"); err != nil {
			t.Fatal(err)
		}
		var stmtErr error
		deadline := time.Now().Add(5 * time.Second)
		for stmtErr == nil && time.Now().Before(deadline) {
			var one int
			stmtErr = tx.QueryRow("select 1").Scan(&one)
			if stmtErr == nil {
				time.Sleep(20 * time.Millisecond) // the abort is applied asynchronously
			}
		}
		if stmtErr == nil || !strings.Contains(stmtErr.Error(), "1213") {
			t.Fatalf("%s: statement after the conflicting write: %v, want 1213", tc.name, stmtErr)
		}
		cerr := tx.Commit()
		var v int
		if err := tc.db.QueryRow("select v from acct where id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: statement: %v; Commit: %v; row v = %d", tc.name, stmtErr, cerr, v)
		if v >= 100 {
			t.Fatalf("%s: the aborted transaction's update is visible (v = %d)", tc.name, v)
		}
		if tc.name == "hasql" && !errors.Is(cerr, hasql.ErrTxNotCommitted) {
			t.Fatalf("hasql Commit after the server rolled back: %v, want ErrTxNotCommitted", cerr)
		}
	}
}

// TestGaleraCausalReads: a row committed on one node is read at once on another. Through hasql
// (hasql.discover=galera, hasql.consistency=session, the default) the read never misses it; the
// raw driver's misses are logged for comparison.
func TestGaleraCausalReads(t *testing.T) {
	g := testserver.SharedGalera(t)
	db, _ := galeraTable(t, g)
	a, b := g.Nodes[0], g.Nodes[1]
	if err := a.Exec("create table `" + db + "`.kv (id int primary key, v int)"); err != nil {
		t.Fatal(err)
	}
	writer, err := sql.Open("mysql", a.NodeDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	raw, err := sql.Open("mysql", b.NodeDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hdb, c := clusterOpen(t, "mysql", galeraDSN(b, db, ""))
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	// Reads through hasql on b only: the other nodes drained.
	for _, n := range []*testserver.GaleraNode{a, g.Nodes[2]} {
		if err := c.Drain(context.Background(), n.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 300
	var rawMiss, hMiss int
	for i := 0; i < rounds; i++ {
		if _, err := writer.Exec("insert into kv values (?, 1)", 2*i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := raw.QueryRow("select count(*) from kv where id = ?", 2*i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			rawMiss++
		}
		if _, err := writer.Exec("insert into kv values (?, 1)", 2*i+1); err != nil {
			t.Fatal(err)
		}
		var port int
		if err := hdb.QueryRow("select count(*), @@port from kv where id = ?", 2*i+1).Scan(&n, &port); err != nil {
			t.Fatal(err)
		}
		if port != b.Port {
			t.Fatalf("hasql read served by %d, want node b %d", port, b.Port)
		}
		if n == 0 {
			hMiss++
		}
	}
	t.Logf("row written on one node, read at once on another, %d times: raw driver missed %d, hasql (consistency=session) %d", rounds, rawMiss, hMiss)
	if hMiss != 0 {
		t.Fatalf("hasql read missed a row committed before it %d times in %d", hMiss, rounds)
	}
}
