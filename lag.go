package hasql

import (
	"context"
	"time"
)

// The background replication checker (reads on standbys, durability): every
// lagInterval it asks each host its role and position on a connection of
// its own (the primary's current position, a standby's replayed one), and
// works out each standby's lag from the primary positions it has seen: the
// time since the primary first had a position the standby has not replayed
// (0 when it has replayed the latest). It also reads the primary's position
// at once when a write of unknown position asks for it (markUnknown), so
// that read-only work goes back to standbys within a round trip or two. It
// never runs on a call's path, and stops with the pool's background context
// (Connector.Close).

// lagInterval is how often the checker looks: often enough that the
// known-replayed positions spare most reads the wait statement when the
// standby keeps up, for two small queries per host.
const lagInterval = 500 * time.Millisecond

// maxPosSamples bounds the primary positions kept for lag: 128 looks cover
// a minute; a standby behind all of them shows the oldest one's age.
const maxPosSamples = 128

type posSample struct {
	at  time.Time
	pos string
}

// lagChecker is the checker goroutine's own state.
type lagChecker struct {
	c       *Connector
	rw      *readRouter
	conns   map[*host]*session
	samples []posSample
}

func (c *Connector) startLagChecks() {
	if c.rw == nil {
		return
	}
	p := c.pool
	if !p.addWorker() {
		return
	}
	lc := &lagChecker{c: c, rw: c.rw, conns: make(map[*host]*session)}
	go func() {
		defer p.wg.Done()
		defer lc.closeAll()
		t := time.NewTicker(lagInterval)
		defer t.Stop()
		lc.check(p.bgCtx)
		for {
			select {
			case <-p.bgCtx.Done():
				return
			case <-t.C:
				lc.check(p.bgCtx)
			case <-c.rw.wake:
				lc.refreshPrimary(p.bgCtx)
			}
		}
	}()
}

// conn returns the checker's connection to h, opening it if needed.
func (lc *lagChecker) conn(ctx context.Context, h *host) (*session, error) {
	if ph := lc.conns[h]; ph != nil {
		return ph, nil
	}
	ph, err := lc.c.openOn(ctx, h, poolKey{}, TargetAny, false)
	if err != nil {
		return nil, err
	}
	// Not one of the host's sessions in its stats (HostStats.Open).
	lc.c.hosts.closedOne(h)
	lc.conns[h] = ph
	return ph, nil
}

func (lc *lagChecker) drop(h *host) {
	if ph := lc.conns[h]; ph != nil {
		delete(lc.conns, h)
		ph.inner.Close()
	}
}

func (lc *lagChecker) closeAll() {
	for h := range lc.conns {
		lc.drop(h)
	}
}

// look asks h its role and position.
func (lc *lagChecker) look(ctx context.Context, h *host) (r role, pos string, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, lagInterval+lc.c.cfg.backoff.ConnectTimeout)
	defer cancel()
	ph, err := lc.conn(ctx, h)
	if err != nil {
		return roleUnknown, "", false
	}
	if r, err = lc.c.dialect.roleOf(ctx, ph); err == nil {
		q := lc.rw.repl.replayPos
		if r == rolePrimary {
			q = lc.rw.repl.primaryPos
		}
		pos, err = queryText(ctx, ph, q)
	}
	if err != nil {
		lc.drop(h)
		return roleUnknown, "", false
	}
	lc.c.hosts.setRole(h.addr, r)
	return r, pos, true
}

// check looks at every host: primaries first, so that the standbys' lag is
// measured against this round's primary position.
func (lc *lagChecker) check(ctx context.Context) {
	hs := lc.c.hosts
	hs.mu.Lock()
	hosts := append([]*host(nil), hs.hosts...)
	hs.mu.Unlock()
	type seen struct {
		h   *host
		pos string
		at  time.Time
	}
	var standbys []seen
	for _, h := range hosts {
		if ctx.Err() != nil {
			return
		}
		dirty := lc.rw.dirty.Load()
		r, pos, ok := lc.look(ctx, h)
		switch {
		case !ok:
		case r == rolePrimary:
			lc.primarySeen(pos, dirty)
		default:
			standbys = append(standbys, seen{h, pos, time.Now()})
		}
	}
	for _, s := range standbys {
		lc.rw.noteReplay(s.h, s.pos)
		lag := lc.lagOf(s.pos, s.at)
		lc.rw.mu.Lock()
		lc.rw.lag[s.h] = lag
		lc.rw.mu.Unlock()
	}
}

// primarySeen records the primary's position, read after dirty writes of
// unknown position had been counted: it covers them.
func (lc *lagChecker) primarySeen(pos string, dirty uint64) {
	if pos == "" {
		return
	}
	now := time.Now()
	if n := len(lc.samples); n == 0 || lc.samples[n-1].pos != pos {
		if n == maxPosSamples {
			lc.samples = append(lc.samples[:0], lc.samples[1:]...)
		}
		lc.samples = append(lc.samples, posSample{now, pos})
	}
	rw := lc.rw
	if rw.dirty.Load() > rw.clean.Load() {
		rw.advance(pos)
	}
	for {
		c := rw.clean.Load()
		if c >= dirty || rw.clean.CompareAndSwap(c, dirty) {
			return
		}
	}
}

// refreshPrimary reads the primary's position for writes of unknown
// position, on the connection to the host last seen as primary.
func (lc *lagChecker) refreshPrimary(ctx context.Context) {
	hs := lc.c.hosts
	hs.mu.Lock()
	var primary *host
	for _, h := range hs.hosts {
		if h.role == rolePrimary {
			primary = h
			break
		}
	}
	hs.mu.Unlock()
	if primary == nil {
		lc.check(ctx)
		return
	}
	dirty := lc.rw.dirty.Load()
	if r, pos, ok := lc.look(ctx, primary); ok && r == rolePrimary {
		lc.primarySeen(pos, dirty)
	}
}

// lagOf is a standby's lag at its look at time at, having replayed pos: the
// age, then, of the oldest primary position it lacks.
func (lc *lagChecker) lagOf(pos string, at time.Time) time.Duration {
	for _, s := range lc.samples {
		if !s.at.Before(at) {
			break
		}
		if ok, err := lc.rw.repl.atLeast(pos, s.pos); err != nil || !ok {
			return at.Sub(s.at)
		}
	}
	return 0
}

// fillLag copies the measured lags into the hosts' stats.
func (rw *readRouter) fillLag(hs *hostSet, out []HostStats) {
	hs.mu.Lock()
	hosts := append([]*host(nil), hs.hosts...)
	hs.mu.Unlock()
	rw.mu.Lock()
	defer rw.mu.Unlock()
	for i, h := range hosts {
		if i < len(out) {
			out[i].Lag = rw.lag[h]
		}
	}
}

// CheckHosts connects to every host once, now, on connections of its own,
// asks each its role and replication position, and returns the hosts'
// stats with Role and Lag from that look (for the hasql command's check,
// or a readiness probe). Lag from one look is a lower bound: the time
// between the primary's look and the standby's, when the standby had not
// replayed the primary's position. It does not touch the pool; it takes
// one connect and two small queries per host, bounded by ctx and
// hasql.connect_timeout. A host it cannot reach shows in State and
// LastError as after any failed connect. Without a dialect that knows
// roles (the generic one), Role stays "".
func (c *Connector) CheckHosts(ctx context.Context) []HostStats {
	if c.err != nil || c.hosts == nil {
		return nil
	}
	rw := c.rw
	if rw == nil {
		if repl := c.dialect.replication(); repl != nil {
			rw = &readRouter{c: c, repl: repl, replay: make(map[*host]string), lag: make(map[*host]time.Duration)}
		}
	}
	if rw != nil {
		lc := &lagChecker{c: c, rw: rw, conns: make(map[*host]*session)}
		lc.check(ctx)
		lc.closeAll()
	}
	out := c.hosts.stats()
	if rw != nil {
		rw.fillLag(c.hosts, out)
	}
	return out
}
