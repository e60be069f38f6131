package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
)

// Pooler says whether a transaction-mode connection pooler (PgBouncer with
// pool_mode=transaction, ProxySQL multiplexing) sits between hasql and the
// server: hasql.pooler and WithPooler. docs/clusters.md ("PgBouncer in
// transaction mode") has the measured behaviour and its tests.
//
// Behind such a pooler one inner connection reaches a different server
// connection for each transaction (an autocommit statement is a transaction
// of its own), so nothing server-side may be relied on beyond a transaction:
// named prepared statements, and session state set with SET. Under
// PoolerTransaction hasql keeps none of it, for pgx (go-sql-driver/mysql
// and generic drivers are run as they are):
//
//   - pgx runs every statement in a mode that needs no server-side
//     statement outside one protocol round trip: cache_statement and
//     describe_exec become cache_describe (exec where the description cache
//     is off); cache_describe, exec and simple_protocol stay as they are. A
//     QueryExecMode passed as an argument is mapped the same way.
//   - db.Prepare, and the statement cache behind it, keep only the statement
//     text and its parameter count (one describe round trip when prepared);
//     each execution runs the text as above, so a *sql.Stmt works on any
//     server connection.
//   - Session state set through Session.Exec (the session callback's tool)
//     with a SET statement is not sent to the server as session state,
//     where it would land on an arbitrary server connection and stay there
//     for other clients: hasql checks it once inside a transaction it rolls
//     back, keeps it with the session, and applies it as SET LOCAL at the
//     start of every transaction on that session. Autocommit work on a
//     session holding such state runs in a transaction of its own (begin,
//     the SET LOCALs, the work, commit; for a query the commit follows the
//     closing of its rows), so it sees the state too. Other statements run
//     through Session.Exec (temporary tables, advisory locks) are run as
//     they are: a transaction pooler cannot keep them for a session.
//
// Under PoolerNone (the default) hasql still recognises a pgx session that
// reaches PostgreSQL through a pooler and treats it as under
// PoolerTransaction: PgBouncer sends no parameter that names it (1.18 passes
// the server's own ParameterStatus through; SHOW VERSION answers only on its
// admin console), but it gives each client a made-up process ID in its
// cancel key, which no PostgreSQL backend has (see pgxDialect.poolerDetect).
type Pooler uint8

const (
	PoolerNone        Pooler = iota // no pooler expected (one that shows itself is still recognised)
	PoolerTransaction               // a transaction-mode pooler: nothing server-side is kept beyond a transaction
)

// String returns the pooler as hasql.pooler spells it: "none" or
// "transaction".
func (p Pooler) String() string { return enumName(p, "Pooler", "none", "transaction") }

// WithPooler says whether a transaction-mode pooler sits in front of the
// server (hasql.pooler).
func WithPooler(p Pooler) Option { return func(c *config) { c.pooler = p } }

// poolerDialect is what a driverDialect knows about working through a
// transaction-mode pooler; the dialects without it (the generic one, MySQL)
// keep their statements and state as they are.
type poolerDialect interface {
	// poolerDetect reports whether a new inner connection reaches its
	// server through a pooler; probe allows one round trip to find out,
	// else only what the connection already shows counts.
	poolerDetect(ctx context.Context, inner driver.Conn, probe bool) (bool, error)

	// poolerMode works out once per session what poolerArgs needs: the
	// pooler-safe execution mode of the connection; nil for none.
	poolerMode(inner driver.Conn) any

	// poolerArgs returns args for work on a connection behind a pooler:
	// with the option that selects mode (poolerMode's), and any mode the
	// caller passed mapped to a safe one. It may return args.
	poolerArgs(mode any, args []driver.NamedValue) []driver.NamedValue

	// poolerCheck makes one round trip through the pooler to the server
	// behind it: a pooler accepts connections while that server is away
	// (restarting) and refuses the first work instead, which would reach
	// the application past hasql's outage gate.
	poolerCheck(ctx context.Context, inner driver.Conn) error

	// describe asks the server for query's parameter count without leaving
	// a statement behind.
	describe(ctx context.Context, inner driver.Conn, query string) (int, error)

	// localState returns the transaction-local form of a statement that
	// sets session state (SET x = v becomes SET LOCAL x = v) and a key
	// naming what it sets (a later statement with the same key replaces
	// it); ok is false for any other statement.
	localState(query string) (local, key string, ok bool)
}

func (d dialect) pooler() poolerDialect {
	p, _ := d.get().(poolerDialect)
	return p
}

// poolerSession is what a session keeps for working through a pooler; it is
// owned like the session's other fields.
type poolerSession struct {
	pooled bool         // behind a transaction-mode pooler (configured or recognised)
	mode   any          // the dialect's poolerMode, when pooled
	state  []stateEntry // session state to apply at the start of each transaction
}

// stateEntry is one SET kept for a session behind a pooler.
type stateEntry struct{ key, local string }

// maxStateEntries bounds the state a session keeps: each entry is sent at
// the start of every transaction.
const maxStateEntries = 64

// errTooMuchState is returned by Session.Exec past maxStateEntries.
var errTooMuchState = newError(ErrInvalidArgument, "behind a transaction pooler a session keeps at most 64 SET statements (they are applied at the start of every transaction)", nil)

// poolerSeen remembers, per host address, whether the first pgx session
// there found a pooler (detection's one round trip is made once per host).
type poolerSeen struct {
	mu sync.Mutex
	m  map[string]bool
}

// setPooler decides whether a session just opened works through a
// transaction pooler: configured, or recognised by the dialect.
func (c *Connector) setPooler(ctx context.Context, ph *session) error {
	pd := c.dialect.pooler()
	if pd == nil {
		return nil
	}
	if c.cfg.pooler == PoolerTransaction {
		ph.setPooled(pd)
		return pd.poolerCheck(ctx, ph.inner)
	}
	c.poolers.mu.Lock()
	seen, known := c.poolers.m[ph.host]
	c.poolers.mu.Unlock()
	found, err := pd.poolerDetect(ctx, ph.inner, !known)
	if err != nil {
		return err
	}
	if !known {
		c.poolers.mu.Lock()
		if c.poolers.m == nil {
			c.poolers.m = make(map[string]bool)
		}
		c.poolers.m[ph.host] = found
		c.poolers.mu.Unlock()
	}
	if found || seen {
		ph.setPooled(pd)
		// Check that the server behind the pooler is there, so that a
		// session is only had when work can run (detection's probe, when
		// it was made at all, is once per host).
		return pd.poolerCheck(ctx, ph.inner)
	}
	return nil
}

// setPooled marks ph as working through a pooler. Its statements then live
// in hasql alone (describedStmt), so no server statement named by its SQL
// text can shadow ad-hoc work (see dropShadowing): the cache keeps them.
func (ph *session) setPooled(pd poolerDialect) {
	ph.pooled, ph.mode, ph.namesBySQL = true, pd.poolerMode(ph.inner), false
}

// poolerArgs is args for work on ph: rewritten by the dialect when ph is
// behind a pooler.
func (ph *session) poolerArgs(args []driver.NamedValue) []driver.NamedValue {
	if !ph.pooled || ph.mode == nil {
		return args
	}
	if pd := ph.pool.c.dialect.pooler(); pd != nil {
		return pd.poolerArgs(ph.mode, args)
	}
	return args
}

// describedStmt is a prepared statement behind a pooler: the server keeps
// nothing, hasql keeps the text and its parameter count, and each execution
// is ad-hoc work on the session (in a pooler-safe mode).
type describedStmt struct {
	ph    *session
	query string
	n     int
}

var (
	_ driver.Stmt             = (*describedStmt)(nil)
	_ driver.StmtExecContext  = (*describedStmt)(nil)
	_ driver.StmtQueryContext = (*describedStmt)(nil)
)

// prepareDescribed prepares query on ph behind a pooler; ok is false where
// the dialect cannot (the inner driver's own Prepare is used then).
func (ph *session) prepareDescribed(ctx context.Context, query string) (si driver.Stmt, ok bool, err error) {
	pd := ph.pool.c.dialect.pooler()
	if pd == nil || ph.execerCtx == nil || ph.queryerCtx == nil {
		return nil, false, nil
	}
	n, err := pd.describe(ctx, ph.inner, query)
	if err != nil {
		return nil, true, err
	}
	return &describedStmt{ph: ph, query: query, n: n}, true, nil
}

func (s *describedStmt) NumInput() int { return s.n }
func (s *describedStmt) Close() error  { return nil }

func (s *describedStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *describedStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func (s *describedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.ph.exec(ctx, s.query, args)
}

func (s *describedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.ph.query(ctx, s.query, args)
}

// keepState is Session.Exec behind a pooler: a SET statement is checked
// inside a transaction that is rolled back, then kept as session state
// (done is true); anything else is left to run as it is (done false).
// Inside a transaction (inTx) the SET LOCAL runs in it instead, so that it
// applies at once, and is kept for the transactions after it.
func (ph *session) keepState(ctx context.Context, query string, args []driver.NamedValue, inTx bool) (done bool, err error) {
	pd := ph.pool.c.dialect.pooler()
	if pd == nil || len(args) > 0 || ph.execerCtx == nil {
		return false, nil
	}
	local, key, ok := pd.localState(query)
	if !ok {
		return false, nil
	}
	i := 0
	for i < len(ph.state) && ph.state[i].key != key {
		i++
	}
	if i == len(ph.state) && i >= maxStateEntries {
		return true, errTooMuchState
	}
	if inTx {
		if _, err = ph.execerCtx.ExecContext(ctx, local, nil); err != nil {
			return true, err
		}
	} else if _, err = ph.execerCtx.ExecContext(ctx, "BEGIN; "+local+"; ROLLBACK", nil); err != nil {
		// One round trip: the SET LOCAL is checked and undone on whatever
		// server connection the pooler lends for it.
		if !ph.pool.c.dialect.connDead(err) {
			// The error left the transaction open and aborted: end it, or
			// the pooler keeps a server connection pinned to this client.
			if _, rerr := ph.execerCtx.ExecContext(ctx, "ROLLBACK", nil); rerr != nil {
				ph.bad.Store(true)
			}
		}
		return true, err
	}
	if i < len(ph.state) {
		// Replaced in place: its order among the others stays.
		ph.state[i].local = local
	} else {
		ph.state = append(ph.state, stateEntry{key: key, local: local})
	}
	return true, nil
}

// applyState runs the session's kept state in the transaction just begun.
func (ph *session) applyState(ctx context.Context) error {
	if len(ph.state) == 0 {
		return nil
	}
	var b strings.Builder
	for i, e := range ph.state {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.local)
	}
	_, err := ph.execerCtx.ExecContext(ctx, b.String(), nil)
	return err
}

// wrapsAutocommit reports whether autocommit work on the bound session must
// run in a transaction of its own, so that the session's kept state applies
// to it (behind a pooler there is no other way to apply state to it).
func (v *handle) wrapsAutocommit() bool {
	ph := v.ph
	return ph.pooled && !v.inTx && len(ph.state) > 0 && ph.beginTx != nil
}

// inOwnTx runs autocommit work (an ad-hoc or statement exec or query) in a
// transaction of its own that starts with the session's state. An exec's
// transaction commits at once; a query's is handed to its rows
// (v.autoTx), which commit it when they close.
func (v *handle) inOwnTx(fn Fn, ctx context.Context, query string, args []driver.NamedValue, s *stmt) (r driver.Result, rows driver.Rows, err error) {
	itx, err := v.ph.begin(ctx, driver.TxOptions{})
	if err != nil {
		return nil, nil, err
	}
	r, rows, err = v.runWork(fn, ctx, query, args, s)
	if err != nil {
		if rerr := itx.Rollback(); rerr != nil && !errors.Is(rerr, driver.ErrBadConn) {
			v.ph.bad.Store(true)
		}
		return nil, nil, err
	}
	if rows != nil {
		v.autoTx = itx
		return nil, rows, nil
	}
	if err = itx.Commit(); err != nil {
		return nil, nil, err
	}
	return r, nil, nil
}

// dropAutoTx rolls back a query's own transaction whose rows never reached
// the caller (an exit callback replaced the outcome).
func (v *handle) dropAutoTx() {
	v.autoInline = ""
	if itx := v.autoTx; itx != nil {
		v.autoTx, v.autoGuarded = nil, false
		if itx.Rollback() != nil && v.ph != nil {
			v.ph.bad.Store(true)
		}
	}
}

// endOwnTx ends the query's own transaction when its rows close: a commit,
// or a rollback when closing the rows failed (closeErr then judges that
// error). A failed commit is the error Close reports.
func (r *rows) endOwnTx(tx driver.Tx, closeErr error) error {
	r.endTx = nil
	if closeErr != nil {
		if tx.Rollback() != nil && r.ph != nil {
			r.ph.bad.Store(true)
		}
		return closeErr
	}
	if err := tx.Commit(); err != nil {
		if r.ph != nil && r.ph.pool.c.dialect.connDead(err) {
			r.ph.bad.Store(true)
		}
		return err
	}
	return nil
}
