package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Reads on standbys, read-your-writes and replicated durability.
//
// Work marked read-only (ReadOnly(ctx), or a transaction begun with
// sql.TxOptions{ReadOnly: true} as the first work of its checkout) is bound
// to a session on a standby when hasql.reads says so; everything else goes
// to the connector's target (the primary). The sessions on standbys are
// pooled apart from the others (poolKey.standby), so one *sql.DB holds both.
//
// Under hasql.consistency=session the connector remembers the replication
// position of the latest write committed through it (readRouter.pos): after
// an autocommit Exec or the Commit of a transaction that was not read-only,
// the position is asked on the writing session itself, one round trip
// (PostgreSQL: pg_current_wal_lsn(); MariaDB: @@last_gtid). A query outside
// a transaction without the read-only mark may write too (INSERT ...
// RETURNING): it costs no round trip, but it leaves the position unknown
// until the background checker has read the primary's position again; until
// then read-only work runs on the primary. A read then uses a standby only
// once the standby has replayed that far: when the checker's last look or an
// earlier wait already showed it, at no cost; otherwise one statement on the
// standby waits on the server for at most hasql.lag_wait, and if the standby
// is still behind, the read runs on the primary.
//
// Under hasql.durability=replicated a write's position is waited for on a
// standby before Commit (or the autocommit Exec) returns.

// Consistency says what reads on standbys see (hasql.consistency).
type Consistency uint8

const (
	// ConsistencySession: a read sees every write committed through this
	// connector before the read began (and every position given with
	// ReadAfter), waiting up to ReadConfig.LagWait for a standby to catch
	// up, else reading on the primary. The default.
	ConsistencySession Consistency = iota
	// ConsistencyEventual: a read may run on any standby within
	// ReadConfig.MaxLag, and may miss recent writes.
	ConsistencyEventual
)

// String returns the consistency as hasql.consistency spells it.
func (c Consistency) String() string { return enumName(c, "Consistency", "session", "eventual") }

// ReadConfig says where read-only work goes (hasql.reads, hasql.max_lag,
// hasql.consistency, hasql.lag_wait).
type ReadConfig struct {
	// Reads is where read-only work goes: TargetPrimary, TargetStandby
	// (standbys only: with none up, read-only work fails as a checkout
	// for target standby would) or TargetPreferStandby (a standby if one
	// is up, else the primary). TargetAny, the zero value, means the
	// connector's target: no routing. Under ConsistencySession both
	// standby choices read on the primary when no standby has caught up.
	Reads Target
	// MaxLag keeps standbys further behind than this (as measured by the
	// background checker, every half second) out of reads; 0 = no bound.
	MaxLag time.Duration
	// Consistency: see Consistency.
	Consistency Consistency
	// LagWait is the longest a read waits for a standby to replay the
	// position it needs, in one statement on the standby, before it reads
	// on the primary instead; 0 means the default, 100ms.
	LagWait time.Duration
}

// WithReads sets where read-only work goes (hasql.reads): TargetPrimary,
// TargetStandby or TargetPreferStandby; TargetAny means the connector's
// target (no routing). The rest of ReadConfig keeps its value.
func WithReads(t Target) Option { return func(c *config) { c.reads.Reads = t } }

// WithReadConfig sets where read-only work goes and what it sees, all of
// ReadConfig at once (the DSN keys hasql.reads, hasql.max_lag,
// hasql.consistency and hasql.lag_wait). A zero LagWait means the default.
func WithReadConfig(rc ReadConfig) Option { return func(c *config) { c.reads = rc } }

// DurabilityMode says when a commit counts as done (hasql.durability).
type DurabilityMode uint8

const (
	// DurabilityLocal: Commit returns when the primary has committed, as
	// the driver's own does. The default.
	DurabilityLocal DurabilityMode = iota
	// DurabilityReplicated: Commit, and an Exec outside a transaction,
	// return only once at least one standby or replica has the commit
	// (PostgreSQL: pg_stat_replication's flush_lsn; MariaDB: a replica's
	// MASTER_GTID_WAIT), so that an asynchronous failover cannot lose it.
	DurabilityReplicated
)

// String returns the mode as hasql.durability spells it.
func (m DurabilityMode) String() string { return enumName(m, "DurabilityMode", "local", "replicated") }

// Durability configures hasql.durability and hasql.durability_wait.
type Durability struct {
	Mode DurabilityMode
	// Wait bounds how long a commit waits for a standby under
	// DurabilityReplicated; past it the commit (which did happen on the
	// primary) returns an error wrapping ErrTxResolutionUnknown, unless
	// hasql.txguard is on and the primary's session died: the guard then
	// says whether the commit is on the primary reachable now (nil, or
	// ErrTxNotCommitted). 0 means the default, 5s.
	Wait time.Duration
}

// WithDurability sets when a commit counts as done.
func WithDurability(d Durability) Option { return func(c *config) { c.durability = d } }

const (
	defaultLagWait        = 100 * time.Millisecond
	defaultDurabilityWait = 5 * time.Second
)

// setReads applies the reads and durability DSN keys.
func (c *config) setReads(key, value string) error {
	var err error
	switch key {
	case "reads":
		c.reads.Reads, err = parseEnum(value, TargetPrimary, TargetStandby, TargetPreferStandby)
	case "max_lag":
		c.reads.MaxLag, err = parseDuration(value)
	case "consistency":
		c.reads.Consistency, err = parseEnum(value, ConsistencySession, ConsistencyEventual)
	case "lag_wait":
		c.reads.LagWait, err = parseDuration(value)
	case "durability":
		c.durability.Mode, err = parseEnum(value, DurabilityLocal, DurabilityReplicated)
	case "durability_wait":
		c.durability.Wait, err = parseDuration(value)
	}
	return err
}

// validateReads checks the reads and durability settings.
func (c *config) validateReads() error {
	bad := func(what string, args ...any) error { return newError(ErrDSN, fmt.Sprintf(what, args...), nil) }
	switch r := c.reads.Reads; {
	case r != TargetAny && r != TargetPrimary && r != TargetStandby && r != TargetPreferStandby:
		return bad("hasql.reads: %v is not one of primary, standby, prefer-standby", r)
	case c.reads.MaxLag < 0, c.reads.LagWait < 0:
		return bad("hasql.max_lag and hasql.lag_wait must not be negative")
	case c.reads.Consistency > ConsistencyEventual:
		return bad("hasql.consistency: unknown consistency %d", c.reads.Consistency)
	case c.durability.Mode > DurabilityReplicated:
		return bad("hasql.durability: unknown mode %d", c.durability.Mode)
	case c.durability.Wait < 0:
		return bad("hasql.durability_wait must not be negative")
	}
	return nil
}

// replication is a dialect's knowledge of replication positions. Positions
// are the server's own text (PostgreSQL LSN, MariaDB GTID list).
type replication struct {
	writePos   string // on the session that just wrote: a position covering the write ("" result: nothing written)
	primaryPos string // on a primary: its current position
	replayPos  string // on a standby: the position it has replayed
	// waitReplay, on a standby, with arguments (position, seconds): one
	// row whose value reached accepts once the standby has replayed the
	// position, waiting on the server at most the seconds.
	waitReplay string
	// waitReplicated, on the primary, with the same arguments: one row
	// that reached accepts once a standby has the position; "" when the
	// primary cannot tell, and a standby's waitReplay is asked instead.
	waitReplicated string
	reached        func(driver.Value) bool
	atLeast        func(have, want string) (bool, error)
	merge          func(a, b string) string // the later of two positions
}

// readRouter is a connector's state for reads on standbys and durability;
// nil when neither is configured.
type readRouter struct {
	c       *Connector
	repl    *replication
	route   bool // read-only work goes to standbys
	strict  bool // reads=standby: no standby, no read
	session bool // consistency=session
	maxLag  time.Duration
	lagWait time.Duration
	durable bool
	durWait time.Duration

	mu     sync.Mutex
	pos    string           // the latest write position through c
	replay map[*host]string // what each standby is known to have replayed
	lag    map[*host]time.Duration

	// dirty counts writes of unknown position (queries that may write);
	// clean is the count the last primary position read covers. Reads wait
	// for clean to catch up with dirty by reading on the primary.
	dirty, clean atomic.Uint64
	wake         chan struct{}

	primaryReads, standbyReads atomic.Int64
}

// newReadRouter returns the connector's router, or nil when reads stay on
// the target and durability is local.
func newReadRouter(c *Connector) (*readRouter, error) {
	rc, d := c.cfg.reads, c.cfg.durability
	route := rc.Reads != TargetAny && rc.Reads != TargetPrimary && rc.Reads != c.cfg.target
	durable := d.Mode == DurabilityReplicated
	if !route && !durable {
		return nil, nil
	}
	repl := c.dialect.replication()
	if repl == nil || c.dialect.roleQuery() == "" {
		return nil, newError(ErrDSN, fmt.Sprintf("hasql.reads=%v and hasql.durability=replicated need a driver whose replication hasql knows (pgx, go-sql-driver/mysql), not %s", rc.Reads, c.dialect), nil)
	}
	rw := &readRouter{c: c, repl: repl, route: route, strict: rc.Reads == TargetStandby,
		session: rc.Consistency == ConsistencySession, maxLag: rc.MaxLag, lagWait: rc.LagWait,
		durable: durable, durWait: d.Wait, replay: make(map[*host]string), lag: make(map[*host]time.Duration),
		wake: make(chan struct{}, 1)}
	if rw.lagWait == 0 {
		rw.lagWait = defaultLagWait
	}
	if rw.durWait == 0 {
		rw.durWait = defaultDurabilityWait
	}
	return rw, nil
}

type readAfterKey struct{}

// ReadOnly marks the work done with ctx as only reading: with hasql.reads
// set to standby or prefer-standby it runs on a standby (under
// hasql.consistency=session, one that has replayed every write committed
// through the connector, else on the primary). Used on db.Conn(ctx), it pins
// a session on a standby. Without hasql.reads the mark has no effect. A
// write in such work fails as the standby refuses it.
func ReadOnly(ctx context.Context) context.Context {
	if s := selectorIn(ctx); s != nil && s.read {
		return ctx
	}
	return withSelector(ctx, func(s *selector) { s.read = true })
}

// ReadAfter makes read-only work done with ctx see every write up to pos, a
// position from Connector.Position (of this or another process's
// connector): such work runs on a standby only once the standby has
// replayed pos, waiting up to hasql.lag_wait, else on the primary. A pos
// that does not parse sends the work to the primary. It marks ctx ReadOnly.
func ReadAfter(ctx context.Context, pos string) context.Context {
	return withSelector(ctx, func(s *selector) { s.read, s.after = true, pos })
}

// Position returns an opaque text naming the position of the latest write
// committed through c that hasql knows of (a PostgreSQL WAL LSN, a MariaDB
// GTID list), for ReadAfter in another process (an HTTP header, say); "" when
// c tracks none (hasql.reads and hasql.durability not set, or no write yet).
// It costs a mutex.
func (c *Connector) Position() string {
	if c.rw == nil {
		return ""
	}
	c.rw.mu.Lock()
	defer c.rw.mu.Unlock()
	return c.rw.pos
}

// advance records a write position.
func (rw *readRouter) advance(pos string) {
	if pos == "" {
		return
	}
	rw.mu.Lock()
	if rw.pos == "" {
		rw.pos = pos
	} else {
		rw.pos = rw.repl.merge(rw.pos, pos)
	}
	rw.mu.Unlock()
}

// markUnknown records a write whose position is unknown and wakes the
// background checker to read the primary's.
func (rw *readRouter) markUnknown() {
	rw.dirty.Add(1)
	select {
	case rw.wake <- struct{}{}:
	default:
	}
}

// required is the position a read with sel must see; ok is false when it is
// not known (a write of unknown position is pending): the read goes to the
// primary.
func (rw *readRouter) required(sel *selector) (want string, ok bool) {
	if !rw.session {
		return "", true
	}
	if rw.clean.Load() < rw.dirty.Load() {
		return "", false
	}
	rw.mu.Lock()
	want = rw.pos
	rw.mu.Unlock()
	if sel.after != "" {
		if _, err := rw.repl.atLeast(sel.after, sel.after); err != nil {
			return "", false
		}
		if want == "" {
			want = sel.after
		} else {
			want = rw.repl.merge(want, sel.after)
		}
	}
	return want, true
}

// standbyMayServe reports whether some host may be a standby fit for reads:
// not known to be a primary, up, and within max_lag as last measured.
func (rw *readRouter) standbyMayServe() bool {
	hs := rw.c.hosts
	rw.mu.Lock()
	defer rw.mu.Unlock()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.hosts {
		if h.role == rolePrimary || h.state != HostStateUp && h.failures > 0 {
			continue
		}
		if lag, ok := rw.lag[h]; rw.maxLag > 0 && ok && lag > rw.maxLag {
			continue
		}
		return true
	}
	return false
}

// knownReplayed reports whether h is known to have replayed want.
func (rw *readRouter) knownReplayed(h *host, want string) bool {
	rw.mu.Lock()
	have, ok := rw.replay[h]
	rw.mu.Unlock()
	if !ok {
		return false
	}
	reached, err := rw.repl.atLeast(have, want)
	return err == nil && reached
}

// noteReplay records that h has replayed at least pos.
func (rw *readRouter) noteReplay(h *host, pos string) {
	if h == nil || pos == "" {
		return
	}
	rw.mu.Lock()
	if have, ok := rw.replay[h]; ok {
		pos = rw.repl.merge(have, pos)
	}
	rw.replay[h] = pos
	rw.mu.Unlock()
}

// fitsFor reports whether the standby session ph may serve a read that must
// see want: its host within max_lag, and known to have replayed want, or
// found to within lag_wait by one statement on ph.
func (rw *readRouter) fitsFor(ctx context.Context, ph *session, want string) bool {
	h := ph.hostRef
	if rw.maxLag > 0 && h != nil {
		rw.mu.Lock()
		lag, ok := rw.lag[h]
		rw.mu.Unlock()
		if ok && lag > rw.maxLag {
			return false
		}
	}
	if want == "" || h != nil && rw.knownReplayed(h, want) {
		return true
	}
	v, err := rw.c.waitOn(ctx, ph, rw.repl.waitReplay, want, rw.lagWait)
	if err != nil || !rw.repl.reached(v) {
		return false
	}
	rw.noteReplay(h, want)
	return true
}

// waitOn runs one of the replication waits on ph, bounded on the server by
// wait (and on the client by a generous margin past it, so that a server
// that stops answering cannot hold the caller).
func (c *Connector) waitOn(ctx context.Context, ph *session, q, pos string, wait time.Duration) (driver.Value, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+5*time.Second)
	defer cancel()
	v, err := queryOne(ctx, ph, q, pos, wait.Seconds())
	if err != nil && c.dialect.connDead(err) {
		ph.bad.Store(true)
	}
	return v, err
}

// queryOne runs q on ph with args and returns the first column of its first
// row ([]byte turned into string).
func queryOne(ctx context.Context, ph *session, q string, args ...any) (driver.Value, error) {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	if len(nv) == 0 {
		nv = nil
	}
	rows, err := ph.query(ctx, q, nv)
	var cs *cachedStmt
	if err == driver.ErrSkip {
		if cs, err = ph.acquireStmt(ctx, q, ""); err == nil {
			rows, err = stmtQuery(ctx, cs.si, nv)
		}
	}
	if err != nil {
		if cs != nil {
			ph.releaseStmt(cs)
		}
		return nil, err
	}
	dest := make([]driver.Value, len(rows.Columns()))
	err = rows.Next(dest)
	cerr := rows.Close()
	if cs != nil {
		ph.releaseStmt(cs)
	}
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	if b, ok := dest[0].([]byte); ok {
		return string(b), nil
	}
	return dest[0], nil
}

// queryText is queryOne for a text result ("" for NULL).
func queryText(ctx context.Context, ph *session, q string, args ...any) (string, error) {
	v, err := queryOne(ctx, ph, q, args...)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// bindRead binds the handle for read-only work (sel.read): a session on a
// standby that fits (see readRouter), else one on the target as for any
// work. v.routed tells which it got.
func (v *handle) bindRead(ctx context.Context, sel selector, verified bool) error {
	rw := v.c.rw
	v.routed = false
	want, ok := rw.required(&sel)
	if ok && (rw.strict || rw.standbyMayServe()) {
		ssel := sel
		ssel.standby = true
		// A standby that cannot be reached is no outage of the database:
		// the read goes to the primary rather than wait at the gate.
		noGate := v.noGate
		v.noGate = true
		err := v.bindPool(ctx, ssel, verified, nil, nil)
		v.noGate = noGate
		switch {
		case err == nil && rw.fitsFor(ctx, v.ph, want):
			v.sel, v.routed = sel, true
			rw.standbyReads.Add(1)
			return nil
		case err == nil:
			v.canPark = false
			v.release()
		case rw.strict && ctx.Err() == nil:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	rw.primaryReads.Add(1)
	return v.bindPool(ctx, sel, verified, nil, nil)
}

// rebindReadTx moves a handle at the start of its checkout to a standby for
// a transaction begun with TxOptions.ReadOnly; the session goes back when
// the transaction ends (tx.end), so that a pinned *sql.Conn's next work is
// bound afresh.
func (v *handle) rebindReadTx(ctx context.Context) error {
	sel := selectorFrom(ctx)
	sel.read = true
	v.release()
	v.parked = nil
	if err := v.bindRead(ctx, sel, true); err != nil {
		return err
	}
	v.txRouted = true
	return nil
}

// afterWrite is the pipeline's step after fn succeeded on a session bound
// to the target, when a router is configured: it records the position of a
// write (and waits for a standby under durability=replicated).
func (v *handle) afterWrite(fn Fn, ctx context.Context) error {
	rw := v.c.rw
	if v.routed || v.ph == nil || v.bookkeeping {
		return nil
	}
	switch fn {
	case FnExec, FnStmtExec:
		if v.inTx {
			return nil
		}
	case FnCommit:
		if v.txReadOnly {
			return nil
		}
	case FnQuery, FnStmtQuery:
		if !v.inTx && !v.sel.read && rw.route && rw.session {
			rw.markUnknown()
		}
		return nil
	default:
		return nil
	}
	if !rw.durable && !(rw.route && rw.session) {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	pctx, cancel := context.WithTimeout(ctx, v.c.cfg.backoff.ConnectTimeout+5*time.Second)
	pos, err := queryText(pctx, v.ph, rw.repl.writePos)
	cancel()
	if err != nil {
		if v.c.dialect.connDead(err) {
			v.ph.bad.Store(true)
		}
		if rw.route && rw.session {
			rw.markUnknown()
		}
		if rw.durable && v.durableLossSettles(ctx, fn) {
			return v.settleLostDurable(ctx, "", err) // durability_settle.go
		}
		if rw.durable {
			return newError(ErrTxResolutionUnknown, "the commit's replication position could not be read, so its replication is not confirmed", err)
		}
		return nil
	}
	if pos == "" || pos == v.ph.lastWritePos {
		return nil // nothing was written (MariaDB: no binlog event)
	}
	v.ph.lastWritePos = pos
	rw.advance(pos)
	if rw.durable {
		err := v.c.awaitReplicated(ctx, v.ph, pos)
		if err != nil && v.durableLossSettles(ctx, fn) {
			return v.settleLostDurable(ctx, pos, err) // durability_settle.go
		}
		return err
	}
	return nil
}

// awaitReplicated waits until a standby has pos, at most durability_wait:
// on the primary session ph where the dialect can tell there, else on a
// replica session from the pool.
func (c *Connector) awaitReplicated(ctx context.Context, ph *session, pos string) error {
	rw := c.rw
	notConfirmed := func(cause error) error {
		return newError(ErrTxResolutionUnknown, fmt.Sprintf("the commit (at %s) is not confirmed on any standby within hasql.durability_wait=%v", pos, rw.durWait), cause)
	}
	if q := rw.repl.waitReplicated; q != "" {
		v, err := c.waitOn(ctx, ph, q, pos, rw.durWait)
		if err != nil || !rw.repl.reached(v) {
			return notConfirmed(err)
		}
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, rw.durWait)
	key := ph.key
	key.standby = true
	// Not a handle's checkout: no handle age to respect (zero born).
	co, err := c.pool.get(gctx, key, "", selector{}, false, time.Time{})
	cancel()
	if err != nil {
		return notConfirmed(err)
	}
	v, err := c.waitOn(ctx, co.ph, rw.repl.waitReplay, pos, rw.durWait)
	c.pool.put(co.ph)
	if err != nil || !rw.repl.reached(v) {
		return notConfirmed(err)
	}
	rw.noteReplay(co.ph.hostRef, pos)
	return nil
}
