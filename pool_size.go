package hasql

import (
	"context"
	"math/rand/v2"
	"time"
)

// Pool sizing in the background: keeping Min sessions open, growing by Incr
// when every session is busy, closing sessions idle past IdleTimeout (never
// below Min) and retiring sessions past a jittered MaxLifetime. One
// maintainer goroutine per connector does the periodic part; Connector.Close
// stops it and waits for it and for every background open. Sessions opened
// outside a checkout (Min, Incr, the outage prober's) are opened here too
// (openIdle), and Reconfigure's changes to the pool.

// maintainInterval is how often the maintainer looks at the idle sessions.
func maintainInterval(cfg PoolConfig) time.Duration {
	d := 30 * time.Second
	for _, t := range []time.Duration{cfg.IdleTimeout, cfg.MaxLifetime} {
		if t > 0 && t/4 < d {
			d = t / 4
		}
	}
	return max(d, 100*time.Millisecond)
}

// start launches the maintainer and opens the first Min sessions.
func (p *pool) start() {
	p.bgCtx, p.bgCancel = context.WithCancel(context.Background())
	p.kickCh = make(chan struct{}, 1)
	p.wg.Add(1)
	go p.maintain()
	p.kick()
}

// kick asks the maintainer to top the pool up to Min soon.
func (p *pool) kick() {
	if p.kickCh == nil {
		return
	}
	select {
	case p.kickCh <- struct{}{}:
	default:
	}
}

func (p *pool) maintain() {
	defer p.wg.Done()
	p.mu.Lock()
	interval := maintainInterval(p.cfg)
	p.unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.bgCtx.Done():
			return
		case <-t.C:
			now := p.now()
			p.clock.Store(now.UnixNano())
			p.reap(now)
		case <-p.kickCh:
			p.clock.Store(p.now().UnixNano())
		}
		p.fillMin()
		p.mu.Lock()
		if d := maintainInterval(p.cfg); d != interval {
			interval = d
			t.Reset(d)
		}
		p.unlock()
	}
}

// defaultKey is the key of sessions opened in the background.
func (p *pool) defaultKey() poolKey { return poolKey{class: p.c.cfg.defaultClass} }

// fillMin opens sessions in the background until Min are open.
func (p *pool) fillMin() {
	p.mu.Lock()
	n := p.cfg.Min - p.open
	if p.closed || n <= 0 {
		p.unlock()
		return
	}
	p.open += n
	p.unlock()
	for i := 0; i < n; i++ {
		p.openInBackground(p.defaultKey(), true)
	}
}

// growLocked reserves up to Incr-1 more slots beside the one a caller is
// opening, and opens sessions in them in the background, so that a burst
// does not make every caller dial in turn.
func (p *pool) growLocked(key poolKey) {
	n := p.cfg.Incr - 1
	if p.cfg.Max > 0 {
		n = min(n, p.cfg.Max-p.open)
	}
	if n <= 0 || p.bgCtx == nil {
		return
	}
	p.open += n
	for i := 0; i < n; i++ {
		p.openInBackground(key, false)
	}
}

// openInBackground opens a session in a slot already counted in open (and
// not in busy) and offers it to the pool like a released one; forMin: to
// keep hasql.pool.min sessions open (session.minKeep).
func (p *pool) openInBackground(key poolKey, forMin bool) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.openIdle(p.bgCtx, key, forMin)
	}()
}

// maxOpen is hasql.pool.max, as Reconfigure left it (0: no limit).
func (p *pool) maxOpen() int {
	p.mu.Lock()
	defer p.unlock()
	return p.cfg.Max
}

// openProbe opens a session for the outage prober (outage.probe), which
// must learn whether the database is back even while the pool is full of
// purged sessions still held: its slot is counted beyond Max, like
// GetForce's. Once open, the session is offered to the pool like a released
// one, so a waiter may have it by the time openProbe returns; the caller may
// read only its immutable fields (host).
func (p *pool) openProbe() (*session, error) {
	p.mu.Lock()
	p.open++
	p.unlock()
	return p.openIdle(p.bgCtx, p.defaultKey(), false)
}

// openIdle opens a session of key in a slot already counted in open (and
// not in busy) and offers it to the pool; a failed open frees the slot.
// forMin marks it kept for hasql.pool.min.
func (p *pool) openIdle(ctx context.Context, key poolKey, forMin bool) (*session, error) {
	ph, err := p.c.openSession(ctx, selector{}, key)
	p.mu.Lock()
	if err != nil {
		p.freeSlotsLocked(1)
		p.unlock()
		return nil, err
	}
	ph.minKeep = forMin
	p.adoptLocked(ph)
	p.offerLocked(ph, p.stamp())
	return ph, nil
}

// setLifetime fixes when a new session retires: MaxLifetime less up to a
// tenth of it at random, so that sessions opened together do not all go at
// once. p.mu must be held (Reconfigure changes the config).
func (p *pool) setLifetime(ph *session) {
	if lt := p.cfg.MaxLifetime; lt > 0 {
		jitter := time.Duration(rand.Int64N(int64(lt)/10 + 1))
		ph.retireAt = ph.created.Add(lt - jitter).UnixNano()
	}
}

// reap closes idle sessions past their lifetime or marked bad, and idle
// sessions unused for longer than IdleTimeout while more than Min are open,
// handing the freed slots to waiters. It takes the time as an argument so
// tests can drive it with a fake clock.
func (p *pool) reap(now time.Time) {
	p.mu.Lock()
	min, idleTimeout, open := p.cfg.Min, p.cfg.IdleTimeout, p.open
	doomed := p.takeIdleWhereLocked(func(ph *session) bool {
		if ph.expired(now.UnixNano()) || ph.bad.Load() {
			open--
			return true
		}
		if idleTimeout > 0 && now.UnixNano()-ph.idleAt.Load() >= int64(idleTimeout) && open > min {
			open--
			return true
		}
		return false
	})
	p.freeSlotsLocked(len(doomed))
	p.unlock()
	for _, ph := range doomed {
		ph.close(ph.bad.Load())
	}
}

// Reconfigure changes the pool's sizing, get mode and timeouts while it runs,
// as OCI_CPOOL_REINITIALIZE does. pc replaces the whole PoolConfig: a field
// left zero takes its zero meaning, not its old value. pc is validated as
// WithPool's is; an invalid one changes nothing and the error wraps ErrDSN.
//
// Lowering Max closes idle sessions at once and busy ones as they are
// released, until at most Max are open; raising Max, or setting it to 0,
// lets waiting checkouts open sessions at once. A higher Min is reached in
// the background soon after. A new IdleTimeout applies from the maintainer's
// next pass, a new MaxLifetime to sessions opened from then on; a checkout
// already waiting keeps the get mode and wait timeout it began with.
// Reconfigure returns ErrClosed for a connector whose options were rejected
// (see OpenDB).
func (c *Connector) Reconfigure(pc PoolConfig) error {
	cfg := c.cfg
	cfg.pool = pc
	if err := cfg.validate(); err != nil {
		return err
	}
	if c.pool == nil {
		return ErrClosed
	}
	p := c.pool
	var doomed []*session
	p.mu.Lock()
	p.cfg = pc
	for p.cfg.Max > 0 && p.open-len(doomed) > p.cfg.Max {
		ph := p.takeAnyIdleLocked()
		if ph == nil {
			break
		}
		doomed = append(doomed, ph)
	}
	p.open -= len(doomed)
	for p.cfg.Max == 0 || p.open < p.cfg.Max {
		if len(p.waiters) == 0 {
			break
		}
		p.grantSlotLocked()
	}
	p.unlock()
	for _, ph := range doomed {
		ph.close(false)
	}
	p.kick()
	return nil
}
