package hasql

// Internal tests of the physical session pool (pool*.go) on fakedb (fakedb_test.go), configured
// as a deterministic inner driver that counts every open, close and reset, so that Stats can be
// checked against a model. Time is injected: the pool's clock is a fake one and reaping is driven
// by calling p.reap(fakeNow) directly; nothing here asserts on background timing, it only waits
// (bounded) for background work to settle.
//
// The exported PoolTest* helpers in export_test.go let the external integration tests
// (pool_integration_test.go) drive the same clock and reaper on real servers.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ---------------------------------------------------------------------------------------------
// The fake inner driver: fakedb_test.go's, counting every open, close and reset (FakeDB's
// counters), with sessions of FakeCapsPool whose hooks keep session variables: "SET k = v" sets
// one, "SHOW k" returns it, "SELECT id" returns the session's id.

// newTPDriver makes a FakeDB whose sessions answer as above. Set OnConnect before the connector
// is made to run a hook in every Connect with the attempt's ordinal (1-based); it may block
// (honouring ctx) or fail the attempt.
func newTPDriver() *FakeDB {
	d := NoopFakeDB()
	d.OnExec = func(c *FakeConn, _ context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
		return tpExec(c, q)
	}
	d.OnQuery = func(c *FakeConn, _ context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
		return tpQuery(c, q)
	}
	d.NumInput = func(string) int { return -1 }
	d.OnStmtExec = func(s *FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Result, error) {
		return tpExec(s.Conn(), s.SQL)
	}
	d.OnStmtQuery = func(s *FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Rows, error) {
		return tpQuery(s.Conn(), s.SQL)
	}
	return d
}

func tpExec(c *FakeConn, q string) (driver.Result, error) {
	f := strings.Fields(q)
	if len(f) == 4 && strings.EqualFold(f[0], "SET") && f[2] == "=" {
		c.Vars[f[1]] = f[3]
		return driver.RowsAffected(0), nil
	}
	return nil, fmt.Errorf("tpExec: cannot exec %q", q)
}

func tpQuery(c *FakeConn, q string) (driver.Rows, error) {
	switch {
	case q == "SELECT id":
		return FakeOneRow(c.ID), nil
	case strings.HasPrefix(q, "SHOW "):
		return FakeOneRow(c.Vars[strings.TrimPrefix(q, "SHOW ")]), nil
	}
	return nil, fmt.Errorf("tpQuery: cannot query %q", q)
}

// tpConnector is an inner connector on d.
func tpConnector(d *FakeDB) driver.Connector {
	return (&FakeDriver{Caps: FakeCapsPool, DB: d}).Connector()
}

// tpCallerKey marks a caller's context, so that a hook can tell the caller's own open from the
// background ones (min, incr), which run with the pool's context.
type tpCallerKey struct{}

func tpCaller(ctx context.Context) context.Context {
	return context.WithValue(ctx, tpCallerKey{}, true)
}
func tpIsCaller(ctx context.Context) bool { return ctx.Value(tpCallerKey{}) != nil }

// ---------------------------------------------------------------------------------------------
// A fake clock and the pool under it.

type tpClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTPClock() *tpClock { return &tpClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *tpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *tpClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// tpOpen opens a *sql.DB over a connector on d whose pool has config pc and runs on clk (nil:
// the real clock). opts must not set the pool (pc does).
func tpOpen(t *testing.T, d *FakeDB, pc PoolConfig, clk *tpClock, opts ...Option) (*sql.DB, *Connector) {
	t.Helper()
	c, err := NewConnector(tpConnector(d), opts...)
	if err != nil {
		t.Fatalf("NewConnector: %v", err)
	}
	var now func() time.Time
	if clk != nil {
		now = clk.Now
	}
	if err := installPool(c, pc, now); err != nil {
		c.Close()
		t.Fatalf("installPool: %v", err)
	}
	db := sql.OpenDB(c)
	// database/sql keeps every handle it is given back, so that what these tests see is hasql's
	// own pool: a handle database/sql closes closes its session too (pool_handles_test.go).
	db.SetMaxIdleConns(1 << 10)
	t.Cleanup(func() { db.Close() })
	return db, c
}

// tpPC is a pool config with no background reaping in the way (the tests call reap).
func tpPC(min, max, incr int) PoolConfig {
	return PoolConfig{Min: min, Max: max, Incr: incr, WaitTimeout: 5 * time.Second}
}

// tpEventually waits (bounded) until cond holds: for background work to settle, never to assert
// on its timing.
func tpEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// tpAcquire checks out a *sql.Conn and returns it with the fake session id behind it.
func tpAcquire(t *testing.T, ctx context.Context, db *sql.DB) (*sql.Conn, int64) {
	t.Helper()
	c, err := Acquire(ctx, db)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return c, tpIDOf(t, c)
}

func tpIDOf(t *testing.T, c *sql.Conn) int64 {
	t.Helper()
	s, err := SessionOf(c)
	if err != nil {
		t.Fatalf("SessionOf: %v", err)
	}
	inner := FakeConnOf(s.Unwrap())
	if inner == nil {
		t.Fatalf("Session.Unwrap() = %T, want a fakedb connection", s.Unwrap())
	}
	return inner.ID
}

func tpSession(t *testing.T, c *sql.Conn) *Session {
	t.Helper()
	s, err := SessionOf(c)
	if err != nil {
		t.Fatalf("SessionOf: %v", err)
	}
	return s
}

func tpShow(t *testing.T, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) string {
	t.Helper()
	var v string
	if err := q.QueryRowContext(ctx, "SHOW "+name).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", name, err)
	}
	return v
}

func tpQueryID(t *testing.T, ctx context.Context, db *sql.DB) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(ctx, "SELECT id").Scan(&id); err != nil {
		t.Fatalf("SELECT id: %v", err)
	}
	return id
}

// tpStatsWant compares selected Stats fields.
type tpStatsWant struct {
	Open, Busy, Idle                                      int
	Created, Closed, Terminated, Waits, WaitTimeouts      int64
	TagHits, TagMisses                                    int64
	checkWaits, checkTags, checkTerminated, checkTimeouts bool
}

func tpCheckStats(t *testing.T, c *Connector, w tpStatsWant) Stats {
	t.Helper()
	s := c.Stats()
	if s.Open != w.Open || s.Busy != w.Busy || s.Idle != w.Idle || s.Created != w.Created || s.Closed != w.Closed {
		t.Errorf("Stats: Open %d Busy %d Idle %d Created %d Closed %d; want Open %d Busy %d Idle %d Created %d Closed %d",
			s.Open, s.Busy, s.Idle, s.Created, s.Closed, w.Open, w.Busy, w.Idle, w.Created, w.Closed)
	}
	if w.checkTerminated && s.Terminated != w.Terminated {
		t.Errorf("Stats.Terminated = %d, want %d", s.Terminated, w.Terminated)
	}
	if w.checkWaits && s.Waits != w.Waits {
		t.Errorf("Stats.Waits = %d, want %d", s.Waits, w.Waits)
	}
	if w.checkTimeouts && s.WaitTimeouts != w.WaitTimeouts {
		t.Errorf("Stats.WaitTimeouts = %d, want %d", s.WaitTimeouts, w.WaitTimeouts)
	}
	if w.checkTags && (s.TagHits != w.TagHits || s.TagMisses != w.TagMisses) {
		t.Errorf("Stats TagHits %d TagMisses %d, want %d and %d", s.TagHits, s.TagMisses, w.TagHits, w.TagMisses)
	}
	return s
}

// tpCheckDriver checks that hasql's figures agree with what the driver saw.
func tpCheckDriver(t *testing.T, c *Connector, d *FakeDB) {
	t.Helper()
	s := c.Stats()
	if s.Created != d.Opens.Load() || s.Closed != d.Closes.Load() || int64(s.Open) != d.Opens.Load()-d.Closes.Load() {
		t.Errorf("Stats Created %d Closed %d Open %d; the driver opened %d and closed %d", s.Created, s.Closed, s.Open, d.Opens.Load(), d.Closes.Load())
	}
	if n := d.DupCloses.Load(); n != 0 {
		t.Errorf("%d connections were closed twice", n)
	}
	if n := d.Overlaps.Load(); n != 0 {
		t.Errorf("%d calls found their connection in use by another goroutine", n)
	}
	if n := d.UseClosed.Load(); n != 0 {
		t.Errorf("%d calls ran on a closed connection", n)
	}
}

// ---------------------------------------------------------------------------------------------
// 1. Reuse: LIFO, parked sessions, replacement of dead ones (sizing: poolsize_test.go).

// tpThreeReleased checks out three sessions a, b and e on db and releases b, a, then e.
func tpThreeReleased(t *testing.T, ctx context.Context, db *sql.DB) (ida, idb, ide int64) {
	t.Helper()
	a, ida := tpAcquire(t, ctx, db)
	b, idb := tpAcquire(t, ctx, db)
	e, ide := tpAcquire(t, ctx, db)
	b.Close()
	a.Close()
	e.Close()
	return ida, idb, ide
}

func TestPoolReuseIsLIFO(t *testing.T) {
	d := newTPDriver()
	_, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	// Six handles, driven as database/sql would (bind at checkout, IsValid at release), all made
	// before any session so that each may take any (pool_handles.go); the last three have no
	// session of their own: the pool alone chooses.
	var v [6]*handle
	for i := range v {
		v[i] = newHandle(c)
	}
	id := func(h *handle) int64 {
		t.Helper()
		if err := h.bind(ctx, true); err != nil {
			t.Fatalf("bind: %v", err)
		}
		return FakeConnOf(h.ph.inner).ID
	}
	ida, idb, ide := id(v[0]), id(v[1]), id(v[2])
	v[1].IsValid()
	v[0].IsValid()
	v[2].IsValid() // e released last
	for i, want := range []int64{ide, ida, idb} {
		if got := id(v[3+i]); got != want {
			t.Errorf("checkout %d got session %d, want %d (most recently released first)", i, got, want)
		}
	}
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 3, Created: 3})
	for _, h := range v[3:] {
		h.IsValid()
	}
}

func TestPoolHandleTakesBackItsOwnSessionFirst(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	db.SetMaxIdleConns(2) // database/sql keeps the handles of a and b, and closes e's
	ctx := context.Background()
	ida, idb, ide := tpThreeReleased(t, ctx, db)
	// e's handle closed, and its session with it, as the raw connection would be.
	tpCheckStats(t, c, tpStatsWant{Open: 2, Idle: 2, Created: 3, Closed: 1})
	if d.LiveIDs()[ide] {
		t.Errorf("session %d outlived the handle database/sql closed", ide)
	}
	// database/sql hands out a's handle, then b's (its own LIFO), and each
	// takes back the session it had; then a new handle gets a new session.
	for i, want := range []int64{ida, idb, ide + 1} {
		cn, id := tpAcquire(t, ctx, db)
		defer cn.Close()
		if id != want {
			t.Errorf("checkout %d got session %d, want %d (a handle's own session first)", i, id, want)
		}
	}
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 3, Created: 4, Closed: 1})
}

// A session parked on a handle stays the pool's like any idle one: another
// handle's checkout takes it, the first handle then gets another session,
// a session retagged meanwhile is not taken back for the old tag, and the
// stats are exact throughout. The handles are driven directly, as
// database/sql would at checkout (bind) and release (IsValid).
func TestPoolParkedSessionStaysThePools(t *testing.T) {
	d := newTPDriver()
	_, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	bind := func(v *handle, ctx context.Context) *session {
		t.Helper()
		if err := v.bind(ctx, true); err != nil {
			t.Fatalf("bind: %v", err)
		}
		return v.ph
	}
	v1, v2 := newHandle(c), newHandle(c)
	s1 := bind(v1, ctx)
	v1.IsValid()
	if got := bind(v1, ctx); got != s1 {
		t.Fatalf("v1 did not take back its session")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 1})
	v1.IsValid() // parked: idle, and still in the idle list
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})

	if got := bind(v2, ctx); got != s1 {
		t.Fatalf("v2 did not get the idle session parked on v1")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 1})
	s2 := bind(v1, ctx) // v1's session is v2's now: v1 gets a new one
	if s2 == s1 {
		t.Fatal("v1 took back a session v2 holds")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 2, Busy: 2, Created: 2})

	// v2 retags s1 and releases it; v1, also parked, releases s2.
	if err := v2.view.SetTag("k=v"); err != nil {
		t.Fatal(err)
	}
	v2.IsValid()
	v1.IsValid()
	tpCheckStats(t, c, tpStatsWant{Open: 2, Idle: 2, Created: 2})
	// v1 takes s2 back; v2's untagged checkout finds s1 retagged, leaves it,
	// and with no untagged session idle gets a new one.
	if got := bind(v1, ctx); got != s2 {
		t.Fatal("v1 did not take back s2")
	}
	s3 := bind(v2, ctx)
	if s3 == s1 || s3 == s2 {
		t.Fatalf("an untagged checkout got a session tagged %q", s3.tag)
	}
	// A checkout asking for the tag gets s1, a hit.
	v3 := newHandle(c)
	if got := bind(v3, WithTag(ctx, "k=v")); got != s1 || !v3.tagFound {
		t.Fatalf("tagged checkout: got %p (tag %q), want s1", got, got.tag)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 3, Created: 3, TagHits: 1, checkTags: true})
	for _, v := range []*handle{v1, v2, v3} {
		v.IsValid()
	}
	tpCheckStats(t, c, tpStatsWant{Open: 3, Idle: 3, Created: 3})
	tpCheckDriver(t, c, d)
}

// A session marked bad while parked (a purge marks what it cannot take, and
// a handle may park a session just before the mark) is never handed out
// again: not taken back by its handle, not given to another checkout, and
// closed by the reaper if nobody else retires it.
func TestPoolParkedBadSessionNotReused(t *testing.T) {
	d := newTPDriver()
	_, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	v1, v2 := newHandle(c), newHandle(c)
	for _, v := range []*handle{v1, v2} {
		if err := v.bind(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2 := v1.ph, v2.ph
	v1.IsValid()
	v2.IsValid()
	for _, v := range []*handle{v1, v2} { // taken back and parked: listed, idle
		if err := v.bind(ctx, true); err != nil {
			t.Fatal(err)
		}
		v.IsValid()
	}
	s1.bad.Store(true)
	s2.bad.Store(true)

	if err := v1.bind(ctx, true); err != nil {
		t.Fatal(err)
	}
	if v1.ph == s1 || v1.ph == s2 {
		t.Fatal("v1 got a session marked bad")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 2, Busy: 1, Idle: 1, Created: 3, Closed: 1, Terminated: 1, checkTerminated: true})
	c.pool.reap(time.Now()) // the one nobody took back
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 3, Closed: 2, Terminated: 2, checkTerminated: true})
	v1.IsValid()
	tpCheckDriver(t, c, d)
}

// More handles than sessions, every handle parking its session on release:
// a checkout that waits for a full pool is handed a session parked after it
// began to wait (none is left idle while someone waits), each session is used
// by one caller at a time (the driver counts), and the stats add up after.
func TestPoolParkedSessionsReachWaiters(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 2, 1), nil)
	db.SetMaxIdleConns(10) // database/sql keeps every handle (8 + h1, h2), each with its parked session
	const goroutines, ops = 8, 300
	// Both sessions held as the goroutines start, so that they begin by waiting.
	h1, _ := tpAcquire(t, context.Background(), db)
	h2, _ := tpAcquire(t, context.Background(), db)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				// Far longer than any wait should be: a session left idle while a
				// checkout waits would show as this deadline passing.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := db.ExecContext(ctx, "SET x = 1")
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	tpEventually(t, "a checkout waiting", func() bool { return c.Stats().Waits > 0 })
	h1.Close()
	h2.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("exec: %v", err)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 2, Idle: 2, Created: 2})
	tpCheckDriver(t, c, d)
}

func TestPoolSameSessionWhenSerial(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	first := tpQueryID(t, ctx, db)
	for i := 0; i < 10; i++ {
		if id := tpQueryID(t, ctx, db); id != first {
			t.Fatalf("query %d ran on session %d, want %d", i, id, first)
		}
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})
	if n := d.Resets.Load(); n != 10 {
		t.Errorf("inner ResetSession ran %d times, want 10 (every reuse is checked)", n)
	}
}

func TestPoolDeadSessionReplacedSilently(t *testing.T) {
	d := newTPDriver()
	// A frozen clock: a new handle may take any idle session (pool_handles.go), so that the
	// pool's own replacement of dead sessions is what the test sees.
	db, c := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
	ctx := context.Background()

	// Found dead when reused (ResetSession fails): terminated, and the caller gets a new one.
	cn, id := tpAcquire(t, ctx, db)
	cn.Close()
	d.Conn(id).failReset.Store(true)
	got := tpQueryID(t, ctx, db)
	if got == id {
		t.Fatalf("the dead session %d was handed out", id)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1, Terminated: 1, checkTerminated: true})

	// Several dead in a row: still no error.
	var held []*sql.Conn
	for i := 0; i < 3; i++ {
		cn, _ := tpAcquire(t, ctx, db)
		held = append(held, cn)
	}
	for _, cn := range held {
		id := tpIDOf(t, cn)
		cn.Close()
		d.Conn(id).failReset.Store(true)
	}
	if _, err := db.ExecContext(ctx, "SET a = 1"); err != nil {
		t.Fatalf("exec after three dead sessions: %v", err)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 5, Closed: 4, Terminated: 4, checkTerminated: true})

	// Dead at release (IsValid false): terminated, never pooled.
	cn, id = tpAcquire(t, ctx, db)
	d.Conn(id).dead.Store(true)
	cn.Close()
	tpCheckStats(t, c, tpStatsWant{Open: 0, Idle: 0, Created: 5, Closed: 5, Terminated: 5, checkTerminated: true})
	tpCheckDriver(t, c, d)
}

// TestPoolHandleOfADeadIdleSessionIsDiscarded: a handle whose own session
// died while idle answers driver.ErrBadConn when database/sql hands it out
// again, so database/sql discards it and takes another, as it discards a raw
// connection found dead; the caller sees no error.
func TestPoolHandleOfADeadIdleSessionIsDiscarded(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	handleOf := func(cn *sql.Conn) (h any) {
		if err := cn.Raw(func(dc any) error { h = dc; return nil }); err != nil {
			t.Fatal(err)
		}
		return h
	}
	cn, id := tpAcquire(t, ctx, db)
	first := handleOf(cn)
	cn.Close()
	// Alive: database/sql hands the same handle out again, with its session.
	cn, again := tpAcquire(t, ctx, db)
	if handleOf(cn) != first || again != id {
		t.Fatalf("a live idle handle was not reused with its session (session %d, want %d)", again, id)
	}
	cn.Close()
	// Dead while idle: the handle goes, the caller gets a new one.
	d.Conn(id).failReset.Store(true)
	cn, got := tpAcquire(t, ctx, db)
	defer cn.Close()
	if got == id {
		t.Fatalf("the dead session %d was handed out", id)
	}
	if handleOf(cn) == first {
		t.Fatal("the handle whose session died while idle was handed out again")
	}
	if n := c.Stats().Reconnects; n != 0 {
		t.Errorf("Stats().Reconnects = %d: database/sql replaced the connection, hasql did not", n)
	}
}

// ---------------------------------------------------------------------------------------------
// 2. Get modes at max with every session busy.

func TestGetModeWait(t *testing.T) {
	d := newTPDriver()
	clk := newTPClock()
	db, c := tpOpen(t, d, tpPC(0, 1, 1), clk)
	ctx := context.Background()
	a, ida := tpAcquire(t, ctx, db)

	type res struct {
		id  int64
		err error
	}
	got := make(chan res, 1)
	go func() {
		var id int64
		err := db.QueryRowContext(ctx, "SELECT id").Scan(&id)
		got <- res{id, err}
	}()
	tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
	clk.Advance(3 * time.Second)
	a.Close()
	r := <-got
	if r.err != nil || r.id != ida {
		t.Fatalf("waiter got session %d, %v; want the released session %d", r.id, r.err, ida)
	}
	s := tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1, Waits: 1, checkWaits: true})
	if s.WaitTime != 3*time.Second {
		t.Errorf("WaitTime %v, want 3s (by the pool's clock)", s.WaitTime)
	}

	// Until the context ends.
	a, _ = tpAcquire(t, ctx, db)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := Acquire(cctx, db)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with an ending context: %v, want context.DeadlineExceeded", err)
	}
	a.Close()
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1, Waits: 2, WaitTimeouts: 0, checkWaits: true, checkTimeouts: true})

	// A session terminated on release gives its slot to the waiter, who opens a new one.
	a, ida = tpAcquire(t, ctx, db)
	go func() {
		var id int64
		err := db.QueryRowContext(ctx, "SELECT id").Scan(&id)
		got <- res{id, err}
	}()
	tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 3 })
	d.Conn(ida).dead.Store(true)
	a.Close()
	r = <-got
	if r.err != nil || r.id == ida {
		t.Fatalf("waiter got session %d, %v; want a new one", r.id, r.err)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1, Terminated: 1, checkTerminated: true})
	tpCheckDriver(t, c, d)
}

func TestGetModeNoWait(t *testing.T) {
	d := newTPDriver()
	pc := tpPC(0, 2, 1)
	pc.GetMode = GetNoWait
	db, c := tpOpen(t, d, pc, nil)
	ctx := context.Background()
	a, _ := tpAcquire(t, ctx, db)
	b, _ := tpAcquire(t, ctx, db)
	if _, err := Acquire(ctx, db); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Acquire at max: %v, want ErrPoolExhausted", err)
	}
	var id int64
	if err := db.QueryRowContext(ctx, "SELECT id").Scan(&id); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("query at max: %v, want ErrPoolExhausted", err)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 2, Busy: 2, Created: 2, Waits: 0, checkWaits: true})
	a.Close()
	if err := db.QueryRowContext(ctx, "SELECT id").Scan(&id); err != nil {
		t.Fatalf("query after a release: %v", err)
	}
	b.Close()
}

func TestGetModeForce(t *testing.T) {
	d := newTPDriver()
	pc := tpPC(0, 1, 1)
	pc.GetMode = GetForce
	db, c := tpOpen(t, d, pc, nil)
	ctx := context.Background()

	a, ida := tpAcquire(t, ctx, db)
	b, idb := tpAcquire(t, ctx, db) // beyond max
	e, ide := tpAcquire(t, ctx, db)
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 3, Created: 3, Waits: 0, checkWaits: true})
	b.Close() // above max: destroyed
	tpCheckStats(t, c, tpStatsWant{Open: 2, Busy: 2, Created: 3, Closed: 1})
	a.Close() // still above max: destroyed, whichever session it is
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 3, Closed: 2})
	e.Close() // at max: kept
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 3, Closed: 2})
	live := d.LiveIDs()
	if len(live) != 1 || !live[ide] || live[ida] || live[idb] {
		t.Errorf("open sessions %v, want only %d", live, ide)
	}
	if s := c.Stats(); s.Terminated != 0 {
		t.Errorf("Terminated %d: sessions closed above max are not errors", s.Terminated)
	}
	tpCheckDriver(t, c, d)
}

func TestGetModeTimedWait(t *testing.T) {
	d := newTPDriver()
	pc := tpPC(0, 1, 1)
	pc.GetMode = GetTimedWait
	pc.WaitTimeout = 40 * time.Millisecond
	db, c := tpOpen(t, d, pc, nil)
	ctx := context.Background()

	a, _ := tpAcquire(t, ctx, db)
	start := time.Now()
	_, err := Acquire(ctx, db)
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Acquire at max: %v, want ErrPoolExhausted", err)
	}
	if el := time.Since(start); el < pc.WaitTimeout {
		t.Errorf("gave up after %v, before the wait timeout %v", el, pc.WaitTimeout)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 1, Waits: 1, WaitTimeouts: 1, checkWaits: true, checkTimeouts: true})
	a.Close()
}

// A handle database/sql reuses is bound in ResetSession, which cannot report a pool error; the
// caller's first call must then report it, not wait a second wait_timeout.
func TestGetModeTimedWaitOnReusedHandleWaitsOnce(t *testing.T) {
	d := newTPDriver()
	pc := tpPC(0, 1, 1)
	pc.GetMode = GetTimedWait
	pc.WaitTimeout = 30 * time.Millisecond
	pc.Max = 2
	db, c := tpOpen(t, d, pc, nil)
	ctx := context.Background()

	// Two virtual handles idle in database/sql's pool, then one physical session.
	h1, _ := tpAcquire(t, ctx, db)
	h2, _ := tpAcquire(t, ctx, db)
	h1.Close()
	h2.Close()
	pc.Max = 1
	if err := c.Reconfigure(pc); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.Idle != 2 {
		t.Fatalf("database/sql keeps %d idle handles, want 2", st.Idle)
	}
	base := c.Stats()

	a, _ := tpAcquire(t, ctx, db) // takes one handle and the session
	defer a.Close()
	for i := 1; i <= 3; i++ {
		var id int64
		err := db.QueryRowContext(ctx, "SELECT id").Scan(&id)
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("query %d at max: %v, want ErrPoolExhausted", i, err)
		}
		s := c.Stats()
		if got := s.WaitTimeouts - base.WaitTimeouts; got != int64(i) {
			t.Fatalf("after %d failed queries WaitTimeouts grew by %d: each query waited more than once", i, got)
		}
		if got := s.Waits - base.Waits; got != int64(i) {
			t.Fatalf("after %d failed queries Waits grew by %d", i, got)
		}
	}
	if _, err := Acquire(ctx, db); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Acquire at max: %v", err)
	}
	if got := c.Stats().WaitTimeouts - base.WaitTimeouts; got != 4 {
		t.Fatalf("WaitTimeouts grew by %d after 4 failed checkouts", got)
	}
}

// ---------------------------------------------------------------------------------------------
// 4. Tags.

// tpRelease checks out a session for ctx and releases it with tag; it returns the session id.
func tpPut(t *testing.T, ctx context.Context, db *sql.DB, tag string) int64 {
	t.Helper()
	cn, id := tpAcquire(t, ctx, db)
	if err := Release(cn, tag); err != nil {
		t.Fatalf("Release(%q): %v", tag, err)
	}
	return id
}

// tpHoldN checks out n new sessions at once and releases them with the tags given.
func tpHoldN(t *testing.T, db *sql.DB, tags ...string) []int64 {
	t.Helper()
	ctx := context.Background()
	var conns []*sql.Conn
	var ids []int64
	for range tags {
		cn, id := tpAcquire(t, ctx, db)
		conns = append(conns, cn)
		ids = append(ids, id)
	}
	for i, cn := range conns {
		if err := Release(cn, tags[i]); err != nil {
			t.Fatalf("Release(%q): %v", tags[i], err)
		}
	}
	return ids
}

// The pools run on a frozen clock: any handle may take any idle session (pool_handles.go), so
// that the tag rules alone choose.
func TestTagSelectionRules(t *testing.T) {
	ctx := context.Background()

	t.Run("exact", func(t *testing.T) {
		d := newTPDriver()
		db, c := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, "a=1", "b=2", "")
		cn, id := tpAcquire(t, WithTag(ctx, "b=2"), db)
		defer cn.Close()
		s := tpSession(t, cn)
		if id != ids[1] || !s.TagFound() || s.Tag() != "b=2" {
			t.Errorf("got session %d tag %q found %v; want %d, b=2, found", id, s.Tag(), s.TagFound(), ids[1])
		}
		tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 1, Idle: 2, Created: 3, TagHits: 1, checkTags: true})
	})

	t.Run("untagged-before-other-tags", func(t *testing.T) {
		d := newTPDriver()
		db, c := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, "a=1", "", "b=2")
		cn, id := tpAcquire(t, WithTag(ctx, "c=3"), db)
		s := tpSession(t, cn)
		if id != ids[1] || s.TagFound() || s.Tag() != "" {
			t.Errorf("got session %d tag %q found %v; want the untagged %d, not found", id, s.Tag(), s.TagFound(), ids[1])
		}
		cn.Close()
		// No untagged session left: a new one, never another tag.
		held := []*sql.Conn{}
		for i := 0; i < 2; i++ {
			cn, id := tpAcquire(t, WithTag(ctx, "c=3"), db)
			held = append(held, cn)
			if id == ids[0] || id == ids[2] {
				t.Errorf("request for c=3 got session %d tagged %q", id, tpSession(t, cn).Tag())
			}
		}
		for _, cn := range held {
			cn.Close()
		}
		tpCheckStats(t, c, tpStatsWant{Open: 4, Idle: 4, Created: 4, TagMisses: 3, checkTags: true})
	})

	t.Run("untagged-request-never-gets-tagged-session", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, "a=1", "b=2")
		cn, id := tpAcquire(t, ctx, db)
		defer cn.Close()
		if id == ids[0] || id == ids[1] || tpSession(t, cn).Tag() != "" || tpSession(t, cn).TagFound() {
			t.Errorf("untagged request got session %d tag %q", id, tpSession(t, cn).Tag())
		}
	})

	t.Run("matchany-most-properties", func(t *testing.T) {
		d := newTPDriver()
		db, c := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, "a=1;b=2", "a=1;c=3;d=4", "x=9")
		mctx := WithMatchAnyTag(WithTag(ctx, "c=3;e=5;a=1"))
		cn, id := tpAcquire(t, mctx, db)
		s := tpSession(t, cn)
		if id != ids[1] || s.TagFound() || s.Tag() != "a=1;c=3;d=4" {
			t.Errorf("matchany got session %d tag %q; want %d (two shared properties)", id, s.Tag(), ids[1])
		}
		cn.Close()
		// Nothing shared: any session (the most recently released), not a new one.
		cn, id = tpAcquire(t, WithMatchAnyTag(WithTag(ctx, "q=1")), db)
		if id == 0 || d.Started.Load() != 3 {
			t.Errorf("matchany with nothing shared opened a new session (%d)", id)
		}
		if id != ids[1] {
			t.Errorf("matchany with nothing shared got %d, want the most recently released %d", id, ids[1])
		}
		cn.Close()
		tpCheckStats(t, c, tpStatsWant{Open: 3, Idle: 3, Created: 3, TagMisses: 2, checkTags: true})
	})

	t.Run("matchany-prefers-untagged-over-partial", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, "a=1;b=2", "")
		cn, id := tpAcquire(t, WithMatchAnyTag(WithTag(ctx, "a=1;b=3")), db)
		defer cn.Close()
		if id != ids[1] {
			t.Errorf("matchany got %d (tag %q); want the untagged session %d", id, tpSession(t, cn).Tag(), ids[1])
		}
	})

	t.Run("normalised", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		ids := tpHoldN(t, db, " b = 2 ; a=1")
		cn, id := tpAcquire(t, WithTag(ctx, "a=1;b=2"), db)
		defer cn.Close()
		s := tpSession(t, cn)
		if id != ids[0] || !s.TagFound() || s.Tag() != "a=1;b=2" {
			t.Errorf("got %d tag %q found %v; want %d a=1;b=2 found", id, s.Tag(), s.TagFound(), ids[0])
		}
	})

	t.Run("release-retags-and-clears", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 0, 1), newTPClock())
		id := tpPut(t, ctx, db, "k=v")
		if got := tpPut(t, WithTag(ctx, "k=v"), db, ""); got != id {
			t.Fatalf("tagged request got %d, want %d", got, id)
		}
		cn, got := tpAcquire(t, ctx, db)
		if got != id || tpSession(t, cn).Tag() != "" {
			t.Errorf("after Release(c, \"\") an untagged request got %d tag %q; want %d untagged", got, tpSession(t, cn).Tag(), id)
		}
		// SetTag changes the tag at once; a plain Close keeps it.
		if err := tpSession(t, cn).SetTag("m=1"); err != nil {
			t.Fatal(err)
		}
		if tpSession(t, cn).Tag() != "m=1" {
			t.Errorf("SetTag did not change Tag()")
		}
		cn.Close()
		cn, got = tpAcquire(t, WithTag(ctx, "m=1"), db)
		if got != id || !tpSession(t, cn).TagFound() {
			t.Errorf("SetTag then Close: tagged request got %d found %v", got, tpSession(t, cn).TagFound())
		}
		cn.Close()
	})
}

// tpTZCallback sets "tz" from the requested tag ("tz=<zone>"; "" resets it to "-") and counts
// its calls.
type tpTZCallback struct {
	calls atomic.Int64
	fresh atomic.Int64 // calls on a session never handed out before (no tz set yet)
}

func (cb *tpTZCallback) fn(ctx context.Context, s *Session, requested string) error {
	cb.calls.Add(1)
	inner := FakeConnOf(s.Unwrap())
	if _, ok := inner.Vars["tz"]; !ok {
		cb.fresh.Add(1)
	}
	v := "-"
	if requested != "" {
		v = strings.TrimPrefix(requested, "tz=")
	}
	if err := s.Exec(ctx, "SET tz = "+v); err != nil {
		return err
	}
	return s.SetTag(requested)
}

func TestTagSessionCallback(t *testing.T) {
	d := newTPDriver()
	cb := &tpTZCallback{}
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil, WithSessionCallback(cb.fn))
	ctx := context.Background()
	utc := WithTag(ctx, "tz=utc")

	// New session: the callback runs and tags it.
	cn, id := tpAcquire(t, utc, db)
	if cb.calls.Load() != 1 || tpSession(t, cn).Tag() != "tz=utc" || tpSession(t, cn).TagFound() {
		t.Fatalf("new session: %d callback calls, tag %q, found %v", cb.calls.Load(), tpSession(t, cn).Tag(), tpSession(t, cn).TagFound())
	}
	if v := tpShow(t, ctx, cn, "tz"); v != "utc" {
		t.Fatalf("tz = %q after the callback", v)
	}
	cn.Close() // keeps the tag the callback set

	// Same tag again: found, the callback does not run, the state is there.
	cn, got := tpAcquire(t, utc, db)
	if got != id || !tpSession(t, cn).TagFound() || cb.calls.Load() != 1 {
		t.Fatalf("reuse: session %d found %v callback calls %d", got, tpSession(t, cn).TagFound(), cb.calls.Load())
	}
	if v := tpShow(t, ctx, cn, "tz"); v != "utc" {
		t.Fatalf("tz = %q on reuse", v)
	}
	cn.Close()

	// Untagged: a new session (the tagged one does not fit), whose state is not the tag's.
	cn, got = tpAcquire(t, ctx, db)
	if got == id {
		t.Fatalf("untagged request got the tagged session")
	}
	if v := tpShow(t, ctx, cn, "tz"); v != "-" {
		t.Fatalf("untagged session has tz = %q", v)
	}
	if cb.calls.Load() != 2 {
		t.Errorf("callback calls %d, want 2 (it runs for a new session)", cb.calls.Load())
	}
	untagged := got
	cn.Close()

	// A different tag takes the untagged session and the callback brings it in line.
	cn, got = tpAcquire(t, WithTag(ctx, "tz=est"), db)
	if got != untagged || tpSession(t, cn).TagFound() || cb.calls.Load() != 3 {
		t.Fatalf("tz=est: session %d found %v calls %d", got, tpSession(t, cn).TagFound(), cb.calls.Load())
	}
	if v := tpShow(t, ctx, cn, "tz"); v != "est" {
		t.Fatalf("tz = %q", v)
	}
	cn.Close()
	// Plain queries select by the same rules.
	var v string
	if err := db.QueryRowContext(WithTag(ctx, "tz=est"), "SHOW tz").Scan(&v); err != nil || v != "est" {
		t.Fatalf("query with tz=est: %q %v", v, err)
	}
	if err := db.QueryRowContext(utc, "SHOW tz").Scan(&v); err != nil || v != "utc" {
		t.Fatalf("query with tz=utc: %q %v", v, err)
	}
	if cb.calls.Load() != 3 {
		t.Errorf("callback calls %d, want 3", cb.calls.Load())
	}
	s := c.Stats()
	if s.TagHits != 3 || s.TagMisses != 2 {
		t.Errorf("TagHits %d TagMisses %d, want 3 and 2", s.TagHits, s.TagMisses)
	}

	// A failing callback fails the checkout, and the session is not pooled again.
	failing := errors.New("callback says no")
	d2 := newTPDriver()
	db2, c2 := tpOpen(t, d2, tpPC(0, 0, 1), nil, WithSessionCallback(func(ctx context.Context, s *Session, tag string) error {
		if tag == "bad=1" {
			return failing
		}
		return nil
	}))
	if _, err := Acquire(WithTag(ctx, "bad=1"), db2); !errors.Is(err, failing) {
		t.Errorf("Acquire with a failing callback: %v", err)
	}
	tpCheckStats(t, c2, tpStatsWant{Created: 1, Closed: 1, Terminated: 1, checkTerminated: true})
}

// Sessions opened in the background (min, incr) are new to whoever first gets them: the session
// callback must run for them as for any new session.
func TestTagSessionCallbackRunsForBackgroundSessions(t *testing.T) {
	d := newTPDriver()
	cb := &tpTZCallback{}
	db, c := tpOpen(t, d, tpPC(2, 0, 1), nil, WithSessionCallback(cb.fn))
	tpEventually(t, "2 idle", func() bool { return c.Stats().Idle == 2 })
	ctx := context.Background()
	a, _ := tpAcquire(t, ctx, db)
	b, _ := tpAcquire(t, ctx, db)
	for _, cn := range []*sql.Conn{a, b} {
		if v := tpShow(t, ctx, cn, "tz"); v != "-" {
			t.Errorf("untagged checkout of a background session: tz = %q, want \"-\" (callback not run)", v)
		}
	}
	a.Close()
	b.Close()
	if n := cb.calls.Load(); n != 2 {
		t.Errorf("callback ran %d times for two new sessions", n)
	}
	// Reused: it does not run again.
	tpQueryID(t, ctx, db)
	if n := cb.calls.Load(); n != 2 {
		t.Errorf("callback ran %d times; it must not run for a reused session with the same tag", n)
	}
}

// A waiter at max must get a session by the selection rules too: a released session with
// another tag is not handed to an untagged waiter.
func TestTagWaiterGetsOnlyFittingSession(t *testing.T) {
	ctx := context.Background()

	t.Run("untagged-waiter", func(t *testing.T) {
		d := newTPDriver()
		db, c := tpOpen(t, d, tpPC(0, 1, 1), nil)
		a, ida := tpAcquire(t, ctx, db)
		if _, err := a.ExecContext(ctx, "SET tz = utc"); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			cn, err := Acquire(ctx, db)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			var v string
			cn.QueryRowContext(ctx, "SHOW tz").Scan(&v)
			r := fmt.Sprintf("id=%d tag=%q tz=%q", tpIDOf(t, cn), tpSession(t, cn).Tag(), v)
			cn.Close()
			got <- r
		}()
		tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
		if err := Release(a, "tz=utc"); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("id=%d tag=%q tz=%q", ida+1, "", "")
		if r := <-got; r != want {
			t.Errorf("untagged waiter: %s; want %s (a new session; the tagged one closed for its slot)", r, want)
		}
		tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1, Terminated: 0, checkTerminated: true})
	})

	t.Run("tagged-waiter", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 1, 1), nil)
		a, ida := tpAcquire(t, ctx, db)
		got := make(chan string, 1)
		go func() {
			cn, err := Acquire(WithTag(ctx, "tz=utc"), db)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			s := tpSession(t, cn)
			r := fmt.Sprintf("id=%d tag=%q found=%v", tpIDOf(t, cn), s.Tag(), s.TagFound())
			cn.Close()
			got <- r
		}()
		c, _ := ConnectorOf(db)
		tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
		if err := Release(a, "tz=utc"); err != nil {
			t.Fatal(err)
		}
		if r, want := <-got, fmt.Sprintf("id=%d tag=%q found=true", ida, "tz=utc"); r != want {
			t.Errorf("tagged waiter: %s; want %s", r, want)
		}
	})

	t.Run("untagged-waiter-gets-untagged-release", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 1, 1), nil)
		a, ida := tpAcquire(t, WithTag(ctx, "tz=utc"), db)
		got := make(chan string, 1)
		go func() {
			cn, err := Acquire(ctx, db)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			s := tpSession(t, cn)
			r := fmt.Sprintf("id=%d tag=%q found=%v", tpIDOf(t, cn), s.Tag(), s.TagFound())
			cn.Close()
			got <- r
		}()
		c, _ := ConnectorOf(db)
		tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
		a.Close() // untagged
		if r, want := <-got, fmt.Sprintf("id=%d tag=%q found=false", ida, ""); r != want {
			t.Errorf("untagged waiter: %s; want %s (TagFound is false when no tag was asked for)", r, want)
		}
	})

	t.Run("matchany-waiter", func(t *testing.T) {
		d := newTPDriver()
		db, _ := tpOpen(t, d, tpPC(0, 1, 1), nil)
		a, ida := tpAcquire(t, ctx, db)
		got := make(chan int64, 1)
		go func() {
			cn, err := Acquire(WithMatchAnyTag(WithTag(ctx, "tz=est")), db)
			if err != nil {
				got <- -1
				return
			}
			id := tpIDOf(t, cn)
			cn.Close()
			got <- id
		}()
		c, _ := ConnectorOf(db)
		tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
		if err := Release(a, "tz=utc"); err != nil {
			t.Fatal(err)
		}
		if id := <-got; id != ida {
			t.Errorf("matchany waiter got %d, want the released session %d", id, ida)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 5. Purity, connection class.

func TestPurityNewAndSelf(t *testing.T) {
	ctx := context.Background()
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	first := tpQueryID(t, ctx, db)
	seen := map[int64]bool{first: true}
	for i := 0; i < 5; i++ {
		id := tpQueryID(t, WithPurity(ctx, PurityNew), db)
		if seen[id] {
			t.Fatalf("purity NEW got session %d, used before", id)
		}
		seen[id] = true
	}
	// SELF and DEFAULT reuse (the most recently released).
	last := tpQueryID(t, ctx, db)
	for _, p := range []Purity{PuritySelf, PurityDefault} {
		if id := tpQueryID(t, WithPurity(ctx, p), db); id != last {
			t.Errorf("purity %v got session %d, want the pooled %d", p, id, last)
		}
	}
	if s := c.Stats(); s.Created != 6 {
		t.Errorf("Created %d, want 6", s.Created)
	}

	// At max, NEW still gets a fresh session: an idle one gives up its slot.
	d2 := newTPDriver()
	db2, c2 := tpOpen(t, d2, tpPC(0, 1, 1), nil)
	a := tpQueryID(t, ctx, db2)
	if b := tpQueryID(t, WithPurity(ctx, PurityNew), db2); b == a {
		t.Errorf("purity NEW at max reused session %d", a)
	}
	tpCheckStats(t, c2, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1})

	// A NEW waiter is not handed a released session: it gets the slot.
	cn, ida := tpAcquire(t, ctx, db2)
	got := make(chan int64, 1)
	go func() {
		var id int64
		if err := db2.QueryRowContext(WithPurity(ctx, PurityNew), "SELECT id").Scan(&id); err != nil {
			id = -1
		}
		got <- id
	}()
	tpEventually(t, "a waiter", func() bool { return c2.Stats().Waits == 1 })
	cn.Close()
	if id := <-got; id < 0 || id == ida {
		t.Errorf("NEW waiter got %d; want a fresh session (not %d)", id, ida)
	}

	// The default purity.
	d3 := newTPDriver()
	db3, _ := tpOpen(t, d3, tpPC(0, 0, 1), nil, WithDefaultPurity(PurityNew))
	x := tpQueryID(t, ctx, db3)
	if y := tpQueryID(t, ctx, db3); y == x {
		t.Errorf("WithDefaultPurity(PurityNew): reused %d", x)
	}
	z := tpQueryID(t, WithPurity(ctx, PuritySelf), db3)
	if w := tpQueryID(t, WithPurity(ctx, PuritySelf), db3); w != z {
		t.Errorf("PuritySelf over a NEW default did not reuse: %d then %d", z, w)
	}
}

func TestClassIsolationAndValidation(t *testing.T) {
	ctx := context.Background()
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(1, 0, 1), nil, WithDefaultClass("app"))
	tpEventually(t, "min session", func() bool { return c.Stats().Idle == 1 })

	// The background session belongs to the default class.
	def := tpQueryID(t, ctx, db)
	if def != 1 {
		t.Errorf("default-class query got session %d, want the background one (1)", def)
	}
	if id := tpQueryID(t, WithClass(ctx, "app"), db); id != def {
		t.Errorf("WithClass(app) = default class; got %d, want %d", id, def)
	}
	hr := tpQueryID(t, WithClass(ctx, "hr"), db)
	if hr == def {
		t.Fatalf("class hr got the default class's session")
	}
	if id := tpQueryID(t, WithClass(ctx, "hr"), db); id != hr {
		t.Errorf("class hr did not reuse its session: %d, want %d", id, hr)
	}
	// Not even matchany or an exact tag crosses a class.
	tpPut(t, WithClass(ctx, "hr"), db, "k=v")
	cn, id := tpAcquire(t, WithMatchAnyTag(WithTag(WithClass(ctx, "rec"), "k=v")), db)
	if id == hr || id == def || tpSession(t, cn).TagFound() {
		t.Errorf("class rec got session %d (hr %d, default %d)", id, hr, def)
	}
	cn.Close()

	for _, bad := range []string{"a*b", "*", strings.Repeat("c", 1025), "x\x00"} {
		if _, err := Acquire(WithClass(ctx, bad), db); !errors.Is(err, ErrInvalidClass) {
			t.Errorf("class %.20q: %v, want ErrInvalidClass", bad, err)
		}
	}
	if _, err := Acquire(WithClass(ctx, strings.Repeat("c", 1024)), db); err != nil {
		t.Errorf("a 1024-byte class: %v", err)
	}
	if _, err := NewConnector(tpConnector(newTPDriver()), WithDefaultClass("a*b")); !errors.Is(err, ErrInvalidClass) {
		t.Errorf("WithDefaultClass(a*b): %v, want ErrInvalidClass", err)
	}
	if _, err := NewConnector(tpConnector(newTPDriver()), WithDefaultClass(strings.Repeat("c", 1025))); !errors.Is(err, ErrInvalidClass) {
		t.Errorf("WithDefaultClass(1025 bytes): %v, want ErrInvalidClass", err)
	}

	// At max, a class's request closes an idle session of another class for its slot; it never
	// takes it.
	d2 := newTPDriver()
	db2, c2 := tpOpen(t, d2, tpPC(0, 1, 1), nil)
	a := tpQueryID(t, WithClass(ctx, "a"), db2)
	if b := tpQueryID(t, WithClass(ctx, "b"), db2); b == a {
		t.Errorf("class b got class a's session at max")
	}
	tpCheckStats(t, c2, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1})
}

func TestPoolKeyUsersNeverShare(t *testing.T) {
	// WithUser needs a DSN-opened connector (credentials go into the inner DSN); the real
	// servers check it end to end. Here: the pool partitions by user and password.
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	p := c.pool
	ctx := context.Background()
	id := tpQueryID(t, ctx, db)
	keys := []poolKey{{user: "u1", pass: "p"}, {user: "u1", pass: "other"}, {user: "u2", pass: "p"}}
	for _, k := range keys {
		p.mu.Lock()
		ph, _ := p.takeIdleLocked(k, "", true, time.Time{})
		p.mu.Unlock()
		if ph != nil {
			t.Errorf("key %+v took session %d of the default user", k, id)
		}
	}
	key, _, _, err := c.resolve(selectorFrom(WithUser(ctx, "u1", "p")))
	if err != nil || key != (poolKey{user: "u1", pass: "p"}) {
		t.Errorf("resolve(WithUser) = %+v, %v", key, err)
	}
	// Without a DSN the connector cannot make per-user sessions: an error, not a default session.
	if _, err := Acquire(WithUser(ctx, "u1", "p"), db); err == nil {
		t.Errorf("WithUser on a NewConnector connector succeeded")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})
}

// ---------------------------------------------------------------------------------------------
// 7. Stats against a model (Acquire, Release, SessionOf: session_test.go).

func tpStress(t *testing.T, pc PoolConfig, reconfigure bool) {
	d := newTPDriver()
	cb := &tpTZCallback{}
	db, c := tpOpen(t, d, pc, nil, WithSessionCallback(cb.fn))
	tags := []string{"", "tz=utc", "tz=est", "tz=cet"}
	classes := []string{"", "a", "b"}
	var (
		kills, taggedAcq, taggedQueries, found, violations atomic.Int64
		maxOpenSeen                                        atomic.Int64
	)
	fail := func(format string, args ...any) {
		violations.Add(1)
		t.Errorf(format, args...)
	}
	const goroutines, ops = 8, 250
	stop := make(chan struct{})
	var bg sync.WaitGroup
	if reconfigure {
		bg.Add(1)
		go func() {
			defer bg.Done()
			cfgs := []PoolConfig{
				{Min: 2, Max: 4, Incr: 2},
				{Min: 0, Max: 2, Incr: 1, GetMode: GetForce},
				{Min: 3, Max: 8, Incr: 3, MaxLifetime: time.Hour},
				{Min: 1, Max: 1, Incr: 1},
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
				}
				if err := c.Reconfigure(cfgs[i%len(cfgs)]); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed*7+1))
			for i := 0; i < ops; i++ {
				ctx := context.Background()
				tag := tags[rng.IntN(len(tags))]
				class := classes[rng.IntN(len(classes))]
				if class != "" {
					ctx = WithClass(ctx, class)
				}
				if rng.IntN(5) == 0 {
					ctx = WithPurity(ctx, PurityNew)
				}
				want := "-"
				if tag != "" {
					want = strings.TrimPrefix(tag, "tz=")
				}
				switch op := rng.IntN(10); {
				case op < 4: // a plain query with a tag, maybe any tag
					if tag != "" {
						taggedQueries.Add(1)
					}
					if rng.IntN(4) == 0 {
						ctx = WithMatchAnyTag(ctx)
					}
					var v string
					if err := db.QueryRowContext(WithTag(ctx, tag), "SHOW tz").Scan(&v); err != nil {
						fail("query: %v", err)
					} else if v != want {
						fail("query with tag %q ran on a session with tz %q", tag, v)
					}
				case op < 8: // Acquire, check, Release with a random tag
					if tag == "" {
						tag = "tz=utc" // count tagged checkouts through Acquire only
						want = "utc"
					}
					taggedAcq.Add(1)
					cn, err := Acquire(WithTag(ctx, tag), db)
					if err != nil {
						fail("Acquire: %v", err)
						continue
					}
					s, _ := SessionOf(cn)
					if s.TagFound() {
						found.Add(1)
					}
					if s.Tag() != tag {
						fail("Acquire(%q): session tag %q", tag, s.Tag())
					}
					var v string
					if err := cn.QueryRowContext(ctx, "SHOW tz").Scan(&v); err != nil || v != want {
						fail("Acquire(%q): tz %q, %v", tag, v, err)
					}
					// Change the state now and then, and say so in the tag kept on release.
					if rng.IntN(2) == 0 {
						tag = tags[rng.IntN(len(tags))]
						v := "-"
						if tag != "" {
							v = strings.TrimPrefix(tag, "tz=")
						}
						if _, err := cn.ExecContext(ctx, "SET tz = "+v); err != nil {
							fail("SET tz: %v", err)
						}
					}
					if err := Release(cn, tag); err != nil {
						fail("Release: %v", err)
					}
				case op < 9: // the session dies while held
					cn, err := Acquire(WithClass(context.Background(), class), db)
					if err != nil {
						fail("Acquire: %v", err)
						continue
					}
					s, _ := SessionOf(cn)
					FakeConnOf(s.Unwrap()).dead.Store(true)
					kills.Add(1)
					cn.Close()
				default: // the session dies while idle, in a class nobody asks a tag of
					cn, err := Acquire(WithClass(context.Background(), "doom"), db)
					if err != nil {
						fail("Acquire(doom): %v", err)
						continue
					}
					s, _ := SessionOf(cn)
					FakeConnOf(s.Unwrap()).failReset.Store(true)
					cn.Close()
					if _, err := db.ExecContext(WithClass(context.Background(), "doom"), "SET x = 1"); err != nil {
						fail("exec after a dead idle session: %v", err)
					}
				}
				if i%16 == 0 {
					s := c.Stats()
					if s.Busy > s.Open || s.Idle > s.Open || s.Busy+s.Idle > s.Open || s.Busy < 0 || s.Idle < 0 {
						fail("inconsistent snapshot %+v", s)
					}
					if int64(s.Open) > maxOpenSeen.Load() {
						maxOpenSeen.Store(int64(s.Open))
					}
					if !reconfigure && pc.Max > 0 && pc.GetMode != GetForce && s.Open > pc.Max {
						fail("Open %d above max %d", s.Open, pc.Max)
					}
				}
				if violations.Load() > 10 {
					return
				}
			}
		}(uint64(g + 1))
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	if reconfigure {
		// The last configuration applied is any of four, and the
		// maintainer tops a Min up whenever it wakes: end on one without
		// a Min, so that the pool can be quiet when it is checked.
		final := pc
		final.Min = 0
		if err := c.Reconfigure(final); err != nil {
			t.Fatal(err)
		}
	}

	// Quiesce: background opens settle, and the sessions they retired (a
	// background open that lands above a Max that Reconfigure lowered
	// meanwhile gives its slot up under the lock, then closes the session
	// after it, in its own goroutine) are closed.
	tpEventually(t, "the pool to settle", func() bool {
		s := c.Stats()
		return s.Busy == 0 && s.Open == s.Idle && s.Created-s.Closed == int64(s.Open) && len(d.LiveIDs()) == s.Open
	})
	s := c.Stats()
	if s.Busy != 0 || s.Open != s.Idle {
		t.Errorf("after quiescing: %+v", s)
	}
	if int64(s.Open) != d.Opens.Load()-d.Closes.Load() || len(d.LiveIDs()) != s.Open {
		t.Errorf("Open %d; the driver has %d open (%d opened, %d closed)", s.Open, len(d.LiveIDs()), d.Opens.Load(), d.Closes.Load())
	}
	if s.Created-s.Closed != int64(s.Open) {
		t.Errorf("Created %d - Closed %d != Open %d", s.Created, s.Closed, s.Open)
	}
	tpCheckDriver(t, c, d)
	if want := kills.Load() + d.BadResets.Load(); s.Terminated != want {
		t.Errorf("Terminated %d; want %d (%d killed while held, %d found dead at reset)", s.Terminated, want, kills.Load(), d.BadResets.Load())
	}
	// Every tagged checkout counts once, as a hit or a miss; the Acquires show which.
	if got, want := s.TagHits+s.TagMisses, taggedAcq.Load()+taggedQueries.Load(); got != want {
		t.Errorf("TagHits %d + TagMisses %d = %d; %d tagged Acquires and %d tagged queries were made", s.TagHits, s.TagMisses, got, taggedAcq.Load(), taggedQueries.Load())
	}
	if s.TagHits < found.Load() || s.TagMisses < taggedAcq.Load()-found.Load() {
		t.Errorf("TagHits %d TagMisses %d; of %d tagged Acquires %d saw TagFound", s.TagHits, s.TagMisses, taggedAcq.Load(), found.Load())
	}
	if s.Waits == 0 && s.WaitTime != 0 || s.WaitTimeouts != 0 {
		t.Errorf("Waits %d WaitTime %v WaitTimeouts %d", s.Waits, s.WaitTime, s.WaitTimeouts)
	}
	if !reconfigure && pc.Min > 0 && s.Open < pc.Min {
		t.Errorf("Open %d below min %d", s.Open, pc.Min)
	}
	t.Logf("%+v; %d killed, %d dead at reset, %d tagged acquires (%d found), max open seen %d",
		s, kills.Load(), d.BadResets.Load(), taggedAcq.Load(), found.Load(), maxOpenSeen.Load())

	// Closing the DB closes every session.
	db.Close()
	s = c.Stats()
	if s.Open != 0 || s.Idle != 0 || s.Busy != 0 || s.Closed != s.Created || len(d.LiveIDs()) != 0 {
		t.Errorf("after Close: %+v; driver has %d open", s, len(d.LiveIDs()))
	}
	tpCheckDriver(t, c, d)
}

// ---------------------------------------------------------------------------------------------
// Purges.

// ---------------------------------------------------------------------------------------------
// Close: nothing outlives the connector, even background opens in flight.

func TestPoolCloseLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := newTPDriver()
	release := make(chan struct{})
	var background atomic.Int64
	d.OnConnect = func(ctx context.Context, n int64) error {
		if tpIsCaller(ctx) || background.Add(1) <= 3 {
			return nil // the caller's own and the first three (min)
		}
		select { // later background opens hang until the connector closes
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c, err := NewConnector(tpConnector(d))
	if err != nil {
		t.Fatal(err)
	}
	if err := installPool(c, PoolConfig{Min: 3, Incr: 2, IdleTimeout: time.Minute, MaxLifetime: time.Hour}, nil); err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	tpEventually(t, "3 idle", func() bool { return c.Stats().Idle == 3 })
	ctx := tpCaller(context.Background())
	var conns []*sql.Conn
	for i := 0; i < 4; i++ { // the fourth grows the pool; one background open hangs
		cn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := cn.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	tpEventually(t, "a background open in flight", func() bool { return background.Load() == 4 })
	for _, cn := range conns {
		cn.Close()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if n := len(d.LiveIDs()); n != 0 {
		t.Errorf("%d sessions open after Close", n)
	}
	tpCheckDriver(t, c, d)
}

// TestPoolPickPrefersBestRankedHost pins pickLocked: LIFO among the usable
// sessions of the tag, or with runtime load balancing the most recently
// listed on the best-ranked host.
func TestPoolPickPrefersBestRankedHost(t *testing.T) {
	hostA, hostB := &host{addr: "a:1"}, &host{addr: "b:1"}
	hostA.rank.Store(1)
	hostB.rank.Store(0)
	mk := func(h *host, tag string, usable bool) *session {
		ph := &session{hostRef: h, tag: tag}
		ph.idle.Store(usable)
		return ph
	}
	list := []*session{mk(hostB, "", true), mk(hostB, "", false), mk(hostA, "", true), mk(hostA, "t=1", true)}
	for _, tc := range []struct {
		rlb  bool
		tag  string
		want int
	}{
		{false, "", 2},   // LIFO: the last usable untagged one
		{true, "", 0},    // the best host's, though listed earlier
		{true, "t=1", 3}, // the only one with the tag, whatever its host
		{false, "t=2", -1},
	} {
		p := &pool{rlb: tc.rlb}
		if got := p.pickLocked(list, tc.tag, time.Time{}); got != tc.want {
			t.Errorf("rlb %v, tag %q: pick %d, want %d", tc.rlb, tc.tag, got, tc.want)
		}
	}
}
