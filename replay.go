package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"time"
)

// Transparent replay (hasql.replay=on; Oracle's Application Continuity for
// database/sql).
//
// While a transaction runs, the handle's recorder (txLog) keeps each call
// the application made in it — the SQL, a copy of the arguments, and a
// digest of every result the application was given: rows affected, last
// insert id, the error text of a call that failed, and each row read. When
// the session dies before the transaction committed (replayTrigger), the
// handle is bound to a new session with the same selector (so the same tag,
// with the session callback run by binding as for any checkout), the
// transaction is begun again with the same options, and every recorded call
// is run again and its digest compared. All equal: the call that met the
// loss runs again on the new session and the application goes on, a Rows
// it was reading continuing from its next row. Any difference: the replayed
// transaction is rolled back and the application gets ErrReplayDiverged,
// wrapping the loss.
//
// The same digest lets an idempotent autocommit query whose rows were being
// streamed continue on a new session (TAF's "SELECT failover"): the query
// runs again, the rows already delivered are read and compared, and the
// application gets the next one.

const (
	// defaultReplayLimit is hasql.replay_limit's default: 1 MiB.
	defaultReplayLimit = 1 << 20

	// maxReplays bounds the replays of one transaction (each loss is
	// replayed at most once; a replay whose own new session dies counts
	// again), and the continuations of one Rows.
	maxReplays = 3

	// replayCallCost is what one recorded call costs beyond its SQL text
	// and arguments (the digests and bookkeeping), for hasql.replay_limit.
	replayCallCost = 64
)

// ReplayConfig configures transparent replay (WithReplayConfig;
// hasql.replay and hasql.replay_limit).
type ReplayConfig struct {
	// Enabled turns replay on (hasql.replay=on).
	Enabled bool
	// Limit is the most bytes of SQL text, arguments and result digests
	// kept per transaction (each call counts its text, its arguments and
	// 64 bytes of digests; rows add nothing, their digest is a running
	// one); past it the transaction is not replayable. 0 means the default,
	// 1 MiB (hasql.replay_limit).
	Limit int
}

// WithReplay turns transparent replay on or off (hasql.replay). With it on,
// a transaction whose session dies before it committed is begun again on a
// new session and its calls replayed; the application goes on unaware when
// every result matches, and gets ErrReplayDiverged otherwise. Recording
// costs a copy of each call's arguments and a digest of each row read; with
// replay off nothing is recorded.
func WithReplay(on bool) Option { return func(c *config) { c.replay.Enabled = on } }

// WithReplayConfig sets transparent replay's configuration (hasql.replay,
// hasql.replay_limit).
func WithReplayConfig(r ReplayConfig) Option {
	return func(c *config) {
		if r.Limit == 0 {
			r.Limit = defaultReplayLimit
		}
		c.replay = r
	}
}

// txLog records one transaction's calls for replay. A handle keeps one and
// reuses it for its next transaction.
type txLog struct {
	t     *tx // the transaction database/sql holds
	opts  driver.TxOptions
	calls []replayCall
	size  int    // bytes counted toward the limit
	why   string // why the transaction cannot be replayed; "" if it can
	// replays counts the replays made; broken: a loss was not replayed (or
	// a replay diverged): the transaction is gone and is never replayed.
	replays int
	broken  bool
	gone    error // a replay was attempted and failed: what every call gets
	pending int   // the index of the query call whose Rows trackRows is to link, or -1
}

// replayCall is one recorded call.
type replayCall struct {
	query  string
	args   []driver.NamedValue
	isRows bool // returned rows (FnQuery, FnStmtQuery)
	failed bool
	errMsg string // the error the application got, if failed

	affected, lastID       int64
	affectedErr, lastIDErr bool

	// For a query: the rows while the application holds them (their
	// count and digest live there), else what they had when closed.
	live  *rows
	n     int64
	dig   uint64
	eof   bool
	multi bool // the application moved to another result set: not replayable
}

func (lg *txLog) reset() {
	for i := range lg.calls {
		if r := lg.calls[i].live; r != nil {
			r.rc = 0
		}
		lg.calls[i] = replayCall{}
	}
	*lg = txLog{calls: lg.calls[:0], pending: -1}
}

// notReplayable marks the transaction as one that cannot be replayed.
func (lg *txLog) notReplayable(why string) {
	if lg.why == "" {
		lg.why = why
	}
}

// startTxLog begins recording transaction t (hasql.replay=on).
func (v *handle) startTxLog(t *tx, opts driver.TxOptions) {
	lg := v.txBuf
	if lg == nil {
		lg = &txLog{}
		v.txBuf = lg
	}
	lg.reset()
	lg.t, lg.opts = t, opts
	v.rec = lg
}

// endTxLog stops recording when the transaction ends.
func (v *handle) endTxLog() {
	if v.rec != nil {
		v.rec.reset()
		v.rec = nil
	}
}

// markUnreplayable is called by the ways around the recorder (Session.Exec
// and Session.Unwrap inside a transaction, Conn.Raw's legacy calls, the
// handle's Unwrap): work done there is not recorded, so the transaction
// cannot be replayed.
func (v *handle) markUnreplayable(why string) {
	if v.rec != nil && v.inTx && !v.replaying {
		v.rec.notReplayable(why)
	}
}

// isDataFn reports whether fn is a call the recorder keeps.
func isDataFn(fn Fn) bool {
	return fn == FnExec || fn == FnQuery || fn == FnStmtExec || fn == FnStmtQuery
}

// record keeps a successful or failed call of the transaction (pipeline
// step 2). err is nil, or the error the application gets.
func (v *handle) record(fn Fn, query string, args []driver.NamedValue, r driver.Result, err error) {
	lg := v.rec
	if lg == nil || lg.broken || !isDataFn(fn) || !v.inTx {
		return
	}
	lg.size += len(query) + replayCallCost
	c := replayCall{query: query, isRows: fn == FnQuery || fn == FnStmtQuery}
	if len(args) > 0 {
		c.args = make([]driver.NamedValue, len(args))
		for i, a := range args {
			c.args[i] = a
			switch x := a.Value.(type) {
			case []byte:
				c.args[i].Value = append([]byte(nil), x...) // the caller may reuse its buffer
				lg.size += len(x)
			case string:
				lg.size += len(x)
			default:
				lg.size += 16
			}
			lg.size += len(a.Name)
		}
	}
	if err != nil {
		c.failed, c.errMsg = true, err.Error()
	} else if r != nil {
		var e error
		c.affected, e = r.RowsAffected()
		c.affectedErr = e != nil
		c.lastID, e = r.LastInsertId()
		c.lastIDErr = e != nil
	}
	if limit := v.c.cfg.replay.Limit; limit > 0 && lg.size > limit {
		lg.notReplayable("hasql.replay_limit exceeded")
		lg.calls = lg.calls[:0] // nothing more to keep
		return
	}
	if lg.why != "" {
		return
	}
	lg.calls = append(lg.calls, c)
	if c.isRows && err == nil {
		lg.pending = len(lg.calls) - 1
	}
}

// trackRows readies rows the application is about to get for replay: they
// digest every row they deliver, and inside a recorded transaction they are
// linked to their call.
func (v *handle) trackRows(dr driver.Rows) {
	w, ok := dr.(rowsBase)
	if !ok {
		return
	}
	r := w.base()
	r.track, r.n, r.dig, r.eof, r.rc, r.conts = true, 0, 0, false, 0, 0
	if lg := v.rec; lg != nil && v.inTx && lg.pending >= 0 {
		r.rc = lg.pending + 1
		lg.calls[lg.pending].live = r
		lg.pending = -1
	}
}

// untrack copies a linked Rows' digest into its call when the application
// closes them.
func (r *rows) untrack() {
	if i := r.rc - 1; i >= 0 {
		if lg := r.v.rec; lg != nil && i < len(lg.calls) && lg.calls[i].live == r {
			c := &lg.calls[i]
			c.live, c.n, c.dig, c.eof, c.multi = nil, r.n, r.dig, r.eof, r.multi
		}
	}
	r.track, r.rc = false, 0
}

// replayTrigger reports whether a loss of the session in a transaction,
// met by a call fn (notSent: the call certainly never reached the server),
// may be replayed: recording is on and the transaction replayable, and the
// transaction certainly did not commit — the loss came before COMMIT was
// sent, or the commit-outcome guard (hasql.txguard) resolved a lost COMMIT
// as not committed (replayUncommitted calls it with notSent true).
func (v *handle) replayTrigger(fn Fn, notSent bool) bool {
	lg := v.rec
	if lg == nil || lg.broken {
		return false
	}
	if fn == FnRollback || fn == FnCommit && !notSent {
		return false
	}
	return true
}

// replayTx replays the transaction after its session died with cause (lost
// is the error the application gets if there is no replay). attempted is
// false when nothing was tried (the transaction is not replayable, or the
// replays are used up): the caller then reports the loss as usual. With
// attempted true, err nil means the transaction is back, on a new session,
// in the state the application knows; otherwise err is the error for the
// application.
func (v *handle) replayTx(ctx context.Context, cause error, lost *LostError) (attempted bool, err error) {
	lg := v.rec
	if lg.why != "" || lg.replays >= maxReplays {
		lg.broken = true
		return false, nil
	}
	for i := range lg.calls {
		if c := &lg.calls[i]; c.multi || c.live != nil && c.live.multi {
			lg.broken = true
			return false, nil
		}
	}
	if lg.t != nil && lg.t.ctx != nil && ctx.Done() == nil {
		// Commit runs with a background context: the transaction's own
		// bounds the replay.
		ctx = lg.t.ctx
	}
	// The dead session goes now (the pool terminates it), so that a pool
	// at its maximum has a slot for the new one. (After a lost COMMIT the
	// guard has released it already.)
	oldHost := lost.Host
	if old := v.ph; old != nil {
		v.ph = nil
		v.c.pool.put(old)
		oldHost = old.host
	}
	fail := func(err error) (bool, error) {
		lg.broken, lg.gone = true, err
		return true, err
	}
	for lg.replays < maxReplays {
		lg.replays++
		if err := ctx.Err(); err != nil {
			return fail(joinLoss(err, lost))
		}
		v.replaying = true
		recErr, bindErr := v.failover(ctx, cause, v.recoveryFn(), oldHost)
		v.replaying = false
		if recErr != nil || bindErr != nil {
			return fail(joinLoss(firstErr(recErr, bindErr), lost))
		}
		if err := ctx.Err(); err != nil {
			return fail(joinLoss(err, lost))
		}
		itx, div, rerr := v.replayOn(ctx, lg)
		switch {
		case rerr == nil && div == "":
			lg.t.inner = itx
			v.c.replays.Add(1)
			return true, nil
		case rerr != nil && v.c.dialect.connDead(rerr):
			// The new session died too: another replay, if any is left.
			ph := v.ph
			v.ph = nil
			if !ph.bad.Swap(true) {
				v.c.sessionLost(ph, rerr, false)
			}
			v.c.pool.put(ph)
			continue
		}
		// A difference: the replayed transaction is rolled back; the
		// session stays bound until the transaction ends, which it does
		// with the application's Rollback.
		if itx != nil {
			if rbErr := itx.Rollback(); rbErr != nil {
				v.ph.bad.Store(true)
			}
		}
		v.c.replaysDiverged.Add(1)
		if div == "" {
			div = "a call failed on replay: " + rerr.Error()
		}
		return fail(newError(ErrReplayDiverged, "transaction replay diverged: "+div, lost))
	}
	return fail(lost)
}

// txGone is the pipeline's answer for a transaction whose replay failed:
// every call but Rollback gets the replay's error, and Rollback succeeds
// (nothing is open on the server). ok is false when the transaction is not
// in that state.
func (v *handle) txGone(fn Fn) (ok bool, err error) {
	lg := v.rec
	if lg == nil || lg.gone == nil || !v.inTx {
		return false, nil
	}
	if fn == FnRollback {
		return true, nil
	}
	return true, lg.gone
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// replayOn begins the transaction on the newly bound session and runs every
// recorded call, comparing digests. It returns the new transaction, and
// either div (what differed) or err (the replay failed, possibly because
// this session died too).
func (v *handle) replayOn(ctx context.Context, lg *txLog) (itx driver.Tx, div string, err error) {
	itx, err = v.ph.begin(ctx, lg.opts)
	if err != nil {
		return nil, "", err
	}
	for i := range lg.calls {
		c := &lg.calls[i]
		if div, err = v.replayCall(ctx, i, c); div != "" || err != nil {
			return itx, div, err
		}
	}
	return itx, "", nil
}

// replayCall runs one recorded call again and compares its results.
func (v *handle) replayCall(ctx context.Context, i int, c *replayCall) (div string, err error) {
	if !c.isRows {
		r, err := v.rerun(ctx, FnExec, c.query, c.args)
		if d, ok := sameOutcome(i, c, err); !ok {
			return d, nil
		} else if err != nil {
			return "", replayErr(c, err)
		}
		var e error
		var n int64
		n, e = r.RowsAffected()
		if (e != nil) != c.affectedErr || e == nil && n != c.affected {
			return fmt.Sprintf("call %d: rows affected %d, the application had %d", i+1, n, c.affected), nil
		}
		n, e = r.LastInsertId()
		if (e != nil) != c.lastIDErr || e == nil && n != c.lastID {
			return fmt.Sprintf("call %d: last insert id %d, the application had %d", i+1, n, c.lastID), nil
		}
		return "", nil
	}
	inner, cs, err := v.rerunQuery(ctx, c.query, c.args)
	if d, ok := sameOutcome(i, c, err); !ok {
		return d, nil
	} else if err != nil {
		return "", replayErr(c, err)
	}
	want := struct {
		n   int64
		dig uint64
		eof bool
	}{c.n, c.dig, c.eof}
	if r := c.live; r != nil {
		want.n, want.dig, want.eof = r.n, r.dig, r.eof
	}
	d, err := skipRows(inner, want.n, want.dig, want.eof)
	if d != "" || err != nil || c.live == nil {
		inner.Close()
		if cs != nil {
			v.ph.releaseStmt(cs)
		}
		if d != "" {
			d = fmt.Sprintf("call %d: %s", i+1, d)
		}
		return d, err
	}
	// The Rows the application is reading continue on the new session.
	if d := c.live.swap(inner, cs, v.ph); d != "" {
		inner.Close()
		if cs != nil {
			v.ph.releaseStmt(cs)
		}
		return fmt.Sprintf("call %d: %s", i+1, d), nil
	}
	return "", nil
}

// sameOutcome compares a replayed call's error with what the application
// got; ok is false with a description when they differ. A dead session is
// not a difference: it is reported as err by the caller.
func sameOutcome(i int, c *replayCall, err error) (string, bool) {
	switch {
	case err == nil && !c.failed:
		return "", true
	case err == nil:
		return fmt.Sprintf("call %d succeeded; the application had an error", i+1), false
	case !c.failed:
		return "", true // a failure: the caller reports it (dead session or difference)
	case err.Error() != c.errMsg:
		return fmt.Sprintf("call %d failed with another error", i+1), false
	}
	return "", true
}

// replayErr is what a replayed call's error means: nil when the call failed
// the same way the first time (sameOutcome checked the text), else the
// error itself (a dead session, or a difference).
func replayErr(c *replayCall, err error) error {
	if c.failed {
		return nil
	}
	return err
}

// rerun runs ad-hoc work again on the bound session, as adhoc would but
// without callbacks, rows wrapping or the pipeline: a replay is one step of
// the call that met the loss.
func (v *handle) rerun(ctx context.Context, fn Fn, query string, args []driver.NamedValue) (driver.Result, error) {
	ph := v.ph
	ph.dropShadowing(query)
	r, err := ph.exec(ctx, query, args)
	if err != driver.ErrSkip {
		return r, err
	}
	cs, err := ph.acquireStmt(ctx, query, "")
	if err != nil {
		return nil, err
	}
	r, err = stmtExec(ctx, cs.si, args)
	ph.releaseStmt(cs)
	return r, err
}

// rerunQuery is rerun for a query; cs is the cached statement the rows hold,
// if one was used.
func (v *handle) rerunQuery(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, *cachedStmt, error) {
	ph := v.ph
	ph.dropShadowing(query)
	rows, err := ph.query(ctx, query, args)
	if err != driver.ErrSkip {
		return rows, nil, err
	}
	cs, err := ph.acquireStmt(ctx, query, "")
	if err != nil {
		return nil, nil, err
	}
	rows, err = stmtQuery(ctx, cs.si, args)
	if err != nil {
		ph.releaseStmt(cs)
		return nil, nil, err
	}
	return rows, cs, nil
}

// skipRows reads n rows of inner and compares their digest with dig (and,
// when eof, that the rows end there). It returns what differed, or the error
// reading them met.
func skipRows(inner driver.Rows, n int64, dig uint64, eof bool) (string, error) {
	dest := make([]driver.Value, len(inner.Columns()))
	var got uint64
	for k := int64(0); k < n; k++ {
		if err := inner.Next(dest); err == io.EOF {
			return fmt.Sprintf("%d rows, the application had read %d", k, n), nil
		} else if err != nil {
			return "", err
		}
		got = digestRow(got, dest)
	}
	if got != dig {
		return fmt.Sprintf("the %d rows the application had read differ", n), nil
	}
	if eof {
		if err := inner.Next(dest); err == nil {
			return fmt.Sprintf("more than the %d rows the application had read to their end", n), nil
		} else if err != io.EOF {
			return "", err
		}
	}
	return "", nil
}

// swap makes the rows continue from inner, on session ph (cs: the cached
// statement inner came from). The old inner rows belong to a dead session:
// they are not closed (that would talk to it), and their statement is
// dropped with the session.
func (r *rows) swap(inner driver.Rows, cs *cachedStmt, ph *session) string {
	if rowsMask(inner) != r.mask {
		return "the new session's rows are of another kind"
	}
	r.inner, r.cs, r.ph = inner, cs, ph
	return ""
}

// continueRows handles an error from the rows' Next when they are tracked
// (hasql.replay=on): a lost session is replayed — the transaction they
// belong to, or the idempotent autocommit query that produced them — and
// the next row is read from the new session. Otherwise it is streamErr.
func (v *handle) continueRows(r *rows, dest []driver.Value, err error) error {
	for {
		ph := r.ph
		if ph == nil || ph != v.ph || !v.c.dialect.connDead(err) || r.multi {
			return v.streamErr(r.ctx, r.ph, err)
		}
		ctx := r.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		var out error
		var ok bool
		if v.inTx {
			ok, out = v.rowsLostInTx(ctx, ph, err)
		} else {
			ok, out = v.selectFailover(ctx, r, ph, err)
		}
		if !ok {
			return out
		}
		if err = r.inner.Next(dest); err == nil {
			r.digest(dest)
			return nil
		} else if err == io.EOF {
			r.eof = true
			return err
		}
	}
}

// rowsLostInTx is decide's loss rule inside a transaction for a loss met by
// rows: the transaction is replayed when it may be (ok: the rows were
// swapped to the new session), else the loss is reported as streamErr does.
func (v *handle) rowsLostInTx(ctx context.Context, ph *session, err error) (ok bool, out error) {
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	lost := newLostError(ph, err, true, true)
	if v.replayTrigger(FnQuery, false) {
		v.keepSelector(ph)
		attempted, rerr := v.replayTx(ctx, err, lost)
		if attempted {
			if rerr != nil {
				v.txLost(lost)
			}
			return rerr == nil, rerr
		}
	}
	if v.rec != nil {
		v.rec.broken = true
	}
	v.txLost(lost)
	return false, joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
}

// selectFailover continues an autocommit query's rows on a new session
// after their session died: only work that mayRerun allows to run again
// (marked Idempotent, hasql.retry=idempotent), at most maxReplays times per
// Rows. The query runs again, the rows already delivered are read and
// compared, and the rows continue.
func (v *handle) selectFailover(ctx context.Context, r *rows, ph *session, err error) (ok bool, out error) {
	if r.conts >= maxReplays || r.ctx == nil || !v.c.mayRerun(r.ctx, false) {
		return false, v.streamErr(r.ctx, ph, err)
	}
	r.conts++
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	lost := newLostError(ph, err, true, false)
	v.keepSelector(ph)
	r.cs = nil // it lived on the dead session, which the pool closes
	v.release()
	recErr, bindErr := v.failover(ctx, err, v.recoveryFn(), ph.host)
	if recErr != nil || bindErr != nil {
		return false, joinLoss(firstErr(recErr, bindErr), lost)
	}
	inner, cs, qerr := v.rerunQuery(ctx, r.query, r.args)
	if qerr != nil {
		v.markIfDead(qerr)
		return false, lost
	}
	d, serr := skipRows(inner, r.n, r.dig, false)
	if d == "" && serr == nil {
		d = r.swap(inner, cs, v.ph)
	}
	if d != "" || serr != nil {
		inner.Close()
		if cs != nil {
			v.ph.releaseStmt(cs)
		}
		if serr != nil {
			v.markIfDead(serr)
			return false, lost
		}
		v.c.replaysDiverged.Add(1)
		return false, newError(ErrReplayDiverged, "query replay diverged: "+d, lost)
	}
	v.c.replays.Add(1)
	return true, nil
}

// digest adds a delivered row to the rows' running digest.
func (r *rows) digest(dest []driver.Value) {
	r.n++
	r.dig = digestRow(r.dig, dest)
}

// FNV-1a, 64 bits: a stable digest of the values the application was given
// (stable across sessions and servers, unlike a seeded hash).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mixByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func mixU64(h uint64, x uint64) uint64 {
	for i := 0; i < 8; i++ {
		h = mixByte(h, byte(x>>(8*i)))
	}
	return h
}

func mixString(h uint64, s string) uint64 {
	h = mixU64(h, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h = mixByte(h, s[i])
	}
	return h
}

// digestRow folds one row into the running digest h: the previous digest,
// then each value with its type.
func digestRow(h uint64, dest []driver.Value) uint64 {
	if h == 0 {
		h = fnvOffset
	}
	h = mixU64(h, uint64(len(dest)))
	for _, v := range dest {
		switch x := v.(type) {
		case nil:
			h = mixByte(h, 0)
		case int64:
			h = mixU64(mixByte(h, 1), uint64(x))
		case float64:
			h = mixU64(mixByte(h, 2), math.Float64bits(x))
		case bool:
			b := byte(0)
			if x {
				b = 1
			}
			h = mixByte(mixByte(h, 3), b)
		case []byte:
			h = mixU64(mixByte(h, 4), uint64(len(x)))
			for _, b := range x {
				h = mixByte(h, b)
			}
		case string:
			h = mixString(mixByte(h, 5), x)
		case time.Time:
			_, off := x.Zone()
			h = mixU64(mixU64(mixByte(h, 6), uint64(x.UnixNano())), uint64(off))
		default:
			h = mixString(mixByte(h, 7), fmt.Sprintf("%T:%v", x, x))
		}
	}
	return h
}
