package hasql_test

// The chaos suite: real servers under concurrent load while connections are
// killed, servers restart or fail over, and the network misbehaves (through
// the fault proxy of faultproxy_test.go). Bounded: every scenario takes a few
// seconds; the whole suite runs in `go test ./...`.
//
// The load: four writers insert rows keyed by a unique request id (two in
// autocommit, two in transactions of two rows), never marked Idempotent, so
// hasql re-runs a write only when it certainly never reached the server;
// four readers run a small query marked Idempotent, with retry=idempotent.
//
// Checked for every scenario:
//   - every write the application was told succeeded is in the database;
//   - no write ran twice (the unique key would have failed the re-run with
//     an error the application saw), and the rows in the table are exactly
//     the acknowledged writes plus some of those whose outcome hasql
//     reported unknown; a transaction's two rows are both there or neither;
//   - reads recovered without any error reaching the application (every
//     outage here is far shorter than outage_wait);
//   - every error that reached the application is ErrConnectionLost,
//     ErrTxResolutionUnknown or ErrNoHosts and carries its cause;
//   - no goroutine is left after Close.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"go.uber.org/goleak"
)

const (
	chaosWriters = 4
	chaosReaders = 4
	chaosSettle  = 700 * time.Millisecond // load before the fault, and after recovery
)

// chaosRig runs the load on one *sql.DB and records every outcome.
type chaosRig struct {
	t      *testing.T
	name   string
	driver string
	db     *sql.DB
	hc     *hasql.Connector
	table  string
	readQ  string

	stop atomic.Bool
	wg   sync.WaitGroup

	mu        sync.Mutex
	attempted map[string]bool
	acked     map[string]bool
	unknown   map[string]bool
	pairs     [][2]string // transactional writes: both rows or neither
	writeErrs []error
	readErrs  []error
	midErrs   []error // rows errors after QueryContext returned

	writesOK, readsOK atomic.Int64
}

// chaosOpen opens the hasql DB for a scenario, creates its table (through
// adminExec, which does not go through hasql) and returns the rig.
func chaosOpen(t *testing.T, name, driverName, dsn string, adminExec func(string) error, opts ...hasql.Option) *chaosRig {
	t.Helper()
	table := "chaos_" + strings.NewReplacer("-", "_", " ", "_").Replace(name)
	if err := adminExec("create table " + table + " (id varchar(64) primary key, worker int not null)"); err != nil {
		t.Fatalf("create %s: %v", table, err)
	}
	sep := "&"
	if !strings.Contains(dsn, "?") {
		sep = "?"
	}
	db, err := hasql.Open(driverName, dsn+sep+"hasql.retry=idempotent&hasql.outage_wait=8s", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hc, _ := hasql.ConnectorOf(db)
	r := &chaosRig{t: t, name: name, driver: driverName, db: db, hc: hc, table: table,
		attempted: map[string]bool{}, acked: map[string]bool{}, unknown: map[string]bool{}}
	r.readQ = "select n from generate_series(1, 40) n"
	if driverName == "mysql" {
		r.readQ = "select seq from seq_1_to_40"
	}
	return r
}

func (r *chaosRig) insertQ() string {
	if r.driver == "mysql" {
		return "insert into " + r.table + " (id, worker) values (?, ?)"
	}
	return "insert into " + r.table + " (id, worker) values ($1, $2)"
}

// chaosTyped reports whether err is one of the errors hasql may hand the
// application after a loss, with its cause inside.
func chaosTyped(err error) bool {
	return foWraps(err, hasql.ErrConnectionLost) || foWraps(err, hasql.ErrTxResolutionUnknown) || foWraps(err, hasql.ErrTxNotCommitted) || foWraps(err, hasql.ErrNoHosts)
}

func (r *chaosRig) start() {
	for i := 0; i < chaosWriters; i++ {
		r.wg.Add(1)
		go r.writer(i, i >= chaosWriters/2)
	}
	for i := 0; i < chaosReaders; i++ {
		r.wg.Add(1)
		go r.reader(i)
	}
}

func (r *chaosRig) writer(w int, inTx bool) {
	defer r.wg.Done()
	ins := r.insertQ()
	for seq := 0; !r.stop.Load(); seq++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		id := fmt.Sprintf("%s-w%d-%d", r.name, w, seq)
		if !inTx {
			r.mu.Lock()
			r.attempted[id] = true
			r.mu.Unlock()
			_, err := r.db.ExecContext(ctx, ins, id, w)
			r.mu.Lock()
			switch {
			case err == nil:
				r.acked[id] = true
				r.writesOK.Add(1)
			default:
				r.writeErrs = append(r.writeErrs, err)
				if chaosTyped(err) && !errors.Is(err, hasql.ErrNoHosts) {
					r.unknown[id] = true
				}
			}
			r.mu.Unlock()
		} else {
			a, b := id+"a", id+"b"
			r.mu.Lock()
			r.attempted[a], r.attempted[b] = true, true
			r.pairs = append(r.pairs, [2]string{a, b})
			r.mu.Unlock()
			err := r.txWrite(ctx, ins, a, b, w)
			r.mu.Lock()
			switch {
			case err == nil:
				r.acked[a], r.acked[b] = true, true
				r.writesOK.Add(1)
			default:
				r.writeErrs = append(r.writeErrs, err)
				if chaosTyped(err) && !errors.Is(err, hasql.ErrNoHosts) && !errors.Is(err, hasql.ErrTxNotCommitted) {
					r.unknown[a], r.unknown[b] = true, true
				}
			}
			r.mu.Unlock()
		}
		cancel()
		time.Sleep(3 * time.Millisecond)
	}
}

func (r *chaosRig) txWrite(ctx context.Context, ins, a, b string, w int) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, ins, a, w); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, ins, b, w); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (r *chaosRig) reader(int) {
	defer r.wg.Done()
	for !r.stop.Load() {
		ctx, cancel := context.WithTimeout(hasql.Idempotent(context.Background()), 20*time.Second)
		rows, err := r.db.QueryContext(ctx, r.readQ)
		if err != nil {
			r.mu.Lock()
			r.readErrs = append(r.readErrs, err)
			r.mu.Unlock()
			cancel()
			continue
		}
		n, sum := 0, 0
		var mid error
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				mid = err
				break
			}
			n++
			sum += v
		}
		if err := rows.Err(); err != nil && mid == nil {
			mid = err
		}
		rows.Close()
		cancel()
		r.mu.Lock()
		switch {
		case mid != nil:
			r.midErrs = append(r.midErrs, mid)
		case n != 40 || sum != 820:
			r.readErrs = append(r.readErrs, fmt.Errorf("read returned %d rows summing to %d, want 40 and 820", n, sum))
		default:
			r.readsOK.Add(1)
		}
		r.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// run starts the load, lets it settle, injects the fault, waits until
// writes and reads succeed again, lets that settle, and stops the load.
func (r *chaosRig) run(fault func()) {
	r.t.Helper()
	r.start()
	defer func() {
		r.stop.Store(true)
		r.wg.Wait()
	}()
	// Load must be flowing before the fault: wait for it (bounded; a
	// loaded machine can take longer than chaosSettle for the first
	// transaction), then let it run a while.
	for start := time.Now(); r.writesOK.Load() == 0 || r.readsOK.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			r.t.Fatalf("%s: no load before the fault (writes %d, reads %d)", r.name, r.writesOK.Load(), r.readsOK.Load())
		}
	}
	time.Sleep(chaosSettle)
	faultAt := time.Now()
	fault()
	w, rd := r.writesOK.Load(), r.readsOK.Load()
	deadline := time.Now().Add(9 * time.Second)
	for r.writesOK.Load() < w+int64(chaosWriters) || r.readsOK.Load() < rd+int64(chaosReaders) {
		if time.Now().After(deadline) {
			r.t.Errorf("%s: the load did not recover within 9s of the fault (writes +%d, reads +%d)", r.name, r.writesOK.Load()-w, r.readsOK.Load()-rd)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Logf("%s: load back %v after the fault began", r.name, time.Since(faultAt).Round(time.Millisecond))
	time.Sleep(chaosSettle)
}

// verify checks the invariants against the ids in the table (read without
// hasql), then closes the DB and checks for leaked goroutines.
func (r *chaosRig) verify(ids []string) {
	t := r.t
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	inDB := map[string]bool{}
	for _, id := range ids {
		if inDB[id] {
			t.Errorf("%s: id %s is in the table twice", r.name, id)
		}
		inDB[id] = true
	}
	lost := 0
	for id := range r.acked {
		if !inDB[id] {
			lost++
			if lost <= 5 {
				t.Errorf("%s: write %s was acknowledged but is not in the database", r.name, id)
			}
		}
	}
	landedUnknown := 0
	for id := range inDB {
		switch {
		case !r.attempted[id]:
			t.Errorf("%s: id %s in the table was never written", r.name, id)
		case !r.acked[id] && !r.unknown[id]:
			t.Errorf("%s: write %s is in the table but the application was told it failed with a definite error", r.name, id)
		case !r.acked[id]:
			landedUnknown++
		}
	}
	for _, p := range r.pairs {
		if inDB[p[0]] != inDB[p[1]] {
			t.Errorf("%s: transaction %s/%s is half in the table", r.name, p[0], p[1])
		}
	}
	untyped := 0
	kinds := map[string]int{}
	for _, err := range append(append([]error(nil), r.writeErrs...), r.readErrs...) {
		switch {
		case errors.Is(err, hasql.ErrConnectionLost):
			kinds["ErrConnectionLost"]++
		case errors.Is(err, hasql.ErrTxResolutionUnknown):
			kinds["ErrTxResolutionUnknown"]++
		case errors.Is(err, hasql.ErrTxNotCommitted):
			kinds["ErrTxNotCommitted"]++
		case errors.Is(err, hasql.ErrNoHosts):
			kinds["ErrNoHosts"]++
		default:
			kinds["other"]++
		}
		if !chaosTyped(err) {
			untyped++
			if untyped <= 5 {
				t.Errorf("%s: the application got %T %v: not a typed hasql error wrapping its cause", r.name, err, err)
			}
		}
	}
	for i, err := range r.readErrs {
		if i < 5 {
			t.Errorf("%s: a read failed although the outage was shorter than outage_wait: %v", r.name, err)
		}
	}
	st := r.hc.Stats()
	t.Logf("%s: %d writes acknowledged, %d with unknown outcome (%d of those landed), %d reads ok, %d read errors, %d mid-stream rows errors; errors %v; stats reconnects %d failovers %d retries %d terminated %d",
		r.name, len(r.acked), len(r.unknown), landedUnknown, r.readsOK.Load(), len(r.readErrs), len(r.midErrs), kinds,
		st.Reconnects, st.Failovers, st.Retries, st.Terminated)
	for i, err := range r.midErrs {
		if i < 3 {
			t.Logf("%s: mid-stream rows error: %T %v", r.name, err, err)
		}
	}
	if len(r.midErrs) > 0 {
		t.Errorf("%s: %d reads failed after QueryContext returned (rows.Err): the error reached the application", r.name, len(r.midErrs))
	}
}

// chaosPGIDs reads a table's ids with psql.
func chaosPGIDs(t *testing.T, p *pgServer, db, table string) []string {
	t.Helper()
	out, err := p.QueryIn(db, "select id from "+table)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

// chaosScenario wraps one scenario: it must leave no goroutine behind.
func chaosScenario(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		start := time.Now()
		f(t)
		if t.Failed() {
			return
		}
		goleak.VerifyNone(t, ignore)
		t.Logf("%s took %v", name, time.Since(start).Round(time.Millisecond))
	})
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

func TestChaosPostgres(t *testing.T) {
	p := startPostgres(t)
	pgAddr := "127.0.0.1:" + strconv.Itoa(p.Port)
	dsn := p.DSN("test")
	admin := func(sql string) error { return p.ExecIn("test", sql) }
	clientPIDs := func() []int {
		out, err := p.Query("select pid from pg_stat_activity where datname = 'test' and backend_type = 'client backend' and pid <> pg_backend_pid()")
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		for _, f := range strings.Fields(out) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return pids
	}
	server := func(name string, fault func(t *testing.T)) {
		chaosScenario(t, name, func(t *testing.T) {
			r := chaosOpen(t, name, "pgx", dsn, admin)
			r.run(func() { fault(t) })
			r.db.Close()
			r.verify(chaosPGIDs(t, p, "test", r.table))
		})
	}
	server("terminate-all", func(t *testing.T) {
		if err := p.Exec("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'test' and pid <> pg_backend_pid()"); err != nil {
			t.Fatal(err)
		}
	})
	server("kill9-backend", func(t *testing.T) {
		pids := clientPIDs()
		if len(pids) == 0 {
			t.Fatal("no client backend to kill")
		}
		if err := syscall.Kill(pids[len(pids)/2], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	})
	server("restart-fast", func(t *testing.T) {
		if err := p.Restart("fast"); err != nil {
			t.Fatal(err)
		}
	})
	server("restart-immediate", func(t *testing.T) {
		if err := p.Restart("immediate"); err != nil {
			t.Fatal(err)
		}
	})

	// Through the fault proxy.
	proxied := func(name string, fault func(t *testing.T, fp *faultProxy)) {
		chaosScenario(t, name, func(t *testing.T) {
			fp := newFaultProxy(t, pgAddr)
			pdsn := strings.Replace(dsn, pgAddr, fp.Addr(), 1)
			r := chaosOpen(t, name, "pgx", pdsn+"&hasql.connect_timeout=1s", admin)
			r.run(func() { fault(t, fp) })
			r.db.Close()
			fp.Close()
			r.verify(chaosPGIDs(t, p, "test", r.table))
		})
	}
	proxied("proxy-reset", func(t *testing.T, fp *faultProxy) {
		fp.ResetAll()
		time.Sleep(50 * time.Millisecond)
		fp.ResetAll()
	})
	proxied("proxy-blackhole", func(t *testing.T, fp *faultProxy) {
		fp.SetMode(fpBlackhole)
		time.Sleep(1500 * time.Millisecond)
		fp.SetMode(fpPass)
	})
	proxied("proxy-latency", func(t *testing.T, fp *faultProxy) {
		fp.SetLatency(30 * time.Millisecond)
		time.Sleep(time.Second)
		fp.SetLatency(0)
	})
	proxied("proxy-sliced", func(t *testing.T, fp *faultProxy) {
		fp.SetSliced(true)
		time.Sleep(time.Second)
		fp.SetSliced(false)
	})
}

// ---------------------------------------------------------------------------------------------
// MariaDB

func TestChaosMariaDB(t *testing.T) {
	m := startMariaDB(t)
	dsn := m.DSN("test")
	// The harness starts mariadbd with innodb_flush_log_at_trx_commit=0,
	// which loses the last second of commits when the process is killed: a
	// server setting no client can make up for. Writing the log at each
	// commit (2) makes commits survive a kill -9 of the server process.
	if err := m.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 2"); err != nil {
		t.Fatal(err)
	}
	admin := func(sql string) error { return m.ExecIn("test", sql) }
	ids := func(t *testing.T, table string) []string {
		out, err := m.QueryIn("test", "select id from "+table)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(out)
	}
	for _, sc := range []struct {
		name  string
		fault func() error
	}{
		{"kill9-start", func() error {
			if err := m.Kill9(); err != nil {
				return err
			}
			return m.Start()
		}},
		{"restart", m.Restart},
		{"kill-connections", func() error {
			out, err := m.Query("select id from information_schema.processlist where db = 'test' and id <> connection_id()")
			if err != nil {
				return err
			}
			var kills []string
			for _, id := range strings.Fields(out) {
				kills = append(kills, "KILL "+id)
			}
			if len(kills) == 0 {
				return fmt.Errorf("no connections to kill")
			}
			_ = m.Exec(strings.Join(kills, ";")) // some may be gone already
			return nil
		}},
	} {
		chaosScenario(t, sc.name, func(t *testing.T) {
			r := chaosOpen(t, sc.name, "mysql", dsn, admin)
			r.run(func() {
				if err := sc.fault(); err != nil {
					t.Fatal(err)
				}
			})
			r.db.Close()
			r.verify(ids(t, r.table))
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Failover: primary and streaming standby, target=primary; the primary stops
// and the standby is promoted.

func TestChaosFailover(t *testing.T) {
	prim := startPostgres(t)
	stby := prim.StartStandby(t)
	P := "127.0.0.1:" + strconv.Itoa(prim.Port)
	S := "127.0.0.1:" + strconv.Itoa(stby.Port)
	chaosScenario(t, "promote-standby", func(t *testing.T) {
		r := chaosOpen(t, "failover", "pgx", prim.DSN("test")+"&hasql.target=primary&hasql.hosts="+P+","+S,
			func(sql string) error {
				if err := prim.ExecIn("test", sql); err != nil {
					return err
				}
				// Wait until the standby has the table too.
				deadline := time.Now().Add(10 * time.Second)
				for {
					out, err := stby.QueryIn("test", "select count(*) from pg_tables where tablename = 'chaos_failover'")
					if err == nil && strings.TrimSpace(out) == "1" {
						return nil
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("the standby never got the table: %v %s", err, out)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		r.run(func() {
			if err := prim.Stop("fast"); err != nil {
				t.Fatal(err)
			}
			if err := stby.Promote(); err != nil {
				t.Fatal(err)
			}
		})
		// The load ended on the promoted standby: the old primary is not up,
		// the new one is. (Stats.Failovers counts sessions whose work moved
		// to another host; whether any did depends on where each worker was
		// when the primary stopped.)
		var port int
		if err := r.db.QueryRow("select inet_server_port()").Scan(&port); err != nil || port != stby.Port {
			t.Errorf("after the failover: work runs on port %d (%v), want the promoted standby's %d", port, err, stby.Port)
		}
		if hs := r.hc.Stats().Hosts; hs[0].State == hasql.HostStateUp || hs[1].State != hasql.HostStateUp {
			t.Errorf("hosts after the failover: %+v", hs)
		}
		r.db.Close()
		r.verify(chaosPGIDs(t, stby, "test", r.table))
	})
}
