package hasql

// Tests of the pool's purges (pool_purge.go) on fakedb, with the helpers of
// pool_test.go.

import (
	"context"
	"database/sql"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPoolPurgeHandsFreedSlotsToWaiters: a purge that closes an idle session frees its slot, and
// a checkout waiting on the full pool gets it at once and opens a new session. Through the
// public API a checkout waits only when no session is idle (a release hands its session to a
// waiter first), so the test puts the pool in that state by hand: every purge must free slots
// the one way (freeSlotsLocked), not count on that.
func TestPoolPurgeHandsFreedSlotsToWaiters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		purge func(p *pool, host string)
	}{
		{"purgeAll", func(p *pool, _ string) { p.purgeAll() }},
		{"purgeHost", func(p *pool, host string) { p.purgeHost(host, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTPDriver()
			db, c := tpOpen(t, d, tpPC(0, 1, 1), newTPClock())
			p := c.pool
			ctx := context.Background()
			key := p.defaultKey()
			co, err := p.get(ctx, key, "", selector{}, false, time.Time{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			old := FakeConnOf(co.ph.inner).ID

			type res struct {
				id  int64
				err error
			}
			got := make(chan res, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				cn, err := Acquire(wctx, db)
				if err != nil {
					got <- res{0, err}
					return
				}
				defer cn.Close()
				var id int64
				if s, err := SessionOf(cn); err == nil {
					if inner := FakeConnOf(s.Unwrap()); inner != nil {
						id = inner.ID
					}
				}
				got <- res{id, nil}
			}()
			tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })

			// The held session becomes idle without passing the waiter's way.
			p.mu.Lock()
			p.busy--
			p.idle[key] = append(p.idle[key], co.ph)
			co.ph.listed = true
			co.ph.idle.Store(true)
			p.unlock()

			tc.purge(p, co.ph.host)
			r := <-got
			if r.err != nil {
				t.Fatalf("the waiter got %v; want the slot the purge freed", r.err)
			}
			if r.id == old {
				t.Fatalf("the waiter got the purged session %d", old)
			}
			tpEventually(t, "the waiter's release", func() bool { return c.Stats().Busy == 0 })
			tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 2, Closed: 1, Terminated: 1, checkTerminated: true})
			tpCheckDriver(t, c, d)
		})
	}
}

// TestHostFoundDownPurgesItsIdleSessions (OCI FAN): a host found down by a
// failed connect (here the health check's) closes its idle sessions at once
// and says so with a SessionsPurged event after HostDown; the sessions in use
// are left to report their own loss.
func TestHostFoundDownPurgesItsIdleSessions(t *testing.T) {
	fdb := NoopFakeDB()
	inner, err := (&FakeDriver{Caps: FakeCapsPool, DB: fdb}).OpenConnector("")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var kinds []string
	purged := -1
	c, err := NewConnector(inner, WithHostConfig(HostConfig{HealthInterval: 20 * time.Millisecond}), WithEvents(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		kinds = append(kinds, e.Kind.String())
		if e.Kind == SessionsPurged {
			purged = e.Sessions
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx := context.Background()
	// Two sessions, one left idle, one held.
	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	idle, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle.Close()
	if s := c.Stats(); s.Idle != 1 || s.Busy != 1 {
		t.Fatalf("before: %+v, want 1 idle and 1 busy", s)
	}
	// The health check's next connect fails as a server gone down does.
	fdb.Inject(FakeFault{Kind: "connect", Nth: 1, Err: io.ErrUnexpectedEOF})
	tpEventually(t, "HostDown and SessionsPurged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.HasPrefix(strings.Join(kinds, ","), "HostDown,SessionsPurged")
	})
	mu.Lock()
	n := purged
	mu.Unlock()
	if n != 1 {
		t.Errorf("SessionsPurged.Sessions = %d, want the 1 idle session", n)
	}
	if s := c.Stats(); s.Idle != 0 || s.Busy != 1 {
		t.Errorf("after: %+v, want the idle session closed and the held one left", s)
	}
	if err := held.PingContext(ctx); err != nil {
		t.Errorf("the held session was disturbed: %v", err)
	}
}
