package hasql

import "time"

// One pool as the user sees it: database/sql's own knobs (SetMaxIdleConns,
// SetMaxOpenConns, SetConnMaxLifetime, SetConnMaxIdleTime) act on hasql's
// virtual handles, and these two rules carry their effect over to the
// physical sessions behind the handles, so that the real connections follow
// them as they would without hasql.
//
// Close-through. When database/sql closes a handle (an idle connection past
// MaxIdleConns, ConnMaxLifetime or ConnMaxIdleTime, one it gave up on after
// driver.ErrBadConn, or the whole DB), the session the handle had last —
// parked on it, idle in the pool — closes too, unless another checkout has
// taken it meanwhile (it is that checkout's now) or hasql keeps it for its
// own settings (see keepLocked): a tagged session, a session of a
// connection class or user partition, or a session needed to keep
// hasql.pool.min sessions open.
//
// Age. A session that served a handle serves only handles at least as old
// as itself (session.serves): a handle's checkout takes an idle session
// opened before the handle was made only if hasql keeps it for its own
// settings or it was opened in the background and never handed out. So a session in use is
// never older than the handle it serves, and since database/sql closes a
// handle past ConnMaxLifetime (and the session with it), a session is never
// older at a checkout than SetConnMaxLifetime allows. A handle's own session
// is always as young as the handle or kept, so taking it back costs no check.
//
// Sessions hasql keeps are bounded by hasql.idle_timeout and
// hasql.max_lifetime only, which bound every session in any case.

// serves reports whether ph, listed and idle, may be handed to a checkout of
// a handle made at born (see Age above): one opened no earlier than the
// handle, one never handed out (opened in the background: for
// hasql.pool.incr, the outage prober), or one hasql keeps. p.mu is held: tag
// and minKeep of a listed session change under it, and used changes only
// while the session is unlisted (pool.put).
func (ph *session) serves(born time.Time) bool {
	return !ph.created.Before(born) || !ph.used || ph.kept()
}

// kept reports whether hasql keeps ph for its own settings whatever
// database/sql does with handles: tagged (the user asked for its state to be
// found again), in a connection class or user partition, or kept for
// hasql.pool.min. A session on a standby for read-only work (reads.go) is
// not a partition the user asked for: database/sql's knobs govern it as any
// other. p.mu is held, or the caller holds ph.
func (ph *session) kept() bool {
	return ph.tag != "" || ph.key.user != "" || ph.key.pass != "" || ph.key.class != "" || ph.minKeep
}

// closeThrough is called when database/sql closes the handle numbered owner,
// with the session the handle had last: the session is closed too if it is
// still idle, still that handle's, and hasql does not keep it (keepLocked).
// A session another checkout holds, or took and released since, is left to
// that checkout.
func (p *pool) closeThrough(ph *session, owner uint64) {
	p.mu.Lock()
	// Held while we look (as takeIdleWhereLocked does); given back within
	// this one critical section if spared, so no checkout can have scanned
	// the lists and queued as a waiter while it was held.
	if !ph.listed || !ph.idle.CompareAndSwap(true, false) {
		p.unlock()
		return
	}
	if ph.owner != owner || !ph.bad.Load() && p.keepLocked(ph) {
		ph.idle.Store(true)
		p.unlock()
		return
	}
	p.unlistLocked(ph)
	p.freeSlotsLocked(1)
	p.unlock()
	ph.close(ph.bad.Load())
	p.kick() // below Min now if a purge or the reaper raced us: top up
}

// keepLocked reports whether hasql keeps ph, which the caller holds, when
// the handle it served is closed: when kept says so, or when closing it
// would leave fewer than hasql.pool.min sessions open; the latter marks it
// minKeep, so that it goes on serving handles of any age.
func (p *pool) keepLocked(ph *session) bool {
	if ph.kept() {
		return true
	}
	if p.open <= p.cfg.Min {
		ph.minKeep = true
		return true
	}
	return false
}
