package hasql_test

// Reads on standbys, read-your-writes and replicated durability on real
// servers (issue 14, points 6 and 8): a PostgreSQL primary with a streaming
// standby (replication slowed by a fault proxy on the standby's replication
// connection, or replay paused), and a MariaDB primary with a GTID replica
// (testserver.StartReplica).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

// rwPGCluster is a primary with a standby whose replication goes through a
// fault proxy (so that a test can slow it), and a table kv(k, v) with row 1.
type rwPGCluster struct {
	prim, stby *pgServer
	proxy      *faultProxy
	P, S       string // host:port
}

func startRWPG(t testing.TB) *rwPGCluster { return startRWPGVia(t, true) }

// startRWPGVia is startRWPG; viaProxy false leaves the standby streaming
// straight from the primary (for benchmarks: the proxy shares the test
// process's CPU), and proxy nil.
func startRWPGVia(t testing.TB, viaProxy bool) *rwPGCluster {
	t.Helper()
	prim := startPostgres(t)
	if err := prim.ExecIn("test", "create table kv (k int primary key, v bigint not null); insert into kv values (1, 0)"); err != nil {
		t.Fatal(err)
	}
	stby := prim.StartStandby(t)
	P := "127.0.0.1:" + strconv.Itoa(prim.Port)
	if !viaProxy {
		return &rwPGCluster{prim: prim, stby: stby, P: P, S: "127.0.0.1:" + strconv.Itoa(stby.Port)}
	}
	fp := newFaultProxy(t, P)
	// The standby streams through the proxy from now on (primary_conninfo
	// is reloadable: the WAL receiver restarts with it).
	if err := stby.Exec(fmt.Sprintf("alter system set primary_conninfo = 'host=127.0.0.1 port=%d user=postgres'", fp.Port())); err != nil {
		t.Fatal(err)
	}
	if err := stby.Exec("select pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for fp.Open() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not reconnect through the proxy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &rwPGCluster{prim: prim, stby: stby, proxy: fp, P: P, S: "127.0.0.1:" + strconv.Itoa(stby.Port)}
}

func (cl *rwPGCluster) dsn(extra string) string {
	return cl.prim.DSN("test") + "&hasql.hosts=" + cl.P + "," + cl.S + "&hasql.target=primary" + extra
}

// The write of rwLoop on each server.
const (
	pgUpdateKV    = "update kv set v = $1 where k = 1"
	mariaUpdateKV = "UPDATE kv SET v = ? WHERE k = 1"
)

// rwLoop writes v=i with update (one argument) and reads it back at once
// through db, n times, and fails on the first stale read.
func rwLoop(t *testing.T, db *sql.DB, update string, start, n int, deadline time.Time) int {
	t.Helper()
	ctx := context.Background()
	ro := hasql.ReadOnly(ctx)
	for i := start; i < start+n; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("write/read loop: out of time after %d iterations", i-start)
		}
		if _, err := db.ExecContext(ctx, update, i); err != nil {
			t.Fatalf("iteration %d: write: %v", i, err)
		}
		var got int
		if err := db.QueryRowContext(ro, "select v from kv where k = 1").Scan(&got); err != nil {
			t.Fatalf("iteration %d: read: %v", i, err)
		}
		if got != i {
			t.Fatalf("iteration %d: read %d: a stale read", i, got)
		}
	}
	return start + n
}

func TestReadYourWritesOnStandbyPostgres(t *testing.T) {
	cl := startRWPG(t)
	db, c := foOpen(t, "pgx", cl.dsn("&hasql.reads=prefer-standby&hasql.lag_wait=50ms&hasql.max_lag=1s"))
	deadline := time.Now().Add(4 * time.Minute)
	i := 1
	share := func(from hasql.Stats) (standby, primary int64) {
		s := c.Stats()
		return s.StandbyReads - from.StandbyReads, s.PrimaryReads - from.PrimaryReads
	}

	// Replication keeping up: most reads on the standby.
	s0 := c.Stats()
	i = rwLoop(t, db, pgUpdateKV, i, 8000, deadline)
	sb, pr := share(s0)
	t.Logf("replication keeping up: %d reads on the standby, %d on the primary (%.1f%% standby)", sb, pr, 100*float64(sb)/float64(sb+pr))
	if sb+pr != 8000 || sb < 4000 {
		t.Fatalf("replication keeping up: %d standby reads, %d primary reads of 8000: want most on the standby", sb, pr)
	}

	// Replication slowed: 3ms per packet each way on the standby's
	// replication connection.
	cl.proxy.SetLatency(3 * time.Millisecond)
	s1 := c.Stats()
	i = rwLoop(t, db, pgUpdateKV, i, 1500, deadline)
	sb, pr = share(s1)
	t.Logf("replication slowed (3ms per packet): %d on the standby, %d on the primary", sb, pr)
	cl.proxy.SetLatency(0)

	// Replay paused: every read must go to the primary (after lag_wait,
	// then at once once max_lag keeps the standby out).
	if err := cl.stby.Exec("select pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	s2 := c.Stats()
	i = rwLoop(t, db, pgUpdateKV, i, 500, deadline)
	sb, pr = share(s2)
	t.Logf("replay paused: %d on the standby, %d on the primary", sb, pr)
	if sb != 0 {
		t.Fatalf("replay paused: %d reads on the standby", sb)
	}
	// The standby is out of date and hasql measured it.
	var lag time.Duration
	for _, h := range c.Stats().Hosts {
		if h.Addr == cl.S {
			lag = h.Lag
			if h.Role != "standby" {
				t.Fatalf("host %s role %q, want standby", h.Addr, h.Role)
			}
		}
	}
	if lag <= 0 {
		t.Fatalf("standby lag %v while replay is paused", lag)
	}
	if err := cl.stby.Exec("select pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d write/read iterations, none stale; standby lag while paused %v", i-1, lag)
}

func TestReadRoutingPostgres(t *testing.T) {
	cl := startRWPG(t)
	ctx := context.Background()
	readV := func(t *testing.T, db *sql.DB, ctx context.Context) int {
		t.Helper()
		var v int
		if err := db.QueryRowContext(ctx, "select v from kv where k = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	onStandby := func(t *testing.T, db *sql.DB, ctx context.Context) bool {
		t.Helper()
		var rec bool
		if err := db.QueryRowContext(ctx, "select pg_is_in_recovery()").Scan(&rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	t.Run("marks", func(t *testing.T) {
		db, c := foOpen(t, "pgx", cl.dsn("&hasql.reads=standby&hasql.consistency=eventual"))
		if onStandby(t, db, ctx) {
			t.Fatal("unmarked work ran on the standby")
		}
		if !onStandby(t, db, hasql.ReadOnly(ctx)) {
			t.Fatal("ReadOnly work ran on the primary")
		}
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var rec bool
		if err := tx.QueryRow("select pg_is_in_recovery()").Scan(&rec); err != nil || !rec {
			t.Fatalf("read-only transaction: in recovery %v, %v", rec, err)
		}
		tx.Commit()
		// A pinned connection: its read-only transaction (its first
		// work) on the standby, its next work on the primary again.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx, err = conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow("select pg_is_in_recovery()").Scan(&rec); err != nil || !rec {
			t.Fatalf("pinned read-only transaction: in recovery %v, %v", rec, err)
		}
		tx.Rollback()
		if _, err := conn.ExecContext(ctx, "update kv set v = v where k = 1"); err != nil {
			t.Fatalf("write on the pinned connection after its read-only transaction: %v", err)
		}
		conn.Close()
		// A write marked read-only fails as the standby refuses it, and
		// the standby's sessions are not purged for it.
		_, err = db.ExecContext(hasql.ReadOnly(ctx), "update kv set v = v where k = 1")
		if err == nil {
			t.Fatal("a write marked ReadOnly succeeded on the standby")
		}
		st := c.Stats()
		if st.StandbyReads < 3 {
			t.Fatalf("StandbyReads = %d", st.StandbyReads)
		}
		roles := map[string]string{}
		for _, h := range st.Hosts {
			roles[h.Addr] = h.Role
		}
		if roles[cl.P] != "primary" || roles[cl.S] != "standby" {
			t.Fatalf("roles %v", roles)
		}
	})

	t.Run("ReadAfter carries the position to another connector", func(t *testing.T) {
		writer, wc := foOpen(t, "pgx", cl.dsn("&hasql.reads=prefer-standby"))
		reader, _ := foOpen(t, "pgx", cl.dsn("&hasql.reads=prefer-standby&hasql.lag_wait=20ms"))
		eventual, _ := foOpen(t, "pgx", cl.dsn("&hasql.reads=standby&hasql.consistency=eventual"))
		before := readV(t, writer, ctx)
		if err := cl.stby.Exec("select pg_wal_replay_pause()"); err != nil {
			t.Fatal(err)
		}
		defer cl.stby.Exec("select pg_wal_replay_resume()")
		if _, err := writer.ExecContext(ctx, "update kv set v = $1 where k = 1", before+1); err != nil {
			t.Fatal(err)
		}
		pos := wc.Position()
		if pos == "" {
			t.Fatal("Position() is empty after a write")
		}
		// The eventual reader sees the standby's old value: replay is
		// really paused, so the next check can fail.
		if got := readV(t, eventual, hasql.ReadOnly(ctx)); got != before {
			t.Fatalf("eventual read on the paused standby: %d, want the stale %d", got, before)
		}
		if got := readV(t, reader, hasql.ReadAfter(ctx, pos)); got != before+1 {
			t.Fatalf("ReadAfter(%s): %d, want %d", pos, got, before+1)
		}
		if got := readV(t, reader, hasql.ReadAfter(ctx, "not a position")); got != before+1 {
			t.Fatalf("ReadAfter(bad position) read %d, want the primary's %d", got, before+1)
		}
	})
}

func TestDurabilityReplicatedPostgres(t *testing.T) {
	cl := startRWPG(t)
	ctx := context.Background()
	db, c := foOpen(t, "pgx", cl.dsn("&hasql.durability=replicated&hasql.durability_wait=2s"))
	for i := 0; i < 60; i++ {
		if i == 30 {
			// Replication slowed: the standby's flush arrives tens of
			// milliseconds after the commit, so the wait has to see it
			// change.
			cl.proxy.SetLatency(10 * time.Millisecond)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("update kv set v = $1 where k = 1", i); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit %d with the standby streaming: %v", i, err)
		}
		// Acknowledged means on the standby's disk already.
		out, err := cl.prim.Query(fmt.Sprintf("select bool_or(flush_lsn >= '%s') from pg_stat_replication", c.Position()))
		if err != nil || out != "t" {
			t.Fatalf("commit %d acknowledged at %s, standby flushed it: %q %v", i, c.Position(), out, err)
		}
	}
	cl.proxy.SetLatency(0)
	// The standby's replication cut off (the proxy swallows everything):
	// commits are not confirmed within durability_wait.
	db, _ = foOpen(t, "pgx", cl.dsn("&hasql.durability=replicated&hasql.durability_wait=300ms"))
	cl.proxy.SetMode(fpBlackhole)
	defer cl.proxy.SetMode(fpPass)
	_, err := db.ExecContext(ctx, "update kv set v = -1 where k = 1")
	if !errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("autocommit write with replication cut: %v, want ErrTxResolutionUnknown", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("update kv set v = -2 where k = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("commit with replication cut: %v, want ErrTxResolutionUnknown", err)
	}
	// A read-only transaction waits for nothing.
	tx, err = db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("read-only commit: %v", err)
	}
}

// startRWMaria is a MariaDB primary with a GTID replica and a fresh database
// holding kv(k, v) with row 1, replicated.
func startRWMaria(t testing.TB) (r *testserver.MariaDBReplication, db, dsn string) {
	t.Helper()
	r = testserver.StartMariaDBReplication(t)
	db = r.FreshDB(t)
	if err := r.Primary.ExecIn(db, "CREATE TABLE kv (k INT PRIMARY KEY, v BIGINT NOT NULL); INSERT INTO kv VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	P := "127.0.0.1:" + strconv.Itoa(r.Primary.Port)
	S := "127.0.0.1:" + strconv.Itoa(r.Replica.Port)
	return r, db, r.AppDSN(r.Primary, db) + "?hasql.hosts=" + P + "," + S + "&hasql.target=primary"
}

func TestReadYourWritesOnReplicaMariaDB(t *testing.T) {
	r, _, dsn := startRWMaria(t)
	db, c := foOpen(t, "mysql", dsn+"&hasql.reads=prefer-standby&hasql.lag_wait=50ms&hasql.max_lag=1s")
	deadline := time.Now().Add(3 * time.Minute)
	s0 := c.Stats()
	i := rwLoop(t, db, mariaUpdateKV, 1, 2000, deadline)
	s1 := c.Stats()
	sb, pr := s1.StandbyReads-s0.StandbyReads, s1.PrimaryReads-s0.PrimaryReads
	t.Logf("replica keeping up: %d reads on the replica, %d on the primary", sb, pr)
	if sb+pr != 2000 || sb < 1000 {
		t.Fatalf("%d replica reads, %d primary reads of 2000: want most on the replica", sb, pr)
	}
	// The replica's SQL thread stopped: it receives but applies nothing.
	if err := r.Replica.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	i = rwLoop(t, db, mariaUpdateKV, i, 300, deadline)
	s2 := c.Stats()
	if n := s2.StandbyReads - s1.StandbyReads; n != 0 {
		t.Fatalf("%d reads on the replica while it applied nothing", n)
	}
	roles := map[string]string{}
	for _, h := range s2.Hosts {
		roles[h.Addr] = h.Role
	}
	if roles["127.0.0.1:"+strconv.Itoa(r.Replica.Port)] != "standby" {
		t.Fatalf("roles %v", roles)
	}
	if err := r.Replica.Exec("START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	// Another process's reads: the position travels as text.
	pos := c.Position()
	if !strings.HasPrefix(pos, "0-1-") {
		t.Fatalf("Position() = %q, want a GTID of server 1", pos)
	}
	reader, _ := foOpen(t, "mysql", dsn+"&hasql.reads=standby")
	var got int
	if err := reader.QueryRowContext(hasql.ReadAfter(context.Background(), pos), "SELECT v FROM kv WHERE k = 1").Scan(&got); err != nil || got != i-1 {
		t.Fatalf("ReadAfter(%s): %d, %v; want %d", pos, got, err, i-1)
	}
	t.Logf("%d write/read iterations, none stale", i-1)
}

func TestDurabilityReplicatedMariaDB(t *testing.T) {
	r, name, dsn := startRWMaria(t)
	ctx := context.Background()
	db, _ := foOpen(t, "mysql", dsn+"&hasql.durability=replicated&hasql.durability_wait=300ms")
	for i := 0; i < 20; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("UPDATE kv SET v = ? WHERE k = 1", i); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit %d with the replica applying: %v", i, err)
		}
		// Acknowledged: the replica has applied it.
		if out, err := r.Replica.QueryIn(name, "SELECT v FROM kv WHERE k = 1"); err != nil || out != strconv.Itoa(i) {
			t.Fatalf("after commit %d the replica has %q, %v", i, out, err)
		}
	}
	if err := r.Replica.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	defer r.Replica.Exec("START SLAVE SQL_THREAD")
	if _, err := db.ExecContext(ctx, "UPDATE kv SET v = -1 WHERE k = 1"); !errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("autocommit write with the replica stopped: %v, want ErrTxResolutionUnknown", err)
	}
	// A statement that writes nothing waits for nothing.
	if _, err := db.ExecContext(ctx, "UPDATE kv SET v = v WHERE k = 2"); err != nil {
		t.Fatalf("a write of no row: %v", err)
	}
}
