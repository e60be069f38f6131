package hasql

import (
	"database/sql/driver"
	"sync"
	"sync/atomic"
	"time"
)

// session is one real connection of the inner driver: a physical session.
// At most one virtual handle holds it at a time; only the holder touches
// inner. Its states, and which of the pool's counts each is in, are set out
// on the pool type (pool.go).
type session struct {
	pool    *pool
	inner   driver.Conn
	key     poolKey
	host    string // host:port it is connected to, where known
	hostRef *host
	hostGen uint64 // hostRef's purge generation when the session was opened

	// lastWritePos is the replication position the session's last write
	// was found at (reads.go): the same again means it wrote nothing new
	// (MariaDB's @@last_gtid stays put), so there is nothing to wait for.
	lastWritePos string

	// The inner connection's optional interfaces, looked up once.
	execerCtx  driver.ExecerContext
	queryerCtx driver.QueryerContext
	execer     driver.Execer
	queryer    driver.Queryer
	prepCtx    driver.ConnPrepareContext
	beginTx    driver.ConnBeginTx
	pinger     driver.Pinger
	resetter   driver.SessionResetter
	checker    driver.NamedValueChecker

	created  time.Time
	retireAt int64 // created + jittered MaxLifetime, in Unix nanoseconds; 0: never

	// roleAt is when the server's role was last checked (Unix nanos; 0:
	// never) and roleReport what the server reported of its role then
	// (dialect roleReport), written by the session's holder
	// (role_recheck.go).
	roleAt     int64
	roleReport string

	// owner is the id of the handle that bound the session last, written by
	// that handle while it holds the session: only its Close closes the
	// session through (pool.closeThrough). minKeep: hasql keeps the session
	// for hasql.pool.min, so it serves handles of any age (pool.serves);
	// changed under pool.mu. See pool_handles.go.
	owner   uint64
	minKeep bool

	// idle is set while the session is in the pool's idle list and nobody
	// holds it: whoever swaps it from true to false owns the session. Only
	// that swap hands a listed session over, so the handle that parked it
	// (see pool.put) can take it back without the pool's lock.
	idle   atomic.Bool
	idleAt atomic.Int64 // the pool's stamp when last parked or listed

	// listed: the session has an entry in the pool's idle list. Changed
	// under pool.mu, by its holder or by whoever won it with idle; so the
	// holder may read it without the lock. A held session can stay listed
	// (its handle took it back without the lock); the list's readers skip
	// entries that are not idle.
	listed bool

	// Owned by whoever holds the session (the pool's lock hands it over).
	tag           string // normalised; "" = untagged
	used          bool   // handed out before, so the next checkout resets it; set only while unlisted (pool.put)
	forced        bool   // opened beyond Max by GetForce
	stmtCacheSize int

	bad atomic.Bool // never pool again: terminate on release

	cache stmtCache // owned like the fields above

	sessionTraits // what the dialect knows about the inner connection; fixed at open

	poolerSession // behind a transaction pooler: see Pooler

	mu      sync.Mutex
	pending []*cachedStmt // statement releases deferred until the session is next owned

	// hasPending is set with pending non-empty, so that a checkout with
	// nothing deferred skips mu; spare is pending's previous backing array,
	// owned like the fields above, so that deferring allocates nothing.
	hasPending atomic.Bool
	spare      []*cachedStmt

	view Session // a view of this session alone, for FnConnect and FnClose callbacks
}

// poolKey partitions the pool: sessions never cross users (with their
// passwords: a wrong password never gets a session another caller
// authenticated) or connection classes.
type poolKey struct {
	user, pass, class string
	standby           bool // sessions on standbys, for read-only work (reads.go)
}

// newSession wraps inner, just opened for key, looking its optional
// interfaces up once. The session is in no count of the pool's until the
// opener adopts it (pool.adoptLocked).
func newSession(p *pool, inner driver.Conn, key poolKey) *session {
	ph := &session{pool: p, inner: inner, key: key, created: p.now()}
	ph.execerCtx, _ = inner.(driver.ExecerContext)
	ph.queryerCtx, _ = inner.(driver.QueryerContext)
	ph.execer, _ = inner.(driver.Execer)   //nolint:staticcheck // fidelity with database/sql's fallbacks
	ph.queryer, _ = inner.(driver.Queryer) //nolint:staticcheck
	ph.prepCtx, _ = inner.(driver.ConnPrepareContext)
	ph.beginTx, _ = inner.(driver.ConnBeginTx)
	ph.pinger, _ = inner.(driver.Pinger)
	ph.resetter, _ = inner.(driver.SessionResetter)
	ph.checker, _ = inner.(driver.NamedValueChecker)
	ph.sessionTraits = p.c.dialect.sessionTraits(inner)
	ph.view.p = ph
	return ph
}

// deferRelease queues a statement release for the session's next owner: a
// statement can be closed by database/sql while its session is in another
// handle's hands, and neither the inner connection nor the statement cache
// is safe for concurrent use.
func (ph *session) deferRelease(cs *cachedStmt) {
	ph.mu.Lock()
	ph.pending = append(ph.pending, cs)
	ph.hasPending.Store(true)
	ph.mu.Unlock()
}

// drainPending runs the deferred statement releases; the caller owns ph.
func (ph *session) drainPending() {
	if !ph.hasPending.Load() {
		return
	}
	ph.mu.Lock()
	pending := ph.pending
	ph.pending, ph.spare = ph.spare[:0], nil
	ph.hasPending.Store(false)
	ph.mu.Unlock()
	for _, cs := range pending {
		if err := ph.releaseStmt(cs); ph.pool.c.dialect.connDead(err) {
			ph.bad.Store(true)
		}
	}
	clear(pending)
	ph.spare = pending[:0]
}

// expired reports whether ph is past its lifetime at stamp now.
func (ph *session) expired(now int64) bool {
	return ph.retireAt != 0 && now >= ph.retireAt
}

// rank is the session's host's runtime load balancing rank (0: the best
// host), read without the host set's lock.
func (ph *session) rank() int32 {
	if ph.hostRef == nil {
		return 0
	}
	return ph.hostRef.rank.Load()
}

// usable reports whether a listed session may be handed out: idle, and not
// marked bad (a purge marks the sessions it cannot take, and a handle may
// park one just before the mark; the reaper closes those).
func (ph *session) usable() bool {
	return ph.idle.Load() && !ph.bad.Load()
}

// close closes the inner connection, running FnClose callbacks. terminated
// says it ends after an error rather than by choice.
func (ph *session) close(terminated bool) {
	p := ph.pool
	if terminated {
		p.terminated.Add(1)
	}
	p.closedN.Add(1)
	p.mu.Lock()
	delete(p.all, ph)
	p.unlock()
	if !terminated && !ph.keepStmtsAtClose {
		// As database/sql closes a connection's statements before the
		// connection (a driver may hold resources per statement; sqlmock
		// checks WillBeClosed). A dead connection's go with it, and so do
		// pgx's, where each close would be a round trip for nothing.
		ph.drainPending()
		ph.closeStmts()
	}
	p.c.closeSession(ph)
}
