package hasql

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// delay is the wait before reconnect attempt i (from 0), elapsed into the
// outage: base's value, jittered when it comes from Initial and Max.
func (b *Backoff) delay(i int, elapsed time.Duration) time.Duration {
	d := b.base(i, elapsed)
	if len(b.Delays) > 0 || d <= 0 {
		return d
	}
	// Jitter: between three quarters and all of d, so that many processes
	// restarted together do not reconnect in step.
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// base is the schedule's wait before attempt i (from 0), elapsed into the
// outage, without jitter. With Delays set it is Delays[i] (the last repeats).
// Otherwise it is Initial while the outage is younger than Hold, then doubles
// per attempt up to Max.
func (b *Backoff) base(i int, elapsed time.Duration) time.Duration {
	if n := len(b.Delays); n > 0 {
		return b.Delays[min(i, n-1)]
	}
	d := b.Initial
	if elapsed >= b.Hold {
		for j := b.doublings(elapsed); j > 0 && d < b.Max; j-- {
			d *= 2
		}
	}
	return max(min(d, b.Max), 0)
}

// doublings is how many times the delay has doubled elapsed into an outage:
// once per delay served since Hold ended.
func (b *Backoff) doublings(elapsed time.Duration) int {
	n, d := 0, b.Initial
	for t := b.Hold; t+d <= elapsed && d < b.Max && d > 0; n++ {
		t += d
		d *= 2
	}
	return n
}

// outage is the connector's outage gate (the reconnect design of seed 001):
// once a reconnect fails, one prober reconnects on the back-off schedule
// while callers wait for it, so N waiting callers cost one attempt per
// interval, not N.
type outage struct {
	c       *Connector
	on      atomic.Bool
	mu      sync.Mutex
	done    chan struct{} // closed when the outage ends
	lastErr error

	// wake cuts the prober's back-off short: discovery saw a new primary
	// (poke). Buffered 1; made with the connector.
	wake chan struct{}

	// portChecks counts the prober's bare TCP dials (watchPorts), for Stats.
	portChecks atomic.Int64
	// checkPorts, when set (tests), replaces the TCP dials of one round of
	// watchPorts: nil when a port accepted, else why not.
	checkPorts func(ctx context.Context) error
}

// poke makes the outage prober try at once, if an outage is on (else the
// next outage's first attempt comes without its delay). Never blocks.
func (o *outage) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// sleepOrWake is sleepUntil, cut short by poke: true when it is time to try.
func (o *outage) sleepOrWake(ctx context.Context, t time.Time) bool {
	return sleepUntilOr(ctx, t, o.wake)
}

// enter starts an outage after err, unless one is already on.
func (o *outage) enter(err error) {
	o.mu.Lock()
	if o.on.Load() {
		o.lastErr = err
		o.mu.Unlock()
		return
	}
	p := o.c.pool
	if !p.addWorker() {
		o.mu.Unlock()
		return
	}
	o.on.Store(true)
	o.done = make(chan struct{})
	o.lastErr = err
	o.mu.Unlock()
	o.c.noteFailure()
	o.c.events.emit(Event{Kind: OutageBegin, Err: err})
	o.c.hosts.bumpGen(nil)
	p.purgeAll()
	go o.probe()
}

// probe reconnects until a host answers or the connector closes. Its
// timetable is the back-off schedule, jittered, as it always was. An attempt
// earlier than the timetable is made only within the schedule's budget:
// attempt n (from 1) never starts before the schedule's first n delays,
// without jitter, have passed since the outage began (budget.when), so early
// attempts never make the prober connect more often than the schedule
// would. What the last attempt said (connectPhase) decides:
//
//   - nobody listening (connection refused): no attempt is made while every
//     host's port still refuses a bare TCP dial (watchPorts, every
//     portWatchInterval: the refusal comes from the host's kernel, no server
//     process sees it); once a port accepts, the attempt starts as soon as
//     the budget or the timetable allows, whichever comes first;
//   - the server is starting up (PostgreSQL 57P03 "starting up"): the next
//     attempt comes startingRetry after this one, within the budget, or at
//     the timetable's time if that is sooner;
//   - anything else: the timetable.
//
// The session of the attempt that succeeds goes into the pool before the
// gate opens (openProbe), so the first waiting caller runs on it at once.
func (o *outage) probe() {
	p := o.c.pool
	defer p.wg.Done()
	b := &o.c.cfg.backoff
	began := time.Now()
	bud := budget{b: b}
	o.mu.Lock()
	phase := o.c.dialect.connectPhase(o.lastErr)
	o.mu.Unlock()
	next := began.Add(b.delay(0, 0)) // the timetable's next attempt
	last := began
	for made := 0; ; made++ {
		at := next
		switch phase {
		case phaseRefused:
			switch o.watchPorts(p.bgCtx) {
			case watchOpen:
				at = earlier(next, began.Add(bud.when(made+1)))
			case watchStopped:
				o.end(nil)
				return
			}
			// watchUnusable: the timetable.
		case phaseStarting:
			soon := last.Add(startingRetry)
			if allowed := began.Add(bud.when(made + 1)); soon.Before(allowed) {
				soon = allowed
			}
			at = earlier(next, soon)
		}
		if !o.sleepOrWake(p.bgCtx, at) {
			o.end(nil)
			return
		}
		var ph *session
		var err error
		if phase == phaseOther {
			ph, err = p.openProbe()
		} else {
			// The server answers on its port: it is up or coming up.
			var extra int
			ph, extra, err = o.hedged(began, &bud, made+1)
			made += extra
		}
		if err == nil {
			o.end(ph)
			return
		}
		o.mu.Lock()
		o.lastErr = err
		o.mu.Unlock()
		last = time.Now()
		next = last.Add(b.delay(made+1, last.Sub(began)))
		phase = o.c.dialect.connectPhase(err)
	}
}

// earlier returns the earlier of two times.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (o *outage) end(ph *session) {
	o.mu.Lock()
	o.on.Store(false)
	close(o.done)
	o.mu.Unlock()
	if ph != nil {
		o.c.events.emit(Event{Kind: OutageEnd, Host: ph.host})
	}
}

// wait holds a caller while an outage is on, up to outage_wait or its
// context. It returns nil when the database is back (or no outage is on),
// else ErrNoHosts wrapping the last connect error.
func (o *outage) wait(ctx context.Context) error {
	if !o.on.Load() {
		return nil
	}
	o.mu.Lock()
	if !o.on.Load() {
		o.mu.Unlock()
		return nil
	}
	done := o.done
	o.mu.Unlock()
	t := time.NewTimer(o.c.cfg.backoff.OutageWait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		o.mu.Lock()
		last := o.lastErr
		o.mu.Unlock()
		return newError(ErrNoHosts, "the database did not come back before the context ended", errors.Join(ctx.Err(), last))
	case <-t.C:
		o.mu.Lock()
		last := o.lastErr
		o.mu.Unlock()
		return newError(ErrNoHosts, fmt.Sprintf("the database did not come back within %v (hasql.outage_wait)", o.c.cfg.backoff.OutageWait), last)
	}
}

// outageFor starts an outage when err is a failed reconnect — the connector
// had sessions before, and the failure is the server's, not the
// configuration's — and reports whether the caller should wait at the gate.
// A connector that never connected fails fast instead: that is a
// misconfiguration, not an outage — unless discovery (hasql.discover) is on
// and the hosts known so far only lack the wanted role: the cluster's view,
// coming in the background, will name a host that has it.
func (c *Connector) outageFor(ctx context.Context, err error) bool {
	firstView := c.disc != nil && errors.Is(err, errWrongRole)
	if ctx.Err() != nil || !c.everConnected.Load() && !firstView || errors.Is(err, ErrClosed) ||
		errors.Is(err, ErrPoolExhausted) || !c.dialect.connectRetryable(err) {
		return false
	}
	c.outage.enter(err)
	return true
}

// reconnectDelay is Session.Reconnect's wait after its i-th failure in a row
// (from 0): Delays[i] when set (PCP's 5,10,20,40,80), else Initial doubling
// per failure up to Max.
func (b *Backoff) reconnectDelay(i int) time.Duration {
	if n := len(b.Delays); n > 0 {
		return b.Delays[min(i, n-1)]
	}
	d := b.Initial
	for ; i > 0 && d < b.Max; i-- {
		d *= 2
	}
	return min(d, b.Max)
}
