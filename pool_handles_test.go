package hasql

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// Tests of pool_handles.go on fakedb: database/sql's own knobs govern the physical sessions
// (close-through), except where hasql keeps a session for its own settings; and a session
// serves only handles at least as old as itself below pool.max (the age rule).

// ohOpen opens a *sql.DB over a connector on d with pool config pc, leaving database/sql's
// own settings at their defaults (tpOpen raises MaxIdleConns).
func ohOpen(t *testing.T, d *FakeDB, pc PoolConfig, clk *tpClock) (*sql.DB, *Connector) {
	t.Helper()
	db, c := tpOpen(t, d, pc, clk)
	db.SetMaxIdleConns(2) // database/sql's default
	return db, c
}

// ohExec runs one ad-hoc statement and returns the session it ran on.
func ohExec(t *testing.T, ctx context.Context, db *sql.DB) int64 {
	t.Helper()
	return tpQueryID(t, ctx, db)
}

// With SetMaxIdleConns(0), database/sql closes every handle at release: every checkout opens a
// real connection and every release closes it, as without hasql (pgx's
// TestOptionBeforeAfterConnect counts its connect hooks so).
func TestOnePoolMaxIdleConnsZeroOpensPerCheckout(t *testing.T) {
	d := newTPDriver()
	db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
	db.SetMaxIdleConns(0)
	ctx := context.Background()
	seen := map[int64]bool{}
	const n = 5
	for i := 0; i < n; i++ {
		id := ohExec(t, ctx, db)
		if seen[id] {
			t.Errorf("checkout %d reused session %d", i, id)
		}
		seen[id] = true
		if live := len(d.LiveIDs()); live != 0 {
			t.Errorf("after checkout %d: %d connections open, want 0", i, live)
		}
	}
	if o, cl := d.Opens.Load(), d.Closes.Load(); o != n || cl != n {
		t.Errorf("driver opened %d and closed %d connections, want %d and %d", o, cl, n, n)
	}
	tpCheckStats(t, c, tpStatsWant{Created: n, Closed: n, Terminated: 0, checkTerminated: true})
	tpCheckDriver(t, c, d)
}

// SetMaxIdleConns(1) with three handles in use at once: database/sql keeps one handle and
// closes two, and hasql closes their two sessions; the kept handle takes its own back.
func TestOnePoolMaxIdleConnsClosesTheSessionsOfClosedHandles(t *testing.T) {
	d := newTPDriver()
	db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	ida, idb, ide := tpThreeReleased(t, ctx, db) // b, a, e released: database/sql keeps b's
	live := d.LiveIDs()
	if len(live) != 1 || !live[idb] {
		t.Errorf("open after release: %v; want only %d (of %d, %d, %d)", live, idb, ida, idb, ide)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 3, Closed: 2})
	if id := ohExec(t, ctx, db); id != idb {
		t.Errorf("the kept handle ran on session %d, want its own %d", id, idb)
	}
	tpCheckDriver(t, c, d)
}

// SetConnMaxLifetime: database/sql closes a handle older than the lifetime at its next checkout,
// and its session closes with it; the sessions opened after are new.
func TestOnePoolConnMaxLifetimeClosesSessions(t *testing.T) {
	d := newTPDriver()
	db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
	const lifetime = 50 * time.Millisecond
	db.SetConnMaxLifetime(lifetime)
	ctx := context.Background()
	first := ohExec(t, ctx, db)
	if id := ohExec(t, ctx, db); id != first {
		t.Fatalf("within the lifetime: session %d, want %d again", id, first)
	}
	time.Sleep(2 * lifetime) // past it (database/sql reads the real clock)
	next := ohExec(t, ctx, db)
	if next == first {
		t.Fatalf("session %d served a checkout after its handle's lifetime", first)
	}
	if d.LiveIDs()[first] {
		t.Errorf("session %d still open after database/sql closed its handle for its lifetime", first)
	}
	if n := db.Stats().MaxLifetimeClosed; n < 1 {
		t.Errorf("database/sql closed %d handles for their lifetime, want at least 1", n)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1})
	tpCheckDriver(t, c, d)
}

// SetConnMaxIdleTime: database/sql's cleaner closes a handle idle too long, and its session
// closes with it.
func TestOnePoolConnMaxIdleTimeClosesSessions(t *testing.T) {
	d := newTPDriver()
	db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
	db.SetConnMaxIdleTime(20 * time.Millisecond) // the cleaner runs every second at most
	ctx := context.Background()
	id := ohExec(t, ctx, db)
	tpEventually(t, "database/sql closed the idle handle", func() bool { return db.Stats().MaxIdleTimeClosed >= 1 })
	tpEventually(t, "its session closed", func() bool { return !d.LiveIDs()[id] })
	tpCheckStats(t, c, tpStatsWant{Created: 1, Closed: 1})
	tpCheckDriver(t, c, d)
}

// What hasql keeps for its own settings outlives the handle database/sql closes: up to
// pool.min sessions, a tagged session, a session of a connection class.
func TestOnePoolKeepsWhatHasqlsSettingsNeed(t *testing.T) {
	ctx := context.Background()

	t.Run("pool.min", func(t *testing.T) {
		d := newTPDriver()
		db, c := ohOpen(t, d, tpPC(2, 0, 1), nil)
		db.SetMaxIdleConns(0)
		tpEventually(t, "2 idle sessions", func() bool { return c.Stats().Idle == 2 })
		for i := 0; i < 4; i++ {
			ohExec(t, ctx, db)
		}
		// Three at once: one more session, closed with its handle; the two min ones stay.
		var held []*sql.Conn
		for i := 0; i < 3; i++ {
			cn, _ := tpAcquire(t, ctx, db)
			held = append(held, cn)
		}
		for _, cn := range held {
			cn.Close()
		}
		if o, cl := d.Opens.Load(), d.Closes.Load(); o != 3 || cl != 1 {
			t.Errorf("driver opened %d and closed %d connections, want 3 (2 for min) and 1", o, cl)
		}
		tpCheckStats(t, c, tpStatsWant{Open: 2, Idle: 2, Created: 3, Closed: 1})
		tpCheckDriver(t, c, d)
	})

	// A session not opened for min, whose handle closes when no more than min are open, is kept
	// (and not closed and opened again by the pool's top-up).
	t.Run("pool.min-raised", func(t *testing.T) {
		d := newTPDriver()
		db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
		db.SetMaxIdleConns(0)
		cn, id := tpAcquire(t, ctx, db)
		if err := c.Reconfigure(tpPC(1, 0, 1)); err != nil { // one session open: min reached
			t.Fatal(err)
		}
		cn.Close()
		if again := ohExec(t, ctx, db); again != id {
			t.Errorf("checkout got session %d, want %d kept for min", again, id)
		}
		if o, cl := d.Opens.Load(), d.Closes.Load(); o != 1 || cl != 0 {
			t.Errorf("driver opened %d and closed %d connections, want 1 and 0", o, cl)
		}
		tpCheckDriver(t, c, d)
	})

	t.Run("tagged", func(t *testing.T) {
		d := newTPDriver()
		db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
		db.SetMaxIdleConns(0)
		id := tpPut(t, ctx, db, "k=v") // released with a tag: the handle closes, the session stays
		cn, again := tpAcquire(t, WithTag(ctx, "k=v"), db)
		if again != id || !tpSession(t, cn).TagFound() {
			t.Errorf("tagged checkout got session %d (found %v), want the kept %d", again, tpSession(t, cn).TagFound(), id)
		}
		if err := Release(cn, ""); err != nil { // untagged now: closed with its handle
			t.Fatal(err)
		}
		if d.LiveIDs()[id] {
			t.Errorf("session %d, untagged, outlived its handle", id)
		}
		tpCheckStats(t, c, tpStatsWant{Created: 1, Closed: 1})
		tpCheckDriver(t, c, d)
	})

	t.Run("class", func(t *testing.T) {
		d := newTPDriver()
		db, c := ohOpen(t, d, tpPC(0, 0, 1), nil)
		db.SetMaxIdleConns(0)
		cctx := WithClass(ctx, "reports")
		id := ohExec(t, cctx, db)
		if again := ohExec(t, cctx, db); again != id {
			t.Errorf("class checkout got session %d, want the kept %d", again, id)
		}
		tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})
		tpCheckDriver(t, c, d)
	})
}

// A handle database/sql closes closes only the session that is still its own: one another
// handle took meanwhile is that handle's, and closes with it.
func TestOnePoolCloseLeavesASessionAnotherHandleHas(t *testing.T) {
	d := newTPDriver()
	_, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	v1, v2 := newHandle(c), newHandle(c) // both made before the session: either may have it
	if err := v1.bind(ctx, true); err != nil {
		t.Fatal(err)
	}
	s1 := v1.ph
	v1.IsValid() // parked on v1
	if err := v2.bind(ctx, true); err != nil || v2.ph != s1 {
		t.Fatalf("v2 did not get the session parked on v1 (%v)", err)
	}
	v2.IsValid() // parked on v2 now, idle
	v1.Close()   // as database/sql would close v1 idle: s1 is v2's
	if s1.bad.Load() || !d.LiveIDs()[FakeConnOf(s1.inner).ID] {
		t.Fatal("closing v1 closed the session v2 had last")
	}
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})
	v2.Close()
	tpCheckStats(t, c, tpStatsWant{Created: 1, Closed: 1})
	tpCheckDriver(t, c, d)
}

// The age rule: below pool.max a handle does not take an idle session opened before it was
// made (database/sql measures ConnMaxLifetime on the handle, so the session would outlive
// it), unless hasql keeps the session for its own settings or it was opened in the
// background and never handed out; at pool.max it takes any that fits.
func TestOnePoolSessionServesNoYoungerHandle(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		pc    PoolConfig
		ctx   context.Context
		setup func(p *pool, ph *session)
		same  bool // the younger handle gets the older session
	}{
		{name: "untagged", pc: tpPC(0, 0, 1), ctx: ctx, same: false},
		{name: "at-max", pc: tpPC(0, 1, 1), ctx: ctx, same: true},
		{name: "tagged", pc: tpPC(0, 0, 1), ctx: WithTag(ctx, "k=v"), same: true},
		{name: "class", pc: tpPC(0, 0, 1), ctx: WithClass(ctx, "reports"), same: true},
		{name: "kept-for-min", pc: tpPC(0, 0, 1), ctx: ctx, same: true, setup: func(p *pool, ph *session) {
			p.mu.Lock()
			ph.minKeep = true
			p.mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTPDriver()
			clk := newTPClock()
			_, c := tpOpen(t, d, tc.pc, clk)
			v1 := newHandle(c)
			if err := v1.bind(tc.ctx, true); err != nil {
				t.Fatal(err)
			}
			s1 := v1.ph
			if tag := selectorFrom(tc.ctx).tag; tag != "" {
				if err := v1.view.SetTag(tag); err != nil {
					t.Fatal(err)
				}
			}
			v1.IsValid()
			if tc.setup != nil {
				tc.setup(c.pool, s1)
			}
			clk.Advance(time.Second)
			v2 := newHandle(c)
			if err := v2.bind(tc.ctx, true); err != nil {
				t.Fatal(err)
			}
			if got := v2.ph == s1; got != tc.same {
				t.Errorf("the younger handle got the older session: %v, want %v", got, tc.same)
			}
			v2.IsValid()
		})
	}

	// Opened in the background (pool.incr) and never handed out: any handle may have it.
	t.Run("background-unused", func(t *testing.T) {
		d := newTPDriver()
		clk := newTPClock()
		_, c := tpOpen(t, d, tpPC(0, 0, 2), clk)
		v1 := newHandle(c)
		if err := v1.bind(ctx, true); err != nil { // opens one, and one more in the background
			t.Fatal(err)
		}
		tpEventually(t, "the background session", func() bool { return c.Stats().Idle == 1 })
		clk.Advance(time.Second)
		v2 := newHandle(c)
		if err := v2.bind(ctx, true); err != nil {
			t.Fatal(err)
		}
		if n := d.Opens.Load(); n != 2 {
			t.Errorf("%d connections opened, want 2: the background one should serve the younger handle", n)
		}
		v1.IsValid()
		v2.IsValid()
	})
}
