package hasql

// Tests of the pool's purges (pool_purge.go) on fakedb, with the helpers of
// pool_test.go.

import (
	"context"
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
		{"purgeHost", func(p *pool, host string) { p.purgeHost(host) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTPDriver()
			db, c := tpOpen(t, d, tpPC(0, 1, 1), newTPClock())
			p := c.pool
			ctx := context.Background()
			key := p.defaultKey()
			co, err := p.get(ctx, key, "", selector{}, false)
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
