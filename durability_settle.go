package hasql

import (
	"context"
	"fmt"
	"time"
)

// Settling a replicated commit whose primary was lost. Under
// hasql.durability=replicated a commit returns once a standby has it. When
// the primary's session dies after COMMIT succeeded and before a standby
// confirmed it (the primary crashed, or the connection to it broke), the
// commit may or may not survive: an asynchronous standby promoted in the
// primary's place may lack it. With the commit-outcome guard on
// (hasql.txguard), the guard's record answers on the primary reachable now:
//
//   - absent there (the guard writes a tombstone, so the answer cannot
//     change): the commit is lost, and Commit returns ErrTxNotCommitted,
//     which RunTx and the application may run again;
//   - present on another host than the lost session's (a new primary): the
//     commit survived the failover, and Commit returns nil;
//   - present on the same host (the connection broke, the primary lives):
//     the wait for a standby is made again on a new session, within
//     hasql.durability_wait, and its outcome is Commit's.
//
// Without the guard, or when no answer can be had, the error wraps
// ErrTxResolutionUnknown as before. A wait that runs out of
// durability_wait while the primary lives is not a loss: it keeps
// ErrTxResolutionUnknown (the commit is done on the primary but not
// confirmed elsewhere).

// durableLossSettles reports whether a failed durability wait after fn is
// handed to the guard: a guarded COMMIT whose primary session died.
func (v *handle) durableLossSettles(ctx context.Context, fn Fn) bool {
	return fn == FnCommit && v.guardID != "" && v.c.guard != nil && v.primaryGone(ctx)
}

// primaryGone reports whether the primary's session of a commit whose
// durability wait failed is dead. PostgreSQL's wait runs on that session,
// which is marked bad if it died; MariaDB's runs on a replica session and
// times out whatever became of the primary, so the primary's session is
// asked a SELECT 1, bounded by hasql.connect_timeout.
func (v *handle) primaryGone(ctx context.Context) bool {
	ph := v.ph
	if ph == nil {
		return false
	}
	if ph.bad.Load() || v.c.rw.repl.waitReplicated != "" {
		return ph.bad.Load()
	}
	pctx, cancel := context.WithTimeout(ctx, v.c.cfg.backoff.ConnectTimeout)
	defer cancel()
	if _, err := queryOne(pctx, ph, "SELECT 1"); err != nil && v.c.dialect.connDead(err) {
		ph.bad.Store(true)
	}
	return ph.bad.Load()
}

// settleLostDurable settles a guarded, replicated commit whose primary
// session died before a standby confirmed it (see above). pos is the
// commit's position, "" when it could not be read; cause is why the wait
// failed. It releases the dead session.
func (v *handle) settleLostDurable(ctx context.Context, pos string, cause error) error {
	c, ph, id := v.c, v.ph, v.guardID
	c.sessionLost(ph, cause, false)
	v.keepSelector(ph)
	sel := *v.rebind
	key, lostHost := ph.key, ph.host
	v.release() // frees the dead session's slot before the guard takes one
	unknown := func(why string, err error) error {
		c.txUnknown.Add(1)
		return newError(ErrTxResolutionUnknown, "the primary's session was lost before a standby confirmed the commit; "+why, err)
	}
	committed, ok := c.guard.resolve(sel, id)
	if !ok {
		return unknown("the commit-outcome guard could not resolve it", cause)
	}
	if !committed {
		c.txNotCommitted.Add(1)
		return newError(ErrTxNotCommitted, "the primary's session was lost before a standby confirmed the commit, and the commit-outcome guard found it absent on the primary reachable now", cause)
	}
	rw := c.rw
	gctx, cancel := context.WithTimeout(ctx, rw.durWait+c.cfg.backoff.ConnectTimeout)
	defer cancel()
	co, err := c.pool.get(gctx, key, "", selector{}, false, time.Time{})
	if err != nil {
		return unknown("the commit is on the primary, and no session to it could be had to wait for a standby", err)
	}
	defer c.pool.put(co.ph)
	if co.ph.host != lostHost {
		// The guard found the record on a new primary: it survived.
		c.txCommittedAfterLoss.Add(1)
		return nil
	}
	if pos == "" {
		if rw.repl.waitReplicated == "" {
			// MariaDB: @@last_gtid is the lost session's own.
			return unknown("its replication position is not known", cause)
		}
		// PostgreSQL: the primary's current position is at or past the
		// commit's.
		pctx, pcancel := context.WithTimeout(ctx, c.cfg.backoff.ConnectTimeout+5*time.Second)
		pos, err = queryText(pctx, co.ph, rw.repl.writePos)
		pcancel()
		if err != nil {
			return unknown(fmt.Sprintf("its replication position could not be read on %s", lostHost), err)
		}
	}
	if err := c.awaitReplicated(ctx, co.ph, pos); err != nil {
		return err
	}
	c.txCommittedAfterLoss.Add(1)
	return nil
}
