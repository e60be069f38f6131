package hasql

// Unit tests of the per-session statement cache (stmtcache.go) on an in-process recording driver,
// where every prepare, execute and close is visible and failures can be injected: LRU order and
// eviction, keys (SQL, statement tag), sizes (pool default at checkout, tagged sessions keep
// theirs, Session.SetStmtCacheSize, 0 disables), reference counting, deferred releases, stale
// statements (MySQL 1615/1243, PostgreSQL 0A000/26000 classification) and the server's
// prepared-statement limit (MySQL 1461), and exact hit/miss/eviction figures. A randomised test
// checks the LRU against a model. The same properties against real servers are in
// stmtcache_integration_test.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// ---------------------------------------------------------------------------------------------
// scFake: fakedb's driver with recording hooks. Like go-sql-driver/mysql without
// interpolateParams, its connections do ad-hoc work without arguments themselves and answer
// ad-hoc work with arguments with driver.ErrSkip, unless oneRT is set (then they do all ad-hoc
// work in one round trip, as pgx and sqlmock do).

type scFake struct {
	oneRT    bool // ad-hoc work with arguments runs on the connection too
	maxStmts int  // >0: a prepare beyond this many open statements on a connection fails with MySQL 1461

	db *FakeDB // made by scOpen; its log holds the events, its epoch the schema

	mu    sync.Mutex
	failQ map[string]error // next execution of this SQL fails once with this error (not stale)
}

// scCaps: ad-hoc work and PrepareContext; statements and rows with nothing optional.
const scCaps = FakeExecerContext | FakeQueryerContext | FakeConnPrepareContext

// connector makes f's FakeDB and returns an inner connector on it.
func (f *scFake) connector() driver.Connector {
	d := NoopFakeDB()
	f.db = d
	d.OnPrepare = func(c *FakeConn, _ context.Context, q string) error {
		if f.maxStmts > 0 && c.OpenStmts() >= f.maxStmts {
			f.log("prepare! %s", q)
			return &mysql.MySQLError{Number: 1461, Message: "Can't create more than max_prepared_stmt_count statements"}
		}
		f.log("prepare %s", q)
		return nil
	}
	d.OnBegin = func(*FakeConn) error { f.log("begin"); return nil }
	d.OnCommit = func(*FakeConn) error { f.log("commit"); return nil }
	d.OnRollback = func(*FakeConn) error { f.log("rollback"); return nil }
	d.OnExec = func(_ *FakeConn, _ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
		if len(args) > 0 && !f.oneRT {
			return nil, driver.ErrSkip
		}
		f.log("conn-exec %s", q)
		return driver.RowsAffected(1), nil
	}
	d.OnQuery = func(_ *FakeConn, _ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
		if len(args) > 0 && !f.oneRT {
			return nil, driver.ErrSkip
		}
		f.log("conn-query %s", q)
		return scRow(), nil
	}
	d.OnStmtClose = func(s *FakeStmt) error {
		if s.Closed {
			f.log("DOUBLE CLOSE %s", s.SQL)
			return errors.New("scFake: statement closed twice")
		}
		s.Forget()
		f.log("close %s", s.SQL)
		return nil
	}
	d.OnStmtExec = func(s *FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Result, error) {
		if err := f.run(s, "exec"); err != nil {
			return nil, err
		}
		return driver.RowsAffected(1), nil
	}
	d.OnStmtQuery = func(s *FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Rows, error) {
		if err := f.run(s, "query"); err != nil {
			return nil, err
		}
		return scRow(), nil
	}
	return (&FakeDriver{Caps: scCaps, DB: d}).Connector()
}

func (f *scFake) log(format string, a ...any) { f.db.Log(fmt.Sprintf(format, a...)) }

// take returns the events since the last take.
func (f *scFake) take() []string { return f.db.TakeEvents() }

// changeSchema makes every statement prepared so far fail with err when executed.
func (f *scFake) changeSchema(err error) { f.db.ChangeSchema(err) }

// run is what a statement's execution does before answering: fail if closed, stale or told to.
func (f *scFake) run(s *FakeStmt, kind string) error {
	if s.Closed {
		f.log("USE AFTER CLOSE %s", s.SQL)
		return errors.New("scFake: statement used after close")
	}
	staleErr := f.db.Stale(s)
	f.mu.Lock()
	failErr := f.failQ[s.SQL]
	delete(f.failQ, s.SQL)
	f.mu.Unlock()
	if staleErr != nil {
		f.log("%s! %s", kind, s.SQL)
		return staleErr
	}
	if failErr != nil {
		f.log("%s! %s", kind, s.SQL)
		return failErr
	}
	f.log("%s %s", kind, s.SQL)
	return nil
}

// scRow is one row with one int64 column.
func scRow() driver.Rows {
	return &FakeSliceRows{Cols: []string{"x"}, Vals: [][]driver.Value{{int64(1)}}}
}

// ---------------------------------------------------------------------------------------------
// Helpers.

// scOpen opens a hasql *sql.DB over a new scFake with one virtual handle (so that db-level calls
// are deterministic), with the given dialect's error knowledge.
func scOpen(t *testing.T, f *scFake, dl dialect, opts ...Option) (*sql.DB, *Connector) {
	t.Helper()
	c, err := NewConnector(f.connector(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	c.dialect = dl
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db, c
}

func scConnOf(t *testing.T, db *sql.DB) (*sql.Conn, *Session) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := SessionOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	return conn, s
}

func scWantEvents(t *testing.T, f *scFake, want ...string) {
	t.Helper()
	got := f.take()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("driver calls:\n got %q\nwant %q", got, want)
	}
}

func scWantStats(t *testing.T, s *Session, c *Connector, hits, misses, evictions int64) {
	t.Helper()
	h, m, e := s.StmtCacheStats()
	if h != hits || m != misses || e != evictions {
		t.Fatalf("Session.StmtCacheStats = hits %d, misses %d, evictions %d; want %d, %d, %d", h, m, e, hits, misses, evictions)
	}
	if c != nil {
		st := c.Stats()
		if st.StmtCacheHits != hits || st.StmtCacheMisses != misses || st.StmtCacheEvictions != evictions {
			t.Fatalf("Connector.Stats = hits %d, misses %d, evictions %d; want %d, %d, %d",
				st.StmtCacheHits, st.StmtCacheMisses, st.StmtCacheEvictions, hits, misses, evictions)
		}
	}
}

// scKeys lists a session's cached statements, most recently used first, as "sql" or "sql#tag",
// after checking the list and the index agree.
func scKeys(t *testing.T, ph *session) []string {
	t.Helper()
	var keys []string
	n := 0
	var prev *cachedStmt
	for cs := ph.cache.head; cs != nil; cs = cs.next {
		if cs.prev != prev {
			t.Fatalf("LRU list broken at %q", cs.key.query)
		}
		if !cs.cached || ph.cache.m[cs.key] != cs {
			t.Fatalf("LRU entry %q is not indexed", cs.key.query)
		}
		k := cs.key.query
		if cs.key.tag != "" {
			k += "#" + cs.key.tag
		}
		keys = append(keys, k)
		prev = cs
		n++
	}
	if ph.cache.tail != prev {
		t.Fatal("LRU tail is not the last entry")
	}
	if n != len(ph.cache.m) {
		t.Fatalf("LRU list has %d entries, index %d", n, len(ph.cache.m))
	}
	return keys
}

func scExec(t *testing.T, ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := x.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func scQuery(t *testing.T, ctx context.Context, x interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string, args ...any) {
	t.Helper()
	var v int64
	if err := x.QueryRowContext(ctx, q, args...).Scan(&v); err != nil || v != 1 {
		t.Fatalf("query %q: %v (v=%d)", q, err, v)
	}
}

func scStmtExec(t *testing.T, ctx context.Context, st *sql.Stmt, args ...any) {
	t.Helper()
	if _, err := st.ExecContext(ctx, args...); err != nil {
		t.Fatalf("stmt exec: %v", err)
	}
}

func scStmtQuery(t *testing.T, ctx context.Context, st *sql.Stmt, args ...any) {
	t.Helper()
	var v int64
	if err := st.QueryRowContext(ctx, args...).Scan(&v); err != nil || v != 1 {
		t.Fatalf("stmt query: %v (v=%d)", err, v)
	}
}

// ---------------------------------------------------------------------------------------------
// Tests.

// TestStmtCacheLRUUnit: ad-hoc work with arguments runs on cached statements; the least recently
// used statement nobody holds is evicted (closed) when the cache is full; figures are exact per
// session and per connector.
func TestStmtCacheLRUUnit(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(3))
	conn, s := scConnOf(t, db)
	defer conn.Close()
	ph := s.phys()
	f.take()

	for _, q := range []string{"q1 ?", "q2 ?", "q3 ?"} {
		scExec(t, ctx, conn, q, 1)
	}
	scWantEvents(t, f, "prepare q1 ?", "exec q1 ?", "prepare q2 ?", "exec q2 ?", "prepare q3 ?", "exec q3 ?")
	scWantStats(t, s, c, 0, 3, 0)

	scQuery(t, ctx, conn, "q1 ?", 1) // a hit: no prepare, q1 becomes most recent
	scWantEvents(t, f, "query q1 ?")
	scWantStats(t, s, c, 1, 3, 0)
	if got, want := scKeys(t, ph), []string{"q1 ?", "q3 ?", "q2 ?"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}

	scExec(t, ctx, conn, "q4 ?", 1) // full: q2, the least recently used, goes
	scWantEvents(t, f, "prepare q4 ?", "close q2 ?", "exec q4 ?")
	scWantStats(t, s, c, 1, 4, 1)

	scExec(t, ctx, conn, "q2 ?", 1) // prepared again; q3 goes
	scWantEvents(t, f, "prepare q2 ?", "close q3 ?", "exec q2 ?")
	scWantStats(t, s, c, 1, 5, 2)
	if got, want := scKeys(t, ph), []string{"q2 ?", "q4 ?", "q1 ?"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}

	scQuery(t, ctx, conn, "q1 ?", 7)
	scWantEvents(t, f, "query q1 ?")
	scWantStats(t, s, c, 2, 5, 2)

	// A wrong argument count fails as database/sql's own check does, and keeps the statement.
	_, err := conn.ExecContext(ctx, "q1 ?", 1, 2)
	if err == nil || err.Error() != "sql: expected 1 arguments, got 2" {
		t.Fatalf("wrong argument count: %v", err)
	}
	scWantEvents(t, f)
	scWantStats(t, s, c, 3, 5, 2)
}

// TestStmtCacheArgCountMatchesDatabaseSQL: with the cache on, the wrong-argument-count error is
// word for word database/sql's own (which it produces when the cache is off).
func TestStmtCacheArgCountMatchesDatabaseSQL(t *testing.T) {
	ctx := context.Background()
	var msgs []string
	for _, size := range []int{0, 20} {
		db, _ := scOpen(t, &scFake{}, dialectGeneric, WithStmtCacheSize(size))
		_, err := db.ExecContext(ctx, "a ? ?", 1)
		if err == nil {
			t.Fatalf("size %d: no error", size)
		}
		msgs = append(msgs, err.Error())
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("cache off: %q; cache on: %q", msgs[0], msgs[1])
	}
}

// TestStmtCacheKeyedBySQLAndTag: a tagged and an untagged statement with the same text are
// different entries (OCI statement tags), and so are two tags.
func TestStmtCacheKeyedBySQLAndTag(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric)
	conn, s := scConnOf(t, db)
	defer conn.Close()
	f.take()
	tctx := WithStmtTag(ctx, "report")

	scQuery(t, ctx, conn, "sel ?", 1)
	scQuery(t, tctx, conn, "sel ?", 1)
	scQuery(t, WithStmtTag(ctx, "other"), conn, "sel ?", 1)
	scWantEvents(t, f, "prepare sel ?", "query sel ?", "prepare sel ?", "query sel ?", "prepare sel ?", "query sel ?")
	scWantStats(t, s, c, 0, 3, 0)
	scQuery(t, ctx, conn, "sel ?", 1)
	scQuery(t, tctx, conn, "sel ?", 1)
	scWantEvents(t, f, "query sel ?", "query sel ?")
	scWantStats(t, s, c, 2, 3, 0)

	// Explicit prepares carry their tag too, and share the entries of ad-hoc work.
	st, err := conn.PrepareContext(tctx, "sel ?")
	if err != nil {
		t.Fatal(err)
	}
	scStmtQuery(t, ctx, st, 1) // the tag is the one at prepare time
	st.Close()
	scWantEvents(t, f, "query sel ?")
	scWantStats(t, s, c, 3, 3, 0)
	if got, want := scKeys(t, s.phys()), []string{"sel ?#report", "sel ?", "sel ?#other"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}
}

// TestStmtCacheExplicitPrepares: db.Prepare, conn.PrepareContext and tx.Prepare go through the
// cache; closing the *sql.Stmt gives the statement back instead of closing it.
func TestStmtCacheExplicitPrepares(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric)
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	f.take()
	const q = "upd ?"

	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	scStmtExec(t, ctx, st, 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	scWantEvents(t, f, "prepare upd ?", "exec upd ?") // no close

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tst, err := tx.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	scStmtExec(t, ctx, tst, 2)
	if err := tx.Commit(); err != nil { // closes tst: back to the cache
		t.Fatal(err)
	}
	scWantEvents(t, f, "begin", "exec upd ?", "commit")

	conn, s := scConnOf(t, db)
	defer conn.Close()
	cst, err := conn.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	scStmtExec(t, ctx, cst, 3)
	cst.Close()
	scExec(t, ctx, conn, q, 4) // ad-hoc work shares the entry
	scWantEvents(t, f, "exec upd ?", "exec upd ?")
	scWantStats(t, s, c, 3, 1, 0)

	s.SetStmtCacheSize(0) // disables the cache and closes what it holds
	scWantEvents(t, f, "close upd ?")
	scWantStats(t, s, c, 3, 1, 1)
}

// TestStmtCacheHeldStatementNotEvicted: a statement in use is never evicted from under its user,
// however many other statements pass through the cache; it is evicted once let go.
func TestStmtCacheHeldStatementNotEvicted(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(2))
	conn, s := scConnOf(t, db)
	defer conn.Close()
	f.take()

	held, err := conn.PrepareContext(ctx, "held ?")
	if err != nil {
		t.Fatal(err)
	}
	again, err := conn.PrepareContext(ctx, "held ?") // a second user of the same statement
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		q := fmt.Sprintf("other%d ?", i)
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		scStmtExec(t, ctx, st, i)
		st.Close()
	}
	for _, ev := range f.take() {
		if strings.Contains(ev, "held") && ev != "prepare held ?" {
			t.Fatalf("the held statement was touched: %q", ev)
		}
	}
	scStmtExec(t, ctx, held, 1)
	scStmtExec(t, ctx, again, 1)
	scWantEvents(t, f, "exec held ?", "exec held ?")
	// The held statement takes one of the two places: the others passed through the other one.
	if got, want := scKeys(t, s.phys()), []string{"other5 ?", "held ?"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}
	// 1 hit (the second prepare of "held ?"), 7 misses, other0..other4 evicted.
	scWantStats(t, s, c, 1, 7, 5)

	// More statements held than the cache has places: it grows beyond its size for as long as
	// they are in use, and shrinks back as they are let go.
	h2, err := conn.PrepareContext(ctx, "h2 ?")
	if err != nil {
		t.Fatal(err)
	}
	h3, err := conn.PrepareContext(ctx, "h3 ?")
	if err != nil {
		t.Fatal(err)
	}
	scWantEvents(t, f, "prepare h2 ?", "close other5 ?", "prepare h3 ?")
	if got, want := scKeys(t, s.phys()), []string{"h3 ?", "h2 ?", "held ?"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}
	held.Close()
	scWantEvents(t, f) // still in use by again
	again.Close()      // last user: over size, least recently used: evicted now
	scWantEvents(t, f, "close held ?")
	scWantStats(t, s, c, 1, 9, 7)
	h2.Close()
	h3.Close()
	scWantEvents(t, f)
}

// TestStmtCacheSizes: the pool default applies at each checkout of an untagged session;
// Session.SetStmtCacheSize overrides it for the checkout; a tagged session keeps its size (OCI);
// 0 disables the cache and database/sql's prepare, execute, close per call is back.
func TestStmtCacheSizes(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(3))

	conn, s := scConnOf(t, db)
	ph := s.phys()
	if n := s.StmtCacheSize(); n != 3 {
		t.Fatalf("fresh session: size %d, want the pool default 3", n)
	}
	s.SetStmtCacheSize(5)
	for i := 0; i < 5; i++ {
		scExec(t, ctx, conn, fmt.Sprintf("s%d ?", i), i)
	}
	if n := len(scKeys(t, ph)); n != 5 {
		t.Fatalf("size 5: %d cached", n)
	}
	conn.Close()
	f.take()

	conn, s = scConnOf(t, db) // the same physical session, handed out again
	if s.phys() != ph {
		t.Fatal("not the same physical session")
	}
	if n := s.StmtCacheSize(); n != 3 {
		t.Fatalf("untagged session handed out again: size %d, want the pool default 3", n)
	}
	scWantEvents(t, f, "close s0 ?", "close s1 ?") // trimmed to the default
	scWantStats(t, s, c, 0, 5, 2)

	// A tagged session keeps its size across checkouts.
	s.SetStmtCacheSize(4)
	if err := Release(conn, "k=v"); err != nil {
		t.Fatal(err)
	}
	tconn, err := Acquire(WithTag(ctx, "k=v"), db)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := SessionOf(tconn)
	if ts.phys() != ph || !ts.TagFound() {
		t.Fatalf("tagged checkout: same session %v, tag found %v", ts.phys() == ph, ts.TagFound())
	}
	if n := ts.StmtCacheSize(); n != 4 {
		t.Fatalf("tagged session: size %d, want its own 4", n)
	}
	// Disabled on a tagged session: stays disabled at the next tagged checkout.
	ts.SetStmtCacheSize(0)
	scWantEvents(t, f, "close s2 ?", "close s3 ?", "close s4 ?")
	if err := Release(tconn, "k=v"); err != nil {
		t.Fatal(err)
	}
	tconn, err = Acquire(WithTag(ctx, "k=v"), db)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ = SessionOf(tconn)
	if n := ts.StmtCacheSize(); n != 0 {
		t.Fatalf("tagged session with its cache off: size %d at the next checkout, want 0", n)
	}
	// Cache off: database/sql's own prepare, execute, close for every call, no figures.
	scExec(t, ctx, tconn, "off ?", 1)
	scQuery(t, ctx, tconn, "off ?", 1)
	scWantEvents(t, f, "prepare off ?", "exec off ?", "close off ?", "prepare off ?", "query off ?", "close off ?")
	scWantStats(t, ts, c, 0, 5, 5)
	// Negative counts as 0; turning it back on caches again.
	ts.SetStmtCacheSize(-1)
	if n := ts.StmtCacheSize(); n != 0 {
		t.Fatalf("SetStmtCacheSize(-1): size %d", n)
	}
	ts.SetStmtCacheSize(1)
	scExec(t, ctx, tconn, "on ?", 1)
	scExec(t, ctx, tconn, "on ?", 1)
	scWantEvents(t, f, "prepare on ?", "exec on ?", "exec on ?")
	scWantStats(t, ts, c, 1, 6, 5)
	// Released untagged: the pool default applies again at the next checkout.
	if err := Release(tconn, ""); err != nil {
		t.Fatal(err)
	}
	conn, s = scConnOf(t, db)
	defer conn.Close()
	if n := s.StmtCacheSize(); n != 3 {
		t.Fatalf("untagged again: size %d, want 3", n)
	}
}

// TestStmtCacheOffEverywhere: hasql.stmtcache=0 (WithStmtCacheSize(0)) gives database/sql's
// behaviour unchanged: ErrSkip reaches it and it prepares, executes and closes per call, and an
// explicitly prepared statement is closed when the *sql.Stmt is.
func TestStmtCacheOffEverywhere(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(0))
	conn, s := scConnOf(t, db)
	defer conn.Close()
	f.take()
	scExec(t, ctx, conn, "x ?", 1)
	scExec(t, ctx, conn, "x ?", 1)
	st, err := conn.PrepareContext(ctx, "x ?")
	if err != nil {
		t.Fatal(err)
	}
	scStmtExec(t, ctx, st, 1)
	st.Close()
	scWantEvents(t, f, "prepare x ?", "exec x ?", "close x ?", "prepare x ?", "exec x ?", "close x ?",
		"prepare x ?", "exec x ?", "close x ?")
	scWantStats(t, s, c, 0, 0, 0)
}

// TestStmtCacheOneRoundTripDrivers: where the inner driver does ad-hoc work itself (pgx,
// sqlmock), hasql prepares nothing for it.
func TestStmtCacheOneRoundTripDrivers(t *testing.T) {
	ctx := context.Background()
	f := &scFake{oneRT: true}
	db, c := scOpen(t, f, dialectGeneric)
	conn, s := scConnOf(t, db)
	defer conn.Close()
	f.take()
	for i := 0; i < 3; i++ {
		scExec(t, ctx, conn, "e ?", i)
		scQuery(t, ctx, conn, "q ?", i)
	}
	scWantEvents(t, f, "conn-exec e ?", "conn-query q ?", "conn-exec e ?", "conn-query q ?", "conn-exec e ?", "conn-query q ?")
	scWantStats(t, s, c, 0, 0, 0)
}

// TestStmtCacheReleaseWhileUnbound: database/sql closes the driver statement of a db-level
// *sql.Stmt when its handle is back in database/sql's pool (unbound). If the statement's session
// is idle, hasql takes it for the moment and releases the statement at once — so with the cache
// off it is closed at once, as without hasql. If another handle holds the session, the release
// waits for the session's next checkout (the session is never touched concurrently).
func TestStmtCacheReleaseWhileUnbound(t *testing.T) {
	ctx := context.Background()
	t.Run("idle", func(t *testing.T) {
		for _, size := range []int{0, 1} {
			f := &scFake{}
			db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(size))
			st, err := db.PrepareContext(ctx, "d ?")
			if err != nil {
				t.Fatal(err)
			}
			scStmtExec(t, ctx, st, 1)
			f.take()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if size == 0 {
				scWantEvents(t, f, "close d ?") // closed now, not at the next checkout
				continue
			}
			scWantEvents(t, f)
			if st := c.Stats(); st.Busy != 0 || st.Idle != 1 {
				t.Fatalf("pool after the release: %+v", st)
			}
			conn, s := scConnOf(t, db)
			if cs := s.phys().cache.m[stmtKey{"d ?", ""}]; cs == nil || cs.refs != 0 {
				t.Fatal("the statement was not given back")
			}
			scExec(t, ctx, conn, "e ?", 1)
			scWantEvents(t, f, "prepare e ?", "close d ?", "exec e ?")
			conn.Close()
		}
	})
	t.Run("busy", func(t *testing.T) {
		f := &scFake{}
		db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(1))
		// A frozen clock: handle B, made after A's session, may take it (pool_handles.go).
		if err := installPool(c, c.cfg.pool, newTPClock().Now); err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(2)
		connA, s := scConnOf(t, db)
		ph := s.phys()
		st, err := connA.PrepareContext(ctx, "d ?")
		if err != nil {
			t.Fatal(err)
		}
		scStmtExec(t, ctx, st, 1)
		// Handle A lets its session go (as between two checkouts) and handle B takes it.
		if err := connA.Raw(func(dc any) error { dc.(*handle).release(); return nil }); err != nil {
			t.Fatal(err)
		}
		connB, sb := scConnOf(t, db)
		if sb.phys() != ph {
			t.Fatal("handle B did not get the session")
		}
		st.Close() // handle A's statement; its session is B's now
		ph.mu.Lock()
		pending := len(ph.pending)
		ph.mu.Unlock()
		if pending != 1 {
			t.Fatalf("%d deferred releases, want 1", pending)
		}
		if cs := ph.cache.m[stmtKey{"d ?", ""}]; cs == nil || cs.refs != 1 {
			t.Fatal("the statement should stay held until the deferred release runs")
		}
		connB.Close()
		f.take()
		connC, sc := scConnOf(t, db) // the next checkout runs it
		defer connC.Close()
		defer connA.Close()
		if sc.phys() != ph {
			t.Fatal("not the same session")
		}
		if cs := ph.cache.m[stmtKey{"d ?", ""}]; cs == nil || cs.refs != 0 {
			t.Fatal("the deferred release did not run at the next checkout")
		}
		scExec(t, ctx, connC, "e ?", 1)
		scWantEvents(t, f, "prepare e ?", "close d ?", "exec e ?")
	})
}

// TestStmtCacheClosedWithSession: when a session ends by choice (pool closed, idle timeout,
// lifetime), its cached statements are closed before its connection, as database/sql closes a
// connection's statements first; a session that died takes them with it.
func TestStmtCacheClosedWithSession(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, _ := scOpen(t, f, dialectGeneric)
	conn, _ := scConnOf(t, db)
	scExec(t, ctx, conn, "a ?", 1)
	scExec(t, ctx, conn, "b ?", 1)
	conn.Close()
	f.take()
	db.Close()
	scWantEvents(t, f, "close a ?", "close b ?")
}

// TestStmtCacheStaleRetry: a statement the server says is stale (MySQL 1615 and 1243, PostgreSQL
// 0A000 "cached plan must not change result type" and 26000) is evicted, prepared again, and the
// work runs once more, for ad-hoc work and for explicitly prepared statements. Other errors are
// not retried and keep the statement. In a PostgreSQL transaction the error already aborted the
// transaction: no retry.
func TestStmtCacheStaleRetry(t *testing.T) {
	cases := []struct {
		name string
		dl   dialect
		err  error
	}{
		{"mysql-1615", dialectMySQL, &mysql.MySQLError{Number: 1615, Message: "Prepared statement needs to be re-prepared"}},
		{"mysql-1243", dialectMySQL, &mysql.MySQLError{Number: 1243, Message: "Unknown prepared statement handler (1) given to mysqld_stmt_execute"}},
		{"pg-0A000", dialectPgx, &pgconn.PgError{Severity: "ERROR", Code: "0A000", Message: "cached plan must not change result type"}},
		{"pg-26000", dialectPgx, &pgconn.PgError{Severity: "ERROR", Code: "26000", Message: `prepared statement "stmt_1" does not exist`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := &scFake{}
			db, c := scOpen(t, f, tc.dl)
			conn, s := scConnOf(t, db)
			defer conn.Close()
			f.take()

			// Ad-hoc.
			scQuery(t, ctx, conn, "a ?", 1)
			f.changeSchema(tc.err)
			scQuery(t, ctx, conn, "a ?", 1)
			scWantEvents(t, f, "prepare a ?", "query a ?", "query! a ?", "close a ?", "prepare a ?", "query a ?")
			scWantStats(t, s, c, 1, 2, 1)

			// Explicit.
			st, err := conn.PrepareContext(ctx, "b ?")
			if err != nil {
				t.Fatal(err)
			}
			f.changeSchema(tc.err)
			scStmtExec(t, ctx, st, 1)
			scWantEvents(t, f, "prepare b ?", "exec! b ?", "close b ?", "prepare b ?", "exec b ?")
			scWantStats(t, s, c, 1, 4, 2)
			st.Close()

			// In a transaction: retried on MySQL; on PostgreSQL the error stands (the
			// transaction is aborted), and the retry happens at the next use outside it.
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.changeSchema(tc.err)
			_, err = tx.ExecContext(ctx, "b ?", 1)
			if tc.dl == dialectPgx {
				if !errors.Is(err, tc.err) {
					t.Fatalf("in a transaction: %v, want the server's error", err)
				}
				tx.Rollback()
				scWantEvents(t, f, "begin", "exec! b ?", "rollback")
				scExec(t, ctx, conn, "b ?", 1)
				scWantEvents(t, f, "exec! b ?", "close b ?", "prepare b ?", "exec b ?")
			} else {
				if err != nil {
					t.Fatalf("in a transaction: %v", err)
				}
				tx.Commit()
				scWantEvents(t, f, "begin", "exec! b ?", "close b ?", "prepare b ?", "exec b ?", "commit")
			}
			hits := int64(2)
			if tc.dl == dialectPgx {
				hits++ // the execution after the rollback
			}
			scWantStats(t, s, c, hits, 5, 3)

			// Not stale: no retry, the statement stays.
			f.mu.Lock()
			f.failQ = map[string]error{"b ?": &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}}
			f.mu.Unlock()
			if _, err := conn.ExecContext(ctx, "b ?", 1); err == nil {
				t.Fatal("the injected error was lost")
			}
			scWantEvents(t, f, "exec! b ?")
			scWantStats(t, s, c, hits+1, 5, 3)
		})
	}
}

// TestStmtCacheStaleWithOtherUser: when a stale statement is still held by another user, the
// retrying user gets a fresh statement and the other user's copy is closed when it lets go.
func TestStmtCacheStaleWithOtherUser(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectMySQL)
	conn, s := scConnOf(t, db)
	defer conn.Close()
	f.take()
	st1, _ := conn.PrepareContext(ctx, "h ?")
	st2, _ := conn.PrepareContext(ctx, "h ?")
	f.changeSchema(&mysql.MySQLError{Number: 1615})
	scStmtExec(t, ctx, st1, 1) // st2 still holds the stale one: not closed yet
	scWantEvents(t, f, "prepare h ?", "exec! h ?", "prepare h ?", "exec h ?")
	scStmtExec(t, ctx, st2, 1) // stale too: let go (closed, last user), uses the fresh cached one
	scWantEvents(t, f, "exec! h ?", "close h ?", "exec h ?")
	scWantStats(t, s, c, 2, 2, 1)
	st1.Close()
	st2.Close()
	scWantEvents(t, f)
	if got := scKeys(t, s.phys()); !reflect.DeepEqual(got, []string{"h ?"}) {
		t.Fatalf("LRU = %q", got)
	}
}

// TestStmtCacheTooManyStatements: MySQL 1461 (max_prepared_stmt_count) at prepare makes the
// session give back its cached statements and shrink its cache, and the prepare succeeds.
// Statements in use cannot be given back: with all of them held the error stands.
func TestStmtCacheTooManyStatements(t *testing.T) {
	ctx := context.Background()
	f := &scFake{maxStmts: 5}
	db, c := scOpen(t, f, dialectMySQL)
	conn, s := scConnOf(t, db)
	defer conn.Close()
	ph := s.phys()
	f.take()
	for i := 0; i < 8; i++ {
		scQuery(t, ctx, conn, fmt.Sprintf("m%d ?", i), i)
		if open := FakeConnOf(ph.inner).OpenStmts(); open > 5 {
			t.Fatalf("%d statements open, limit 5", open)
		}
	}
	if n := s.StmtCacheSize(); n != 2 {
		t.Fatalf("size after 1461: %d, want 2 (half of the 5 it held)", n)
	}
	if got, want := scKeys(t, ph), []string{"m7 ?", "m6 ?"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LRU = %q, want %q", got, want)
	}
	ev := f.take()
	if ev[10] != "prepare! m5 ?" || ev[11] != "close m0 ?" || ev[15] != "close m4 ?" || ev[16] != "prepare m5 ?" {
		t.Fatalf("driver calls: %q", ev)
	}
	// 8 misses; m0..m4 given back, then m5 evicted by m7.
	scWantStats(t, s, c, 0, 8, 6)

	// Held statements are not given back: the limit is real then.
	var held []*sql.Stmt
	for i := 0; i < 5; i++ {
		st, err := conn.PrepareContext(ctx, fmt.Sprintf("p%d ?", i))
		if err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
		held = append(held, st)
	}
	_, err := conn.PrepareContext(ctx, "p5 ?")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1461 {
		t.Fatalf("prepare beyond the limit with every statement held: %v, want MySQL 1461", err)
	}
	for _, st := range held {
		st.Close()
	}
}

// TestStmtCacheLRUModel drives one session's cache with random acquires, releases,
// invalidations and size changes and checks it against a model: the least recently used
// statement nobody holds is the one evicted, a held statement is never closed, every inner
// statement is closed exactly once, and the figures add up.
func TestStmtCacheLRUModel(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		scModelRun(t, seed)
	}
}

type scModelEntry struct {
	key  stmtKey
	refs int
}

func scModelRun(t *testing.T, seed int64) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(4))
	conn, s := scConnOf(t, db)
	defer conn.Close()
	ph := s.phys()
	inner := FakeConnOf(ph.inner)

	size := 4
	var model []*scModelEntry // cached, most recently used first
	var held []*cachedStmt    // handed out and not released yet
	var hits, misses, evictions int64
	find := func(k stmtKey) int {
		for i, e := range model {
			if e.key == k {
				return i
			}
		}
		return -1
	}
	trim := func(n int) {
		for i := len(model) - 1; i >= 0 && len(model) > n; i-- {
			if model[i].refs == 0 {
				model = append(model[:i], model[i+1:]...)
				evictions++
			}
		}
	}
	for step := 0; step < 400; step++ {
		switch op := rng.Intn(10); {
		case op < 5: // acquire
			k := stmtKey{fmt.Sprintf("q%d", rng.Intn(8)), []string{"", "t"}[rng.Intn(2)]}
			cs, err := ph.acquireStmt(ctx, k.query, k.tag)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, cs)
			if size > 0 {
				if i := find(k); i >= 0 {
					e := model[i]
					e.refs++
					model = append(model[:i], model[i+1:]...)
					model = append([]*scModelEntry{e}, model...)
					hits++
				} else {
					misses++
					model = append([]*scModelEntry{{key: k, refs: 1}}, model...)
					trim(size)
				}
			}
		case op < 8: // release
			if len(held) == 0 {
				continue
			}
			i := rng.Intn(len(held))
			cs := held[i]
			held = append(held[:i], held[i+1:]...)
			wasCached := cs.cached
			if err := ph.releaseStmt(cs); err != nil {
				t.Fatal(err)
			}
			if j := find(cs.key); wasCached && j >= 0 {
				model[j].refs--
				if model[j].refs == 0 {
					trim(size)
				}
			}
		case op < 9: // invalidate a held statement, as a stale error does
			if len(held) == 0 {
				continue
			}
			cs := held[rng.Intn(len(held))]
			if cs.cached {
				if j := find(cs.key); j >= 0 {
					model = append(model[:j], model[j+1:]...)
					evictions++
				}
			}
			ph.invalidateStmt(cs)
		default: // resize
			size = rng.Intn(6)
			ph.setStmtCacheSize(size)
			trim(size)
		}

		// The cache matches the model, in order, with the same reference counts.
		var got, want []string
		for cs := ph.cache.head; cs != nil; cs = cs.next {
			got = append(got, fmt.Sprintf("%s#%s/%d", cs.key.query, cs.key.tag, cs.refs))
		}
		for _, e := range model {
			want = append(want, fmt.Sprintf("%s#%s/%d", e.key.query, e.key.tag, e.refs))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d step %d: cache %q, model %q", seed, step, got, want)
		}
		scKeys(t, ph)
		// Never above size unless everything cached is in use.
		if len(ph.cache.m) > size {
			for cs := ph.cache.head; cs != nil; cs = cs.next {
				if cs.refs == 0 {
					t.Fatalf("seed %d step %d: %d cached with size %d, and %q is unused", seed, step, len(ph.cache.m), size, cs.key.query)
				}
			}
		}
		// Every held statement is open; open statements are exactly the cached and the held.
		live := map[driver.Stmt]bool{}
		for cs := ph.cache.head; cs != nil; cs = cs.next {
			live[cs.si] = true
		}
		for _, cs := range held {
			if cs.si.(*FakeStmt).Closed {
				t.Fatalf("seed %d step %d: a held statement was closed", seed, step)
			}
			live[cs.si] = true
		}
		if len(live) != inner.OpenStmts() {
			t.Fatalf("seed %d step %d: %d statements open on the connection, %d cached or held", seed, step, inner.OpenStmts(), len(live))
		}
		h, m, e := s.StmtCacheStats()
		if h != hits || m != misses || e != evictions {
			t.Fatalf("seed %d step %d: stats %d/%d/%d, model %d/%d/%d", seed, step, h, m, e, hits, misses, evictions)
		}
	}
	for _, cs := range held {
		ph.releaseStmt(cs)
	}
	for _, ev := range f.take() {
		if strings.HasPrefix(ev, "DOUBLE") || strings.HasPrefix(ev, "USE") {
			t.Fatalf("seed %d: %s", seed, ev)
		}
	}
	st := c.Stats()
	h, m, e := s.StmtCacheStats()
	if st.StmtCacheHits != h || st.StmtCacheMisses != m || st.StmtCacheEvictions != e {
		t.Fatalf("seed %d: connector stats %+v, session %d/%d/%d", seed, st, h, m, e)
	}
}

// TestStmtCachePoolSizeAtRunTime: Connector.SetStmtCacheSize changes the
// pool's statement cache size while it runs (OCI_ATTR_STMTCACHESIZE on the
// pool): an untagged session takes it at its next checkout and trims to it;
// a tagged session keeps its own size.
func TestStmtCachePoolSizeAtRunTime(t *testing.T) {
	ctx := context.Background()
	f := &scFake{}
	db, c := scOpen(t, f, dialectGeneric, WithStmtCacheSize(4))
	conn, s := scConnOf(t, db)
	for i := 0; i < 4; i++ {
		scExec(t, ctx, conn, fmt.Sprintf("r%d ?", i), i)
	}
	ph := s.phys()
	conn.Close()
	f.take()

	c.SetStmtCacheSize(2)
	if n := c.StmtCacheSize(); n != 2 {
		t.Fatalf("StmtCacheSize() = %d after SetStmtCacheSize(2)", n)
	}
	if n := len(scKeys(t, ph)); n != 4 {
		t.Fatalf("an idle session was trimmed before its checkout: %d cached", n)
	}
	conn, s = scConnOf(t, db)
	if s.phys() != ph {
		t.Fatal("not the same physical session")
	}
	if n := s.StmtCacheSize(); n != 2 {
		t.Fatalf("untagged session at its next checkout: size %d, want the new pool size 2", n)
	}
	scWantEvents(t, f, "close r0 ?", "close r1 ?")

	// A tagged session keeps its own size when the pool's changes.
	s.SetStmtCacheSize(3)
	if err := Release(conn, "k=v"); err != nil {
		t.Fatal(err)
	}
	c.SetStmtCacheSize(1)
	tconn, err := Acquire(WithTag(ctx, "k=v"), db)
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close()
	ts, _ := SessionOf(tconn)
	if n := ts.StmtCacheSize(); n != 3 {
		t.Fatalf("tagged session: size %d, want its own 3", n)
	}
	c.SetStmtCacheSize(-5)
	if n := c.StmtCacheSize(); n != 0 {
		t.Fatalf("SetStmtCacheSize(-5): %d, want 0", n)
	}
}
