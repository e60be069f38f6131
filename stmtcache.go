package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// Statement caching (OCIStmtPrepare2 / OCIStmtRelease): each physical
// session keeps an LRU of prepared inner statements keyed by SQL text and
// statement tag. Closing a *sql.Stmt gives its statement back to the cache
// instead of closing it on the server; eviction closes it. A statement in use
// is never evicted from under its user.
//
// The cache belongs to its session and is only touched by the session's
// owner; a release from elsewhere goes through the session's pending queue.

type stmtKey struct{ query, tag string }

// cachedStmt is one prepared inner statement and its place in the LRU.
type cachedStmt struct {
	key        stmtKey
	si         driver.Stmt
	refs       int  // users holding it now
	cached     bool // in the cache's map and list; false once evicted or invalidated
	prev, next *cachedStmt
}

// stmtCache is an LRU list (head = most recently used) plus an index.
type stmtCache struct {
	m          map[stmtKey]*cachedStmt
	texts      map[string]int // cached entries per SQL text (tagged or not)
	head, tail *cachedStmt

	hits, misses, evictions int64 // this session's figures
}

// SetStmtCacheSize sets the statement cache size of the connector's pool at
// run time (OCI_ATTR_STMTCACHESIZE on a session pool), as hasql.stmtcache
// and WithStmtCacheSize do when it opens: each untagged session takes the new
// size at its next checkout, trimming least recently used statements nobody
// holds; a tagged session keeps its own size (Session.SetStmtCacheSize), as in
// OCI. 0 turns caching off for the sessions that take it. A negative n is
// taken as 0.
func (c *Connector) SetStmtCacheSize(n int) {
	c.stmtCacheSize.Store(int64(max(n, 0)))
}

// StmtCacheSize returns the pool's statement cache size (see
// SetStmtCacheSize).
func (c *Connector) StmtCacheSize() int { return int(c.stmtCacheSize.Load()) }

type stmtTagKey struct{}

// WithStmtTag tags the statements prepared with ctx: a tagged and an
// untagged statement with the same SQL text are different cache entries
// (OCI's statement tags).
func WithStmtTag(ctx context.Context, tag string) context.Context {
	return context.WithValue(ctx, stmtTagKey{}, tag)
}

func stmtTagFrom(ctx context.Context) string {
	t, _ := ctx.Value(stmtTagKey{}).(string)
	return t
}

// acquireStmt returns a prepared statement for query, from the session's
// cache or newly prepared (and then cached). The caller must hand it back
// with releaseStmt. With the cache disabled it just prepares.
func (ph *session) acquireStmt(ctx context.Context, query, tag string) (*cachedStmt, error) {
	if ph.stmtCacheSize > 0 {
		if ph.cache.m == nil {
			ph.cache.m = make(map[stmtKey]*cachedStmt)
		}
		if cs := ph.cache.m[stmtKey{query, tag}]; cs != nil {
			cs.refs++
			ph.cache.moveToFront(cs)
			ph.cache.hits++
			ph.pool.c.stmtHits.Add(1)
			return cs, nil
		}
		ph.cache.misses++
		ph.pool.c.stmtMisses.Add(1)
	}
	si, err := ph.prepare(ctx, query)
	if err != nil {
		if ph.pool.c.dialect.tooManyStmts(err) && ph.cache.m != nil && len(ph.cache.m) > 0 {
			// The server's prepared-statement limit: give back what this
			// session holds, shrink its cache, and try once more.
			ph.stmtCacheSize = max(len(ph.cache.m)/2, 1)
			ph.trimStmts(0)
			si, err = ph.prepare(ctx, query)
		}
		if err != nil {
			return nil, err
		}
	}
	cs := &cachedStmt{key: stmtKey{query, tag}, si: si, refs: 1}
	if ph.stmtCacheSize > 0 {
		cs.cached = true
		ph.cache.m[cs.key] = cs
		if ph.cache.texts == nil {
			ph.cache.texts = make(map[string]int)
		}
		ph.cache.texts[query]++
		ph.cache.pushFront(cs)
		ph.trimStmts(ph.stmtCacheSize)
	}
	return cs, nil
}

// releaseStmt hands a statement back; the caller owns ph. An uncached or
// evicted statement is closed when its last user lets go.
func (ph *session) releaseStmt(cs *cachedStmt) error {
	cs.refs--
	if cs.refs > 0 {
		return nil
	}
	if !cs.cached {
		return cs.si.Close()
	}
	ph.trimStmts(ph.stmtCacheSize)
	return nil
}

// invalidateStmt drops a statement the server says is stale, so that the
// next acquire prepares it afresh; it is closed when its users let go.
func (ph *session) invalidateStmt(cs *cachedStmt) {
	if cs.cached {
		ph.evict(cs, false)
	}
}

// evict takes cs out of the cache, counting the eviction, and closes it
// when asked (nobody holds it); the caller owns ph.
func (ph *session) evict(cs *cachedStmt, close bool) {
	ph.cache.unlink(cs)
	ph.cache.evictions++
	ph.pool.c.stmtEvictions.Add(1)
	if !close {
		return
	}
	if err := cs.si.Close(); ph.pool.c.dialect.connDead(err) {
		ph.bad.Store(true)
	}
}

// dropIdle evicts and closes the cached statement for key if nobody holds
// it, so that the next acquire prepares it afresh; the caller owns ph.
func (ph *session) dropIdle(key stmtKey) {
	if cs := ph.cache.m[key]; cs != nil && cs.refs == 0 {
		ph.evict(cs, true)
	}
}

// dropShadowing is called before ad-hoc work on query; the caller owns ph. pgx's
// stdlib connection names a prepared statement by its SQL text and runs
// ad-hoc work on the statement of that name when there is one, in place of
// its own statement cache (which copes with schema changes). Without hasql
// such a statement exists only while a *sql.Stmt holds it; a statement the
// cache keeps after its *sql.Stmt closed must not stand in for it, or a
// schema change would fail the ad-hoc query (SQLSTATE 0A000) every time.
//
// It costs a bool test for other drivers and one map lookup for pgx.
func (ph *session) dropShadowing(query string) {
	if !ph.namesBySQL || ph.cache.texts[query] == 0 {
		return
	}
	for cs := ph.cache.head; cs != nil; {
		next := cs.next
		if cs.key.query == query {
			ph.dropIdle(cs.key)
		}
		cs = next
	}
}

// trimStmts evicts least recently used statements nobody holds until at
// most n remain (statements in use may keep it above n for a while).
func (ph *session) trimStmts(n int) {
	for cs := ph.cache.tail; cs != nil && len(ph.cache.m) > n; {
		prev := cs.prev
		if cs.refs == 0 {
			ph.evict(cs, true)
		}
		cs = prev
	}
}

// setStmtCacheSize changes the session's cache size, closing what no longer
// fits; the caller owns ph.
func (ph *session) setStmtCacheSize(n int) {
	ph.stmtCacheSize = n
	ph.trimStmts(n)
}

func (c *stmtCache) pushFront(cs *cachedStmt) {
	cs.prev, cs.next = nil, c.head
	if c.head != nil {
		c.head.prev = cs
	}
	c.head = cs
	if c.tail == nil {
		c.tail = cs
	}
}

func (c *stmtCache) moveToFront(cs *cachedStmt) {
	if c.head == cs {
		return
	}
	c.remove(cs)
	c.pushFront(cs)
}

func (c *stmtCache) remove(cs *cachedStmt) {
	if cs.prev != nil {
		cs.prev.next = cs.next
	} else {
		c.head = cs.next
	}
	if cs.next != nil {
		cs.next.prev = cs.prev
	} else {
		c.tail = cs.prev
	}
	cs.prev, cs.next = nil, nil
}

// unlink takes cs out of the cache for good.
func (c *stmtCache) unlink(cs *cachedStmt) {
	c.remove(cs)
	delete(c.m, cs.key)
	if c.texts[cs.key.query]--; c.texts[cs.key.query] == 0 {
		delete(c.texts, cs.key.query)
	}
	cs.cached = false
}

// closeStmts closes every cached statement nobody holds; used when a session
// ends by choice.
func (ph *session) closeStmts() {
	ph.trimStmts(0)
}

// errArgCount is database/sql's own message for a wrong argument count,
// returned when hasql runs ad-hoc work on a cached statement itself.
func errArgCount(want, got int) error {
	return fmt.Errorf("sql: expected %d arguments, got %d", want, got)
}
