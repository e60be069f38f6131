package hasql

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Timing the outage prober's attempts by what the last one said (see
// outage.probe): the budget the back-off schedule sets, the phases a failed
// connect reveals, and the port watch.

// portWatchInterval is how often the prober dials the hosts' ports while
// nobody listens on them (jittered down by up to a quarter). A dial to a
// closed port is answered by the host's kernel with a reset: no server
// process exists to see it. It is the interval at which the raw drivers'
// callers in examples/cmd/hasql-recovery redial.
const portWatchInterval = 5 * time.Millisecond

// startingRetry is the wait after a connect that the server refused because
// it is starting up (PostgreSQL 57P03): it is about to accept, and the next
// attempt comes this soon if the back-off budget allows.
const startingRetry = 5 * time.Millisecond

// hedgeAfter is how long a connect to a server that answers on its port
// may go unanswered before the prober starts another beside it, and
// maxHedged how many it runs at once. A server that has just started
// answers its first connects slowly (PostgreSQL: the startup process still
// running, the first backends rebuilding their caches: 0.2–1.5 s each on a
// loaded machine, measured with examples/cmd/hasql-recovery), while a later
// connect may be served at once; one attempt at a time would wait out the
// slowest.
const (
	hedgeAfter = 10 * time.Millisecond
	maxHedged  = 3
)

// connPhase is what a failed connect says about when to try again.
type connPhase uint8

const (
	phaseOther    connPhase = iota // the schedule's timetable
	phaseRefused                   // nothing listens: watch the port
	phaseStarting                  // the server answers and is starting up: retry soon
)

// connectPhase reads a failed connect: a refused TCP connection (nobody
// listens on the port) or a server that says it is starting up.
func (d dialect) connectPhase(err error) connPhase {
	switch {
	case err == nil:
		return phaseOther
	case errors.Is(err, syscall.ECONNREFUSED):
		return phaseRefused
	case d.get().startingUp(err):
		return phaseStarting
	}
	return phaseOther
}

// hedged makes the prober's connect attempt n (from 1) against a server
// that answers on its port, and starts another beside it each hedgeAfter
// the ones in flight go unanswered, up to maxHedged (and never more than
// hasql.pool.max) at once, each only when the back-off budget allows it
// (attempt n+k once the schedule's first n+k delays have passed since the
// outage began): hedging never makes more attempts than the schedule
// would. It returns the first session opened, or the last error once every
// attempt failed, and how many attempts beyond the first it started.
// Attempts still in flight when one succeeds go on in the background
// (counted in the pool's workers, so Close waits for them); a session they
// open joins the pool's idle sessions for the callers at the gate.
func (o *outage) hedged(began time.Time, bud *budget, n int) (ph *session, extra int, err error) {
	p := o.c.pool
	limit := maxHedged
	if m := p.maxOpen(); m > 0 && m < limit {
		limit = m
	}
	type result struct {
		ph  *session
		err error
	}
	results := make(chan result, limit)
	start := func() bool {
		if !p.addWorker() {
			return false
		}
		go func() {
			defer p.wg.Done()
			ph, err := p.openProbe()
			results <- result{ph, err}
		}()
		return true
	}
	if !start() {
		return nil, 0, ErrClosed
	}
	inFlight := 1
	tm := time.NewTimer(hedgeAfter)
	defer tm.Stop()
	for {
		select {
		case r := <-results:
			inFlight--
			if r.err == nil {
				return r.ph, extra, nil
			}
			if inFlight == 0 {
				return nil, extra, r.err
			}
		case <-tm.C:
			if inFlight < limit && !time.Now().Before(began.Add(bud.when(n+extra+1))) && start() {
				inFlight++
				extra++
			}
			tm.Reset(hedgeAfter)
		case <-p.bgCtx.Done():
			return nil, extra, ErrClosed
		}
	}
}

// budget is the number of connect attempts the back-off schedule allows,
// elapsed into an outage: attempt n (from 1) may start once the schedule's
// first n delays without jitter (Backoff.base) have passed. The jittered
// timetable is never slower than that, so a prober that keeps to the budget
// makes no more attempts than the schedule would.
type budget struct {
	b  *Backoff
	n  int           // delays summed so far
	at time.Duration // their sum
}

// when returns how long into the outage attempt n (from 1) may start; n
// never decreases from one call to the next.
func (u *budget) when(n int) time.Duration {
	for u.n < n {
		// A zero delay (only an unvalidated Backoff has one) still spaces
		// attempts: the budget never allows a busy loop.
		u.at += max(u.b.base(u.n, u.at), time.Millisecond)
		u.n++
	}
	return u.at
}

// watchResult is how a port watch ended.
type watchResult uint8

const (
	watchOpen     watchResult = iota // a port accepted a TCP connection
	watchUnusable                    // no TCP address to watch, or a dial failed otherwise than refused
	watchStopped                     // the connector is closing
)

// watchPorts dials every host's TCP port, every portWatchInterval, until
// one accepts (the dialled connection is closed at once, before anything is
// sent: PostgreSQL and MariaDB count it as a connection that never
// started). It gives up (watchUnusable) when a host has no TCP address hasql
// can dial as its driver would (a Unix socket, a connector without a DSN, a
// pgx DSN listing several hosts itself) or a dial fails otherwise than
// refused (a black hole, an unreachable network): those the timetable
// handles.
func (o *outage) watchPorts(ctx context.Context) watchResult {
	check := o.checkPorts
	if check == nil {
		addrs := o.c.watchAddrs()
		if len(addrs) == 0 {
			return watchUnusable
		}
		timeout := o.c.cfg.backoff.ConnectTimeout
		if timeout <= 0 || timeout > time.Second {
			timeout = time.Second
		}
		check = func(ctx context.Context) error {
			var err error
			for _, a := range addrs {
				d := net.Dialer{Timeout: timeout}
				var c net.Conn
				if c, err = d.DialContext(ctx, "tcp", a); err == nil {
					c.Close()
					return nil
				}
			}
			return err
		}
	}
	for {
		o.portChecks.Add(1)
		err := check(ctx)
		switch {
		case ctx.Err() != nil:
			return watchStopped
		case err == nil:
			return watchOpen
		case !errors.Is(err, syscall.ECONNREFUSED):
			return watchUnusable
		}
		d := portWatchInterval - time.Duration(rand.Int64N(int64(portWatchInterval)/4+1))
		if !sleepUntil(ctx, time.Now().Add(d)) {
			return watchStopped
		}
	}
}

// watchAddrs lists the TCP address of every host, as its inner driver
// dials it, or nil when one has none (see watchPorts).
func (c *Connector) watchAddrs() []string {
	c.hosts.mu.Lock()
	defer c.hosts.mu.Unlock()
	addrs := make([]string, 0, len(c.hosts.hosts))
	for _, h := range c.hosts.hosts {
		dsn := h.dsn
		if dsn == "" {
			dsn = c.dsn
		}
		a := ""
		if dsn != "" {
			a = c.dialect.get().watchAddr(dsn)
		}
		if a == "" {
			return nil
		}
		addrs = append(addrs, a)
	}
	return addrs
}

// sleepUntil waits until t or ctx's end; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool { return sleepUntilOr(ctx, t, nil) }

// sleepUntilOr waits until t, ctx's end or a receive on wake (nil: never);
// false only when ctx ended.
func sleepUntilOr(ctx context.Context, t time.Time, wake <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	case <-wake:
		return true
	}
}
