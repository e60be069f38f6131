package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// Bounds of the call pipeline. Each keeps a call from looping when every new
// session it gets dies at once too (a server that accepts connections and
// drops them): past a bound the caller gets the last error.
const (
	// maxReruns is how often one call is run again after its session was
	// lost. Three covers a restart that kills the pooled sessions in waves
	// (the bound session, then the one that replaced it before the purge
	// reached it) without hiding a server that drops every connection.
	maxReruns = 3

	// maxRebinds is how often one checkout replaces a pooled session found
	// dead at reset, or goes back to the outage gate, before it gives up.
	// Sixteen is more than a pool's worth of sessions killed together that
	// a purge had not reached yet (the default pool has no maximum, but
	// restarts were measured to leave at most a handful listed), and small
	// enough that a flapping server fails the call in milliseconds.
	maxRebinds = 16

	// maxFoRetries bounds how often a failover callback may answer FoError
	// with ErrFoRetry (OCI has no bound; a callback that always asks again
	// would hold the call forever, so its context is checked too).
	maxFoRetries = 64

	// maxStaleReprepares is how often a statement the server reports stale
	// is prepared again and run once more within one attempt. Once: the
	// error proves the first run did nothing, and a statement prepared a
	// moment ago that is stale again means the schema keeps changing.
	maxStaleReprepares = 1
)

// run is the call pipeline: every driver call a handle or a statement makes
// for database/sql goes through it, and it alone owns the call's life. fn,
// ctx, query and args are the call as the caller made it; s is the statement
// for statement calls, nil otherwise. It returns what the
// call produced: a Result for FnExec and FnStmtExec, Rows for FnQuery and
// FnStmtQuery (FnPrepare and FnBegin hand theirs over in v.prepared and
// v.began).
//
// The steps, in order:
//
//  1. bind: ensure the handle has a session for ctx (v.ensure); a statement
//     is also made to exist there (s.ready). Commit and Rollback run on the
//     session their transaction has. Read routing (the clusters issue)
//     chooses the session's role here, from the context.
//  2. call: the callback chain registered for fn, with the handle's Call,
//     or else the driver call directly (perform). Stale-statement recovery
//     happens inside this step (runStmt), so that callbacks see one call. A
//     transaction recorder (replay) digests the Result and the Rows here,
//     after a call succeeds.
//  3. classify: the dialect turns the error into a class (dead, not sent,
//     stale statement, wrong role, conflict).
//  4. decide: v.decide applies the retry rules: an ordinary error is the
//     outcome; a lost session is purged and reported, and the call is run
//     again only when that is proven safe. Commit-outcome resolution is a
//     rule here (a lost FnCommit), and so is replaying a transaction.
//  5. rebind: the recovery function, the failover callback's events and a
//     new session (v.failover), then step 1 again, at most maxReruns times.
//
// run allocates nothing of its own, and without callbacks it builds no Call:
// the chain is loaded with one atomic read, and the direct call is one
// switch.
func (v *handle) run(fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (driver.Result, driver.Rows, error) {
	if v.rec != nil {
		if gone, err := v.txGone(fn); gone {
			return nil, nil, err
		}
	}
	v.fresh = false
	for attempt := 0; ; attempt++ {
		var err error
		v.autoGuard, v.autoUnsent = "", false
		switch {
		case s != nil:
			err = s.ready(ctx)
		case fn != FnCommit && fn != FnRollback:
			err = v.ensure(ctx)
		}
		if err != nil {
			if s == nil {
				return nil, nil, err
			}
			// The statement could not be prepared on the bound session:
			// preparing changes no data, so that is safe to run again.
			if retry, err := v.decide(ctx, fn, err, attempt, true); !retry {
				return nil, nil, err
			}
			continue
		}
		var r driver.Result
		var rows driver.Rows
		if ch := v.c.reg.chain(fn); ch != nil {
			r, rows, err = v.intercept(ch, fn, ctx, query, args, s)
		} else {
			r, rows, err = v.perform(fn, ctx, query, args, s)
		}
		if err == nil {
			if v.rec != nil {
				v.record(fn, query, args, r, nil)
			}
			if v.c.rw != nil {
				// Reads on standbys and durability (reads.go): a
				// write's replication position.
				if err := v.afterWrite(fn, ctx); err != nil {
					if rows != nil {
						rows.Close()
					}
					return nil, nil, err
				}
			}
			return r, rows, nil
		}
		retry, err := v.decide(ctx, fn, err, attempt, v.changesNothing(fn))
		if !retry {
			if a, ok := err.(*appliedAfterLoss); ok {
				// hasql.txguard=all: the work took effect, its result
				// was lost with the session.
				r, err := a.outcome(fn)
				return r, nil, err
			}
			if v.rec != nil {
				v.record(fn, query, args, nil, err)
			}
			return nil, nil, err
		}
	}
}

// changesNothing reports whether running fn again can never run work twice:
// a ping, a prepare, and a begin when no transaction is open (one that failed
// to begin on a lost connection holds nothing).
func (v *handle) changesNothing(fn Fn) bool {
	return fn == FnPing || fn == FnPrepare || fn == FnBegin && !v.inTx
}

// intercept is run's call step when callbacks are registered for fn: the
// chain runs on the handle's Call (see newCall), and the driver call, if the
// callbacks let it happen, is perform's.
func (v *handle) intercept(ch *chain, fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (driver.Result, driver.Rows, error) {
	c := v.newCall(fn, ctx, query, args)
	if fn == FnBegin {
		// Callbacks see the options (and may change them) as Args[0].
		c.Args = []driver.NamedValue{{Ordinal: 1, Value: v.beginOpts}}
	}
	var err error
	if s != nil {
		err = ch.run(c, s)
	} else {
		err = ch.run(c, v)
	}
	r, rows := c.Result, c.Rows
	v.doneCall(c)
	return r, rows, err
}

// perform is the driver call behind one pipeline call, on the bound session:
// what callbacks call "the driver call" (invoke) and what run calls directly
// when there are none.
func (v *handle) perform(fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (r driver.Result, rows driver.Rows, err error) {
	if v.c.guard != nil && v.guardsAuto(fn, ctx, query) {
		return v.guardedAuto(fn, ctx, query, args, s)
	}
	if (fn == FnExec || fn == FnQuery || fn == FnStmtExec || fn == FnStmtQuery) && v.ph.pooled && v.wrapsAutocommit() {
		return v.inOwnTx(fn, ctx, query, args, s)
	}
	switch fn {
	case FnExec, FnQuery, FnStmtExec, FnStmtQuery:
		r, rows, err = v.runWork(fn, ctx, query, args, s)
	case FnPing:
		err = v.ph.ping(ctx)
	case FnPrepare:
		v.prepared, err = v.acquireExplicit(ctx, query, stmtTagFrom(ctx))
	case FnBegin:
		opts := v.beginOpts
		if len(args) == 1 {
			// What the callbacks saw, and may have changed.
			opts, _ = args[0].Value.(driver.TxOptions)
		}
		v.began, err = v.ph.begin(ctx, opts)
	case FnCommit:
		err = v.commitGuarded(v.curTx)
	case FnRollback:
		err = v.curTx.inner.Rollback()
	default:
		err = newError(ErrCallbackOutcome, fmt.Sprintf("%v is not a call of the pipeline", fn), nil)
	}
	return r, rows, err
}

// runWork runs the statement of an Exec or Query call (FnExec, FnQuery: the
// ad-hoc query; FnStmtExec, FnStmtQuery: s) on the bound session, as it is:
// the wrapping that perform may add (a guard, a pooler's transaction) is the
// caller's.
func (v *handle) runWork(fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (driver.Result, driver.Rows, error) {
	if fn == FnExec || fn == FnQuery {
		return v.adhoc(fn, ctx, query, args)
	}
	return v.runStmt(ctx, fn, &s.cs, s, args)
}

// runStmt runs a prepared statement of the bound session (the handle's own
// statement, or the cached one behind ad-hoc work) and, when the server
// says the statement is stale — proof that nothing ran —, prepares it again
// and runs it once more (maxStaleReprepares). *cs is replaced by the statement
// that ran; it is nil if preparing again failed.
func (v *handle) runStmt(ctx context.Context, fn Fn, cs **cachedStmt, s *stmt, args []driver.NamedValue) (r driver.Result, rows driver.Rows, err error) {
	for i := 0; ; i++ {
		if fn == FnExec || fn == FnStmtExec {
			r, err = stmtExec(ctx, (*cs).si, args)
		} else {
			rows, err = stmtQuery(ctx, (*cs).si, args)
		}
		if err == nil || i == maxStaleReprepares || !v.c.canRetryStale(err, v.inTx) {
			return r, rows, err
		}
		if !v.reprepare(cs, s, ctx) {
			return r, rows, err
		}
	}
}

// reprepare replaces the stale statement *cs with one prepared afresh on the
// bound session, reporting whether that worked.
func (v *handle) reprepare(cs **cachedStmt, s *stmt, ctx context.Context) bool {
	ph := v.ph
	ph.invalidateStmt(*cs)
	if s != nil {
		// pgx shares one server statement among the cached statements
		// with this text (other tags): it is prepared afresh only once
		// all are closed.
		ph.dropShadowing(s.query)
		s.release()
		if s.ready(ctx) != nil {
			*cs = nil
			return false
		}
		*cs = s.cs
		return true
	}
	key := (*cs).key
	ph.releaseStmt(*cs)
	again, err := ph.acquireStmt(ctx, key.query, key.tag)
	if err != nil {
		*cs = nil
		return false
	}
	*cs = again
	return true
}
