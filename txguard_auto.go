package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strings"
)

// Commit-outcome resolution for autocommit writes (hasql.txguard=all). An
// autocommit write is run as a transaction of its own that also writes a
// guard record (see txguard.go), so that when its session dies after it was
// sent, hasql can find out on a new session whether it took effect:
//
//   - not applied: it certainly did not run, so the pipeline treats it as
//     work that was never sent (run again under the retry rules, else a
//     *LostError wrapping ErrTxNotCommitted with SafeToRetry true);
//   - applied: Exec returns a nil error and a Result whose methods return
//     an error wrapping ErrResultUnknown;
//   - no answer: a *LostError wrapping ErrTxResolutionUnknown.

// guardExecer is what a guardDialect may add for hasql.txguard=all: an
// autocommit write and its guard record's INSERT run as one transaction in
// one round trip.
type guardExecer interface {
	// guardExec runs query with args and the INSERT of record id into
	// table as one transaction. ok is false when it cannot (nothing was
	// sent; the caller takes the general way). sent reports whether,
	// after a failure, anything may have reached the server.
	guardExec(ctx context.Context, inner driver.Conn, query string, args []driver.NamedValue, table, id string) (r driver.Result, ok, sent bool, err error)
}

// guardInliner is what a guardDialect may add for hasql.txguard=all: the
// record's INSERT written into the statement itself (one statement, so one
// transaction and one round trip, with the rows of a query as the driver
// returns them).
type guardInliner interface {
	// guardInline returns query rewritten to also insert the record into
	// table, its id as the parameter after args; ok is false when it
	// cannot.
	guardInline(query string, args []driver.NamedValue, table string) (q string, ok bool)
	// inlineRefused reports whether err is the server refusing the
	// rewritten statement itself (nothing ran): the work then takes
	// another way.
	inlineRefused(err error) bool
}

// guardsAuto reports whether the autocommit work fn(query) on the bound
// session is run with a guard record: hasql.txguard=all, outside a
// transaction, on a session for writes, a statement that changes data
// (writesData), and neither work hasql would run again anyway (marked
// Idempotent under hasql.retry=idempotent) nor the guard's own.
func (v *handle) guardsAuto(fn Fn, ctx context.Context, query string) bool {
	g := v.c.guard
	if g == nil || v.c.cfg.txGuard.Mode != TxGuardAll || v.inTx || v.routed || v.bookkeeping {
		return false
	}
	if fn != FnExec && fn != FnQuery && fn != FnStmtExec && fn != FnStmtQuery {
		return false
	}
	if v.c.cfg.retry == RetryIdempotent && isIdempotent(ctx) {
		return false
	}
	return writesData(query)
}

// writeVerbs are the first keywords of the statements writesData accepts.
var writeVerbs = [...]string{"INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE"}

// writesData reports whether query is one statement that changes data and
// can run inside a transaction: its first keyword (after white space,
// comments and opening parentheses) is INSERT, UPDATE, DELETE, MERGE or
// REPLACE, or WITH followed later by one of them (a data-modifying CTE).
// Reads, DDL, CALL, SET and texts with a ';' before their end are not.
func writesData(query string) bool {
	q := skipSpaceAndComments(query)
	if i := strings.IndexByte(q, ';'); i >= 0 && strings.TrimRight(q[i:], "; \t\r\n") != "" {
		return false
	}
	kw := leadingWord(q)
	for _, w := range writeVerbs {
		if strings.EqualFold(kw, w) {
			return true
		}
	}
	if !strings.EqualFold(kw, "WITH") {
		return false
	}
	up := strings.ToUpper(q)
	for _, w := range writeVerbs[:4] {
		if containsWord(up, w) {
			return true
		}
	}
	return false
}

// skipSpaceAndComments returns q from its first keyword on: white space,
// "--" and "/* */" comments and opening parentheses skipped.
func skipSpaceAndComments(q string) string { return skipLeading(q, true) }

// skipLeading is skipSpaceAndComments, opening parentheses skipped only
// with parens.
func skipLeading(q string, parens bool) string {
	for len(q) > 0 {
		switch {
		case q[0] == ' ' || q[0] == '\t' || q[0] == '\n' || q[0] == '\r' || parens && q[0] == '(':
			q = q[1:]
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[i+4:]
		default:
			return q
		}
	}
	return q
}

// leadingWord is the run of ASCII letters q starts with.
func leadingWord(q string) string {
	i := 0
	for i < len(q) && (q[i]|0x20 >= 'a' && q[i]|0x20 <= 'z') {
		i++
	}
	return q[:i]
}

// containsWord reports whether w occurs in s as a whole word.
func containsWord(s, w string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], w)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(w)
		if (i == 0 || !isWordByte(s[i-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		off = i + 1
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b|0x20 >= 'a' && b|0x20 <= 'z'
}

// guardedAuto runs autocommit work with a guard record (guardsAuto): in one
// round trip where the dialect can (the record in the statement itself,
// guardInline, for ad-hoc work; else guardExec for an exec), else as
// BEGIN, the work, and the guarded COMMIT (for a query, when its rows end). It
// leaves in v.autoGuard the record's id when a failure may have followed
// the work's arrival at the server, and sets v.autoUnsent when the failure
// certainly came before the work could take effect; decide reads both.
func (v *handle) guardedAuto(fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (r driver.Result, rows driver.Rows, err error) {
	g, ph := v.c.guard, v.ph
	if err := g.ensure(ctx, ph); err != nil {
		v.autoUnsent = true // only the table's DDL was sent
		return nil, nil, err
	}
	id := newGuardID()
	if gi, ok := g.d.(guardInliner); ok && (fn == FnExec || fn == FnQuery) {
		if q, ok := gi.guardInline(query, args, g.table); ok {
			// The record in the statement itself. The rows of a query
			// learn the id (wrapRows): a loss while they stream is
			// resolved there.
			if fn == FnQuery {
				v.autoInline = id
			}
			withID := append(args[:len(args):len(args)], driver.NamedValue{Ordinal: len(args) + 1, Value: id})
			r, rows, err = v.adhoc(fn, ctx, q, withID)
			switch {
			case err == nil:
				return r, rows, nil
			case !gi.inlineRefused(err):
				v.autoGuard, v.autoInline = id, ""
				return nil, nil, err
			}
			v.autoInline = "" // the statement cannot take the CTE: nothing ran
		}
	}
	if ge, ok := g.d.(guardExecer); ok && (fn == FnExec || fn == FnStmtExec) && !ph.pooled {
		r, ok, sent, err := ge.guardExec(ctx, ph.inner, query, ph.poolerArgs(args), g.table, id)
		if ok {
			if err != nil && sent {
				v.autoGuard = id
			} else if err != nil {
				v.autoUnsent = true
			}
			return r, nil, err
		}
	}
	itx, err := ph.begin(ctx, driver.TxOptions{})
	if err != nil {
		v.autoUnsent = true
		return nil, nil, err
	}
	r, rows, err = v.runWork(fn, ctx, query, args, s)
	if err != nil {
		v.autoUnsent = true // COMMIT was not sent: the server rolls back
		if !v.c.dialect.connDead(err) {
			if rerr := itx.Rollback(); rerr != nil {
				ph.bad.Store(true)
			}
		}
		return nil, nil, err
	}
	if rows != nil {
		// Committed with its record when the rows end (rows.endGuarded).
		v.autoTx, v.autoGuarded = itx, true
		return nil, rows, nil
	}
	if err := v.commitAuto(ph, itx, id); err != nil {
		return nil, nil, err
	}
	return r, nil, nil
}

// commitAuto commits the own transaction itx of autocommit work on ph with
// the guard record id, and sets v.autoGuard or v.autoUnsent after a
// failure as guardedAuto says.
func (v *handle) commitAuto(ph *session, itx driver.Tx, id string) error {
	g := v.c.guard
	sent, err := g.d.guardCommit(context.Background(), ph.inner, itx, ph.pooled, g.table, id)
	if err == nil {
		return nil
	}
	if sent {
		v.autoGuard = id
		return err
	}
	v.autoUnsent = true
	if !v.c.dialect.connDead(err) {
		if rerr := itx.Rollback(); rerr != nil {
			ph.bad.Store(true)
		}
		return newError(ErrTxGuard, fmt.Sprintf("the commit-outcome guard could not write its record in %s; the statement was rolled back", g.table), err)
	}
	return err
}

// resolveAuto finds out whether the autocommit work whose guard record is
// id, lost with session ph, took effect (txGuard.resolve), on a new session
// with ph's selector; ph is let go first.
func (v *handle) resolveAuto(ph *session, id string) (applied, ok bool) {
	v.keepSelector(ph)
	sel := *v.rebind
	if v.ph == ph {
		v.release()
	}
	return v.c.guard.resolve(sel, id)
}

// appliedAfterLoss is what decide hands run for autocommit work the guard
// resolved as applied after its session died: run turns it into the
// caller's outcome (appliedOutcome).
type appliedAfterLoss struct{ lost *LostError }

func (e *appliedAfterLoss) Error() string { return e.lost.Error() }

// appliedOutcome is the outcome of fn resolved as applied: for an exec a nil
// error and a Result that cannot tell its values, for a query the loss
// (its rows are gone).
func (e *appliedAfterLoss) outcome(fn Fn) (driver.Result, error) {
	if fn == FnExec || fn == FnStmtExec {
		return unknownResult{e.lost}, nil
	}
	return nil, e.lost
}

// unknownResult is the Result of an autocommit write that took effect
// after its session died: the values are lost with the session.
type unknownResult struct{ lost *LostError }

// LastInsertId returns an error wrapping ErrResultUnknown.
func (r unknownResult) LastInsertId() (int64, error) { return 0, r.lost }

// RowsAffected returns an error wrapping ErrResultUnknown.
func (r unknownResult) RowsAffected() (int64, error) { return 0, r.lost }

// decideAuto is decide's rule for autocommit work that hasql.txguard=all
// wrapped, lost with session ph (err; notSent as decide found it). It
// returns whether the work is now known not to have run (notSent), the
// sentinel the caller's *LostError wraps (nil: decide's own), and a final
// outcome when there is one (done).
func (v *handle) decideAuto(ctx context.Context, ph *session, err error, notSent bool) (stillNotSent bool, kind error, out error, done bool) {
	id, unsent := v.autoGuard, v.autoUnsent
	v.autoGuard, v.autoUnsent = "", false
	switch {
	case notSent:
		if unsent && v.c.dialect.classify(err)&classNotSent == 0 {
			kind = ErrTxNotCommitted // sent, but its own transaction was lost with it
		}
		return true, kind, nil, false
	case unsent:
		return true, ErrTxNotCommitted, nil, false
	case id == "":
		return false, nil, nil, false
	}
	applied, ok := v.resolveAuto(ph, id)
	switch {
	case !ok:
		v.c.txUnknown.Add(1)
		lost := newLostError(ph, err, true, false)
		lost.kind = ErrTxResolutionUnknown
		return false, nil, joinLoss(v.lossWithoutRebind(ctx, err, false), lost), true
	case applied:
		v.c.txCommittedAfterLoss.Add(1)
		lost := newLostError(ph, err, true, false)
		lost.kind = ErrResultUnknown
		if ferr := v.lossWithoutRebind(ctx, err, true); ferr != nil {
			return false, nil, joinLoss(ferr, lost), true
		}
		return false, nil, &appliedAfterLoss{lost}, true
	}
	return true, ErrTxNotCommitted, nil, false
}

// autoLost is the error for the rows of a guarded autocommit query whose
// session ph died (err) with the query's own transaction not committed
// (applied false) or resolved (kind): the host purged, the failover
// callback and recovery function told.
func (v *handle) autoLost(ctx context.Context, ph *session, err error, sent bool, kind error) error {
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	lost := newLostError(ph, err, sent, false)
	lost.kind = kind
	return joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
}

// endGuarded ends the own transaction of a guarded autocommit query when its
// rows end (rerr io.EOF, or Close with rerr nil: commit with the record) or
// fail (rerr: a lost session means the work did not take effect; a server
// error rolls back). It returns the error the application gets, nil when
// the work is committed.
func (r *rows) endGuarded(rerr error) error {
	if (rerr == nil || rerr == io.EOF) && !r.innerDone {
		r.innerDone = true
		if err := r.inner.Close(); err != nil {
			rerr = err
		}
	}
	v, ph, itx := r.v, r.ph, r.endTx
	r.endTx, r.guarded = nil, false
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if rerr != nil && rerr != io.EOF {
		if v.c.dialect.connDead(rerr) {
			v.c.txNotCommitted.Add(1)
			return v.autoLost(ctx, ph, rerr, false, ErrTxNotCommitted)
		}
		if itx.Rollback() != nil {
			ph.bad.Store(true)
		}
		return rerr
	}
	v.autoGuard, v.autoUnsent = "", false
	err := v.commitAuto(ph, itx, newGuardID())
	id, unsent := v.autoGuard, v.autoUnsent
	v.autoGuard, v.autoUnsent = "", false
	switch {
	case err == nil:
		return nil
	case !v.c.dialect.connDead(err):
		return err // the server refused the COMMIT (or the record): nothing took effect
	case unsent:
		v.c.txNotCommitted.Add(1)
		return v.autoLost(ctx, ph, err, false, ErrTxNotCommitted)
	}
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	applied, ok := v.resolveAuto(ph, id)
	switch {
	case !ok:
		v.c.txUnknown.Add(1)
		return v.autoLost(ctx, ph, err, true, ErrTxResolutionUnknown)
	case applied:
		// Every row was read (or the application closed the rows early):
		// the work took effect, and the application has what it asked for.
		v.c.txCommittedAfterLoss.Add(1)
		_ = v.lossWithoutRebind(ctx, err, true)
		return nil
	}
	v.c.txNotCommitted.Add(1)
	return v.autoLost(ctx, ph, err, false, ErrTxNotCommitted)
}

// inlineLost is the error for the rows of a write query whose record was
// written in the statement itself (guardInline), when reading or closing
// them failed with err: a lost session is resolved on a new one — applied
// gives ErrResultUnknown (the rows are lost), not applied
// ErrTxNotCommitted, no answer ErrTxResolutionUnknown —; any other error
// is the statement's own (it rolled back).
func (r *rows) inlineLost(err error) error {
	v, ph, id := r.v, r.ph, r.inlineGuard
	r.inlineGuard = ""
	if ph == nil || !v.c.dialect.connDead(err) {
		return err
	}
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	applied, ok := v.resolveAuto(ph, id)
	kind, sent := ErrTxNotCommitted, false
	switch {
	case !ok:
		v.c.txUnknown.Add(1)
		kind, sent = ErrTxResolutionUnknown, true
	case applied:
		v.c.txCommittedAfterLoss.Add(1)
		kind, sent = ErrResultUnknown, true
	default:
		v.c.txNotCommitted.Add(1)
	}
	lost := newLostError(ph, err, sent, false)
	lost.kind = kind
	return joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
}
