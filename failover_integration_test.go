package hasql_test

// Surviving lost connections, on real servers (issue 6): the classification
// of every way a connection dies, what hasql does on a loss (events, purges,
// retry rules), the outage gate, back-off and connect timeouts, explicit
// Reconnect, recovery functions, the TAF callback, and several hosts with
// roles. The chaos suite under load is in chaos_test.go; the fault proxy in
// faultproxy_test.go; unit tests of the schedules and the host set in
// recover_test.go (package hasql).

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// ---------------------------------------------------------------------------------------------
// Helpers

// foRaw opens a connection of the inner driver itself, without database/sql
// or hasql, so that its errors arrive exactly as the driver makes them.
func foRaw(t testing.TB, drv driver.Driver, dsn string) driver.Conn {
	t.Helper()
	c, err := drv.Open(dsn)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func foRawExec(ctx context.Context, c driver.Conn, q string) error {
	_, err := c.(driver.ExecerContext).ExecContext(ctx, q, nil)
	return err
}

// foRawInt runs a query returning one integer.
func foRawInt(ctx context.Context, c driver.Conn, q string) (int64, error) {
	rows, err := c.(driver.QueryerContext).QueryContext(ctx, q, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	switch v := dest[0].(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case []byte:
		return strconv.ParseInt(string(v), 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", dest[0])
}

// foClass is how the dialect classifies one error.
type foClass struct{ dead, notSent, wrongRole, connectRetryable bool }

func (c foClass) String() string {
	return fmt.Sprintf("connDead=%v notSent=%v wrongRole=%v connectRetryable=%v", c.dead, c.notSent, c.wrongRole, c.connectRetryable)
}

func foClassify(driverName string, err error) foClass {
	d, n, w, r := hasql.RecoverTestClassify(driverName, err)
	return foClass{d, n, w, r}
}

// foWaitFor polls cond every 20ms until it holds or d passes.
func foWaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// foPGBackendGone waits until pid has left pg_stat_activity.
func foPGBackendGone(t testing.TB, p *pgServer, pid int64) {
	t.Helper()
	foWaitFor(t, 10*time.Second, fmt.Sprintf("backend %d to exit", pid), func() bool {
		out, err := p.Query(fmt.Sprintf("select count(*) from pg_stat_activity where pid = %d", pid))
		return err == nil && out == "0"
	})
}

// foPGReady waits until the server accepts a query again (after a crash
// restart of its backends).
func foPGReady(t testing.TB, dsn string) {
	t.Helper()
	foWaitFor(t, 30*time.Second, "PostgreSQL to accept connections", func() bool {
		c, err := stdlib.GetDefaultDriver().Open(dsn)
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = foRawInt(context.Background(), c, "select 1")
		return err == nil
	})
}

// foEvents records HA events.
type foEvents struct {
	mu  sync.Mutex
	evs []hasql.Event
}

func (r *foEvents) add(e hasql.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

func (r *foEvents) list() []hasql.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hasql.Event(nil), r.evs...)
}

func (r *foEvents) kinds() string {
	var b []string
	for _, e := range r.list() {
		b = append(b, e.Kind.String())
	}
	return strings.Join(b, ",")
}

func (r *foEvents) has(k hasql.EventKind) bool {
	for _, e := range r.list() {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// foOpen opens a hasql *sql.DB on an inner driver's DSN, closed at the end of
// the test (Close is idempotent, so tests may close it earlier).
func foOpen(t testing.TB, driverName, dsn string, opts ...hasql.Option) (*sql.DB, *hasql.Connector) {
	t.Helper()
	db, err := hasql.Open(driverName, dsn, opts...)
	if err != nil {
		t.Fatalf("hasql.Open(%s): %v", driverName, err)
	}
	t.Cleanup(func() { db.Close() })
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a hasql DB")
	}
	return db, c
}

// foPID returns the backend pid (PostgreSQL) or connection id (MariaDB) a
// query runs on.
func foPID(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, driverName string) (int64, error) {
	query := "select pg_backend_pid()"
	if driverName == "mysql" {
		query = "select connection_id()"
	}
	var pid int64
	err := q.QueryRowContext(ctx, query).Scan(&pid)
	return pid, err
}

// foWraps reports whether err is a hasql error of kind that also carries a
// cause (its Unwrap chain reaches something besides the sentinel).
func foWraps(err, kind error) bool {
	if !errors.Is(err, kind) {
		return false
	}
	return foCause(err) != nil
}

// foCause returns the first error in err's tree that is not a hasql
// sentinel, or nil.
func foCause(err error) error {
	var walk func(e error) error
	walk = func(e error) error {
		if e == nil {
			return nil
		}
		switch e {
		case hasql.ErrConnectionLost, hasql.ErrTxResolutionUnknown, hasql.ErrTxNotCommitted, hasql.ErrNoHosts:
			return nil
		}
		// hasql's own error type carries the sentinel and the cause;
		// anything else in the tree is a cause.
		if u, ok := e.(interface{ Unwrap() []error }); ok && strings.HasPrefix(fmt.Sprintf("%T", e), "*hasql.") {
			for _, x := range u.Unwrap() {
				if c := walk(x); c != nil {
					return c
				}
			}
			return nil
		}
		return e
	}
	return walk(err)
}

// foPGState returns the SQLSTATE of the PostgreSQL error inside err, or "".
func foPGState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// ---------------------------------------------------------------------------------------------
// 1. Classification: every way a connection dies, provoked on real servers

func TestClassifyPostgresReal(t *testing.T) {
	p := startPostgres(t)
	dsn := p.DSN("test")
	drv := stdlib.GetDefaultDriver()
	ctx := context.Background()
	check := func(name string, err error, want foClass, match func(error) bool) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		got := foClassify("pgx", err)
		t.Logf("%-28s %T %v → %v", name, err, err, got)
		if got != want {
			t.Errorf("%s: %v: got %v, want %v", name, err, got, want)
		}
		if match != nil && !match(err) {
			t.Errorf("%s: error %T %v is not the documented kind", name, err, err)
		}
	}

	// pg_terminate_backend: FATAL 57P01 on the next query.
	c := foRaw(t, drv, dsn)
	pid, err := foRawInt(ctx, c, "select pg_backend_pid()")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Exec(fmt.Sprintf("select pg_terminate_backend(%d)", pid)); err != nil {
		t.Fatal(err)
	}
	foPGBackendGone(t, p, pid)
	err = foRawExec(ctx, c, "select 1")
	check("pg_terminate_backend", err, foClass{dead: true, connectRetryable: true}, func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "57P01" && pe.Severity == "FATAL"
	})
	// The connection is closed now: the next call is refused before
	// anything is written (pgx's "conn closed"), which is safe to retry.
	err = foRawExec(ctx, c, "select 1")
	check("call on the closed conn", err, foClass{dead: true, notSent: true, connectRetryable: true}, nil)

	// 25006: a write in a read-only transaction.
	c = foRaw(t, drv, dsn)
	if err := foRawExec(ctx, c, "begin read only"); err != nil {
		t.Fatal(err)
	}
	err = foRawExec(ctx, c, "create table ro_probe (a int)")
	check("write in read-only tx", err, foClass{wrongRole: true, connectRetryable: true}, func(err error) bool { return foPGState(err) == "25006" })
	_ = foRawExec(ctx, c, "rollback")

	// Context cancellation is never a dead connection.
	c = foRaw(t, drv, dsn)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = foRawExec(cctx, c, "select pg_sleep(5)")
	cancel()
	check("context deadline", err, foClass{connectRetryable: true}, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) })
	// Connect first: on a loaded machine the connect alone can outlast the
	// timer, and a cancelled context before the query is another case.
	c = foRaw(t, drv, dsn)
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	err = foRawExec(cctx, c, "select pg_sleep(5)")
	check("context canceled", err, foClass{}, func(err error) bool { return errors.Is(err, context.Canceled) })

	// kill -9 of a backend: the socket just closes (and the postmaster
	// restarts every backend).
	c = foRaw(t, drv, dsn)
	pid, err = foRawInt(ctx, c, "select pg_backend_pid()")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	err = foRawExec(ctx, c, "select 1")
	check("kill -9 backend", err, foClass{dead: true, connectRetryable: true}, nil)
	foPGReady(t, dsn)

	// Immediate shutdown: io.ErrUnexpectedEOF on the next query.
	c = foRaw(t, drv, dsn)
	if _, err := foRawInt(ctx, c, "select 1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	err = foRawExec(ctx, c, "select 1")
	check("immediate shutdown", err, foClass{dead: true, connectRetryable: true}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) })

	// Refused connect: *pgconn.ConnectError.
	_, err = drv.Open(dsn)
	check("refused connect", err, foClass{dead: true, connectRetryable: true}, func(err error) bool {
		var ce *pgconn.ConnectError
		return errors.As(err, &ce)
	})

	// 57P03: the server is up but not accepting connections yet (a standby
	// with hot_standby off never becomes ready, which keeps it there).
	if err := os.WriteFile(filepath.Join(p.Dir, "data", "standby.signal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1 -c hot_standby=off", p.Port, p.Dir)
	if _, err := p.Tool(30*time.Second, "pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-o", opts, "-l", filepath.Join(p.Dir, "log"), "-W", "start"); err != nil {
		t.Fatal(err)
	}
	var startErr error
	foWaitFor(t, 20*time.Second, "a 57P03 from the starting server", func() bool {
		_, startErr = drv.Open(dsn)
		return foPGState(startErr) == "57P03"
	})
	check("57P03 starting up", startErr, foClass{dead: true, connectRetryable: true}, func(err error) bool {
		var ce *pgconn.ConnectError
		return errors.As(err, &ce)
	})
}

func TestClassifyMariaDBReal(t *testing.T) {
	m := startMariaDB(t)
	dsn := m.DSN("test")
	drv := &mysql.MySQLDriver{}
	ctx := context.Background()
	check := func(name string, err error, want foClass, match func(error) bool) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		got := foClassify("mysql", err)
		t.Logf("%-28s %T %v → %v", name, err, err, got)
		if got != want {
			t.Errorf("%s: %v: got %v, want %v", name, err, got, want)
		}
		if match != nil && !match(err) {
			t.Errorf("%s: error %T %v is not the documented kind", name, err, err)
		}
	}
	myNum := func(err error) uint16 {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			return me.Number
		}
		return 0
	}
	lostKind := func(err error) bool {
		return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || myNum(err) == 1927 || myNum(err) == 1053
	}

	// KILL <id> of the connection.
	c := foRaw(t, drv, dsn)
	id, err := foRawInt(ctx, c, "select connection_id()")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	err = foRawExec(ctx, c, "select 1")
	want := foClass{dead: true, connectRetryable: true}
	want.notSent = errors.Is(err, driver.ErrBadConn)
	check("KILL connection", err, want, lostKind)

	// A query running when it is killed.
	c = foRaw(t, drv, dsn)
	id, err = foRawInt(ctx, c, "select connection_id()")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, func() { _ = m.Exec(fmt.Sprintf("KILL %d", id)) })
	err = foRawExec(ctx, c, "select sleep(5)")
	want = foClass{dead: true, connectRetryable: true}
	want.notSent = errors.Is(err, driver.ErrBadConn)
	check("KILL during query", err, want, lostKind)

	// Read-only: 1290 under SET GLOBAL read_only=1 for a user without SUPER.
	if err := m.Exec("CREATE USER 'ro'@'%' IDENTIFIED BY 'ro'; GRANT ALL ON test.* TO 'ro'@'%'; CREATE TABLE test.t (a int)"); err != nil {
		t.Fatal(err)
	}
	roDSN := strings.Replace(dsn, "root@", "ro:ro@", 1)
	c = foRaw(t, drv, roDSN)
	if err := m.Exec("SET GLOBAL read_only=1"); err != nil {
		t.Fatal(err)
	}
	err = foRawExec(ctx, c, "insert into t values (1)")
	check("read_only=1 (1290)", err, foClass{wrongRole: true, connectRetryable: true}, func(err error) bool { return myNum(err) == 1290 })
	if err := m.Exec("SET GLOBAL read_only=0"); err != nil {
		t.Fatal(err)
	}
	// 1792: a write in a read-only transaction.
	if err := foRawExec(ctx, c, "start transaction read only"); err != nil {
		t.Fatal(err)
	}
	err = foRawExec(ctx, c, "insert into t values (1)")
	check("read-only tx (1792)", err, foClass{wrongRole: true, connectRetryable: true}, func(err error) bool { return myNum(err) == 1792 })
	_ = foRawExec(ctx, c, "rollback")

	// Context cancellation is never a dead connection.
	c = foRaw(t, drv, dsn)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = foRawExec(cctx, c, "select sleep(5)")
	cancel()
	check("context deadline", err, foClass{connectRetryable: true}, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) })

	// Server stop: an idle connection and one running a query.
	idle := foRaw(t, drv, dsn)
	if _, err := foRawInt(ctx, idle, "select 1"); err != nil {
		t.Fatal(err)
	}
	busy := foRaw(t, drv, dsn)
	busyErr := make(chan error, 1)
	go func() { busyErr <- foRawExec(ctx, busy, "select sleep(10)") }()
	time.Sleep(200 * time.Millisecond)
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	err = <-busyErr
	want = foClass{dead: true, connectRetryable: true}
	want.notSent = errors.Is(err, driver.ErrBadConn)
	check("server stop, busy", err, want, lostKind)
	err = foRawExec(ctx, idle, "select 1")
	want = foClass{dead: true, connectRetryable: true}
	want.notSent = errors.Is(err, driver.ErrBadConn)
	check("server stop, idle", err, want, lostKind)

	// Refused connect.
	_, err = drv.Open(dsn)
	check("refused connect", err, foClass{dead: true, connectRetryable: true}, func(err error) bool {
		var ne *net.OpError
		return errors.As(err, &ne)
	})
}

// ---------------------------------------------------------------------------------------------
// 2. On a lost connection: terminate, HostDown + SessionsPurged, purge idle now, busy on release

// foTerminate terminates a PostgreSQL backend and waits until it is gone.
func foTerminate(t testing.TB, p *pgServer, pid int64) {
	t.Helper()
	if err := p.Exec(fmt.Sprintf("select pg_terminate_backend(%d)", pid)); err != nil {
		t.Fatal(err)
	}
	foPGBackendGone(t, p, pid)
}

// foPGAlive reports which of pids are connected now.
func foPGAlive(t testing.TB, p *pgServer, pids ...int64) map[int64]bool {
	t.Helper()
	out, err := p.Query("select pid from pg_stat_activity where backend_type = 'client backend'")
	if err != nil {
		t.Fatal(err)
	}
	live := map[int64]bool{}
	for _, l := range strings.Fields(out) {
		n, _ := strconv.ParseInt(l, 10, 64)
		live[n] = true
	}
	got := map[int64]bool{}
	for _, pid := range pids {
		if live[pid] {
			got[pid] = true
		}
	}
	return got
}

func TestLostConnectionEventsAndPurge(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	ev := &foEvents{}
	db, hc := foOpen(t, "pgx", dsn, hasql.WithEvents(ev.add))
	ctx := context.Background()

	// Four sessions: c1 (will die), c2 (busy), c3 and c4 (idle in hasql's pool).
	conns := make([]*sql.Conn, 4)
	pids := make([]int64, 4)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		if pids[i], err = foPID(ctx, c, "pgx"); err != nil {
			t.Fatal(err)
		}
	}
	conns[2].Close()
	conns[3].Close()
	if st := hc.Stats(); st.Idle != 2 || st.Open != 4 {
		t.Fatalf("before: %+v, want 2 idle of 4", st)
	}
	terminated := hc.Stats().Terminated

	foTerminate(t, p, pids[0])
	_, err := conns[0].ExecContext(ctx, "select 1")
	if !foWraps(err, hasql.ErrConnectionLost) || foPGState(err) != "57P01" {
		t.Fatalf("exec on a terminated backend: %v, want ErrConnectionLost wrapping FATAL 57P01", err)
	}
	// HostDown then SessionsPurged, for this host, with the cause.
	foWaitFor(t, 2*time.Second, "HostDown and SessionsPurged", func() bool { return ev.has(hasql.SessionsPurged) })
	evs := ev.list()
	if len(evs) != 2 || evs[0].Kind != hasql.HostDown || evs[1].Kind != hasql.SessionsPurged {
		t.Fatalf("events %s, want HostDown,SessionsPurged", ev.kinds())
	}
	host := "127.0.0.1:" + strconv.Itoa(p.Port)
	for _, e := range evs {
		if e.Host != host || foPGState(e.Err) != "57P01" || e.Time.IsZero() {
			t.Fatalf("event %+v: want host %s, the 57P01 cause and a time", e, host)
		}
	}
	if evs[1].Sessions != 3 {
		t.Fatalf("SessionsPurged.Sessions = %d, want 3 (two idle closed, one busy marked)", evs[1].Sessions)
	}
	// The idle sessions are closed at once; the busy one is not.
	foWaitFor(t, 5*time.Second, "idle sessions closed", func() bool {
		a := foPGAlive(t, p, pids[2], pids[3])
		return len(a) == 0
	})
	if a := foPGAlive(t, p, pids[1]); !a[pids[1]] {
		t.Fatal("the busy session was closed under its user")
	}
	st := hc.Stats()
	if st.Idle != 0 || st.Terminated < terminated+3 {
		t.Fatalf("after the loss: %+v, want no idle sessions and the dead and purged ones terminated", st)
	}
	// The busy session works until it is released, then closes.
	if pid, err := foPID(ctx, conns[1], "pgx"); err != nil || pid != pids[1] {
		t.Fatalf("busy session after the purge: pid %d, %v; want %d still working", pid, err, pids[1])
	}
	conns[1].Close()
	foWaitFor(t, 5*time.Second, "busy session closed on release", func() bool { return len(foPGAlive(t, p, pids[1])) == 0 })

	// The *sql.Conn whose connection died stays usable, on a new session.
	pid, err := foPID(ctx, conns[0], "pgx")
	if err != nil || pid == pids[0] {
		t.Fatalf("next call on the same *sql.Conn: pid %d, %v; want a new session", pid, err)
	}
	conns[0].Close()
	// The host came back: HostUp follows.
	foWaitFor(t, 2*time.Second, "HostUp after the reconnect", func() bool { return ev.has(hasql.HostUp) })
	if got := ev.kinds(); got != "HostDown,SessionsPurged,HostUp" {
		t.Fatalf("events %s, want HostDown,SessionsPurged,HostUp", got)
	}
	hs := hc.Stats().Hosts
	if len(hs) != 1 || hs[0].Addr != host || hs[0].State != hasql.HostStateUp || hs[0].Failures < 1 || hs[0].LastError == nil {
		t.Fatalf("Stats.Hosts = %+v, want %s up with the failure counted", hs, host)
	}
}

// ---------------------------------------------------------------------------------------------
// 3. Retry rules

func TestRetryRulesPostgres(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("create table t (id text primary key)"); err != nil {
		t.Fatal(err)
	}
	count := func(id string) int {
		var n int
		if err := admin.QueryRow("select count(*) from t where id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// lose opens a *sql.Conn, terminates its backend and returns it with the
	// old pid.
	lose := func(t *testing.T, db *sql.DB) (*sql.Conn, int64) {
		t.Helper()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := foPID(ctx, c, "pgx")
		if err != nil {
			t.Fatal(err)
		}
		foTerminate(t, p, pid)
		return c, pid
	}
	usable := func(t *testing.T, c *sql.Conn, old int64) {
		t.Helper()
		pid, err := foPID(ctx, c, "pgx")
		if err != nil || pid == old {
			t.Fatalf("next call on the same *sql.Conn: pid %d (old %d), %v; want a new session", pid, old, err)
		}
	}

	cases := []struct {
		retry      string
		idempotent bool
		wantRetry  bool
	}{
		{"safe", false, false},
		{"safe", true, false}, // safe re-runs only work that never ran
		{"idempotent", false, false},
		{"idempotent", true, true},
		{"off", true, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("retry=%s/idempotent=%v", tc.retry, tc.idempotent), func(t *testing.T) {
			db, hc := foOpen(t, "pgx", dsn+"&hasql.retry="+tc.retry)
			c, old := lose(t, db)
			defer c.Close()
			cctx := ctx
			if tc.idempotent {
				cctx = hasql.Idempotent(ctx)
			}
			retries := hc.Stats().Retries
			id := "r-" + tc.retry + strconv.FormatBool(tc.idempotent)
			_, err := c.ExecContext(cctx, "insert into t values ($1)", id)
			if tc.wantRetry {
				if err != nil {
					t.Fatalf("idempotent work after a loss: %v, want it re-run", err)
				}
				if hc.Stats().Retries != retries+1 {
					t.Fatalf("Retries %d → %d, want +1", retries, hc.Stats().Retries)
				}
				if n := count(id); n != 1 {
					t.Fatalf("row written %d times", n)
				}
			} else {
				if !foWraps(err, hasql.ErrConnectionLost) || foPGState(err) != "57P01" {
					t.Fatalf("got %v, want ErrConnectionLost wrapping 57P01", err)
				}
				if hc.Stats().Retries != retries {
					t.Fatal("work was re-run")
				}
				if n := count(id); n != 0 {
					t.Fatalf("row written %d times", n)
				}
			}
			usable(t, c, old)
		})
	}

	t.Run("transaction", func(t *testing.T) {
		db, hc := foOpen(t, "pgx", dsn+"&hasql.retry=idempotent")
		ictx := hasql.Idempotent(ctx)
		// Inside a transaction: never re-run, even idempotent work.
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tx, err := c.BeginTx(ictx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ictx, "insert into t values ('tx1')"); err != nil {
			t.Fatal(err)
		}
		var pid int64
		if err := tx.QueryRowContext(ictx, "select pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		foTerminate(t, p, pid)
		retries := hc.Stats().Retries
		_, err = tx.ExecContext(ictx, "insert into t values ('tx2')")
		if !foWraps(err, hasql.ErrTxNotCommitted) || foPGState(err) != "57P01" {
			t.Fatalf("exec in tx after a loss: %v, want ErrTxNotCommitted wrapping 57P01", err)
		}
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			t.Fatalf("rollback after the loss: %v", rerr)
		}
		if hc.Stats().Retries != retries || count("tx1")+count("tx2") != 0 {
			t.Fatal("transaction work was re-run or committed")
		}
		usable(t, c, pid)

		// At commit.
		tx, err = c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "insert into t values ('tx3')"); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		foTerminate(t, p, pid)
		err = tx.Commit()
		if !foWraps(err, hasql.ErrTxResolutionUnknown) || foCause(err) == nil {
			t.Fatalf("commit after a loss: %v, want ErrTxResolutionUnknown wrapping the driver's error", err)
		}
		t.Logf("commit after loss: %v", err)
		if count("tx3") != 0 {
			t.Fatal("a transaction whose connection died committed")
		}
		usable(t, c, pid)
		// Through *sql.DB, the pool goes on.
		if _, err := db.ExecContext(ctx, "insert into t values ('after')"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("never sent", func(t *testing.T) {
		// A connection reset before the work is written: pgx knows nothing
		// was sent, so even retry=safe runs it again, without the caller
		// seeing anything.
		fp := newFaultProxy(t, "127.0.0.1:"+strconv.Itoa(p.Port))
		pdsn := strings.Replace(dsn, "127.0.0.1:"+strconv.Itoa(p.Port), fp.Addr(), 1)
		db, hc := foOpen(t, "pgx", pdsn)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		old, err := foPID(ctx, c, "pgx")
		if err != nil {
			t.Fatal(err)
		}
		fp.ResetAll()
		time.Sleep(50 * time.Millisecond)
		retries := hc.Stats().Retries
		if _, err := c.ExecContext(ctx, "insert into t values ('ns1')"); err != nil {
			t.Fatalf("work never sent: %v, want it run on a new session", err)
		}
		if hc.Stats().Retries != retries+1 || count("ns1") != 1 {
			t.Fatalf("retries %d → %d, rows %d; want one re-run and one row", retries, hc.Stats().Retries, count("ns1"))
		}
		usable(t, c, old)
		c.Close()
		db.Close()
		fp.Close()
	})

	t.Run("prepared statement", func(t *testing.T) {
		db, _ := foOpen(t, "pgx", dsn+"&hasql.retry=idempotent")
		c, old := lose(t, db)
		defer c.Close()
		st, err := c.PrepareContext(ctx, "select count(*) from t where id = $1")
		if err == nil {
			// database/sql prepared on the dead session? Then running it
			// re-prepares on the new one.
			var n int
			err = st.QueryRowContext(hasql.Idempotent(ctx), "x").Scan(&n)
			st.Close()
		}
		if err != nil {
			t.Fatalf("prepare/run after a loss: %v (preparing changes nothing: it is always retried)", err)
		}
		usable(t, c, old)
	})
}

func TestRetryRulesMariaDB(t *testing.T) {
	m := sharedMaria(t)
	dsn := m.FreshDB(t)
	ctx := context.Background()
	if err := m.ExecIn(dsn[strings.LastIndexByte(dsn, '/')+1:], "create table t (id varchar(40) primary key)"); err != nil {
		t.Fatal(err)
	}
	db, hc := foOpen(t, "mysql", dsn+"?hasql.retry=idempotent")
	kill := func(c *sql.Conn) int64 {
		id, err := foPID(ctx, c, "mysql")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return id
	}
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := kill(c)
	_, err = c.ExecContext(ctx, "insert into t values ('m1')")
	if !foWraps(err, hasql.ErrConnectionLost) || !(errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn)) {
		t.Fatalf("insert after KILL: %v, want ErrConnectionLost wrapping the driver's lost-connection error", err)
	}
	if id, err := foPID(ctx, c, "mysql"); err != nil || id == old {
		t.Fatalf("next call on the *sql.Conn: id %d, %v", id, err)
	}
	old = kill(c)
	retries := hc.Stats().Retries
	var one int
	if err := c.QueryRowContext(hasql.Idempotent(ctx), "select 1").Scan(&one); err != nil {
		t.Fatalf("idempotent read after KILL: %v", err)
	}
	if hc.Stats().Retries != retries+1 {
		t.Fatal("the read was not re-run")
	}
	// Pooled sessions killed while idle are replaced unseen (the driver's
	// liveness check at checkout says nothing was sent).
	c.Close()
	c2, _ := db.Conn(ctx)
	kill(c2)
	c2.Close()
	if _, err := db.ExecContext(ctx, "insert into t values ('m2')"); err != nil {
		t.Fatalf("insert on a pooled session killed while idle: %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// 4. The outage gate

// foCallers runs n concurrent calls and returns their errors and durations.
func foCallers(n int, call func(i int) error) ([]error, []time.Duration) {
	errs := make([]error, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			errs[i] = call(i)
			took[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	return errs, took
}

// foWarm makes db hold n physical sessions (opened and released) and
// returns their pids.
func foWarm(t testing.TB, db *sql.DB, driverName string, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	var conns []*sql.Conn
	var pids []int64
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := foPID(ctx, c, driverName)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		pids = append(pids, pid)
	}
	for _, c := range conns {
		c.Close()
	}
	return pids
}

func TestOutageGate(t *testing.T) {
	const n = 20
	p := startPostgres(t)
	fp := newFaultProxy(t, "127.0.0.1:"+strconv.Itoa(p.Port)).PGAware()
	base := fmt.Sprintf("postgres://postgres@%s/test?sslmode=disable&hasql.retry=idempotent", fp.Addr())
	ctx := context.Background()
	ictx := hasql.Idempotent(ctx)
	selectOne := func(db *sql.DB, ctx context.Context) error {
		var one int
		return db.QueryRowContext(ctx, "select 1").Scan(&one)
	}

	t.Run("callers fail after outage_wait", func(t *testing.T) {
		ev := &foEvents{}
		db, _ := foOpen(t, "pgx", base+"&hasql.outage_wait=1s&hasql.reconnect=200ms", hasql.WithEvents(ev.add))
		foWarm(t, db, "pgx", 4)
		if err := p.Stop("fast"); err != nil {
			t.Fatal(err)
		}
		before := fp.Accepted()
		var mid atomic.Int64
		time.AfterFunc(400*time.Millisecond, func() { mid.Store(fp.Accepted()) })
		start := time.Now()
		errs, took := foCallers(n, func(int) error { return selectOne(db, ictx) })
		whole := time.Since(start)
		after := fp.Accepted()
		for i, err := range errs {
			if !foWraps(err, hasql.ErrNoHosts) {
				t.Fatalf("caller %d: %v, want ErrNoHosts wrapping the connect error", i, err)
			}
			// Bounds that tell outage_wait (1s) from the 30s default; timings
			// themselves are not asserted.
			if took[i] < 900*time.Millisecond || took[i] > 10*time.Second {
				t.Fatalf("caller %d failed after %v, want about outage_wait (1s)", i, took[i])
			}
		}
		attempts := after - before
		steady := after - mid.Load()
		window := whole - 400*time.Millisecond
		t.Logf("%d callers, outage %v: %d connect attempts in all, %d in the last %v (back-off 200ms)", n, whole.Round(time.Millisecond), attempts, steady, window.Round(time.Millisecond))
		// One prober: one attempt per 200ms interval (jitter-free list), not one
		// per caller. The callers that noticed the loss together may each
		// have tried once before the gate closed.
		if maxSteady := int64(window/(150*time.Millisecond)) + 2; steady > maxSteady {
			t.Fatalf("%d connect attempts in %v with %d waiting callers: want at most %d (one per interval)", steady, window, n, maxSteady)
		}
		if maxAll := int64(n) + int64(whole/(150*time.Millisecond)) + 2; attempts > maxAll {
			t.Fatalf("%d connect attempts in all, want at most %d", attempts, maxAll)
		}
		if !ev.has(hasql.OutageBegin) {
			t.Fatalf("events %s: no OutageBegin", ev.kinds())
		}
		// The context ends a wait early.
		cctx, cancel := context.WithTimeout(ictx, 200*time.Millisecond)
		start = time.Now()
		err := selectOne(db, cctx)
		cancel()
		if !foWraps(err, hasql.ErrNoHosts) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 800*time.Millisecond {
			t.Fatalf("caller with a 200ms context: %v after %v, want ErrNoHosts with the deadline, soon", err, time.Since(start))
		}
		db.Close()
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("restart within outage_wait", func(t *testing.T) {
		ev := &foEvents{}
		db, hc := foOpen(t, "pgx", base+"&hasql.outage_wait=15s&hasql.reconnect=200ms", hasql.WithEvents(ev.add))
		old := foWarm(t, db, "pgx", 4)
		if err := p.Stop("fast"); err != nil {
			t.Fatal(err)
		}
		before := fp.Accepted()
		restarted := make(chan error, 1)
		time.AfterFunc(500*time.Millisecond, func() { restarted <- p.Start() })
		start := time.Now()
		pids := make([]int64, n)
		errs, _ := foCallers(n, func(i int) error {
			var err error
			pids[i], err = foPID(ictx, db, "pgx")
			return err
		})
		whole := time.Since(start)
		if err := <-restarted; err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("caller %d: %v, want success (the server came back within outage_wait)", i, err)
			}
			for _, o := range old {
				if pids[i] == o {
					t.Fatalf("caller %d ran on session %d from before the outage", i, o)
				}
			}
		}
		attempts := fp.Accepted() - before - int64(hc.Stats().Created) + 4 // less the sessions opened after
		t.Logf("%d callers waited %v; %d failed connect attempts", n, whole.Round(time.Millisecond), attempts)
		if maxAll := int64(n) + int64(whole/(150*time.Millisecond)) + 2; attempts > maxAll {
			t.Fatalf("%d failed connect attempts, want at most %d", attempts, maxAll)
		}
		foWaitFor(t, 2*time.Second, "OutageEnd", func() bool { return ev.has(hasql.OutageEnd) })
		var order []string
		for _, e := range ev.list() {
			if e.Kind == hasql.OutageBegin || e.Kind == hasql.OutageEnd {
				order = append(order, e.Kind.String())
				if e.Kind == hasql.OutageEnd && e.Host != fp.Addr() {
					t.Fatalf("OutageEnd names host %q, want %s", e.Host, fp.Addr())
				}
			}
		}
		if strings.Join(order, ",") != "OutageBegin,OutageEnd" {
			t.Fatalf("outage events %v (all: %s), want OutageBegin,OutageEnd", order, ev.kinds())
		}
	})

	t.Run("sessions from before are not reused", func(t *testing.T) {
		// The server stays up; only new connections are refused for a
		// while. A session that was busy through the outage still works
		// for its holder but is closed when released.
		ev := &foEvents{}
		db, _ := foOpen(t, "pgx", base+"&hasql.outage_wait=10s&hasql.reconnect=50ms", hasql.WithEvents(ev.add))
		old := foWarm(t, db, "pgx", 3)
		busy, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		busyPID, err := foPID(ctx, busy, "pgx")
		if err != nil {
			t.Fatal(err)
		}
		fp.SetMode(fpRefuse)
		for _, pid := range old {
			if pid != busyPID {
				foTerminate(t, p, pid)
			}
		}
		time.AfterFunc(300*time.Millisecond, func() { fp.SetMode(fpPass) })
		pid, err := foPID(ictx, db, "pgx")
		if err != nil {
			t.Fatalf("call across the outage: %v", err)
		}
		if !ev.has(hasql.OutageBegin) {
			t.Fatalf("events %s: no outage", ev.kinds())
		}
		for _, o := range old {
			if pid == o {
				t.Fatalf("ran on old session %d", o)
			}
		}
		if got, err := foPID(ctx, busy, "pgx"); err != nil || got != busyPID {
			t.Fatalf("the busy session: %d, %v; want it still working for its holder", got, err)
		}
		busy.Close()
		foWaitFor(t, 5*time.Second, "the busy session closed on release", func() bool { return len(foPGAlive(t, p, old...)) == 0 })
		for i := 0; i < 5; i++ {
			pid, err := foPID(ctx, db, "pgx")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range old {
				if pid == o {
					t.Fatalf("ran on old session %d after the outage", o)
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 5. connect_timeout bounds one attempt

func TestConnectTimeoutBlackhole(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	pgAddr := "127.0.0.1:" + strconv.Itoa(p.Port)
	fp := newFaultProxy(t, pgAddr).PGAware()
	pdsn := strings.Replace(dsn, pgAddr, fp.Addr(), 1)
	ctx := context.Background()

	t.Run("first connect", func(t *testing.T) {
		fp.SetMode(fpBlackhole)
		defer fp.SetMode(fpPass)
		db, _ := foOpen(t, "pgx", pdsn+"&hasql.connect_timeout=300ms")
		start := time.Now()
		err := db.PingContext(ctx)
		took := time.Since(start)
		// The upper bound only tells connect_timeout from the 5s default.
		if err == nil || took < 250*time.Millisecond || took > 4*time.Second {
			t.Fatalf("ping through a black hole: %v after %v, want an error after about 300ms", err, took)
		}
		t.Logf("black-holed first connect: %v after %v", err, took.Round(time.Millisecond))
	})

	t.Run("outage", func(t *testing.T) {
		ev := &foEvents{}
		db, _ := foOpen(t, "pgx", pdsn+"&hasql.connect_timeout=300ms&hasql.outage_wait=1s&hasql.reconnect=100ms&hasql.retry=idempotent", hasql.WithEvents(ev.add))
		foWarm(t, db, "pgx", 2)
		fp.SetMode(fpBlackhole)
		defer fp.SetMode(fpPass)
		fp.ResetAll()
		before := fp.Accepted()
		start := time.Now()
		errs, took := foCallers(5, func(int) error {
			var one int
			return db.QueryRowContext(hasql.Idempotent(ctx), "select 1").Scan(&one)
		})
		whole := time.Since(start)
		for i, err := range errs {
			if !foWraps(err, hasql.ErrNoHosts) || took[i] > 10*time.Second { // not the 30s default
				t.Fatalf("caller %d: %v after %v, want ErrNoHosts after about 1s", i, err, took[i])
			}
		}
		attempts := fp.Accepted() - before
		t.Logf("black hole: %d attempts in %v (each bounded by 300ms, then 100ms back-off)", attempts, whole.Round(time.Millisecond))
		if max := int64(5) + int64(whole/(350*time.Millisecond)) + 2; attempts > max {
			t.Fatalf("%d attempts, want at most %d", attempts, max)
		}
	})

	t.Run("next host after a black-holed one", func(t *testing.T) {
		fp.SetMode(fpBlackhole)
		defer fp.SetMode(fpPass)
		db, hc := foOpen(t, "pgx", dsn+"&hasql.connect_timeout=300ms&hasql.pick=ordered&hasql.hosts="+fp.Addr()+","+pgAddr)
		start := time.Now()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("with the first host black-holed: %v after %v, want the second host", err, time.Since(start))
		}
		defer c.Close()
		s, _ := hasql.SessionOf(c)
		if s.Host() != pgAddr || time.Since(start) > 4*time.Second { // not the 5s default
			t.Fatalf("session on %s after %v, want %s after about 300ms", s.Host(), time.Since(start), pgAddr)
		}
		hs := hc.Stats().Hosts
		if hs[0].State == hasql.HostStateUp || hs[0].Failures == 0 {
			t.Fatalf("the black-holed host: %+v, want it counted as failed", hs[0])
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 6. Session.Reconnect

// foTZCallback is a session callback that sets the time zone named by a tag
// "tz=<zone>" and counts its runs.
func foTZCallback(runs *atomic.Int64) hasql.SessionCallback {
	return func(ctx context.Context, s *hasql.Session, tag string) error {
		runs.Add(1)
		zone, ok := strings.CutPrefix(tag, "tz=")
		if !ok {
			return nil
		}
		if err := s.Exec(ctx, "select set_config('TimeZone', $1, false)", zone); err != nil {
			return err
		}
		return s.SetTag(tag)
	}
}

func foSetting(t testing.TB, ctx context.Context, c *sql.Conn, name string) string {
	t.Helper()
	var v string
	if err := c.QueryRowContext(ctx, "select current_setting($1)", name).Scan(&v); err != nil {
		t.Fatalf("current_setting(%s): %v", name, err)
	}
	return v
}

func TestReconnect(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	pgAddr := "127.0.0.1:" + strconv.Itoa(p.Port)
	ctx := context.Background()
	var runs atomic.Int64
	fp := newFaultProxy(t, pgAddr)
	pdsn := strings.Replace(dsn, pgAddr, fp.Addr(), 1)
	db, hc := foOpen(t, "pgx", pdsn+"&hasql.reconnect=300ms", hasql.WithSessionCallback(foTZCallback(&runs)))

	c, err := hasql.Acquire(hasql.WithTag(ctx, "tz=Asia/Tokyo"), db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := hasql.SessionOf(c)
	if err != nil {
		t.Fatal(err)
	}
	if tz := foSetting(t, ctx, c, "TimeZone"); tz != "Asia/Tokyo" || s.Tag() != "tz=Asia/Tokyo" {
		t.Fatalf("before: TimeZone %s, tag %q", tz, s.Tag())
	}
	old, err := foPID(ctx, c, "pgx")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.PrepareContext(ctx, "select current_setting('TimeZone') || $1::text")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reconnects, cbRuns := hc.Stats().Reconnects, runs.Load()

	// A live connection is broken and replaced.
	if err := s.Reconnect(ctx); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	pid, err := foPID(ctx, c, "pgx")
	if err != nil || pid == old {
		t.Fatalf("after Reconnect: pid %d (old %d), %v; want a new backend", pid, old, err)
	}
	foWaitFor(t, 5*time.Second, "the old backend to go", func() bool { return len(foPGAlive(t, p, old)) == 0 })
	if s2, _ := hasql.SessionOf(c); s2 != s {
		t.Fatal("SessionOf returns another *Session after Reconnect")
	}
	// The session callback ran for the session's tag: its state is back.
	if tz := foSetting(t, ctx, c, "TimeZone"); tz != "Asia/Tokyo" || s.Tag() != "tz=Asia/Tokyo" || runs.Load() != cbRuns+1 {
		t.Fatalf("after Reconnect: TimeZone %s, tag %q, callback runs %d→%d; want the tagged state back", tz, s.Tag(), cbRuns, runs.Load())
	}
	// A statement prepared before still works (prepared again lazily).
	var got string
	if err := st.QueryRowContext(ctx, "!").Scan(&got); err != nil || got != "Asia/Tokyo!" {
		t.Fatalf("statement prepared before Reconnect: %q, %v", got, err)
	}
	if hc.Stats().Reconnects != reconnects+1 {
		t.Fatalf("Stats.Reconnects %d → %d, want +1", reconnects, hc.Stats().Reconnects)
	}

	// A failed attempt: another one before the back-off interval is
	// ErrRetryTooSoon; after it, Reconnect tries again.
	fp.SetMode(fpRefuse)
	fp.ResetAll()
	start := time.Now()
	err = s.Reconnect(ctx)
	if err == nil || errors.Is(err, hasql.ErrRetryTooSoon) || time.Since(start) > 10*time.Second { // not the 30s outage wait
		t.Fatalf("Reconnect to a refusing server: %v after %v, want its connect error at once", err, time.Since(start))
	}
	if err := s.Reconnect(ctx); !errors.Is(err, hasql.ErrRetryTooSoon) {
		t.Fatalf("second Reconnect at once: %v, want ErrRetryTooSoon", err)
	}
	time.Sleep(350 * time.Millisecond)
	if err := s.Reconnect(ctx); err == nil || errors.Is(err, hasql.ErrRetryTooSoon) {
		t.Fatalf("Reconnect after the interval, still refused: %v, want a connect error", err)
	}
	fp.SetMode(fpPass)
	if err := s.Reconnect(ctx); !errors.Is(err, hasql.ErrRetryTooSoon) {
		t.Fatalf("Reconnect before the (second) interval: %v, want ErrRetryTooSoon", err)
	}
	time.Sleep(350 * time.Millisecond)
	if err := s.Reconnect(ctx); err != nil {
		t.Fatalf("Reconnect once the server answers: %v", err)
	}
	if tz := foSetting(t, ctx, c, "TimeZone"); tz != "Asia/Tokyo" || s.Tag() != "tz=Asia/Tokyo" {
		t.Fatalf("after the failed and the good Reconnect: TimeZone %s, tag %q", tz, s.Tag())
	}
	if err := st.QueryRowContext(ctx, "?").Scan(&got); err != nil || got != "Asia/Tokyo?" {
		t.Fatalf("statement after the reconnects: %q, %v", got, err)
	}
	// Not inside a transaction.
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reconnect(ctx); err == nil {
		t.Fatal("Reconnect inside a transaction succeeded")
	}
	tx.Rollback()
}

// A session checked out for a user keeps that user across a reconnect, a
// failover, and a lost connection noticed by the next call.
func TestReconnectKeepsUserAndClass(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	if err := p.Exec("do $$ begin if not exists (select from pg_roles where rolname = 'fo_alice') then create role fo_alice login; end if; end $$"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, _ := foOpen(t, "pgx", dsn+"&hasql.retry=idempotent")
	c, err := hasql.Acquire(hasql.WithClass(hasql.WithUser(ctx, "fo_alice", ""), "reports"), db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := hasql.SessionOf(c)
	user := func() string { return foSetting(t, ctx, c, "session_authorization") }
	if u := user(); u != "fo_alice" {
		t.Fatalf("user %s", u)
	}
	if err := s.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if u := user(); u != "fo_alice" {
		t.Fatalf("after Reconnect: user %s, want fo_alice", u)
	}
	// Lost, re-run (idempotent): still fo_alice.
	pid, _ := foPID(ctx, c, "pgx")
	foTerminate(t, p, pid)
	var u string
	if err := c.QueryRowContext(hasql.Idempotent(ctx), "select current_user").Scan(&u); err != nil || u != "fo_alice" {
		t.Fatalf("re-run after a loss: user %s, %v; want fo_alice", u, err)
	}
	// Lost, not re-run: the next call binds a new session, for fo_alice.
	pid, _ = foPID(ctx, c, "pgx")
	foTerminate(t, p, pid)
	if _, err := c.ExecContext(ctx, "select 1"); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("exec after a loss: %v", err)
	}
	if u := user(); u != "fo_alice" {
		t.Fatalf("next call after a loss: user %s, want fo_alice (a *sql.Conn never changes user)", u)
	}
}

// ---------------------------------------------------------------------------------------------
// 7. Attach: recovery functions

func TestAttachRecovery(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	ctx := context.Background()
	ictx := hasql.Idempotent(ctx)
	var defaultRuns atomic.Int64
	var causes []error
	var mu sync.Mutex
	def := func(ctx context.Context, s *hasql.Session, cause error) error {
		defaultRuns.Add(1)
		mu.Lock()
		causes = append(causes, cause)
		mu.Unlock()
		if err := s.Reconnect(ctx); err != nil {
			return err
		}
		return s.Exec(ctx, "set application_name = 'rebuilt'")
	}
	db, hc := foOpen(t, "pgx", dsn+"&hasql.retry=idempotent", hasql.WithRecovery(def))
	lose := func(c *sql.Conn) {
		t.Helper()
		pid, err := foPID(ctx, c, "pgx")
		if err != nil {
			t.Fatal(err)
		}
		foTerminate(t, p, pid)
	}

	t.Run("flags", func(t *testing.T) {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, _ := hasql.SessionOf(c)
		r := func(context.Context, *hasql.Session, error) error { return nil }
		if err := s.Attach(r, hasql.ReplaceRecovery); !errors.Is(err, hasql.ErrNotAttached) {
			t.Fatalf("replace with none attached: %v, want ErrNotAttached", err)
		}
		if err := s.Attach(r, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Attach(r, 0); !errors.Is(err, hasql.ErrAlreadyAttached) {
			t.Fatalf("second Attach: %v, want ErrAlreadyAttached", err)
		}
		if err := s.Attach(r, hasql.ReplaceRecovery); err != nil {
			t.Fatalf("replace: %v", err)
		}
		if err := s.Attach(nil, hasql.ReplaceRecovery); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if err := s.Attach(r, 0); err != nil {
			t.Fatalf("attach after detach: %v", err)
		}
	})

	t.Run("default recovery rebuilds state, work re-run", func(t *testing.T) {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lose(c)
		before, retries := defaultRuns.Load(), hc.Stats().Retries
		var app string
		if err := c.QueryRowContext(ictx, "select current_setting('application_name')").Scan(&app); err != nil {
			t.Fatalf("idempotent read after a loss with a recovery function: %v", err)
		}
		if app != "rebuilt" || defaultRuns.Load() != before+1 || hc.Stats().Retries != retries+1 {
			t.Fatalf("application_name %q, recovery runs +%d, retries +%d; want the work re-run after the recovery rebuilt the state",
				app, defaultRuns.Load()-before, hc.Stats().Retries-retries)
		}
		mu.Lock()
		cause := causes[len(causes)-1]
		mu.Unlock()
		if foPGState(cause) != "57P01" {
			t.Fatalf("the recovery function got cause %v, want the driver's 57P01", cause)
		}
	})

	t.Run("recovered but not re-runnable", func(t *testing.T) {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lose(c)
		_, err = c.ExecContext(ctx, "select 1")
		if !foWraps(err, hasql.ErrConnectionLost) {
			t.Fatalf("non-idempotent work: %v, want ErrConnectionLost", err)
		}
		// The handle was rebuilt by the recovery function.
		if app := foSetting(t, ctx, c, "application_name"); app != "rebuilt" {
			t.Fatalf("application_name %q, want the recovery's state", app)
		}
	})

	t.Run("attached recovery wins and its error is the outcome", func(t *testing.T) {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, _ := hasql.SessionOf(c)
		mine := errors.New("recovery says no")
		var got error
		if err := s.Attach(func(ctx context.Context, s *hasql.Session, cause error) error { got = cause; return mine }, 0); err != nil {
			t.Fatal(err)
		}
		before := defaultRuns.Load()
		lose(c)
		var one int
		err = c.QueryRowContext(ictx, "select 1").Scan(&one)
		if !errors.Is(err, mine) || foPGState(got) != "57P01" || defaultRuns.Load() != before {
			t.Fatalf("got %v (cause seen %v, default runs +%d), want the attached function's error", err, got, defaultRuns.Load()-before)
		}
		// The handle is still usable.
		if err := c.QueryRowContext(ctx, "select 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("panicking recovery", func(t *testing.T) {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, _ := hasql.SessionOf(c)
		s.Attach(func(context.Context, *hasql.Session, error) error { panic("boom") }, 0)
		lose(c)
		var one int
		if err := c.QueryRowContext(ictx, "select 1").Scan(&one); !errors.Is(err, hasql.ErrCallbackPanic) {
			t.Fatalf("got %v, want ErrCallbackPanic", err)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 8. The TAF callback

func TestFailoverCallback(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	pgAddr := "127.0.0.1:" + strconv.Itoa(p.Port)
	ctx := context.Background()
	ictx := hasql.Idempotent(ctx)
	fp := newFaultProxy(t, pgAddr)
	pdsn := strings.Replace(dsn, pgAddr, fp.Addr(), 1)

	var mu sync.Mutex
	var seen []string
	var onError func(n int) error
	errorsSeen := 0
	cb := func(ctx context.Context, s *hasql.Session, ev hasql.FailoverEvent) error {
		mu.Lock()
		seen = append(seen, ev.String())
		var r error
		if ev == hasql.FoError {
			errorsSeen++
			if onError != nil {
				r = onError(errorsSeen)
			}
		}
		mu.Unlock()
		if ev == hasql.FoReauth && s.Tag() == "" {
			return errors.New("FoReauth on an untagged session")
		}
		return r
	}
	reset := func(f func(n int) error) {
		mu.Lock()
		seen, errorsSeen, onError = nil, 0, f
		mu.Unlock()
	}
	events := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, ",")
	}
	var runs atomic.Int64
	db, hc := foOpen(t, "pgx", pdsn+"&hasql.retry=idempotent&hasql.outage_wait=200ms&hasql.reconnect=50ms",
		hasql.WithFailoverCallback(cb), hasql.WithSessionCallback(foTZCallback(&runs)))
	lose := func(c *sql.Conn) {
		t.Helper()
		pid, err := foPID(ctx, c, "pgx")
		if err != nil {
			t.Fatal(err)
		}
		foTerminate(t, p, pid)
	}
	var one int

	t.Run("begin end", func(t *testing.T) {
		c, _ := db.Conn(ctx)
		defer c.Close()
		lose(c)
		reset(nil)
		failovers := hc.Stats().Failovers
		if err := c.QueryRowContext(ictx, "select 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
		if got := events(); got != "FoBegin,FoEnd" {
			t.Fatalf("events %s, want FoBegin,FoEnd", got)
		}
		if hc.Stats().Failovers != failovers {
			t.Fatal("a reconnect to the same host counted as a failover")
		}
	})

	t.Run("tagged: reauth", func(t *testing.T) {
		c, err := hasql.Acquire(hasql.WithTag(ctx, "tz=Europe/Paris"), db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lose(c)
		reset(nil)
		var tz string
		if err := c.QueryRowContext(ictx, "select current_setting('TimeZone')").Scan(&tz); err != nil {
			t.Fatal(err)
		}
		if got := events(); got != "FoBegin,FoEnd,FoReauth" {
			t.Fatalf("events %s, want FoBegin,FoEnd,FoReauth", got)
		}
		if tz != "Europe/Paris" {
			t.Fatalf("TimeZone after failover %s, want the tagged session's Europe/Paris", tz)
		}
	})

	t.Run("error retry loop", func(t *testing.T) {
		c, _ := db.Conn(ctx)
		defer c.Close()
		fp.SetMode(fpRefuse)
		fp.ResetAll()
		reset(func(n int) error {
			if n == 2 {
				fp.SetMode(fpPass)
			}
			time.Sleep(50 * time.Millisecond)
			return hasql.ErrFoRetry
		})
		if err := c.QueryRowContext(ictx, "select 1").Scan(&one); err != nil {
			t.Fatalf("with the callback retrying: %v", err)
		}
		if got := events(); got != "FoBegin,FoError,FoError,FoEnd" {
			t.Fatalf("events %s, want FoBegin,FoError,FoError,FoEnd", got)
		}
	})

	t.Run("abort", func(t *testing.T) {
		c, _ := db.Conn(ctx)
		defer c.Close()
		fp.SetMode(fpRefuse)
		fp.ResetAll()
		defer fp.SetMode(fpPass)
		reset(func(int) error { return nil })
		err := c.QueryRowContext(ictx, "select 1").Scan(&one)
		if !foWraps(err, hasql.ErrNoHosts) && !foWraps(err, hasql.ErrConnectionLost) {
			t.Fatalf("failover given up: %v, want a hasql error wrapping the cause", err)
		}
		if got := events(); got != "FoBegin,FoError,FoAbort" {
			t.Fatalf("events %s, want FoBegin,FoError,FoAbort", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 9. Hosts: pickers, pgx multi-host DSNs, roles, failover to a promoted standby,
// wrong-role re-routing, health checks, MarkHostDown, Stats

// foHostsOf opens n fresh sessions (purity new, held at once) and returns
// the host of each.
func foHostsOf(t testing.TB, db *sql.DB, n int) []string {
	t.Helper()
	ctx := hasql.WithPurity(context.Background(), hasql.PurityNew)
	var out []string
	var conns []*sql.Conn
	for i := 0; i < n; i++ {
		c, err := hasql.Acquire(ctx, db)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		conns = append(conns, c)
		s, _ := hasql.SessionOf(c)
		out = append(out, s.Host())
	}
	for _, c := range conns {
		c.Close()
	}
	return out
}

func foCount(hosts []string, h string) int {
	n := 0
	for _, x := range hosts {
		if x == h {
			n++
		}
	}
	return n
}

// foRecovery reports whether a PostgreSQL server is a standby.
func foRecovery(t testing.TB, p *pgServer) bool {
	t.Helper()
	out, err := p.Query("select pg_is_in_recovery()")
	if err != nil {
		t.Fatal(err)
	}
	return out == "t"
}

func TestHostsRolesAndFailover(t *testing.T) {
	prim := startPostgres(t)
	if err := prim.ExecIn("test", "create table t (id text primary key, at text)"); err != nil {
		t.Fatal(err)
	}
	stby := prim.StartStandby(t)
	P := "127.0.0.1:" + strconv.Itoa(prim.Port)
	S := "127.0.0.1:" + strconv.Itoa(stby.Port)
	dsn := prim.DSN("test")
	ctx := context.Background()
	ictx := hasql.Idempotent(ctx)
	if !foRecovery(t, stby) || foRecovery(t, prim) {
		t.Fatal("the standby is not in recovery or the primary is")
	}

	t.Run("pickers", func(t *testing.T) {
		hosts := "&hasql.hosts=" + P + "," + S
		db, hc := foOpen(t, "pgx", dsn+hosts)
		if got := strings.Join(foHostsOf(t, db, 6), " "); got != strings.Repeat(P+" "+S+" ", 3)[:len(got)] {
			t.Fatalf("roundrobin: %s", got)
		}
		if hs := hc.Stats().Hosts; len(hs) != 2 || hs[0].Addr != P || hs[1].Addr != S || hs[0].State != hasql.HostStateUp {
			t.Fatalf("Stats.Hosts = %+v", hs)
		}
		db, _ = foOpen(t, "pgx", dsn+hosts+"&hasql.pick=ordered")
		if got := foHostsOf(t, db, 4); foCount(got, P) != 4 {
			t.Fatalf("ordered: %v", got)
		}
		db, _ = foOpen(t, "pgx", dsn+hosts+"&hasql.pick=random")
		if got := foHostsOf(t, db, 24); foCount(got, P) == 0 || foCount(got, S) == 0 {
			t.Fatalf("random: %v", got)
		}
		// latency: a proxy adding 100ms per packet in front of the primary,
		// several times what a loaded CI machine adds to a loopback connect
		// (20ms was within reach of -race under load and made this flaky).
		fp := newFaultProxy(t, P)
		fp.SetLatency(100 * time.Millisecond)
		db, _ = foOpen(t, "pgx", dsn+"&hasql.pick=latency&hasql.hosts="+fp.Addr()+","+S)
		got := foHostsOf(t, db, 8)
		if foCount(got[2:], S) != 6 {
			t.Fatalf("latency: %v, want every session after the first measurements on %s", got, S)
		}
		db.Close()
		fp.Close()
	})

	t.Run("pgx multi-host DSNs", func(t *testing.T) {
		for _, d := range []string{
			fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=test sslmode=disable", prim.Port, stby.Port),
			fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/test?sslmode=disable", prim.Port, stby.Port),
		} {
			db, hc := foOpen(t, "pgx", d)
			got := foHostsOf(t, db, 4)
			if foCount(got, P) != 2 || foCount(got, S) != 2 {
				t.Fatalf("%s: sessions on %v, want both hosts in turn", d, got)
			}
			if hs := hc.Stats().Hosts; len(hs) != 2 || hs[0].Addr != P || hs[1].Addr != S {
				t.Fatalf("%s: Stats.Hosts = %+v", d, hs)
			}
			db2, _ := foOpen(t, "pgx", d+map[bool]string{true: " hasql.target=standby", false: "&hasql.target=standby"}[strings.HasPrefix(d, "host=")])
			if got := foHostsOf(t, db2, 3); foCount(got, S) != 3 {
				t.Fatalf("%s with target=standby: %v", d, got)
			}
		}
	})

	t.Run("targets", func(t *testing.T) {
		hosts := "&hasql.hosts=" + P + "," + S
		for target, want := range map[string]string{"primary": P, "standby": S, "prefer-standby": S, "prefer-primary": P} {
			db, _ := foOpen(t, "pgx", dsn+hosts+"&hasql.target="+target)
			if got := foHostsOf(t, db, 4); foCount(got, want) != 4 {
				t.Fatalf("target=%s: %v, want all on %s", target, got, want)
			}
		}
		// prefer-*: the other role when the preferred one is unreachable.
		fp := newFaultProxy(t, S)
		fp.SetMode(fpRefuse)
		db, _ := foOpen(t, "pgx", dsn+"&hasql.target=prefer-standby&hasql.hosts="+P+","+fp.Addr())
		if got := foHostsOf(t, db, 3); foCount(got, P) != 3 {
			t.Fatalf("prefer-standby with the standby unreachable: %v, want the primary", got)
		}
		fp.SetMode(fpPass)
		db, _ = foOpen(t, "pgx", dsn+"&hasql.target=prefer-standby&hasql.hosts="+P+","+fp.Addr())
		if got := foHostsOf(t, db, 3); foCount(got, fp.Addr()) != 3 {
			t.Fatalf("prefer-standby with the standby back: %v, want the standby", got)
		}
		db.Close()
		fp.Close()
		// A read-only transaction's own 25006 is the application's error,
		// not a wrong role: no purge, no re-route.
		ev := &foEvents{}
		db, _ = foOpen(t, "pgx", dsn+hosts+"&hasql.target=primary", hasql.WithEvents(ev.add))
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec("insert into t values ('ro', 'x')")
		tx.Rollback()
		if foPGState(err) != "25006" || errors.Is(err, hasql.ErrTxResolutionUnknown) || ev.has(hasql.SessionsPurged) {
			t.Fatalf("write in a read-only transaction: %v, events %s; want the plain 25006", err, ev.kinds())
		}
	})

	t.Run("health checks and MarkHostDown", func(t *testing.T) {
		fp := newFaultProxy(t, P)
		ev := &foEvents{}
		db, hc := foOpen(t, "pgx", dsn+"&hasql.health_interval=100ms&hasql.hosts="+fp.Addr()+","+S, hasql.WithEvents(ev.add))
		foHostsOf(t, db, 4)
		fp.SetMode(fpRefuse)
		foWaitFor(t, 3*time.Second, "HostDown from the health check", func() bool { return ev.has(hasql.HostDown) })
		fp.SetMode(fpPass)
		foWaitFor(t, 3*time.Second, "HostUp from the health check", func() bool { return ev.has(hasql.HostUp) })
		for _, e := range ev.list() {
			if (e.Kind == hasql.HostDown || e.Kind == hasql.HostUp) && e.Host != fp.Addr() {
				t.Fatalf("health event for %s, want %s (%s)", e.Host, fp.Addr(), ev.kinds())
			}
		}
		db.Close()
		// A host that swallows connections (a black hole) is down too once
		// a check runs out of connect_timeout.
		ev = &foEvents{}
		db, _ = foOpen(t, "pgx", dsn+"&hasql.health_interval=100ms&hasql.connect_timeout=1s&hasql.hosts="+fp.Addr()+","+S, hasql.WithEvents(ev.add))
		foHostsOf(t, db, 2)
		fp.SetMode(fpBlackhole)
		foWaitFor(t, 4*time.Second, "HostDown for a black-holed host", func() bool { return ev.has(hasql.HostDown) })
		fp.SetMode(fpPass)
		foWaitFor(t, 4*time.Second, "HostUp once it answers", func() bool { return ev.has(hasql.HostUp) })
		db.Close()
		fp.Close()

		// MarkHostDown: idle sessions to the host close at once, new ones go
		// elsewhere.
		ev = &foEvents{}
		db, hc = foOpen(t, "pgx", dsn+"&hasql.hosts="+P+","+S, hasql.WithEvents(ev.add))
		db.SetMaxIdleConns(4) // database/sql keeps the four handles, and so their sessions
		foWarm(t, db, "pgx", 4)
		out, _ := prim.Query("select count(*) from pg_stat_activity where backend_type = 'client backend' and datname = 'test'")
		hc.MarkHostDown(P)
		foWaitFor(t, 2*time.Second, "HostDown, SessionsPurged", func() bool { return ev.kinds() == "HostDown,SessionsPurged" })
		if e := ev.list()[1]; e.Host != P || e.Sessions != 2 {
			t.Fatalf("SessionsPurged %+v, want 2 sessions of %s (before: %s backends)", e, P, out)
		}
		foWaitFor(t, 5*time.Second, "the primary's idle sessions closed", func() bool {
			out, _ := prim.Query("select count(*) from pg_stat_activity where backend_type = 'client backend' and datname = 'test'")
			return out == "0"
		})
		if got := foHostsOf(t, db, 3); foCount(got, S) != 3 {
			t.Fatalf("after MarkHostDown(%s): sessions on %v", P, got)
		}
		if hs := hc.Stats().Hosts; hs[0].State != hasql.HostStateBlacklisted {
			t.Fatalf("after MarkHostDown: %+v", hs[0])
		}
	})

	t.Run("failover to the promoted standby", func(t *testing.T) {
		ev := &foEvents{}
		db, hc := foOpen(t, "pgx", dsn+"&hasql.hosts="+P+","+S+"&hasql.target=primary&hasql.retry=idempotent&hasql.outage_wait=20s&hasql.reconnect=100ms&hasql.blacklist=1s",
			hasql.WithEvents(ev.add))
		ackPort := map[string]string{}
		var apmu sync.Mutex
		insert := func(id string) error {
			var port string
			err := db.QueryRowContext(ictx, "insert into t values ($1, inet_server_port()::text) on conflict (id) do update set id = excluded.id returning inet_server_port()::text", id).Scan(&port)
			apmu.Lock()
			ackPort[id] = port
			apmu.Unlock()
			return err
		}
		for i := 0; i < 5; i++ {
			if err := insert("before-" + strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		// A writer goes on through the failover.
		var (
			wmu   sync.Mutex
			oks   []string
			fails []error
			stop  atomic.Bool
			wg    sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := "during-" + strconv.Itoa(i)
				err := insert(id)
				wmu.Lock()
				if err == nil {
					oks = append(oks, id)
				} else {
					fails = append(fails, err)
				}
				wmu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
		time.Sleep(100 * time.Millisecond)
		failovers := hc.Stats().Failovers
		if err := prim.Stop("fast"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := stby.Promote(); err != nil {
			t.Fatal(err)
		}
		foWaitFor(t, 15*time.Second, "writes on the new primary", func() bool {
			wmu.Lock()
			defer wmu.Unlock()
			apmu.Lock()
			defer apmu.Unlock()
			return len(oks) > 0 && ackPort[oks[len(oks)-1]] == strconv.Itoa(stby.Port)
		})
		time.Sleep(200 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		for _, err := range fails {
			if !foWraps(err, hasql.ErrConnectionLost) && !foWraps(err, hasql.ErrNoHosts) && !foWraps(err, hasql.ErrTxResolutionUnknown) && !foWraps(err, hasql.ErrTxNotCommitted) {
				t.Errorf("writer got %v, want only typed hasql errors", err)
			}
		}
		// Every write the writer was told succeeded is on the new primary.
		out, err := stby.QueryIn("test", "select string_agg(id, ',') from t")
		out = strings.TrimSpace(out)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, id := range strings.Split(out, ",") {
			have[id] = true
		}
		for _, id := range append([]string{"before-0", "before-4"}, oks...) {
			if !have[id] {
				t.Errorf("write %s was acknowledged (by port %s; primary %d, standby %d) but is not on the new primary", id, ackPort[id], prim.Port, stby.Port)
			}
		}
		var port string
		if err := db.QueryRowContext(ictx, "select inet_server_port()::text").Scan(&port); err != nil || port != strconv.Itoa(stby.Port) {
			t.Fatalf("after failover: on port %s, %v; want the promoted standby %d", port, err, stby.Port)
		}
		st := hc.Stats()
		t.Logf("failover: %d acknowledged writes during it, %d errors; stats reconnects %d failovers %d retries %d; events %s",
			len(oks), len(fails), st.Reconnects, st.Failovers, st.Retries, ev.kinds())
		if st.Failovers <= failovers {
			t.Fatalf("Stats.Failovers %d → %d, want it counted", failovers, st.Failovers)
		}
		if st.Hosts[0].State == hasql.HostStateUp || st.Hosts[1].State != hasql.HostStateUp {
			t.Fatalf("Stats.Hosts after failover: %+v", st.Hosts)
		}
	})

	t.Run("wrong role re-routes", func(t *testing.T) {
		// Now: the old primary comes back as a primary of its own, and the
		// new primary is made read-only: a write on it fails with 25006
		// and goes to the other primary.
		if err := prim.Start(); err != nil {
			t.Fatal(err)
		}
		ev := &foEvents{}
		db, _ := foOpen(t, "pgx", dsn+"&hasql.hosts="+S+","+P+"&hasql.target=primary&hasql.pick=ordered", hasql.WithEvents(ev.add))
		var port string
		if err := db.QueryRowContext(ctx, "select inet_server_port()::text").Scan(&port); err != nil || port != strconv.Itoa(stby.Port) {
			t.Fatalf("first session on port %s, %v", port, err)
		}
		if err := stby.Exec("alter system set default_transaction_read_only = on"); err != nil {
			t.Fatal(err)
		}
		if err := stby.Exec("select pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := db.QueryRowContext(ctx, "insert into t values ('rerouted', inet_server_port()::text) returning at").Scan(&port); err != nil {
			t.Fatalf("write after the server went read-only: %v, want it re-routed", err)
		}
		if port != strconv.Itoa(prim.Port) {
			t.Fatalf("write went to port %s, want %d", port, prim.Port)
		}
		if ev.has(hasql.HostDown) || !ev.has(hasql.SessionsPurged) {
			t.Fatalf("events %s, want SessionsPurged (the server is up: no HostDown)", ev.kinds())
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Mid-stream: the connection dies while the application reads rows that
// QueryContext already returned. hasql hands database/sql the inner driver's
// rows as they are (no wrapper, no allocation), so the error rows.Err
// reports is the driver's own; what hasql guarantees is that the session is
// not pooled again and the *sql.Conn goes on, on a new session.

func TestMidStreamRowsError(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	ctx := context.Background()
	db, hc := foOpen(t, "pgx", dsn+"&hasql.retry=idempotent")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid, err := foPID(ctx, c, "pgx")
	if err != nil {
		t.Fatal(err)
	}
	terminated := hc.Stats().Terminated
	rows, err := c.QueryContext(hasql.Idempotent(ctx), "select n, repeat('x', 200) from generate_series(1, 200000) n")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	foTerminate(t, p, pid)
	n := 1
	for rows.Next() {
		n++
	}
	rerr := rows.Err()
	rows.Close()
	if rerr == nil {
		t.Fatalf("read all %d rows from a terminated backend", n)
	}
	t.Logf("mid-stream error after %d rows: %T %v (typed hasql error: %v)", n, rerr, rerr, chaosTyped(rerr))
	if foPGState(rerr) != "57P01" && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		t.Fatalf("mid-stream error %v does not carry the driver's cause", rerr)
	}
	if !errors.Is(rerr, hasql.ErrConnectionLost) {
		t.Fatalf("mid-stream error %v is not hasql.ErrConnectionLost", rerr)
	}
	next, err := foPID(ctx, c, "pgx")
	if err != nil || next == pid {
		t.Fatalf("next call on the *sql.Conn: pid %d, %v; want a new session", next, err)
	}
	if hc.Stats().Terminated <= terminated {
		t.Fatalf("the dead session was not terminated: %+v", hc.Stats())
	}
}

// TestMarkHostDownEndsCallsInFlight (OCI FAN): an outside DOWN notice closes
// the sessions in use on the host at once, not only the idle ones: a 5 s sleep
// in flight there ends with a *LostError instead of returning when done, and
// the work, which was sent and is not marked Idempotent, is not run again.
func TestMarkHostDownEndsCallsInFlight(t *testing.T) {
	for _, tc := range []struct {
		driver, sleep, running string
		server                 func(t *testing.T) (dsn, host string, query func(string) (string, error))
	}{
		{"pgx", "select pg_sleep(5)", "select count(*) from pg_stat_activity where pid = %d and query like 'select pg_sleep%%'",
			func(t *testing.T) (string, string, func(string) (string, error)) {
				p := sharedPG(t)
				return p.FreshDB(t), "127.0.0.1:" + strconv.Itoa(p.Port), p.Query
			}},
		{"mysql", "select sleep(5)", "select count(*) from information_schema.processlist where id = %d and info like 'select sleep%%'",
			func(t *testing.T) (string, string, func(string) (string, error)) {
				m := sharedMaria(t)
				return m.FreshDB(t), "127.0.0.1:" + strconv.Itoa(m.Port), m.Query
			}},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			dsn, host, query := tc.server(t)
			ev := &foEvents{}
			db, hc := foOpen(t, tc.driver, dsn, hasql.WithEvents(ev.add))
			ctx := context.Background()
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pid, err := foPID(ctx, c, tc.driver)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.ExecContext(ctx, tc.sleep)
				done <- err
			}()
			foWaitFor(t, 3*time.Second, "the sleep to run", func() bool {
				out, _ := query(fmt.Sprintf(tc.running, pid))
				return out == "1"
			})
			hc.MarkHostDown(host)
			// A sleep left to finish returns no error: the *LostError is
			// what proves the call was cut short.
			err = <-done
			var lost *hasql.LostError
			if !errors.As(err, &lost) || !errors.Is(err, hasql.ErrConnectionLost) || !lost.Sent || lost.Host != host {
				t.Fatalf("call in flight: %v, want a *LostError (sent) on %s", err, host)
			}
			foWaitFor(t, 2*time.Second, "HostDown and SessionsPurged", func() bool {
				return ev.has(hasql.HostDown) && ev.has(hasql.SessionsPurged)
			})
			// The *sql.Conn goes on, on a new session (the only host is
			// tried although it is blacklisted).
			if npid, err := foPID(ctx, c, tc.driver); err != nil || npid == pid {
				t.Fatalf("next call: pid %d, %v; want a new session", npid, err)
			}
		})
	}
}

// TestRuntimeLoadBalancingPrefersTheFastHost (OCI runtime load balancing):
// with hasql.pick=latency over two hosts, an idle session on the faster host
// is handed out before one on the slower host, not only new sessions —
// even to the handle whose own last session was the slow one. The two hosts
// are one server reached directly and through a fault proxy that adds
// latency.
func TestRuntimeLoadBalancingPrefersTheFastHost(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	fast := "127.0.0.1:" + strconv.Itoa(p.Port)
	fp := newFaultProxy(t, fast)
	defer fp.Close()
	fp.SetLatency(20 * time.Millisecond)
	slow := fp.Addr()
	db, _ := foOpen(t, "pgx", dsn+"&hasql.hosts="+slow+","+fast+"&hasql.pick=latency")
	ctx := context.Background()
	// Hosts never measured are tried first: one new session each.
	var conns [2]*sql.Conn
	var hosts [2]string
	for i := range conns {
		c, err := hasql.Acquire(hasql.WithPurity(ctx, hasql.PurityNew), db)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		s, _ := hasql.SessionOf(c)
		hosts[i] = s.Host()
	}
	if hosts[0] != slow || hosts[1] != fast {
		t.Fatalf("first sessions on %v, want one on the slow host %s, then one on the fast host %s", hosts, slow, fast)
	}
	// The slow host's session is released last: LIFO, and its handle's
	// own last session, would both pick it.
	conns[1].Close()
	conns[0].Close()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := hasql.SessionOf(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Host(); got != fast {
		t.Fatalf("checkout got a session on %s, want the idle one on the fast host %s", got, fast)
	}
}
