package hasql

import (
	"context"
	"fmt"
	"time"
)

// Recovery is a recovery function attached to a session (QNX ha_attach). It
// runs on every loss of the session's connection (unless the call's context
// has ended), in the goroutine of the call that lost it, with that call's
// context and the error that showed the loss. Outside a transaction the lost
// session is already gone: s is bound to no session until the function
// calls s.Reconnect, which it must do before s.Exec to rebuild state; if it
// does not, hasql binds a new session after it returns. Inside a transaction
// or while rows stream, no new session is bound (Reconnect returns
// ErrInTransaction inside a transaction). Returning nil means "recovered":
// the failed work is run again if the retry rules allow it. An error it
// returns reaches the caller joined with the loss (errors.Is finds both).
type Recovery func(ctx context.Context, s *Session, cause error) error

// AttachFlag modifies Session.Attach.
type AttachFlag uint8

// ReplaceRecovery replaces the session's recovery function; without it,
// Attach on a session that has one fails with ErrAlreadyAttached.
const ReplaceRecovery AttachFlag = 1

// FailoverEvent is a step of transparent application failover (OCI TAF).
type FailoverEvent uint8

const (
	FoBegin  FailoverEvent = iota // the loss was detected; failover starts
	FoEnd                         // failover succeeded
	FoAbort                       // failover gave up
	FoError                       // an attempt failed; return ErrFoRetry to try again
	FoReauth                      // the new session's tag and state were restored
)

// String returns the event's name, such as "FoBegin".
func (e FailoverEvent) String() string {
	if int(e) < 5 {
		return [...]string{"FoBegin", "FoEnd", "FoAbort", "FoError", "FoReauth"}[e]
	}
	return fmt.Sprintf("FailoverEvent(%d)", uint8(e))
}

// FailoverCallback is told of each failover step of a session (see the
// package documentation on lost connections), in the goroutine of the call
// that lost the session, with that call's context. Its return value counts
// only on FoError: ErrFoRetry makes hasql try again (after the callback
// returns, so it may sleep first), anything else gives up. A panic in it
// fails the call with ErrCallbackPanic (see Stats.CallbackPanics).
type FailoverCallback func(ctx context.Context, s *Session, ev FailoverEvent) error

// WithFailoverCallback sets the failover callback (OCI TAF callback).
func WithFailoverCallback(cb FailoverCallback) Option {
	return func(c *config) { c.failoverCB = cb }
}

// WithRecovery sets the recovery function of every session that has not
// attached its own (an ha_open-style default).
func WithRecovery(r Recovery) Option { return func(c *config) { c.recovery = r } }

// taf tells the failover callback the steps of one failover (OCI TAF) under
// the panic policy: once the callback panics it is told nothing more, and
// panicErr is what the call fails with.
type taf struct {
	v        *handle
	ctx      context.Context
	panicErr error
}

func (t *taf) tell(ev FailoverEvent) error {
	fo := t.v.c.cfg.failoverCB
	if fo == nil || t.panicErr != nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			t.panicErr = t.v.c.userPanic(fmt.Sprintf("failover callback (%v)", ev), p)
		}
	}()
	return fo(t.ctx, t.v.session(), ev)
}

// failover binds the handle to a new session after a loss: the recovery
// function does it if there is one (else hasql does), telling the failover
// callback each step. recErr is an error the recovery function chose to
// return (or a panic of the failover callback's); bindErr says no new
// session could be had.
func (v *handle) failover(ctx context.Context, cause error, rec Recovery, oldHost string) (recErr, bindErr error) {
	t := taf{v: v, ctx: ctx}
	t.tell(FoBegin)
	for try := 0; ; try++ {
		var err error
		if t.panicErr != nil {
			return t.panicErr, nil
		}
		if rec != nil {
			if recErr = v.runRecovery(ctx, rec, cause); recErr != nil {
				t.tell(FoAbort)
				return recErr, nil
			}
		}
		if v.ph == nil {
			err = v.bind(ctx, true)
		}
		if err == nil {
			v.c.reconnects.Add(1)
			if v.ph.host != oldHost {
				v.c.failovers.Add(1)
			}
			// As in OCI: the connection is back (FoEnd), then the tagged
			// session on it was re-established (FoReauth).
			t.tell(FoEnd)
			if v.ph.tag != "" {
				t.tell(FoReauth)
			}
			return t.panicErr, nil
		}
		if v.c.cfg.failoverCB != nil && t.tell(FoError) == ErrFoRetry && ctx.Err() == nil && try < maxFoRetries {
			continue
		}
		t.tell(FoAbort)
		if t.panicErr != nil {
			return t.panicErr, nil
		}
		return nil, err
	}
}

// lossWithoutRebind is failover for a loss after which no new session is
// bound now: inside a transaction (the transaction is gone; database/sql
// ends it on this handle), while rows stream (they end first), or when the
// work is not run again and no recovery function would rebuild anything.
// The failover callback is told FoBegin then FoAbort, and the recovery
// function (the session's own, else the connector's) still runs, as QNX runs
// it on any operation that fails on a lost connection. It returns the
// recovery function's error (or a panic's), nil if there was none.
func (v *handle) lossWithoutRebind(ctx context.Context, cause error, runRecovery bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	t := taf{v: v, ctx: ctx}
	t.tell(FoBegin)
	var recErr error
	if rec := v.recoveryFn(); runRecovery && rec != nil && t.panicErr == nil {
		recErr = v.runRecovery(ctx, rec, cause)
	}
	t.tell(FoAbort)
	if t.panicErr != nil {
		return t.panicErr
	}
	return recErr
}

// recoveryFn is the recovery function of the handle's checkout: its own
// (Session.Attach), else the connector's (WithRecovery).
func (v *handle) recoveryFn() Recovery {
	if v.recovery != nil {
		return v.recovery
	}
	return v.c.cfg.recovery
}

func (v *handle) runRecovery(ctx context.Context, rec Recovery, cause error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = v.c.userPanic("recovery function", p)
		}
	}()
	return rec(ctx, v.session(), cause)
}

// sessionLost handles the loss of session ph: the host is reported down and every session
// to it is purged — idle ones closed now, busy ones marked to close on
// release (OCI's FAN behaviour).
//
// A session opened before the host's last purge brings no news: that purge
// already marked it, so one restart that kills many sessions gives one
// HostDown and one purge, and the loss of an old session noticed late never
// purges the sessions opened since. The host is marked down until a connect
// to it succeeds again, which reports HostUp. A wrong role (the server is
// up, read-only) purges the host's sessions without reporting it down.
func (c *Connector) sessionLost(ph *session, cause error, wrongRole bool) {
	c.kickDiscovery()
	c.noteFailure()
	news, wasUp := c.hosts.lostSession(ph.hostRef, ph.hostGen, cause, wrongRole)
	if !news {
		return
	}
	if wasUp {
		c.events.emit(Event{Kind: HostDown, Host: ph.host, Err: cause})
	}
	n := c.pool.purgeHost(ph.host, false)
	c.events.emit(Event{Kind: SessionsPurged, Host: ph.host, Sessions: n, Err: cause})
}

// MarkHostDown tells the connector that host, a host:port as HostStats.Addr
// shows it, is down, as an outside notification would (OCI FAN). The host is
// blacklisted (see HostConfig.Blacklist), its idle sessions are closed
// before MarkHostDown returns, its busy ones are closed when their handles
// release them, and HostDown and SessionsPurged events are sent. Work in
// flight on the host's sessions is not interrupted; a session that fails
// later is replaced as any lost session is. The host is used again once its
// blacklist time has passed and a connect to it succeeds. A host the
// connector does not list is not blacklisted, but sessions connected to that
// address are purged and the events sent all the same.
func (c *Connector) MarkHostDown(host string) {
	if c.hosts == nil {
		return
	}
	err := newError(ErrHostDown, fmt.Sprintf("host %s marked down", host), nil)
	if h, _ := c.hosts.markDown(host, err, time.Now()); h != nil {
		c.hosts.bumpGen(h)
	}
	c.events.emit(Event{Kind: HostDown, Host: host, Err: err})
	n := c.pool.purgeHost(host, true)
	c.events.emit(Event{Kind: SessionsPurged, Host: host, Sessions: n, Err: err})
}

// Reconnect breaks the session's connection and establishes a new one on a
// host from the picker (PCP's pmReconnectContext). The session handle stays
// valid; statements are prepared again lazily; the session callback runs for
// the session's tag so its state comes back. After a failed attempt, calling
// it again before the back-off interval has passed returns ErrRetryTooSoon.
func (s *Session) Reconnect(ctx context.Context) error {
	v := s.handle()
	if v == nil {
		return errNotBound
	}
	if v.inTx {
		return newError(ErrInTransaction, "Reconnect inside a transaction would lose it", nil)
	}
	now := time.Now()
	if now.Before(v.nextReconnect) {
		return ErrRetryTooSoon
	}
	// A new connection for the same user, class and tag (whose session
	// callback restores the state); one attempt, not held by the outage
	// gate: the caller paces its attempts (ErrRetryTooSoon).
	if v.ph != nil {
		v.keepSelector(v.ph)
		v.ph.bad.Store(true)
		v.release()
	} else if v.rebind == nil {
		v.keepSelector(nil)
	}
	v.rebind.purity = PurityNew
	v.noGate = true
	err := v.bind(ctx, true)
	v.noGate = false
	if err != nil {
		v.nextReconnect = time.Now().Add(v.c.cfg.backoff.reconnectDelay(v.reconnectFails))
		v.reconnectFails++
		return err
	}
	v.reconnectFails, v.nextReconnect = 0, time.Time{}
	v.c.reconnects.Add(1)
	return nil
}

// keepSelector records what the handle's next binding must get after it
// loses ph: its user and class, and ph's tag (or the one asked for).
func (v *handle) keepSelector(ph *session) {
	sel := v.sel
	if ph != nil && ph.tag != "" {
		sel.tag = ph.tag
	}
	v.rebind = &sel
}

// Attach attaches a recovery function to the session (QNX ha_attach). With a
// function already attached it fails with ErrAlreadyAttached unless flags has
// ReplaceRecovery; ReplaceRecovery on a session without one fails with
// ErrNotAttached. A nil r with ReplaceRecovery detaches. The attachment
// lasts until the *sql.Conn is closed: the handle's next user starts
// without it.
func (s *Session) Attach(r Recovery, flags AttachFlag) error {
	v := s.handle()
	if v == nil {
		return errNotBound
	}
	switch {
	case flags&ReplaceRecovery == 0 && v.recovery != nil:
		return ErrAlreadyAttached
	case flags&ReplaceRecovery != 0 && v.recovery == nil:
		return ErrNotAttached
	}
	v.recovery = r
	return nil
}
