package hasql

import (
	"context"
	"sync/atomic"
	"time"
)

// Waiting out a promotion on the session that found it under way. Patroni
// writes its new leader to the DCS (what its REST API shows, and so what
// discovery sees) before it runs the promotion, and PostgreSQL answers
// pg_is_in_recovery() = true until the promotion ends: 0.1-0.2 s later on an
// idle machine, a second or more on a loaded one. A connect made in that
// window finds a standby where the cluster names the primary. Closing it and
// waiting for the back-off timetable would keep the work waiting for up to
// hasql.reconnect's maximum (5 s by default, reached ttl seconds into a
// crash failover); instead the session that found the promotion asks its
// server's role again every promotionPoll, for at most promotionWait and
// only while discovery still names the host, and serves as soon as the
// server agrees. A session on a promoted standby survives its promotion, so
// nothing is reconnected: the cost is one small query per promotionPoll on
// one session.

const promotionPoll = 5 * time.Millisecond

// promotionWait bounds one wait: 10 s, well past the promotions seen here
// (0.1-0.4 s on a quiet machine, 5 s once under load), and past
// hasql.connect_timeout, which bounds the connect and not this wait. A
// variable for tests, which set it through export_test.go.
var promotionWait atomic.Int64

func init() { promotionWait.Store(int64(10 * time.Second)) }

// awaitPromotion is called when the server of a new session on h answered
// role r, which the target does not want. When r is a standby and discovery
// holds h as the primary the target wants, it re-asks the server's role on
// the same session until the server says primary, discovery stops naming
// h, promotionWait passes or ctx (the caller's, not the connect's) ends,
// and returns the last answer; in any other case it returns r at once. A
// failed role query ends the wait with r: the caller treats the session as
// one of the wrong role.
func (c *Connector) awaitPromotion(ctx context.Context, h *host, ph *session, r role, target Target, strict bool) role {
	if r != roleStandby || !c.namedPrimary(h, target, strict) {
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(promotionWait.Load()))
	defer cancel()
	t := time.NewTimer(promotionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r
		case <-t.C:
		}
		nr, err := c.dialect.roleOf(ctx, ph)
		if err != nil {
			return r
		}
		if r = nr; wants(target, r, strict) || !c.namedPrimary(h, target, strict) {
			return r
		}
		t.Reset(promotionPoll)
	}
}

// namedPrimary reports whether discovery holds h as a usable primary, a
// role the target wants, and h is not drained.
func (c *Connector) namedPrimary(h *host, target Target, strict bool) bool {
	if c.disc == nil || h == nil {
		return false
	}
	hs := c.hosts
	hs.mu.Lock()
	defer hs.mu.Unlock()
	v := h.disc
	return !hs.drained[h.addr] && v.known && v.usable && v.role == rolePrimary && wants(target, rolePrimary, strict)
}
