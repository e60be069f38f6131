package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"time"
)

// handle is a virtual handle: the driver.Conn database/sql holds. It has no
// socket of its own. A checkout binds it to a physical session (in Connect,
// ResetSession, or lazily on the first call that carries a context) and
// IsValid, which database/sql calls on every release, unbinds it again.
//
// database/sql serialises the calls on one driver.Conn (it holds the
// connection's lock), so handle's fields need no lock of their own.
type handle struct {
	c    *Connector
	ph   *session // the bound session; nil between checkouts
	sel  selector // what the binding was asked for
	view Session  // the user's view of this handle (stable across bindings, not checkouts)

	// id names the handle to the sessions it binds (session.owner); born is
	// when it was made: below pool.max it takes no session that served
	// another handle and is older than itself, unless hasql keeps it
	// (pool_handles.go), so that database/sql's ConnMaxLifetime, which it
	// measures on the handle, bounds the sessions too.
	id   uint64
	born time.Time

	// checkout counts the handle's checkouts that ended (IsValid, Close): a
	// Session made during one is valid while it has the same count. shared
	// is the Session of the current checkout handed to the application
	// (SessionOf, the session callback, recovery and failover functions),
	// made on first use: one per checkout, so that it goes stale with it.
	checkout uint64
	shared   *Session

	verified bool // bound with the caller's own selector (not a background context's)
	tagFound bool // the checkout matched the requested tag exactly
	inTx     bool
	txAbort  error // a statement of the open transaction failed in a way that rolled it back (classTxConflict)
	owns     bool  // opened by Driver.Open: closing the handle closes its connector

	// txReadOnly: the transaction was begun read-only (TxOptions.ReadOnly),
	// so a wrong-role error in it is the application's own.
	txReadOnly bool

	// Reads on standbys (reads.go): routed, the binding is a session on a
	// standby for read-only work (a wrong-role error there is the
	// application's own); txRouted, it was made for a read-only
	// transaction and ends with it; fresh, nothing has run yet in this
	// checkout, so a read-only transaction may still move to a standby.
	routed, txRouted, fresh bool
	// guardID is the guard record id the commit in progress wrote (see
	// commitGuarded); commitUnsent: that commit failed before COMMIT was
	// sent.
	guardID      string
	commitUnsent bool
	// With hasql.txguard=all (txguard_auto.go): autoGuard is the guard
	// record id of the autocommit write in flight, set once it may have
	// reached the server; autoUnsent, the write's own transaction was lost
	// before its COMMIT was sent (it certainly did not take effect);
	// autoGuarded, autoTx is such a transaction (committed with its record
	// when the query's rows end).
	autoGuard   string
	autoUnsent  bool
	autoGuarded bool
	// autoInline: the guard record id written in the statement of the
	// query under way (guardInline), until wrapRows hands it to its rows.
	autoInline string

	// lostTx is the loss that ended the open transaction before its COMMIT
	// was sent (see handle.txLost); nil while the transaction is alive.
	lostTx *LostError

	// checker is the last bound session's NamedValueChecker, for
	// CheckNamedValue calls that database/sql makes before a lazy bind.
	checker driver.NamedValueChecker

	// rawArgs: CheckNamedValue left the arguments of the coming ad-hoc call
	// unconverted, for ExecContext or QueryContext to convert (see there).
	rawArgs bool

	// resetErr is why ResetSession could not bind this checkout (which
	// database/sql cannot be told); the checkout's first call reports it
	// rather than ask the pool again (a second timedwait, say).
	resetErr error

	tx tx // the handle's transaction; reused, so Begin allocates nothing

	// Hand-offs between an entry point and invoke, which performs the
	// driver call behind a Call (see run): the options of the Begin in
	// progress, the transaction it began, the statement a Prepare got,
	// and the transaction a Commit or Rollback ends.
	beginOpts driver.TxOptions
	began     driver.Tx
	prepared  *cachedStmt
	curTx     *tx

	recovery       Recovery  // attached with Session.Attach
	nextReconnect  time.Time // Session.Reconnect's back-off after a failure
	reconnectFails int

	// rebind, set when the handle lost its session (a dead connection,
	// Reconnect), is what its next binding must get: the same user and
	// class, and the lost session's tag, so that a *sql.Conn never changes
	// user and its tagged state comes back. Cleared when the handle goes
	// back to database/sql (IsValid), like recovery and the back-off.
	rebind *selector
	noGate bool // bind makes one attempt, not held by the outage gate (Reconnect)
	// bookkeeping: hasql's own handle (the guard's resolution and
	// janitor): its writes wait for no standby under
	// durability=replicated, move no read-your-writes position (reads.go
	// afterWrite), and are never wrapped by txguard=all (guardsAuto).
	bookkeeping bool

	// resetting: bind runs for ResetSession, where a handle whose own
	// parked session died while idle answers driver.ErrBadConn (and
	// database/sql discards it, as it would the raw connection) instead of
	// replacing the session unseen. A pinned *sql.Conn gets no ResetSession
	// between its calls: its next call binds a new session as before.
	resetting bool

	// parked is the session of the handle's last checkout, which release
	// left in the pool: the next checkout asking for the same (sel, whose
	// normalised tag is parkedTag) takes it back with one atomic swap
	// instead of the pool's lock, unless another checkout took it meanwhile
	// (pool.reclaim); a purity NEW checkout's is not taken back. Close
	// closes it through (pool.closeThrough).
	parked    *session
	parkedTag string
	canPark   bool // the current binding may be taken back so
	selZero   bool // sel is the zero selector: a context without one matches it

	// For wrapRows: the inner rows type last seen and its interface mask,
	// and a closed wrapper kept for the next query.
	rowsType  reflect.Type
	rowsMask  uint8
	spareRows *rows
	autoTx    driver.Tx // a query's own transaction behind a pooler, until wrapRows hands it to the rows

	callBuf  Call // newCall's
	callBusy bool

	// Transparent replay (replay.go): rec records the open transaction
	// (nil with hasql.replay off or outside a transaction), txBuf is kept
	// for the next one, and replaying is set while a replay binds a new
	// session (the session callback's Session.Exec is then part of it).
	rec       *txLog
	txBuf     *txLog
	replaying bool
}

var (
	_ driver.Conn               = (*handle)(nil)
	_ driver.ExecerContext      = (*handle)(nil)
	_ driver.QueryerContext     = (*handle)(nil)
	_ driver.ConnPrepareContext = (*handle)(nil)
	_ driver.ConnBeginTx        = (*handle)(nil)
	_ driver.Pinger             = (*handle)(nil)
	_ driver.SessionResetter    = (*handle)(nil)
	_ driver.Validator          = (*handle)(nil)
	_ driver.NamedValueChecker  = (*handle)(nil)
	_ driver.Execer             = (*handle)(nil) //nolint:staticcheck // for Conn.Raw users
	_ driver.Queryer            = (*handle)(nil) //nolint:staticcheck // for Conn.Raw users
)

func newHandle(c *Connector) *handle {
	v := &handle{c: c, id: c.pool.handleIDs.Add(1), born: c.pool.now()}
	v.view.v = v
	v.tx.v = v
	return v
}

// ensure makes sure the handle is bound for a call carrying ctx. The common
// case costs two loads and two compares.
func (v *handle) ensure(ctx context.Context) error {
	if v.ph != nil && v.verified {
		return nil
	}
	return v.ensureSlow(ctx)
}

func (v *handle) ensureSlow(ctx context.Context) error {
	if v.ph == nil {
		if err := v.resetErr; err != nil {
			v.resetErr = nil
			return err
		}
		return v.bind(ctx, true)
	}
	// Bound from a context that may not have been the caller's (Connect runs
	// with database/sql's own context when its opener goroutine dials): the
	// first call of the checkout decides what was really asked for.
	v.verified = true
	if v.inTx {
		return nil
	}
	if sel := selectorFrom(ctx); sel != v.sel {
		v.release()
		return v.bind(ctx, true)
	}
	return nil
}

// bind checks a session out for the selector in ctx: the session parked on
// the handle if it can be taken back (pool.reclaim), else one from the pool.
// A pooled session the inner driver finds dead at reset is terminated and
// another one taken, so the caller never sees a stale connection's error.
func (v *handle) bind(ctx context.Context, verified bool) error {
	if v.resetErr != nil {
		v.resetErr = nil // any new attempt supersedes an earlier failure
	}
	sp := selectorIn(ctx)
	if sp != nil && sp.read && v.rebind == nil && v.c.rw != nil && v.c.rw.route {
		return v.bindRead(ctx, *sp, verified)
	}
	v.routed = false
	ph := v.parked
	v.parked = nil
	if ph != nil && v.canPark && v.rebind == nil {
		// v.sel is still the selector the parked session was bound for.
		if (sp == nil && v.selZero || sp != nil && *sp == v.sel) && ph.pool == v.c.pool && ph.pool.reclaim(ph, v.parkedTag) {
			// v.checker is already ph's: ph was the handle's last session.
			if ph.owner != v.id {
				ph.owner = v.id // another handle had it meanwhile
			}
			v.ph, v.verified, v.tagFound = ph, verified, v.parkedTag != ""
			err := v.prepare(ctx, checkout{ph: ph, tagFound: v.tagFound}, v.parkedTag)
			if err == nil {
				return nil
			}
			return v.bindPool(ctx, v.sel, verified, ph, err)
		}
	}
	var sel selector
	if v.rebind != nil {
		sel = *v.rebind
	} else if sp != nil {
		sel = *sp
	}
	return v.bindPool(ctx, sel, verified, nil, nil)
}

// bindPool is bind's way through the pool. failed, if not nil, is a session
// just taken back whose reset failed with err.
func (v *handle) bindPool(ctx context.Context, sel selector, verified bool, failed *session, err error) error {
	if failed != nil {
		v.ph = nil
		v.c.pool.terminate(failed)
		if ctx.Err() != nil || !v.c.dialect.connDead(err) && !errors.Is(err, errRoleChanged) {
			return err
		}
		if v.resetting {
			// The handle's own session died while idle: as database/sql
			// discards a connection found dead when it hands it out
			// again, the handle goes and database/sql opens another.
			return driver.ErrBadConn
		}
		v.c.reconnects.Add(1)
	}
	key, tag, purityNew, err := v.c.resolve(sel)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if !v.noGate {
			if err := v.c.outage.wait(ctx); err != nil {
				return err
			}
		}
		co, err := v.c.pool.get(ctx, key, tag, sel, purityNew, v.born)
		if err != nil {
			if !v.noGate && attempt < maxRebinds && v.c.outageFor(ctx, err) {
				continue // the outage gate holds us until the database is back
			}
			return err
		}
		v.ph, v.sel, v.verified, v.tagFound, v.checker = co.ph, sel, verified, co.tagFound, co.ph.checker
		co.ph.owner = v.id
		if err = v.prepare(ctx, co, tag); err == nil {
			v.rebind = nil
			v.selZero, v.parkedTag, v.canPark = sel == selector{}, tag, !purityNew
			return nil
		}
		v.ph = nil
		// The session's state is unknown after a failed reset or session
		// callback: it is not pooled again.
		v.c.pool.terminate(co.ph)
		if errors.Is(err, errRoleChanged) && ctx.Err() == nil && attempt < maxRebinds {
			continue // another session, of the wanted role
		}
		if ctx.Err() != nil || co.opened || attempt >= maxRebinds || !v.c.dialect.connDead(err) {
			return err
		}
		v.c.reconnects.Add(1) // a dead pooled session replaced unseen
	}
}

// prepare readies the session just bound (v.ph) for the checkout asking for
// tag: deferred statement releases run, the pool's cache size applies, the
// inner session is reset if reused, and the session callback runs for a
// session new to its user or carrying another tag.
func (v *handle) prepare(ctx context.Context, co checkout, tag string) error {
	ph := co.ph
	if !co.opened {
		ph.drainPending()
	}
	if n := int(v.c.stmtCacheSize.Load()); ph.tag == "" && ph.stmtCacheSize != n {
		// The pool default applies at each checkout; a tagged session
		// keeps its own size, as in OCI.
		ph.setStmtCacheSize(n)
	}
	err := v.reset(ctx, ph.used)
	if err == nil && !co.opened {
		// A pooled session's server may have changed role since
		// (role_recheck.go).
		err = v.c.recheckRole(ctx, ph)
	}
	// New to its user: opened for this checkout, or in the background
	// (min, incr) and never handed out before.
	if err == nil && v.c.cfg.sessionCB != nil && (co.opened || !ph.used || ph.tag != tag) {
		err = v.runSessionCallback(ctx, tag)
	}
	return err
}

// reset runs FnReset for a checkout; for a session handed out before it also
// resets the inner connection, as database/sql would on reuse.
func (v *handle) reset(ctx context.Context, reused bool) error {
	if ch := v.c.reg.chain(FnReset); ch != nil {
		c := &Call{Fn: FnReset, Ctx: ctx, Session: &v.view}
		if !reused {
			c.Query = "fresh"
		}
		return ch.run(c, v)
	}
	if reused {
		return v.ph.resetSession(ctx)
	}
	return nil
}

func (v *handle) runSessionCallback(ctx context.Context, tag string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = v.c.userPanic("session callback", p)
		}
	}()
	return v.c.cfg.sessionCB(ctx, v.session(), tag)
}

// release returns the bound session to the pool, or ends it if the inner
// driver says it is no longer usable.
func (v *handle) release() {
	ph := v.ph
	if ph == nil {
		return
	}
	v.ph, v.verified, v.inTx = nil, false, false
	if !ph.bad.Load() && !ph.alive() {
		ph.bad.Store(true)
	}
	if !ph.bad.Load() {
		v.parked = ph // for the next checkout (if canPark) or Close
	}
	v.c.pool.put(ph)
}

// markIfDead marks the bound session for termination when err shows that its
// connection died. It is only called on the error path.
func (v *handle) markIfDead(err error) {
	if err != nil && err != driver.ErrSkip && v.ph != nil && v.c.dialect.connDead(err) {
		v.ph.bad.Store(true)
	}
}

// newCall returns the Call for one intercepted call: the handle's own, so
// that the hot calls allocate nothing (a Call is valid only while its
// callbacks run), or a new one if the handle's is in use.
func (v *handle) newCall(fn Fn, ctx context.Context, query string, args []driver.NamedValue) *Call {
	if v.callBusy {
		return &Call{Fn: fn, Ctx: ctx, Query: query, Args: args, Session: &v.view}
	}
	v.callBusy = true
	v.callBuf = Call{Fn: fn, Ctx: ctx, Query: query, Args: args, Session: &v.view}
	return &v.callBuf
}

// doneCall ends a Call from newCall, dropping what it references.
func (v *handle) doneCall(c *Call) {
	if c == &v.callBuf {
		v.callBuf, v.callBusy = Call{}, false
	}
}

// call runs fn through its callback chain. It is the slow path taken only
// when callbacks are registered for fn.
func (v *handle) call(ch *chain, c *Call, inv invoker) error {
	err := ch.run(c, inv)
	if err != nil {
		v.markIfDead(err)
	}
	return err
}

// invoke performs the driver call behind a Call on the bound session.
func (v *handle) invoke(c *Call) error {
	if c.Fn == FnReset {
		if c.Query != "fresh" {
			return v.ph.resetSession(c.Ctx)
		}
		return nil
	}
	var err error
	c.Result, c.Rows, err = v.perform(c.Fn, c.Ctx, c.Query, c.Args, nil)
	return err
}

// adhoc runs ad-hoc work (FnExec or FnQuery) on the bound session. Where
// the inner driver answers driver.ErrSkip — database/sql would then prepare,
// execute and close a statement, three packets each time
// (go-sql-driver/mysql without interpolateParams) — hasql runs the work on a
// statement from the session's cache instead, so repeats cost one round trip;
// the statement goes back to the cache after an exec, or when the rows of a
// query close. With the cache off, ErrSkip goes to database/sql as it came.
func (v *handle) adhoc(fn Fn, ctx context.Context, query string, args []driver.NamedValue) (r driver.Result, rows driver.Rows, err error) {
	ph := v.ph
	ph.dropShadowing(query)
	if fn == FnExec {
		r, err = ph.exec(ctx, query, args)
	} else {
		rows, err = ph.query(ctx, query, args)
	}
	if err != driver.ErrSkip || ph.stmtCacheSize == 0 || v.rawArgs {
		return r, rows, err
	}
	cs, err := v.adhocStmt(ctx, query, len(args))
	if err != nil {
		return nil, nil, err
	}
	r, rows, err = v.runStmt(ctx, fn, &cs, nil, args)
	switch {
	case cs == nil: // preparing it again failed: nothing to give back
	case fn == FnQuery && err == nil:
		rows = v.wrapRows(rows, cs, ctx, query, args, nil)
	default:
		if rerr := ph.releaseStmt(cs); err == nil && rerr != nil {
			v.markIfDead(rerr)
		}
	}
	return r, rows, err
}

// acquireExplicit is acquireStmt for an explicit prepare. Inside a
// PostgreSQL transaction a cached statement nobody holds is prepared afresh:
// had a schema change made it stale, running it would abort the transaction,
// where the prepare database/sql makes without hasql would have succeeded.
func (v *handle) acquireExplicit(ctx context.Context, query, tag string) (*cachedStmt, error) {
	if v.inTx && v.c.dialect.stmtErrAbortsTx() {
		v.ph.dropIdle(stmtKey{query, tag})
	}
	return v.ph.acquireStmt(ctx, query, tag)
}

// adhocStmt gets the cached statement for ad-hoc work and checks the number
// of arguments as database/sql would before running a statement.
func (v *handle) adhocStmt(ctx context.Context, query string, nargs int) (*cachedStmt, error) {
	cs, err := v.ph.acquireStmt(ctx, query, stmtTagFrom(ctx))
	if err != nil {
		return nil, err
	}
	if want := cs.si.NumInput(); want >= 0 && want != nargs {
		v.ph.releaseStmt(cs)
		return nil, errArgCount(want, nargs)
	}
	return cs, nil
}

// ExecContext runs ad-hoc work on the bound session. driver.ErrSkip from an
// inner driver without ExecerContext reaches database/sql bare, so that it
// prepares, executes and closes a statement exactly as it would without hasql.
func (v *handle) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if v.rawArgs {
		if ph := v.ph; ph != nil && ph.execerCtx == nil && ph.execer == nil {
			// No ad-hoc path: the arguments stay as they are for the
			// driver.ErrSkip below, after which database/sql converts them
			// for the statement it prepares.
			defer func() { v.rawArgs = false }()
		} else {
			v.rawArgs = false
			var err error
			if args, err = convertAdhocArgs(v.checker, args); err != nil {
				return nil, err
			}
		}
	}
	r, _, err := v.run(FnExec, ctx, query, args, nil)
	return r, err
}

// QueryContext runs an ad-hoc query on the bound session. The inner driver's
// rows are returned as they are, so every optional Rows interface they have,
// and only those, reaches database/sql.
func (v *handle) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if v.rawArgs {
		if ph := v.ph; ph != nil && ph.queryerCtx == nil && ph.queryer == nil {
			defer func() { v.rawArgs = false }() // as in ExecContext
		} else {
			v.rawArgs = false
			var err error
			if args, err = convertAdhocArgs(v.checker, args); err != nil {
				return nil, err
			}
		}
	}
	_, r, err := v.run(FnQuery, ctx, query, args, nil)
	if err != nil {
		v.dropAutoTx()
		return nil, err
	}
	w := v.wrapRows(r, nil, ctx, query, args, nil)
	if v.c.cfg.replay.Enabled {
		v.trackRows(w)
	}
	return w, nil
}

// Exec is the deprecated driver.Execer, for code that reaches the handle
// through Conn.Raw and asserts it (database/sql itself calls ExecContext). It
// is ExecContext with a background context: the same pipeline, retry rules
// and results, and driver.ErrSkip where the inner connection has no ad-hoc
// path and the statement cache is off, as the inner driver's own would.
func (v *handle) Exec(query string, args []driver.Value) (driver.Result, error) {
	v.markUnreplayable("Conn.Raw")
	return v.ExecContext(context.Background(), query, valuesToNamed(args))
}

// Query is the deprecated driver.Queryer; see Exec.
func (v *handle) Query(query string, args []driver.Value) (driver.Rows, error) {
	v.markUnreplayable("Conn.Raw")
	return v.QueryContext(context.Background(), query, valuesToNamed(args))
}

// Ping pings the bound session. Without an inner Pinger it succeeds, as
// database/sql's own Ping does (the fallback never returns driver.ErrSkip);
// an inner Pinger's own driver.ErrSkip reaches the caller bare, as it would
// through database/sql.
func (v *handle) Ping(ctx context.Context) error {
	// A ping changes nothing, so it is always safe to run again.
	_, _, err := v.run(FnPing, ctx, "", nil, nil)
	return err
}

// Prepare is PrepareContext with a background context; database/sql does not
// call it, since conn implements ConnPrepareContext.
func (v *handle) Prepare(query string) (driver.Stmt, error) {
	return v.PrepareContext(context.Background(), query)
}

// PrepareContext prepares query on the bound session, through its statement
// cache, and returns a virtual statement: if database/sql later runs it while
// this handle is bound to another session, it is prepared there.
func (v *handle) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	tag := stmtTagFrom(ctx)
	v.prepared = nil
	// Preparing changes no data, so it is always safe to run again.
	_, _, err := v.run(FnPrepare, ctx, query, nil, nil)
	cs := v.prepared
	v.prepared = nil
	if err != nil {
		if cs != nil {
			v.ph.releaseStmt(cs) // an exit callback failed a prepare that worked
		}
		return nil, err
	}
	// A replacement that returned nil prepared nothing (cs is nil): the
	// statement is prepared on its first execution.
	return newStmt(v, query, tag, cs), nil
}

// Begin is BeginTx with a background context and default options.
func (v *handle) Begin() (driver.Tx, error) {
	return v.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction on the bound session, which then stays bound
// until database/sql releases the handle after Commit or Rollback.
func (v *handle) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	t := &v.tx
	if v.inTx {
		// database/sql allows a second Begin on a pinned *sql.Conn; the
		// driver decides what that means, and each Tx needs its own state.
		t = &tx{v: v}
	}
	if opts.ReadOnly && v.fresh && !v.inTx && !v.routed && v.c.rw != nil && v.c.rw.route {
		// The checkout's first work, a read-only transaction: it may run
		// on a standby (reads.go).
		if err := v.rebindReadTx(ctx); err != nil {
			return nil, err
		}
	}
	if g := v.c.guard; g != nil && !opts.ReadOnly && !g.isReady() {
		// Before BEGIN, in autocommit: the guard's table, once.
		if err := v.ensure(ctx); err != nil {
			return nil, err
		}
		if err := g.ensure(ctx, v.ph); err != nil {
			v.markIfDead(err)
			return nil, err
		}
	}
	v.beginOpts, v.began = opts, nil
	// A transaction that failed to begin on a lost connection holds
	// nothing: beginning it again is safe, unless one is open already.
	_, _, err := v.run(FnBegin, ctx, "", nil, nil)
	itx := v.began
	v.began = nil
	if err == nil && itx == nil {
		err = newError(ErrCallbackOutcome, "FnBegin callbacks succeeded without starting a transaction", nil)
	}
	if err != nil {
		if itx != nil && v.ph != nil {
			// An exit callback failed a Begin the driver performed: the
			// caller gets no Tx to end, so end it here rather than pool a
			// session with a transaction open.
			if rerr := itx.Rollback(); rerr != nil {
				v.ph.bad.Store(true)
			}
		}
		return nil, err
	}
	t.inner, t.ctx = itx, ctx
	nested := v.inTx
	v.inTx, v.txReadOnly, v.txAbort = true, opts.ReadOnly, nil
	if v.c.cfg.replay.Enabled {
		if nested {
			v.markUnreplayable("a second transaction on the connection")
		} else {
			v.startTxLog(t, opts)
		}
	}
	return t, nil
}

// ResetSession binds the handle for the next caller, with that caller's
// context, as database/sql hands it out again. A failure to bind is not
// reported here (database/sql ignores all but ErrBadConn at this point): the
// handle stays unbound and the caller's first call reports it. The one
// exception is the handle's own session found dead (it died while idle):
// ResetSession then answers driver.ErrBadConn, and database/sql discards the
// handle and takes another, as it would the raw connection.
func (v *handle) ResetSession(ctx context.Context) error {
	if v.c.closed.Load() {
		return driver.ErrBadConn
	}
	if v.ph != nil {
		return nil
	}
	v.resetting = true
	err := v.bind(ctx, true)
	v.resetting = false
	v.fresh = err == nil
	if err != nil {
		if errors.Is(err, driver.ErrBadConn) {
			return err
		}
		if ctx.Err() == nil {
			v.resetErr = err // a call with another context gets a fresh try
		}
	}
	return nil
}

// IsValid is database/sql's release point: the physical session goes back to
// the pool (or is terminated if it died) and the virtual handle, which owns
// no connection, stays valid. (A failed rollback does not end the session:
// database/sql would keep the inner connection, subject to its IsValid,
// which release consults; see tx.Rollback for the one case it would not.)
func (v *handle) IsValid() bool {
	// What was attached to this checkout ends with it: the next user of
	// the handle starts clean. (Tested first: most checkouts attach nothing.)
	if v.resetErr != nil || v.rebind != nil || v.recovery != nil || v.reconnectFails != 0 || !v.nextReconnect.IsZero() {
		v.resetErr, v.rebind, v.recovery, v.nextReconnect, v.reconnectFails = nil, nil, nil, time.Time{}, 0
	}
	v.release()
	v.endCheckout()
	return !v.c.closed.Load()
}

// endCheckout invalidates the Sessions handed out during the checkout that
// ends (see Session).
func (v *handle) endCheckout() {
	v.checkout++
	v.view.checkout = v.checkout
	if v.shared != nil {
		v.shared = nil
	}
}

// session returns the current checkout's Session for the application (see
// handle.shared); callbacks get the handle's view, valid while they run.
func (v *handle) session() *Session {
	if v.shared == nil {
		v.shared = &Session{v: v, checkout: v.checkout}
	}
	return v.shared
}

// CheckNamedValue, which database/sql calls only for ad-hoc work (hasql's
// statements have their own), defers to the inner connection's checker, or
// returns driver.ErrSkip so that database/sql applies its default
// conversion.
//
// Without hasql, an inner connection that has no ad-hoc Exec or no ad-hoc
// Query path (neither ExecerContext nor Execer, or neither QueryerContext nor
// Queryer) makes database/sql skip this conversion and go straight to a
// prepared statement, whose checker and ColumnConverter convert the
// arguments. hasql cannot hide its own ExecerContext and QueryerContext, so
// for such a connection it takes each value as it is here; ExecContext and
// QueryContext then convert them exactly as database/sql would have where the
// inner path exists, and otherwise answer driver.ErrSkip with the arguments
// untouched. Each value is converted once, by the rules that apply without
// hasql (a driver.Valuer is called once; a value only a ColumnConverter
// understands is not rejected).
func (v *handle) CheckNamedValue(nv *driver.NamedValue) error {
	if ph := v.ph; ph != nil && (ph.execerCtx == nil && ph.execer == nil || ph.queryerCtx == nil && ph.queryer == nil) {
		v.rawArgs = true
		return nil
	}
	return v.checkInner(nv)
}

// checkInner is the inner connection's checker, or driver.ErrSkip.
func (v *handle) checkInner(nv *driver.NamedValue) error {
	ck := v.checker
	if v.ph != nil {
		ck = v.ph.checker
	}
	if ck == nil {
		return driver.ErrSkip
	}
	return ck.CheckNamedValue(nv)
}

// Close discards the handle, and with it the session it had last, as
// database/sql closes the real connection without hasql: database/sql closes
// a handle it does not keep idle (SetMaxIdleConns), one past
// SetConnMaxLifetime or SetConnMaxIdleTime, one it gave up on
// (driver.ErrBadConn, the only case where it is still bound), and every
// handle when the DB closes. The session closes unless another checkout has
// it now or hasql keeps it for its own settings (pool.closeThrough).
func (v *handle) Close() error {
	if v.ph != nil {
		v.release()
	}
	if ph := v.parked; ph != nil {
		v.parked = nil
		ph.pool.closeThrough(ph, v.id)
	}
	v.endCheckout()
	if v.owns {
		return v.c.Close()
	}
	return nil
}

// Unwrap returns the inner driver's connection of the bound session, binding
// the handle (with a background context) if it is not bound. Calls made on it
// run no callbacks.
func (v *handle) Unwrap() driver.Conn {
	v.markUnreplayable("Conn.Raw and Unwrap")
	if v.ph == nil {
		if err := v.bind(context.Background(), false); err != nil {
			return nil
		}
	}
	return v.ph.inner
}
