package hasql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

// Tests on the shared Patroni cluster (3 PostgreSQL nodes, one etcd; ttl 10s, loop_wait 1s). Each
// leaves the cluster healthy. They run one after another (no t.Parallel): they move the leader.

func patroniTable(t *testing.T, pc *testserver.Patroni) (db, tbl string) {
	t.Helper()
	db = pc.FreshDB(t)
	ld, err := pc.Leader()
	if err != nil {
		t.Fatal(err)
	}
	tbl = "load_" + harnessRandHex(4)
	if _, err := ld.Query(db, "create table "+tbl+" (w int, i int, v int, primary key (w, i))"); err != nil {
		t.Fatal(err)
	}
	// Every replica has replayed the database and the table.
	for _, nd := range pc.Nodes {
		waitUntil(t, 30*time.Second, "table replicated to "+nd.Name, func() bool {
			_, err := nd.Query(db, "select 1 from "+tbl+" limit 1")
			return err == nil
		})
	}
	return db, tbl
}

// patroniDSN: the given node only (discovery finds the rest), target primary, fast discovery and
// reconnects.
func patroniDSN(pc *testserver.Patroni, db string, given *testserver.PatroniNode, extra string) string {
	return pc.DSN(db, given) + "&hasql.target=primary&hasql.discover=patroni&hasql.discover_url=" + given.RESTURL() +
		"&hasql.discover_interval=1s&hasql.reconnect=50ms&hasql.blacklist=200ms" + extra
}

// TestPatroniDiscovery: from one node (a replica) in the DSN, hasql learns all three members and
// their roles from Patroni's REST API, and writes reach the leader.
func TestPatroniDiscovery(t *testing.T) {
	pc := testserver.SharedPatroni(t)
	db, tbl := patroniTable(t, pc)
	reps, err := pc.Replicas()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := pc.Leader()
	sdb, c := clusterOpen(t, "pgx", patroniDSN(pc, db, reps[0], ""))
	waitUntil(t, 10*time.Second, "three members discovered", func() bool { return len(c.Stats().Hosts) == 3 })
	roles := hostRoles(c)
	for _, nd := range pc.Nodes {
		want := "standby"
		if nd == ld {
			want = "primary"
		}
		if roles[nd.Addr()] != want {
			t.Fatalf("host roles %v: %s (%s) should be %s", roles, nd.Addr(), nd.Name, want)
		}
	}
	var port int
	if err := sdb.QueryRow("insert into " + tbl + " (w, i, v) values (1, 1, 1) returning inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != ld.Port {
		t.Fatalf("write served by port %d, the leader is %s on %d", port, ld.Name, ld.Port)
	}
}

// fakePatroni serves a /cluster document the test edits: members of the real cluster added and
// removed at will, or HTTP 503 (the source down).
type fakePatroni struct {
	mu      sync.Mutex
	members []testserver.PatroniMember
	down    bool
	srv     *httptest.Server
}

func newFakePatroni(t *testing.T) *fakePatroni {
	f := &fakePatroni{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.down || r.URL.Path != "/cluster" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ms := make([]map[string]any, 0, len(f.members))
		for _, m := range f.members {
			ms = append(ms, map[string]any{"name": m.Name, "role": m.Role, "state": m.State, "host": m.Host, "port": m.Port,
				"api_url": f.srv.URL + "/patroni"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"members": ms})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePatroni) set(down bool, ms []testserver.PatroniMember) {
	f.mu.Lock()
	f.members, f.down = ms, down
	f.mu.Unlock()
}

// TestPatroniDiscoveryMembership: a member added to the cluster's view is used without a restart,
// one removed is dropped and its sessions purged, and a discovery source that is down keeps the
// last known list (plus the hosts given).
func TestPatroniDiscoveryMembership(t *testing.T) {
	pc := testserver.SharedPatroni(t)
	db, _ := patroniTable(t, pc)
	real, err := pc.Members()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := pc.Leader()
	var leaderM testserver.PatroniMember
	var others []testserver.PatroniMember
	for _, m := range real {
		if m.Name == ld.Name {
			leaderM = m
		} else {
			others = append(others, m)
		}
	}
	f := newFakePatroni(t)
	a, b := others[0], others[1]
	f.set(false, []testserver.PatroniMember{leaderM, a})
	// The DSN gives the leader only; standby work goes where the view says replicas are.
	dsn := pc.DSN(db, ld) + "&hasql.target=standby&hasql.discover=patroni&hasql.discover_url=" + f.srv.URL + "&hasql.discover_interval=100ms"
	sdb, c := clusterOpen(t, "pgx", dsn)
	servedBy := func() int {
		var port int
		if err := sdb.QueryRow("select inet_server_port()").Scan(&port); err != nil {
			t.Fatal(err)
		}
		return port
	}
	waitUntil(t, 10*time.Second, "first view applied", func() bool { return len(c.Stats().Hosts) == 2 })
	if p := servedBy(); p != a.Port {
		t.Fatalf("served by %d, want the one known replica %d", p, a.Port)
	}
	// b is added to the view: in the host list without a restart.
	f.set(false, []testserver.PatroniMember{leaderM, a, b})
	waitUntil(t, 10*time.Second, "added member in the host list", func() bool { return len(c.Stats().Hosts) == 3 })
	// a is removed from the view: dropped, its sessions purged; work goes to b.
	f.set(false, []testserver.PatroniMember{leaderM, b})
	waitUntil(t, 10*time.Second, "removed member dropped", func() bool { return len(c.Stats().Hosts) == 2 })
	for i := 0; i < 20; i++ {
		if p := servedBy(); p != b.Port {
			t.Fatalf("after a's removal served by %d, want b %d", p, b.Port)
		}
	}
	// The source goes down: the last known list stays and is used.
	f.set(true, nil)
	time.Sleep(500 * time.Millisecond) // several refreshes fail
	if n := len(c.Stats().Hosts); n != 2 {
		t.Fatalf("source down: %d hosts, want the last known 2", n)
	}
	sdb.SetMaxIdleConns(0)
	for i := 0; i < 10; i++ {
		if p := servedBy(); p != b.Port {
			t.Fatalf("source down: served by %d, want the known replica %d", p, b.Port)
		}
	}
}

// failoverRuns is how many crash failovers TestPatroniFailover measures (HASQL_FAILOVER_RUNS).
func failoverRuns() int {
	if n, err := strconv.Atoi(os.Getenv("HASQL_FAILOVER_RUNS")); err == nil && n > 0 {
		return n
	}
	return 1
}

// TestPatroniFailover crashes the leader node (Patroni and postmaster killed): with
// hasql.target=primary and hasql.discover=patroni, 8 workers of idempotent reads and writes see no
// error, hasql writes to the new leader, and the old leader, rejoining as a replica, is never
// written to. It logs the time from the REST role change to hasql's first successful write.
func TestPatroniFailover(t *testing.T) {
	pc := testserver.SharedPatroni(t)
	db, tbl := patroniTable(t, pc)
	var gaps []time.Duration
	for run := 0; run < failoverRuns(); run++ {
		old, err := pc.Leader()
		if err != nil {
			t.Fatal(err)
		}
		reps, _ := pc.Replicas()
		tl := &eventTimeline{}
		// The default back-off (no hasql.reconnect): by the time Patroni promotes a replica, ttl
		// (10 s) into the outage, the prober's timetable is at its 5 s maximum.
		dsn := strings.Replace(patroniDSN(pc, db, reps[0], "&hasql.retry=idempotent"), "&hasql.reconnect=50ms", "", 1)
		sdb, _ := clusterOpen(t, "pgx", dsn, hasql.WithEvents(tl.add))
		// A raw persistent connection on each replica, polled for the end of its promotion
		// (pg_is_in_recovery() turning false): a connection on a promoted replica survives it.
		sqlPromoted := watchPromotion(t, pc, db, reps)
		sdb.SetMaxOpenConns(8)
		ctx := hasql.Idempotent(context.Background())
		var oldHits, writes atomic.Int64
		var firstWrite atomic.Int64 // unix nanos of the first write after the kill
		var killedAt atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
					var port int
					var err error
					if i%2 == 0 {
						err = sdb.QueryRowContext(cctx, "insert into "+tbl+" (w, i, v) values ($1, $2, $3) on conflict (w, i) do update set v = excluded.v returning inet_server_port()", w, i, run).Scan(&port)
					} else {
						err = sdb.QueryRowContext(cctx, "select inet_server_port() from (select count(*) from "+tbl+") x").Scan(&port)
					}
					completed := time.Now().UnixNano()
					cancel()
					if err != nil {
						select {
						case errs <- fmt.Errorf("worker %d op %d: %w", w, i, err):
						default:
						}
						continue
					}
					if i%2 == 0 {
						writes.Add(1)
						if k := killedAt.Load(); k != 0 && completed > k {
							if port == old.Port {
								oldHits.Add(1)
							}
							firstWrite.CompareAndSwap(0, time.Now().UnixNano())
						}
					}
				}
			}()
		}
		// Load before the crash, then the crash.
		time.Sleep(500 * time.Millisecond)
		crash := time.Now()
		if err := old.KillNode(); err != nil {
			t.Fatal(err)
		}
		// From here on no write can succeed on the old leader (its postmaster is dead), and none
		// anywhere until Patroni promotes another node.
		killedAt.Store(time.Now().UnixNano())
		// Poll the survivors' REST API for the role change.
		var promoted time.Time
		var newLeader string
		deadline := time.Now().Add(40 * time.Second)
		for promoted.IsZero() && time.Now().Before(deadline) {
			for _, r := range reps {
				ms, err := r.Members()
				if err != nil {
					continue
				}
				for _, m := range ms {
					if m.Role == "leader" && m.Name != old.Name {
						promoted, newLeader = time.Now(), m.Name
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if promoted.IsZero() {
			close(stop)
			wg.Wait()
			t.Fatal("no new leader within 40s of the crash")
		}
		waitUntil(t, 30*time.Second, "a write on the new leader", func() bool { return firstWrite.Load() != 0 })
		gap := time.Unix(0, firstWrite.Load()).Sub(promoted)
		gaps = append(gaps, gap)
		promotedAt := sqlPromoted()
		t.Logf("run %d: %s crashed; %s leader (REST) %v after the crash; promotion done (pg_is_in_recovery() = f) %v and first hasql write %v after the role change",
			run, old.Name, newLeader, promoted.Sub(crash).Round(time.Millisecond), promotedAt.Sub(promoted).Round(time.Millisecond), gap.Round(time.Millisecond))
		t.Logf("run %d: events, from the REST role change:\n%s", run, tl.since(promoted.Add(-2*time.Second)))
		// The old leader rejoins as a replica while the load goes on.
		if err := old.StartNode(); err != nil {
			t.Fatal(err)
		}
		if err := pc.WaitHealthy(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("idempotent work failed during the failover: %v", err)
		}
		if n := oldHits.Load(); n != 0 {
			t.Fatalf("%d writes after the crash landed on the old leader %s", n, old.Name)
		}
		if writes.Load() == 0 {
			t.Fatal("no writes")
		}
		sdb.Close()
	}
	if len(gaps) > 0 {
		t.Logf("REST role change → first successful hasql write: median %v over %d runs %v", median(gaps).Round(time.Millisecond), len(gaps), gaps)
	}
}

// eventTimeline keeps a connector's HA events for a test's log.
type eventTimeline struct {
	mu sync.Mutex
	ev []hasql.Event
}

func (tl *eventTimeline) add(e hasql.Event) {
	tl.mu.Lock()
	tl.ev = append(tl.ev, e)
	tl.mu.Unlock()
}

// since lists the events from t on, with their times relative to t.
func (tl *eventTimeline) since(t time.Time) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var b []byte
	for _, e := range tl.ev {
		if e.Time.Before(t) {
			continue
		}
		b = fmt.Appendf(b, "  %+8v %v %s %d %v\n", e.Time.Sub(t).Round(time.Millisecond), e.Kind, e.Host, e.Sessions, e.Err)
	}
	return string(b)
}

// watchPromotion polls pg_is_in_recovery() every 2ms on a persistent raw connection to each
// node until one answers false; the returned function waits for that and returns when it was
// first seen.
func watchPromotion(t *testing.T, pc *testserver.Patroni, db string, nodes []*testserver.PatroniNode) func() time.Time {
	t.Helper()
	done := make(chan time.Time, len(nodes))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, nd := range nodes {
		raw, err := sql.Open("pgx", pc.DSN(db, nd))
		if err != nil {
			t.Fatal(err)
		}
		raw.SetMaxOpenConns(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer raw.Close()
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				var rec bool
				if err := raw.QueryRow("select pg_is_in_recovery()").Scan(&rec); err == nil && !rec {
					done <- time.Now()
					return
				}
			}
		}()
	}
	var once sync.Once
	var at time.Time
	return func() time.Time {
		once.Do(func() {
			select {
			case at = <-done:
			case <-time.After(30 * time.Second):
			}
			close(stop)
			wg.Wait()
		})
		return at
	}
}

// TestPatroniSplitBrainNotWritten kills only the leader's Patroni: its PostgreSQL keeps running
// read-write (no watchdog) while Patroni promotes another node. With hasql.discover=patroni no
// write goes to the node Patroni no longer holds as leader, though it answers
// pg_is_in_recovery() = false.
func TestPatroniSplitBrainNotWritten(t *testing.T) {
	pc := testserver.SharedPatroni(t)
	db, tbl := patroniTable(t, pc)
	old, err := pc.Leader()
	if err != nil {
		t.Fatal(err)
	}
	reps, _ := pc.Replicas()
	// The DSN names every node, the old leader first: without discovery it would be chosen.
	dsn := pc.DSN(db, old, reps[0], reps[1]) + "&hasql.target=primary&hasql.discover=patroni&hasql.discover_url=" + reps[0].RESTURL() +
		"&hasql.discover_interval=200ms&hasql.reconnect=50ms&hasql.pick=ordered"
	sdb, c := clusterOpen(t, "pgx", dsn)
	var port int
	if err := sdb.QueryRow("select inet_server_port()").Scan(&port); err != nil || port != old.Port {
		t.Fatalf("before: served by %d (%v), want the leader %d", port, err, old.Port)
	}
	if err := old.KillPatroniOnly(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !old.PatroniRunning() {
			_ = old.StartNode()
		}
		if err := pc.WaitHealthy(context.Background()); err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, 40*time.Second, "another leader in Patroni's view", func() bool {
		ms, err := reps[0].Members()
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Role == "leader" && m.Name != old.Name {
				return true
			}
		}
		return false
	})
	waitUntil(t, 10*time.Second, "hasql no longer holds the old leader as primary", func() bool {
		return hostRoles(c)[old.Addr()] != "primary"
	})
	out, _ := old.Query("postgres", "select pg_is_in_recovery()")
	t.Logf("old leader %s, Patroni dead: pg_is_in_recovery() = %q (f: split brain)", old.Name, out)
	for i := 0; i < 50; i++ {
		if err := sdb.QueryRow("insert into "+tbl+" (w, i, v) values (0, $1, 0) returning inet_server_port()", i).Scan(&port); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if port == old.Port {
			t.Fatalf("write %d went to %s, which Patroni no longer holds as leader", i, old.Name)
		}
	}
}

// TestPatroniSwitchover: a planned switchover with Connector.Drain first reaches 8 workers of mixed
// load (reads, autocommit writes, transactions) as no error at all; a second switchover, without
// Drain, reaches idempotent reads and writes as no error. A session a target=standby connector
// opened on the replica that gets promoted is not used for standby work afterwards.
func TestPatroniSwitchover(t *testing.T) {
	pc := testserver.SharedPatroni(t)
	db, tbl := patroniTable(t, pc)
	old, _ := pc.Leader()
	reps, _ := pc.Replicas()
	cand := reps[0]
	sdb, c := clusterOpen(t, "pgx", patroniDSN(pc, db, reps[1], "&hasql.outage_wait=60s"))
	sdb.SetMaxOpenConns(8)
	waitUntil(t, 10*time.Second, "members discovered", func() bool { return len(c.Stats().Hosts) == 3 })

	// A standby connector with a session on the candidate.
	stdb, sc := clusterOpen(t, "pgx", pc.DSN(db, cand)+"&hasql.target=standby&hasql.discover=patroni&hasql.discover_url="+cand.RESTURL()+"&hasql.discover_interval=200ms")
	pinned, err := stdb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var port int
	if err := pinned.QueryRowContext(context.Background(), "select inet_server_port()").Scan(&port); err != nil || port != cand.Port {
		t.Fatalf("standby session on %d (%v), want the candidate %d", port, err, cand.Port)
	}

	res := &loadResult{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		runLoad(context.Background(), sdb, tbl, 8, loadRead|loadWrite|loadTx, false, false, stop, 90*time.Second, res)
		close(done)
	}()
	time.Sleep(500 * time.Millisecond)
	began := time.Now()
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := c.Drain(dctx, old.Addr()); err != nil {
		t.Fatal(err)
	}
	cancel()
	drained := time.Since(began)
	if err := pc.Switchover(context.Background(), cand.Name); err != nil {
		t.Fatal(err)
	}
	res.mark()
	waitUntil(t, 30*time.Second, "work resumes on the new leader", func() bool {
		res.mu.Lock()
		defer res.mu.Unlock()
		return !res.firstOK.IsZero()
	})
	c.Undrain(old.Addr())
	if err := pc.WaitHealthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	t.Logf("Drain took %v; switchover %s → %s: %d operations (reads %d, writes %d, transactions %d), errors %d",
		drained.Round(time.Millisecond), old.Name, cand.Name, res.ops.Load(), res.kindCount[0].Load(), res.kindCount[1].Load(), res.kindCount[2].Load(), len(res.errors()))
	for _, e := range res.errors() {
		t.Errorf("error reached the application: %s", e)
	}

	// The pinned standby session's host was promoted: hasql purged it.
	waitUntil(t, 10*time.Second, "standby connector sees the candidate as primary", func() bool { return hostRoles(sc)[cand.Addr()] == "primary" })
	pinned.Close()
	for i := 0; i < 30; i++ {
		var rec bool
		if err := stdb.QueryRow("select pg_is_in_recovery()").Scan(&rec); err != nil {
			t.Fatalf("standby read %d: %v", i, err)
		}
		if !rec {
			t.Fatalf("standby read %d was served by a primary (the promoted node's old session)", i)
		}
	}

	// Back, without Drain: idempotent reads and autocommit writes see no error.
	res2 := &loadResult{}
	stop2 := make(chan struct{})
	done2 := make(chan struct{})
	idb, _ := clusterOpen(t, "pgx", patroniDSN(pc, db, old, "&hasql.retry=idempotent&hasql.outage_wait=60s"))
	idb.SetMaxOpenConns(8)
	// Writes must be idempotent to be re-run: upserts.
	if _, err := idb.Exec("create table " + tbl + "_u (w int, i int, v int, primary key (w, i))"); err != nil {
		t.Fatal(err)
	}
	go func() {
		runUpsertLoad(hasql.Idempotent(context.Background()), idb, tbl+"_u", "insert into "+tbl+"_u (w, i, v) values ($1, $2, 1) on conflict (w, i) do update set v = excluded.v", 8, stop2, 90*time.Second, res2)
		close(done2)
	}()
	time.Sleep(500 * time.Millisecond)
	if err := pc.Switchover(context.Background(), old.Name); err != nil {
		t.Fatal(err)
	}
	if err := pc.WaitHealthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(stop2)
	<-done2
	t.Logf("switchover %s → %s without Drain: %d idempotent operations, errors %d", cand.Name, old.Name, res2.ops.Load(), len(res2.errors()))
	for _, e := range res2.errors() {
		t.Errorf("error reached the application: %s", e)
	}
}

// runUpsertLoad: workers alternate reads of tbl and the idempotent upsert
// (its arguments: worker, iteration) until stop or limit.
func runUpsertLoad(ctx context.Context, db *sql.DB, tbl, upsert string, workers int, stop <-chan struct{}, limit time.Duration, res *loadResult) {
	deadline := time.After(limit)
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-deadline:
		}
		close(done)
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 45*time.Second)
				var err error
				if i%2 == 0 {
					_, err = db.ExecContext(cctx, upsert, w, i)
				} else {
					var n int
					err = db.QueryRowContext(cctx, "select count(*) from "+tbl).Scan(&n)
				}
				cancel()
				if err != nil {
					res.fail(w, "upsert/read", err)
				} else {
					res.ok()
				}
			}
		}()
	}
	wg.Wait()
}
