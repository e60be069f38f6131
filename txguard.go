package hasql

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// TxGuardMode says which commits the commit-outcome guard resolves when their
// session dies after COMMIT was sent (hasql.txguard).
type TxGuardMode uint8

const (
	// TxGuardOff resolves nothing: a commit lost after it was sent reports
	// ErrTxResolutionUnknown.
	TxGuardOff TxGuardMode = iota
	// TxGuardOn resolves the commits of transactions that are not
	// read-only: Commit returns nil if the transaction committed and an
	// error wrapping ErrTxNotCommitted if it did not.
	TxGuardOn
	// TxGuardAll also resolves autocommit writes (an Exec or Query outside
	// a transaction whose statement starts with INSERT, UPDATE, DELETE,
	// MERGE or REPLACE, or a WITH that contains one), except work marked
	// Idempotent under hasql.retry=idempotent, which is run again anyway.
	// Each runs as a transaction of its own with a guard record; when its
	// session dies after it was sent, hasql finds out on a new session
	// whether it took effect:
	//   - not: it certainly did not run, so it runs again under the retry
	//     rules and the caller gets its real result (with hasql.retry=off,
	//     a *LostError wrapping ErrTxNotCommitted, SafeToRetry true);
	//   - yes: Exec returns a nil error and a Result whose RowsAffected and
	//     LastInsertId return an error wrapping ErrResultUnknown; a write
	//     query whose rows were lost returns a *LostError wrapping
	//     ErrResultUnknown (one committed when its rows end reports nil:
	//     they were read);
	//   - no answer (the database away past hasql.outage_wait): a
	//     *LostError wrapping ErrTxResolutionUnknown.
	// Cost: docs/transactions.md.
	TxGuardAll
)

// String returns the mode as hasql.txguard spells it: "off", "on" or "all".
func (m TxGuardMode) String() string { return enumName(m, "TxGuardMode", "off", "on", "all") }

// TxGuard configures the commit-outcome guard (hasql.txguard,
// hasql.txguard_table).
type TxGuard struct {
	Mode TxGuardMode
	// Table is the table the guard keeps its records in: an SQL
	// identifier, optionally schema-qualified ("app.hasql_txguard"), of
	// letters, digits, '_' and '$', not starting with a digit. Empty means
	// "hasql_txguard" (in the session's default schema or database).
	Table string
}

// WithTxGuard sets the commit-outcome guard's mode (hasql.txguard).
func WithTxGuard(m TxGuardMode) Option { return func(c *config) { c.txGuard.Mode = m } }

// WithTxGuardConfig sets the commit-outcome guard's mode and table.
func WithTxGuardConfig(g TxGuard) Option { return func(c *config) { c.txGuard = g } }

// ErrTxGuard is wrapped by the error a transaction gets when the
// commit-outcome guard cannot do its work: its table is missing and cannot
// be created, or its record could not be written (the transaction was then
// rolled back). The error names the table and wraps the server's error.
var ErrTxGuard = errors.New("hasql: commit-outcome guard unavailable")

const defaultTxGuardTable = "hasql_txguard"

// guardIdent is what hasql.txguard_table accepts: one identifier or
// schema.identifier, each of at most 63 characters.
var guardIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$`)

// validateGuardTable checks a configured table name (see TxGuard.Table).
func validateGuardTable(name string) error {
	if name != "" && !guardIdent.MatchString(name) {
		return newError(ErrDSN, fmt.Sprintf("hasql.txguard_table: %s is not an SQL identifier (schema.table of letters, digits, _ and $)", quoteValue(name)), nil)
	}
	return nil
}

// How long guard records are kept, how often the janitor runs, and how much
// it deletes per round. A record is only needed until a commit lost with
// its session has been resolved, which happens within hasql.outage_wait of
// the loss; keeping it an hour (or ten outage waits) leaves a wide margin.
const (
	guardRetentionMin = time.Hour
	guardJanitorEvery = time.Minute
	guardPurgeBatch   = 1000
	guardPurgeBatches = 20                     // per round: at most 20 000 records
	guardResolvePause = 250 * time.Millisecond // the longest pause between two tries of a resolution
)

// guardDialect is what a driverDialect knows about the guard's statements.
// Table names reach it validated and quoted (quoteTable).
type guardDialect interface {
	// quoteTable quotes a validated identifier or schema.identifier.
	quoteTable(name string) string
	// guardDDL creates the table if it does not exist.
	guardDDL(table string) string
	// guardProbe is a query that succeeds when the table exists and the
	// session may use it.
	guardProbe(table string) string
	// guardCommit writes the guard record id inside the transaction open
	// on inner and commits, in one round trip where the driver can
	// pipeline. pooled says the session works through a transaction-mode
	// pooler: nothing server-side may be kept beyond the transaction (no
	// named prepared statement). sent reports whether COMMIT may have
	// reached the server (false: the record's write failed first, nothing
	// committed).
	guardCommit(ctx context.Context, inner driver.Conn, itx driver.Tx, pooled bool, table, id string) (sent bool, err error)
	// guardEndOld is a query, with the guard id as its one argument, that
	// ends the session still running the commit of that id (PostgreSQL:
	// terminates it, returning a count) or lists it (MariaDB: connection
	// ids for killStmt). killStmt is nil where the query ends it itself.
	guardEndOld() (query string, killStmt func(id int64) string)
	// guardResolve is the statements that write a tombstone for id
	// (argument 1) unless its record exists, waiting for a transaction
	// that holds it; the last one is a query whose one row and column is
	// true when the row is a tombstone: the transaction did not commit.
	guardResolve(table string) []string
	// guardPurge deletes at most $2 records older than $1 seconds.
	guardPurge(table string) string
}

// txGuard is a connector's guard state.
type txGuard struct {
	c     *Connector
	d     guardDialect
	table string // quoted

	mu    sync.Mutex  // serialises ensure
	ready atomic.Bool // the table exists (ensure succeeded once)

	// ctx ends at Connector.Close, stopping the janitor's work in flight.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newTxGuard returns the connector's guard, nil when it is off, or an error
// naming the key when the dialect cannot guard commits.
func newTxGuard(c *Connector) (*txGuard, error) {
	g := c.cfg.txGuard
	if g.Mode == TxGuardOff {
		return nil, nil
	}
	gd, ok := c.dialect.get().(guardDialect)
	if !ok {
		return nil, newError(ErrDSN, fmt.Sprintf("hasql.txguard=%v is not supported for %v inner drivers", g.Mode, c.dialect), nil)
	}
	name := g.Table
	if name == "" {
		name = defaultTxGuardTable
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &txGuard{c: c, d: gd, table: gd.quoteTable(name), ctx: ctx, cancel: cancel, done: make(chan struct{})}, nil
}

// start runs the janitor, which deletes old records in the background.
func (g *txGuard) start() {
	go g.janitor()
}

// close stops the janitor and waits for it.
func (g *txGuard) close() {
	g.cancel()
	<-g.done
}

// ensure makes sure the table exists, creating it on session ph (in
// autocommit, before a transaction begins) if it may; once per connector.
func (g *txGuard) ensure(ctx context.Context, ph *session) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ready.Load() {
		return nil
	}
	_, err := ph.exec(ctx, g.d.guardDDL(g.table), nil)
	if err != nil {
		if g.c.dialect.connDead(err) {
			return err
		}
		// The application may not create tables: the table may exist all
		// the same (made by an administrator, see docs/transactions.md).
		rows, perr := ph.query(ctx, g.d.guardProbe(g.table), nil)
		if perr != nil {
			return newError(ErrTxGuard, fmt.Sprintf("the commit-outcome guard's table %s is missing and could not be created", g.table), err)
		}
		rows.Close()
	}
	g.ready.Store(true)
	return nil
}

// newGuardID returns a fresh guard record id, 32 hex digits: the time in
// nanoseconds (8 bytes, big-endian) and 64 random bits. Ids that grow with
// time go in at the right edge of the table's primary-key index, where
// random ones would each touch (and, after a checkpoint, log whole) another
// leaf page; the random half keeps ids from two processes apart.
func newGuardID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// commitGuarded commits the handle's transaction t with a guard record, or
// plainly when the guard does not apply (off, read-only). It runs as the
// driver call of FnCommit.
func (v *handle) commitGuarded(t *tx) error {
	g := v.c.guard
	v.guardID, v.commitUnsent = "", false
	if g == nil || v.txReadOnly || !g.isReady() {
		return t.inner.Commit()
	}
	ctx := t.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	id := newGuardID()
	v.guardID = id
	sent, err := g.d.guardCommit(ctx, v.ph.inner, t.inner, v.ph.pooled, g.table, id)
	if err != nil && !sent {
		v.commitUnsent = true
		if !v.c.dialect.connDead(err) {
			// The record could not be written: the transaction is rolled
			// back rather than committed without its guard.
			if rerr := t.inner.Rollback(); rerr != nil {
				v.ph.bad.Store(true)
			}
			return newError(ErrTxGuard, fmt.Sprintf("the commit-outcome guard could not write its record in %s; the transaction was rolled back", g.table), err)
		}
	}
	return err
}

func (g *txGuard) isReady() bool { return g.ready.Load() }

// resolve finds out, on a new session, whether the transaction whose guard
// record is id committed. It first ends the old session if it is still
// running the commit, then writes a tombstone for id unless the record is
// there, waiting for a transaction that still holds the record: from then
// on the answer cannot change. sel is what the new session must be (the
// lost session's user and class). ok is false when no answer could be had.
func (g *txGuard) resolve(sel selector, id string) (committed, ok bool) {
	c := g.c
	wait := c.cfg.backoff.OutageWait
	if wait < 5*time.Second {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait+c.cfg.backoff.ConnectTimeout)
	defer cancel()
	r := newHandle(c)
	defer r.Close()
	r.rebind = &sel
	// Its tombstone needs no standby: it only has to be there before the
	// lost COMMIT could land, on this server.
	r.bookkeeping = true
	args := []driver.NamedValue{{Ordinal: 1, Value: id}}
	endQ, kill := g.d.guardEndOld()
	stmts := g.d.guardResolve(g.table)
	// Until an answer or the deadline: a try that fails on a lost or
	// refused session is made again, the outage gate holding the new
	// session back while the database is away.
	for try := 0; ctx.Err() == nil; try++ {
		// Ending the old session is a courtesy that makes the answer come
		// sooner; the tombstone makes it right either way.
		if ids, err := queryInts(ctx, r, endQ, args); err == nil && kill != nil {
			for _, old := range ids {
				_, _ = r.ExecContext(ctx, kill(old), nil)
			}
		}
		var err error
		for _, q := range stmts[:len(stmts)-1] {
			if _, err = r.ExecContext(ctx, q, args); err != nil {
				break
			}
		}
		var tomb []int64
		if err == nil {
			tomb, err = queryInts(ctx, r, stmts[len(stmts)-1], args)
		}
		if err == nil && len(tomb) == 1 {
			return tomb[0] == 0, true
		}
		if err != nil && !c.dialect.connDead(err) && c.dialect.classify(err)&(classTxConflict|classLockTimeout) == 0 && !errors.Is(err, ErrConnectionLost) {
			return false, false
		}
		if ctx.Err() == nil {
			time.Sleep(min(time.Duration(try+1)*20*time.Millisecond, guardResolvePause))
		}
	}
	return false, false
}

// queryInts runs a query on handle r and returns its first column as
// integers (booleans as 0 and 1).
func queryInts(ctx context.Context, r *handle, q string, args []driver.NamedValue) ([]int64, error) {
	rows, err := r.QueryContext(ctx, q, args)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	var out []int64
	for {
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		n, err := asInt(dest[0])
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
}

// asInt reads an integer or boolean column value as the drivers return it.
func asInt(v driver.Value) (int64, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case []byte:
		return parseIntText(string(x))
	case string:
		return parseIntText(x)
	}
	return 0, fmt.Errorf("hasql: unexpected %T from the guard's query", v)
}

func parseIntText(s string) (int64, error) {
	switch s {
	case "t", "true", "TRUE":
		return 1, nil
	case "f", "false", "FALSE":
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// janitor deletes old guard records every guardJanitorEvery, at most
// guardPurgeBatches batches of guardPurgeBatch per round, until Close.
func (g *txGuard) janitor() {
	defer close(g.done)
	t := time.NewTicker(guardJanitorEvery)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			if g.isReady() {
				g.purgeRound()
			}
		}
	}
}

// purgeRound is one round of the janitor, on a session of its own.
func (g *txGuard) purgeRound() {
	c := g.c
	keep := guardRetentionMin
	if w := 10 * c.cfg.backoff.OutageWait; w > keep {
		keep = w
	}
	ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
	defer cancel()
	r := newHandle(c)
	defer r.Close()
	r.bookkeeping = true
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(keep / time.Second)}, {Ordinal: 2, Value: int64(guardPurgeBatch)}}
	for i := 0; i < guardPurgeBatches && ctx.Err() == nil; i++ {
		res, err := r.ExecContext(ctx, g.d.guardPurge(g.table), args)
		if err != nil {
			return
		}
		if n, err := res.RowsAffected(); err != nil || n < guardPurgeBatch {
			return
		}
	}
}

// quoteIdents quotes each part of a validated (schema.)identifier with q;
// validation leaves no quote character to escape.
func quoteIdents(name, q string) string {
	var b []byte
	for i, part := range splitDots(name) {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, q...)
		b = append(b, part...)
		b = append(b, q...)
	}
	return string(b)
}

func splitDots(s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}
