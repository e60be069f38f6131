package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
)

// mayRerun reports whether work whose session was lost may run again on a
// new session: the retry mode allows re-runs, the caller is still waiting,
// and the work certainly never ran (notSent) or is marked Idempotent under
// hasql.retry=idempotent. Transactions are never re-run here. It is the one
// rule for calls (decide) and for work lost while its rows closed.
func (c *Connector) mayRerun(ctx context.Context, notSent bool) bool {
	if c.cfg.retry == RetryOff || ctx.Err() != nil {
		return false
	}
	return notSent || c.cfg.retry == RetryIdempotent && isIdempotent(ctx)
}

// canRetryStale reports whether work that failed on a stale prepared
// statement may be prepared again and run once more: the error proves it did
// not run, but hasql.retry=off asks for no re-runs at all, and inside a
// transaction on a server where an error aborts the transaction there is
// nothing left to run it in.
func (c *Connector) canRetryStale(err error, inTx bool) bool {
	return c.cfg.retry != RetryOff && c.dialect.staleStmt(err) && !(inTx && c.dialect.stmtErrAbortsTx())
}

// decide is the pipeline's decision after a call on the bound session failed
// with err (attempt counts from 0; safe: running the call again can never run
// work twice). It reports whether to run the call again (the handle is then
// bound to a new session) and, if not, the error the caller gets.
//
// An ordinary error is the outcome as it came. A lost session is terminated
// and its host purged (sessionLost); then:
//   - inside a transaction the work is not run again: the caller gets a
//     *LostError wrapping ErrTxNotCommitted (the server rolls back the
//     transaction of a connection it loses), or ErrTxResolutionUnknown
//     when COMMIT itself may have been sent and the commit-outcome guard
//     could not resolve it (resolved: nil if it committed; if not, a
//     replay with hasql.replay, replayUncommitted, else ErrTxNotCommitted);
//     a loss before COMMIT is replayed when replayTrigger allows; a later
//     Commit in the same transaction reports ErrTxNotCommitted without
//     reaching the driver,
//     and a Rollback on a dead session has happened and succeeds;
//   - outside one, autocommit work that hasql.txguard=all wrapped is first
//     resolved (decideAuto): not applied counts as never sent, applied
//     gives its outcome without a result; then the work runs again on a
//     new session when mayRerun allows it and fewer than maxReruns re-runs
//     were made, after the
//     recovery function and the failover callback (failover); otherwise the
//     caller gets a *LostError (ErrConnectionLost) and the handle binds anew
//     on its next call;
//   - a wrong-role error (the server became a standby) is handled like a loss
//     that certainly did not run, but a caller who is not re-run gets the
//     server's own error.
func (v *handle) decide(ctx context.Context, fn Fn, err error, attempt int, safe bool) (retry bool, out error) {
	if err == driver.ErrSkip || v.ph == nil {
		return false, err
	}
	ph := v.ph
	class := v.c.dialect.classify(err) // step 3: one classification per failed call
	if fn == FnRollback {
		if !ph.bad.Load() && class&classDead == 0 {
			return false, err
		}
		// The server rolls back a transaction whose connection died: the
		// rollback the caller asked for has happened.
		if !ph.bad.Swap(true) {
			v.c.sessionLost(ph, err, false)
		}
		v.release()
		return false, nil
	}
	if class&classTxConflict != 0 && v.inTx {
		// The server rolled the whole transaction back (Galera's
		// certification failure, a deadlock): its Commit must not report
		// success (go-sql-driver/mysql's would), see tx.Commit. Where an
		// error aborts the transaction anyway (PostgreSQL) the driver's
		// Commit says so itself, and a savepoint may have rescued it.
		if fn == FnCommit {
			v.c.txNotCommitted.Add(1)
			return false, &txAbortedError{cause: err}
		}
		if !v.c.dialect.stmtErrAbortsTx() {
			v.txAbort = err
		}
	}
	if class&classTxConflict != 0 && class&classDead == 0 && !v.inTx && attempt < maxReruns &&
		(fn == FnExec || fn == FnQuery || fn == FnStmtExec || fn == FnStmtQuery) && v.c.mayRerun(ctx, true) {
		// Outside a transaction the statement was a transaction of its
		// own, which the server rolled back whole (a Galera certification
		// failure, a deadlock): nothing of it was committed, so running it
		// again on the same session cannot run it twice.
		v.c.retries.Add(1)
		return true, nil
	}
	// A read-only transaction the application asked for makes its own
	// writes fail with a wrong-role error: that is its error, not the
	// server's role. A node that is not ready (Galera) is the wrong role
	// for any work.
	wrongRole := class&classWrongRole != 0 && v.c.cfg.target != TargetAny && !(v.inTx && v.txReadOnly) && !v.routed ||
		class&classNotReady != 0
	if !wrongRole && class&classDead == 0 {
		return false, err
	}
	notSent := wrongRole || safe || class&classNotSent != 0 || fn == FnCommit && v.commitUnsent
	if wrongRole && class&classNotReady == 0 {
		v.c.hosts.setRole(ph.host, roleStandby)
	}
	if class&classNotReady != 0 && ph.hostRef != nil {
		// Not usable until it rejoins: skipped for a blacklist period.
		v.c.hostFailed(ph.hostRef, err)
	}
	ph.bad.Store(true)
	v.c.sessionLost(ph, err, wrongRole)
	v.keepSelector(ph)
	if v.inTx {
		// The transaction is gone with its connection (or, on a wrong
		// role, aborted by the server); database/sql's Rollback will find
		// the session dead and let the handle go. No new session is bound
		// inside the transaction, but the failover callback and the
		// recovery function hear of the loss.
		if wrongRole {
			return false, err
		}
		lost := newLostError(ph, err, !notSent, true)
		if fn == FnCommit && !notSent {
			// COMMIT may have reached the server: it may have committed.
			// The guard, if it wrote a record, finds out on a new session.
			if v.c.guard != nil && v.txReadOnly {
				// A read-only transaction changed nothing: whether its
				// COMMIT arrived makes no difference, nothing to resolve.
				_ = v.lossWithoutRebind(ctx, err, true)
				return false, nil
			}
			if id := v.guardID; id != "" && v.c.guard != nil {
				sel := *v.rebind
				v.release() // frees the dead session's slot first
				if committed, ok := v.c.guard.resolve(sel, id); ok {
					if committed {
						// The failover callback and recovery function hear
						// of the loss; the caller learns the commit happened.
						_ = v.lossWithoutRebind(ctx, err, true)
						v.c.txCommittedAfterLoss.Add(1)
						return false, nil
					}
					// Not committed: with replay on, the transaction runs
					// again on a new session and this COMMIT (guarded
					// again) with it, at most maxReplays times in all.
					if retry, out, done := v.replayUncommitted(ctx, err, lost); done {
						return retry, out
					}
					v.c.txNotCommitted.Add(1)
					return false, joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
				}
			}
			lost.kind = ErrTxResolutionUnknown
			v.c.txUnknown.Add(1)
		} else {
			if v.replayTrigger(fn, notSent) {
				// Transparent replay (replay.go): the transaction again on
				// a new session, then this call.
				if attempted, rerr := v.replayTx(ctx, err, lost); attempted {
					if rerr == nil {
						return true, nil
					}
					v.txNotCommittedAfter(fn, lost)
					return false, rerr
				}
			}
			v.txNotCommittedAfter(fn, lost)
		}
		if v.rec != nil {
			v.rec.broken = true // this loss is final: never replayed later
		}
		return false, joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
	}
	var kind error
	if !wrongRole && (v.autoGuard != "" || v.autoUnsent) {
		// hasql.txguard=all wrapped the work (txguard_auto.go): the guard
		// may tell whether it took effect.
		var out error
		var done bool
		if notSent, kind, out, done = v.decideAuto(ctx, ph, err, notSent); done {
			v.release()
			return false, out
		}
	}
	// A wrong role is the server refusing the work: nothing ran and no
	// connection was lost, so when it is not re-run the caller gets the
	// server's error itself.
	var lost error = err
	if !wrongRole {
		le := newLostError(ph, err, !notSent, false)
		if kind != nil {
			le.kind = kind
		}
		lost = le
	}
	v.release()
	if v.c.cfg.retry == RetryOff && err == driver.ErrBadConn {
		// database/sql's own retry, as without hasql: it runs the work
		// again on a new connection, so the caller gets ErrBadConn bare.
		lost = err
	}
	canRetry := v.c.cfg.retry != RetryOff && attempt < maxReruns && v.c.mayRerun(ctx, notSent)
	if kind == ErrTxNotCommitted && (!canRetry || ctx.Err() != nil) {
		// A guarded autocommit write the caller learns did not take
		// effect: counted as a transaction that did not commit.
		v.c.txNotCommitted.Add(1)
	}
	rec := v.recoveryFn()
	if ctx.Err() != nil || !canRetry && rec == nil {
		// Nothing binds a new session now (the next call on the handle
		// will): the failover ends here.
		return false, joinLoss(v.lossWithoutRebind(ctx, err, false), lost)
	}
	recErr, bindErr := v.failover(ctx, err, rec, ph.host)
	switch {
	case recErr != nil:
		return false, joinLoss(recErr, lost) // the recovery function's verdict, with the loss
	case !canRetry:
		return false, lost
	case bindErr != nil:
		return false, bindErr
	}
	v.c.retries.Add(1)
	return true, nil
}

// txNotCommittedAfter records a loss, met by fn, after which the
// transaction certainly did not commit.
func (v *handle) txNotCommittedAfter(fn Fn, lost *LostError) {
	if fn == FnCommit {
		v.c.txNotCommitted.Add(1) // COMMIT certainly not sent
	} else {
		v.txLost(lost)
	}
}

// replayUncommitted is decide's rule for a COMMIT lost after it was sent
// that the commit-outcome guard resolved as not committed: that proves what
// a loss before COMMIT proves, so the transaction is replayed on a new
// session when replay may (replayTrigger) and the COMMIT runs again there
// (retry). done is false when no replay was attempted; the caller then
// reports ErrTxNotCommitted. A replay that failed counts the transaction as
// not committed and gives the replay's error (ErrReplayDiverged wrapping
// the loss, or the loss).
func (v *handle) replayUncommitted(ctx context.Context, cause error, lost *LostError) (retry bool, out error, done bool) {
	if !v.replayTrigger(FnCommit, true) {
		return false, nil, false
	}
	// The guard released the dead session (release ends the handle's
	// transaction for the pool); the transaction goes on, on the replay's
	// session.
	v.inTx = true
	attempted, rerr := v.replayTx(ctx, cause, lost)
	if !attempted {
		v.inTx = false
		return false, nil, false
	}
	if rerr == nil {
		return true, nil, true
	}
	v.c.txNotCommitted.Add(1)
	return false, rerr, true
}

// joinLoss is the error a caller gets when a user function (the recovery
// function, or a panicking failover callback) failed after a loss: both, so
// that errors.Is reaches the function's error and the loss's sentinel. With
// no such error it is the loss alone.
func joinLoss(fnErr, lost error) error {
	if fnErr == nil {
		return lost
	}
	return errors.Join(fnErr, lost)
}
