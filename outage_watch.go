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
func sleepUntil(ctx context.Context, t time.Time) bool {
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
	}
}
