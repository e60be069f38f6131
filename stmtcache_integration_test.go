package hasql_test

// The statement cache against real servers (issue "Statement cache"):
//
//   - MariaDB: ad-hoc work with arguments is one round trip from its second execution on
//     (Com_stmt_prepare/execute/close on the session), database/sql's prepare/execute/close per
//     call is back with hasql.stmtcache=0; explicit prepares (db, conn, tx) share the cache and
//     closing a *sql.Stmt closes nothing on the server; a statement in use survives eviction;
//     statement tags; ALTER TABLE (MariaDB re-prepares by itself, so 1615 does not reach the
//     client; neither did it with table_definition_cache=400 and a statement over 450 tables:
//     1615 is covered with an injected error in stmtcache_test.go); 1243 provoked through a
//     proxy that corrupts one statement id; 1461 (max_prepared_stmt_count) on a throwaway
//     server; a killed connection.
//   - PostgreSQL (pgx): hasql adds no prepared statement to ad-hoc work in any
//     default_query_exec_mode; explicit prepares stay prepared after Close; 0A000 "cached plan
//     must not change result type" and 26000 "prepared statement does not exist" are healed
//     outside transactions, with raw pgx's behaviour alongside; tags; a terminated backend.
//   - go-sqlmock: how cached statements look in expectations (README material).
//
// Figures (Session.StmtCacheStats, Connector.Stats) are checked exactly throughout.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hasqlgo/hasql"
)

// ---------------------------------------------------------------------------------------------
// Helpers.

func sciOpen(t testing.TB, driverName, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", driverName, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sciConn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func sciSession(t testing.TB, conn *sql.Conn) *hasql.Session {
	t.Helper()
	s, err := hasql.SessionOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sciConnector(t testing.TB, db *sql.DB) *hasql.Connector {
	t.Helper()
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatal("not a hasql *sql.DB")
	}
	return c
}

type sciExecer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}

type sciQueryer interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func sciExec(t testing.TB, x sciExecer, q string, args ...any) {
	t.Helper()
	if _, err := x.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func sciInt(t testing.TB, x sciQueryer, q string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := x.QueryRowContext(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return v
}

func sciStmtInt(t testing.TB, st *sql.Stmt, args ...any) int64 {
	t.Helper()
	var v int64
	if err := st.QueryRowContext(context.Background(), args...).Scan(&v); err != nil {
		t.Fatalf("stmt query: %v", err)
	}
	return v
}

func sciPrepare(t testing.TB, x interface {
	PrepareContext(context.Context, string) (*sql.Stmt, error)
}, q string) *sql.Stmt {
	t.Helper()
	st, err := x.PrepareContext(context.Background(), q)
	if err != nil {
		t.Fatalf("prepare %q: %v", q, err)
	}
	return st
}

// sciWantStats checks a session's figures and, when c is not nil, the connector's totals.
func sciWantStats(t testing.TB, s *hasql.Session, c *hasql.Connector, hits, misses, evictions int64) {
	t.Helper()
	if s != nil {
		h, m, e := s.StmtCacheStats()
		if h != hits || m != misses || e != evictions {
			t.Fatalf("Session.StmtCacheStats: hits %d, misses %d, evictions %d; want %d, %d, %d", h, m, e, hits, misses, evictions)
		}
	}
	if c != nil {
		st := c.Stats()
		if st.StmtCacheHits != hits || st.StmtCacheMisses != misses || st.StmtCacheEvictions != evictions {
			t.Fatalf("Connector.Stats: hits %d, misses %d, evictions %d; want %d, %d, %d",
				st.StmtCacheHits, st.StmtCacheMisses, st.StmtCacheEvictions, hits, misses, evictions)
		}
	}
}

// sciCom is MariaDB's count of binary-protocol commands on one session (or the server).
type sciCom struct{ Prepare, Execute, Close int64 }

func (a sciCom) sub(b sciCom) sciCom {
	return sciCom{a.Prepare - b.Prepare, a.Execute - b.Execute, a.Close - b.Close}
}

// sciComStmt reads Com_stmt_prepare/execute/close with SHOW ... STATUS, a text-protocol query
// that changes none of them. scope is SESSION (run it on the session counted) or GLOBAL.
func sciComStmt(t testing.TB, q sciQueryer, scope string) sciCom {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), "SHOW "+scope+" STATUS LIKE 'Com_stmt_%'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var c sciCom
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		switch strings.ToLower(name) {
		case "com_stmt_prepare":
			c.Prepare = v
		case "com_stmt_execute":
			c.Execute = v
		case "com_stmt_close":
			c.Close = v
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func sciWantCom(t testing.TB, what string, got, want sciCom) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: Com_stmt_* %+v, want %+v", what, got, want)
	}
}

// sciMariaKV creates kv(id, v) with rows (i, 10*i) for i = 1..10 and returns the DSN.
func sciMariaKV(t testing.TB, dsn string) string {
	t.Helper()
	db := sciOpen(t, "mysql", dsn)
	sciExec(t, db, "CREATE TABLE kv (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20) NULL, amount DECIMAL(10,2) NULL)")
	for i := 1; i <= 10; i++ {
		sciExec(t, db, "INSERT INTO kv (id, v, note, amount) VALUES (?, ?, ?, ?)", i, 10*i, fmt.Sprintf("n%d", i), float64(i)+0.25)
	}
	db.Close()
	return dsn
}

// sciPGKV does the same on PostgreSQL.
func sciPGKV(t testing.TB, dsn string) string {
	t.Helper()
	db := sciOpen(t, "pgx", dsn)
	sciExec(t, db, "CREATE TABLE kv (id int PRIMARY KEY, v int NOT NULL)")
	sciExec(t, db, "INSERT INTO kv SELECT i, 10 * i FROM generate_series(1, 10) i")
	db.Close()
	return dsn
}

// sciPGStmts lists the session's prepared statements, name → text. The listing runs in pgx's
// simple protocol, so that it neither adds a statement nor depends on pgx's statement cache.
func sciPGStmts(t testing.TB, q sciQueryer) map[string]string {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), "SELECT name, statement FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "pg_prepared_statements") {
			m[name] = text
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// sciPGExplicit is sciPGStmts without pgx's own statement cache ("stmtcache_*"): the statements
// prepared by pgx's stdlib Prepare ("stmt_*"), which is what hasql's cache holds.
func sciPGExplicit(t testing.TB, q sciQueryer) map[string]string {
	t.Helper()
	m := sciPGStmts(t, q)
	for name := range m {
		if !strings.HasPrefix(name, "stmt_") {
			delete(m, name)
		}
	}
	return m
}

func sciTexts(m map[string]string) []string {
	var out []string
	for _, s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func sciPGCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func sciMyNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// ---------------------------------------------------------------------------------------------
// MariaDB.

// TestStmtCacheMariaAdhocRoundTrips: go-sql-driver/mysql without interpolateParams answers
// ad-hoc work with arguments with driver.ErrSkip, and database/sql then prepares, executes and
// closes a statement: three packets, two round trips, per call. hasql runs that work on a
// statement from the session's cache instead: the first call prepares, every later one is one
// COM_STMT_EXECUTE. hasql.stmtcache=0 gives database/sql's behaviour back; with
// interpolateParams=true the driver does the work itself and hasql caches nothing.
func TestStmtCacheMariaAdhocRoundTrips(t *testing.T) {
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	const (
		sel = "SELECT v FROM kv WHERE id = ?"
		upd = "UPDATE kv SET v = v + ? - ? WHERE id = ?"
	)
	cases := []struct {
		name, driver, dsn     string
		first, again          sciCom // Com_stmt_* for 5 queries + 5 updates, first round and second
		hits, misses, evicted int64  // hasql's figures after both rounds
	}{
		{"hasql", "hasql", "mysql:" + dsn, sciCom{2, 10, 0}, sciCom{0, 10, 0}, 18, 2, 0},
		{"hasql-stmtcache=0", "hasql", "mysql:" + dsn + "?hasql.stmtcache=0", sciCom{10, 10, 10}, sciCom{10, 10, 10}, 0, 0, 0},
		{"raw", "mysql", dsn, sciCom{10, 10, 10}, sciCom{10, 10, 10}, -1, -1, -1},
		{"raw-interpolateParams", "mysql", dsn + "?interpolateParams=true", sciCom{}, sciCom{}, -1, -1, -1},
		{"hasql-interpolateParams", "hasql", "mysql:" + dsn + "?interpolateParams=true", sciCom{}, sciCom{}, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := sciOpen(t, tc.driver, tc.dsn)
			conn := sciConn(t, db)
			defer conn.Close()
			for round, want := range []sciCom{tc.first, tc.again} {
				before := sciComStmt(t, conn, "SESSION")
				for i := 1; i <= 5; i++ {
					if v := sciInt(t, conn, sel, i); v != int64(10*i) {
						t.Fatalf("id %d: v = %d", i, v)
					}
					res, err := conn.ExecContext(ctx, upd, 7, 7, i)
					if err != nil {
						t.Fatal(err)
					}
					if n, err := res.RowsAffected(); err != nil || n != 0 { // v unchanged: 0 rows changed
						t.Fatalf("RowsAffected = %d, %v", n, err)
					}
				}
				sciWantCom(t, fmt.Sprintf("round %d", round+1), sciComStmt(t, conn, "SESSION").sub(before), want)
			}
			if tc.hits >= 0 {
				sciWantStats(t, sciSession(t, conn), sciConnector(t, db), tc.hits, tc.misses, tc.evicted)
			}
		})
	}
}

// TestStmtCacheMariaAdhocResultsUnchanged: rows of ad-hoc work run on a cached statement are the
// rows database/sql would have produced (binary protocol in both), column types included.
func TestStmtCacheMariaAdhocResultsUnchanged(t *testing.T) {
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	const q = "SELECT id, v, note, amount, CONCAT(note, ?) AS s, NULL AS n FROM kv WHERE id >= ? ORDER BY id LIMIT 3"
	type colType struct {
		Name, DB      string
		Scan          string
		Nullable, NOK bool
		Length        int64
		LOK           bool
		Prec, Scale   int64
		DOK           bool
	}
	read := func(db *sql.DB) ([]colType, [][]any) {
		conn := sciConn(t, db)
		defer conn.Close()
		var cts []colType
		var all [][]any
		for round := 0; round < 2; round++ { // the second from the cache
			rows, err := conn.QueryContext(context.Background(), q, "!", 2)
			if err != nil {
				t.Fatal(err)
			}
			types, err := rows.ColumnTypes()
			if err != nil {
				t.Fatal(err)
			}
			cts = cts[:0]
			for _, ct := range types {
				c := colType{Name: ct.Name(), DB: ct.DatabaseTypeName(), Scan: fmt.Sprint(ct.ScanType())}
				c.Nullable, c.NOK = ct.Nullable()
				c.Length, c.LOK = ct.Length()
				c.Prec, c.Scale, c.DOK = ct.DecimalSize()
				cts = append(cts, c)
			}
			all = all[:0]
			for rows.Next() {
				vals := make([]any, len(types))
				ptrs := make([]any, len(types))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				all = append(all, vals)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
		}
		return cts, all
	}
	rawTypes, rawRows := read(sciOpen(t, "mysql", dsn))
	hdb := sciOpen(t, "hasql", "mysql:"+dsn)
	hTypes, hRows := read(hdb)
	if !reflect.DeepEqual(rawTypes, hTypes) {
		t.Fatalf("column types differ:\nraw   %+v\nhasql %+v", rawTypes, hTypes)
	}
	if !reflect.DeepEqual(rawRows, hRows) {
		t.Fatalf("rows differ:\nraw   %#v\nhasql %#v", rawRows, hRows)
	}
	if st := sciConnector(t, hdb).Stats(); st.StmtCacheHits != 1 || st.StmtCacheMisses != 1 {
		t.Fatalf("hasql did not use its cache: %+v", st)
	}
}

// TestStmtCacheMariaExplicitPrepare: db.Prepare, tx.Prepare and conn.PrepareContext of the same
// SQL on one session prepare it once; closing the *sql.Stmt closes nothing on the server; setting
// the session's cache size to 0 closes it. Raw go-sql-driver/mysql alongside.
func TestStmtCacheMariaExplicitPrepare(t *testing.T) {
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	const q = "SELECT v FROM kv WHERE id = ?"
	run := func(db *sql.DB) sciCom {
		ctx := context.Background()
		db.SetMaxOpenConns(1) // one session, so that SESSION status counts everything
		before := sciComStmt(t, db, "SESSION")

		st := sciPrepare(t, db, q)
		if v := sciStmtInt(t, st, 1); v != 10 {
			t.Fatalf("v = %d", v)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := sciStmtInt(t, sciPrepare(t, tx, q), 2); v != 20 {
			t.Fatalf("v = %d", v)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}

		conn := sciConn(t, db)
		cst := sciPrepare(t, conn, q)
		if v := sciStmtInt(t, cst, 3); v != 30 {
			t.Fatalf("v = %d", v)
		}
		cst.Close()
		conn.Close()
		return sciComStmt(t, db, "SESSION").sub(before)
	}
	sciWantCom(t, "raw", run(sciOpen(t, "mysql", dsn)), sciCom{3, 3, 3})

	hdb := sciOpen(t, "hasql", "mysql:"+dsn)
	sciWantCom(t, "hasql", run(hdb), sciCom{1, 3, 0})
	c := sciConnector(t, hdb)
	conn := sciConn(t, hdb)
	s := sciSession(t, conn)
	sciWantStats(t, s, c, 2, 1, 0)
	before := sciComStmt(t, conn, "SESSION")
	s.SetStmtCacheSize(0)
	sciWantCom(t, "SetStmtCacheSize(0)", sciComStmt(t, conn, "SESSION").sub(before), sciCom{0, 0, 1})
	sciWantStats(t, s, c, 2, 1, 1)
	conn.Close()
	// The pool default applies again at the next checkout of the (untagged) session.
	conn = sciConn(t, hdb)
	defer conn.Close()
	if n := sciSession(t, conn).StmtCacheSize(); n != 20 {
		t.Fatalf("StmtCacheSize at the next checkout = %d, want the default 20", n)
	}
}

// TestStmtCacheMariaHeldStatement: a *sql.Stmt held on a pinned connection keeps working while
// more statements than the cache holds pass through it; the others are closed on the server as
// they are evicted, the held one never is.
func TestStmtCacheMariaHeldStatement(t *testing.T) {
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	db := sciOpen(t, "hasql", "mysql:"+dsn+"?hasql.stmtcache=3")
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	if n := s.StmtCacheSize(); n != 3 {
		t.Fatalf("StmtCacheSize = %d, want 3 (hasql.stmtcache=3)", n)
	}
	before := sciComStmt(t, conn, "SESSION")
	held := sciPrepare(t, conn, "SELECT v FROM kv WHERE id = ?")
	defer held.Close()
	for i := 1; i <= 8; i++ {
		st := sciPrepare(t, conn, fmt.Sprintf("SELECT v + %d FROM kv WHERE id = ?", i))
		if v := sciStmtInt(t, st, 1); v != int64(10+i) {
			t.Fatalf("v = %d", v)
		}
		st.Close()
		if v := sciStmtInt(t, held, i); v != int64(10*i) {
			t.Fatalf("held statement: v = %d", v)
		}
	}
	// 9 prepared; the held one takes a place, so each new statement from the fourth on evicts
	// the one before last: 6 closed, none of them the held one (which still runs above).
	sciWantCom(t, "eviction", sciComStmt(t, conn, "SESSION").sub(before), sciCom{9, 16, 6})
	sciWantStats(t, s, sciConnector(t, db), 0, 9, 6)
}

// TestStmtCacheMariaTags: the same SQL untagged and tagged (hasql.WithStmtTag) is two cache
// entries and two server statements; each is reused.
func TestStmtCacheMariaTags(t *testing.T) {
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	db := sciOpen(t, "hasql", "mysql:"+dsn)
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	ctx := context.Background()
	tagged := hasql.WithStmtTag(ctx, "reporting")
	const q = "SELECT v FROM kv WHERE id = ?"
	before := sciComStmt(t, conn, "SESSION")
	for i := 1; i <= 3; i++ {
		var a, b int64
		if err := conn.QueryRowContext(ctx, q, i).Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(tagged, q, i).Scan(&b); err != nil {
			t.Fatal(err)
		}
		if a != b || a != int64(10*i) {
			t.Fatalf("%d, %d", a, b)
		}
	}
	st := sciPrepare(t, conn, q) // explicit, untagged: the untagged entry
	sciStmtInt(t, st, 1)
	st.Close()
	st, err := conn.PrepareContext(tagged, q) // explicit, tagged: the tagged entry
	if err != nil {
		t.Fatal(err)
	}
	sciStmtInt(t, st, 1)
	st.Close()
	sciWantCom(t, "tags", sciComStmt(t, conn, "SESSION").sub(before), sciCom{2, 8, 0})
	sciWantStats(t, s, sciConnector(t, db), 6, 2, 0)
}

// TestStmtCacheMariaAlterTable: MariaDB re-prepares a statement whose table changed by itself
// (up to three times within one execution; only if that keeps failing does the client see 1615,
// "Prepared statement needs to be re-prepared"). So after ALTER TABLE a cached statement just
// works, with the new columns, and hasql prepares nothing again: the server's Com_stmt_* counts
// (which include its own re-prepare) are those of raw go-sql-driver/mysql running the same
// statement.
func TestStmtCacheMariaAlterTable(t *testing.T) {
	ctx := context.Background()
	const q = "SELECT * FROM kv WHERE id = ?"
	run := func(driverName, dsn, column string) (sciCom, *sql.Conn) {
		admin := sciOpen(t, "mysql", dsn)
		odsn := dsn
		if driverName == "hasql" {
			odsn = "mysql:" + dsn
		}
		db := sciOpen(t, driverName, odsn)
		conn := sciConn(t, db)
		st := sciPrepare(t, conn, q)
		t.Cleanup(func() { st.Close() })
		ncols := func() int {
			rows, err := st.QueryContext(ctx, 1)
			if err != nil {
				t.Fatalf("%s: %v", driverName, err)
			}
			defer rows.Close()
			c, _ := rows.Columns()
			return len(c)
		}
		n := ncols()
		before := sciComStmt(t, conn, "SESSION")
		sciExec(t, admin, "ALTER TABLE kv ADD COLUMN "+column+" INT NOT NULL DEFAULT 7")
		if got := ncols(); got != n+1 {
			t.Fatalf("%s: %d columns after ALTER TABLE, want %d", driverName, got, n+1)
		}
		return sciComStmt(t, conn, "SESSION").sub(before), conn
	}
	dsn := sciMariaKV(t, sharedMaria(t).FreshDB(t))
	raw, rconn := run("mysql", dsn, "r1")
	rconn.Close()
	hq, hconn := run("hasql", dsn, "h1")
	defer hconn.Close()
	if raw != hq {
		t.Fatalf("Com_stmt_* over ALTER TABLE and one execution: raw %+v, hasql %+v", raw, hq)
	}
	t.Logf("MariaDB re-prepares by itself: Com_stmt_* over ALTER TABLE and one execution %+v (raw and hasql alike)", hq)
	// Prepared once, never evicted or prepared again by hasql.
	sciWantStats(t, sciSession(t, hconn), nil, 0, 1, 0)
}

// sciStmtIDProxy forwards TCP to a MariaDB server and, when armed, replaces the statement id of
// the next COM_STMT_EXECUTE with one the server never issued: the server then answers 1243
// ("Unknown prepared statement handler"), exactly as for a statement it no longer has.
type sciStmtIDProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	hits   atomic.Int32
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func sciStartStmtIDProxy(t testing.TB, target string) *sciStmtIDProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sciStmtIDProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *sciStmtIDProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
		go func() { defer p.wg.Done(); p.forward(c, s); s.Close() }()
	}
}

// forward copies client packets (3-byte length, sequence number, payload) to the server.
func (p *sciStmtIDProxy) forward(c, s net.Conn) {
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		payload := make([]byte, n)
		if _, err := io.ReadFull(c, payload); err != nil {
			return
		}
		const comStmtExecute = 0x17
		if hdr[3] == 0 && n >= 5 && payload[0] == comStmtExecute && p.armed.CompareAndSwap(true, false) {
			binary.LittleEndian.PutUint32(payload[1:5], 0x7ffffff0)
			p.hits.Add(1)
		}
		if _, err := s.Write(append(hdr, payload...)); err != nil {
			return
		}
	}
}

func (p *sciStmtIDProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestStmtCacheMaria1243: a cached statement the server does not know (1243) is evicted,
// prepared again and run once more; the error proves the first attempt did not run. Raw
// go-sql-driver/mysql returns the error. The server's statement is made unknown by a proxy that
// rewrites the statement id of one COM_STMT_EXECUTE.
func TestStmtCacheMaria1243(t *testing.T) {
	srv := sharedMaria(t)
	dsn := sciMariaKV(t, srv.FreshDB(t))
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := sciStartStmtIDProxy(t, cfg.Addr)
	cfg.Addr = p.ln.Addr().String()
	pdsn := cfg.FormatDSN()
	ctx := context.Background()
	const q = "UPDATE kv SET v = v + ? WHERE id = 1"

	// Raw: an explicitly prepared statement fails with 1243.
	raw := sciOpen(t, "mysql", pdsn)
	rconn := sciConn(t, raw)
	rst := sciPrepare(t, rconn, q)
	p.armed.Store(true)
	_, err = rst.ExecContext(ctx, 1)
	if sciMyNumber(err) != 1243 || p.hits.Load() != 1 {
		t.Fatalf("raw: %v (proxy rewrote %d), want MySQL 1243", err, p.hits.Load())
	}
	t.Logf("raw go-sql-driver/mysql: %v", err)
	rst.Close()
	rconn.Close()

	db := sciOpen(t, "hasql", "mysql:"+pdsn)
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	c := sciConnector(t, db)
	before := sciInt(t, conn, "SELECT v FROM kv WHERE id = 1")

	// Explicit.
	st := sciPrepare(t, conn, q)
	com := sciComStmt(t, conn, "SESSION")
	p.armed.Store(true)
	if _, err := st.ExecContext(ctx, 1); err != nil {
		t.Fatalf("hasql, explicit statement: %v", err)
	}
	if p.hits.Load() != 2 {
		t.Fatal("the proxy did not rewrite the execution")
	}
	// The close of the statement the server was told it did not know, the prepare and the
	// execution that ran (the rejected execution is not counted by the server).
	sciWantCom(t, "explicit", sciComStmt(t, conn, "SESSION").sub(com), sciCom{1, 1, 1})
	sciWantStats(t, s, c, 0, 2, 1)
	st.Close()

	// Ad-hoc.
	com = sciComStmt(t, conn, "SESSION")
	p.armed.Store(true)
	if _, err := conn.ExecContext(ctx, q, 1); err != nil {
		t.Fatalf("hasql, ad-hoc: %v", err)
	}
	sciWantCom(t, "ad-hoc", sciComStmt(t, conn, "SESSION").sub(com), sciCom{1, 1, 1})
	sciWantStats(t, s, c, 1, 3, 2)
	if after := sciInt(t, conn, "SELECT v FROM kv WHERE id = 1"); after != before+2 {
		t.Fatalf("v went from %d to %d: each update must have run exactly once", before, after)
	}
}

// TestStmtCacheMaria1461: with max_prepared_stmt_count=5 on the server, a session preparing more
// distinct statements than that gives back what it caches and shrinks its cache instead of
// failing; raw database/sql only meets the limit with statements held open, and so does hasql.
func TestStmtCacheMaria1461(t *testing.T) {
	srv := startMariaDB(t)
	if err := srv.Exec("SET GLOBAL max_prepared_stmt_count = 5"); err != nil {
		t.Fatal(err)
	}
	dsn := sciMariaKV(t, srv.DSN("test"))
	db := sciOpen(t, "hasql", "mysql:"+dsn)
	db.SetMaxOpenConns(1)
	conn := sciConn(t, db)
	s := sciSession(t, conn)
	c := sciConnector(t, db)
	ctx := context.Background()
	serverCount := func() int64 {
		out, err := srv.Query("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out)
		n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		return n
	}
	for i := 1; i <= 8; i++ {
		q := fmt.Sprintf("SELECT v + %d FROM kv WHERE id = ?", i)
		if v := sciInt(t, conn, q, 1); v != int64(10+i) {
			t.Fatalf("v = %d", v)
		}
		if n := serverCount(); n > 5 {
			t.Fatalf("%d statements on the server", n)
		}
	}
	if n := s.StmtCacheSize(); n != 2 {
		t.Fatalf("StmtCacheSize = %d, want 2 (shrunk to half of the 5 it held)", n)
	}
	// 8 misses; the 5 cached statements given back at the sixth, then the sixth evicted by
	// the eighth.
	sciWantStats(t, s, c, 0, 8, 6)
	if n := serverCount(); n != 2 {
		t.Fatalf("%d statements on the server, want the 2 cached", n)
	}

	// Explicit prepares held open: the limit is real, for hasql as for database/sql.
	var held []*sql.Stmt
	var err error
	for i := 0; i < 6 && err == nil; i++ {
		var st *sql.Stmt
		if st, err = conn.PrepareContext(ctx, fmt.Sprintf("SELECT v * %d FROM kv WHERE id = ?", i+2)); err == nil {
			held = append(held, st)
		}
	}
	if sciMyNumber(err) != 1461 || len(held) != 5 {
		t.Fatalf("%d statements held, then %v; want MySQL 1461 at the sixth", len(held), err)
	}
	for _, st := range held {
		st.Close()
	}
	conn.Close()

	// The pool default applies at the next checkout (OCI); the limit is met again and handled
	// again.
	conn = sciConn(t, db)
	defer conn.Close()
	if n := sciSession(t, conn).StmtCacheSize(); n != 20 {
		t.Fatalf("next checkout: StmtCacheSize = %d, want 20", n)
	}
	for i := 1; i <= 8; i++ {
		sciInt(t, conn, fmt.Sprintf("SELECT v - %d FROM kv WHERE id = ?", i), 1)
	}
	if n := serverCount(); n > 5 {
		t.Fatalf("%d statements on the server", n)
	}
}

// TestStmtCacheMariaReconnect: after the server kills a session, the next physical session
// starts with an empty cache and prepares statements again as they are used; nothing of the dead
// session's is closed on the new one.
func TestStmtCacheMariaReconnect(t *testing.T) {
	srv := sharedMaria(t)
	dsn := sciMariaKV(t, srv.FreshDB(t))
	db := sciOpen(t, "hasql", "mysql:"+dsn)
	db.SetMaxOpenConns(1)
	c := sciConnector(t, db)
	const q1, q2 = "SELECT v FROM kv WHERE id = ?", "SELECT v + 1 FROM kv WHERE id = ?"
	held := sciPrepare(t, db, q1)
	defer held.Close()
	sciStmtInt(t, held, 1)
	sciInt(t, db, q2, 1) // ad-hoc, cached
	sciWantStats(t, nil, c, 0, 2, 0)
	id := sciInt(t, db, "SELECT CONNECTION_ID()")
	if err := srv.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatal(err)
	}

	// The dead session is noticed when it is handed out again (go-sql-driver/mysql checks the
	// socket), or by the first call on it; at most one call fails.
	failures := 0
	for {
		var v int64
		err := held.QueryRowContext(context.Background(), 2).Scan(&v)
		if err == nil {
			break
		}
		if failures++; failures > 1 {
			t.Fatalf("after KILL: %v", err)
		}
		t.Logf("first call after KILL: %v", err)
	}
	conn := sciConn(t, db)
	defer conn.Close()
	if nid := sciInt(t, conn, "SELECT CONNECTION_ID()"); nid == id {
		t.Fatal("still the killed session")
	}
	s := sciSession(t, conn)
	sciWantStats(t, s, nil, 0, 1, 0) // the new session: only the held statement, prepared again
	com := sciComStmt(t, conn, "SESSION")
	sciWantCom(t, "new session", com, sciCom{1, 1, 0})
	sciInt(t, conn, q2, 1) // prepared again when used
	sciWantCom(t, "new session", sciComStmt(t, conn, "SESSION"), sciCom{2, 2, 0})
	sciWantStats(t, s, nil, 0, 2, 0)
	sciWantStats(t, nil, c, 0, 4, 0) // both sessions
	if st := c.Stats(); st.Terminated < 1 {
		t.Fatalf("Terminated = %d", st.Terminated)
	}
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (pgx).

// TestStmtCachePGExecModes: pgx does ad-hoc work itself in every default_query_exec_mode, so
// hasql adds no prepared statement to it: the session's pg_prepared_statements after ad-hoc work
// through hasql are those of raw pgx (pgx's own cache in cache_statement mode, nothing in the
// others). Explicit prepares go through hasql's cache: pgx's stdlib Prepare prepares on the server
// in every mode, simple_protocol included, and hasql keeps the statement prepared after the
// *sql.Stmt is closed, where raw pgx deallocates it.
func TestStmtCachePGExecModes(t *testing.T) {
	dsn := sciPGKV(t, sharedPG(t).FreshDB(t))
	const (
		sel = "SELECT v FROM kv WHERE id = $1"
		upd = "UPDATE kv SET v = v + $1 - $1 WHERE id = $2"
		exp = "SELECT v * 2 FROM kv WHERE id = $1"
	)
	for _, mode := range []string{"", "cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		name := mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			mdsn := dsn
			if mode != "" {
				mdsn += "&default_query_exec_mode=" + mode
			}
			type seen struct{ adhoc, open, closed []string }
			run := func(db *sql.DB) seen {
				conn := sciConn(t, db)
				defer conn.Close()
				for round := 0; round < 2; round++ {
					for i := 1; i <= 3; i++ {
						if v := sciInt(t, conn, sel, i); v != int64(10*i) {
							t.Fatalf("v = %d", v)
						}
						sciExec(t, conn, upd, 5, i)
					}
				}
				var r seen
				r.adhoc = sciTexts(sciPGStmts(t, conn))
				for round := 0; round < 2; round++ {
					st := sciPrepare(t, conn, exp)
					if v := sciStmtInt(t, st, 2); v != 40 {
						t.Fatalf("v = %d", v)
					}
					r.open = sciTexts(sciPGStmts(t, conn))
					st.Close()
				}
				r.closed = sciTexts(sciPGStmts(t, conn))
				return r
			}
			raw := run(sciOpen(t, "pgx", mdsn))
			hdb := sciOpen(t, "hasql", "pgx:"+mdsn)
			hq := run(hdb)
			if !reflect.DeepEqual(raw.adhoc, hq.adhoc) {
				t.Fatalf("ad-hoc work: prepared statements raw %q, hasql %q", raw.adhoc, hq.adhoc)
			}
			if !reflect.DeepEqual(raw.open, hq.open) {
				t.Fatalf("with a *sql.Stmt open: raw %q, hasql %q", raw.open, hq.open)
			}
			if want := append(append([]string(nil), raw.closed...), exp); !reflect.DeepEqual(hq.closed, sciSorted(want)) {
				t.Fatalf("after Close: raw %q, hasql %q (want raw's plus the cached statement)", raw.closed, hq.closed)
			}
			if !sciContains(raw.open, exp) {
				t.Fatalf("pgx did not prepare the explicit statement on the server: %q", raw.open)
			}
			// Only the explicit prepare touched hasql's cache: prepared once, then a hit.
			sciWantStats(t, nil, sciConnector(t, hdb), 1, 1, 0)
			t.Logf("mode %s: ad-hoc work leaves %d prepared statement(s) (raw and hasql alike); stdlib Prepare prepares on the server; after Close raw has %d, hasql %d",
				name, len(raw.adhoc), len(raw.closed), len(hq.closed))
		})
	}
}

func sciSorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func sciContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// TestStmtCachePGCachedPlanChanged: "cached plan must not change result type" (0A000) after ALTER
// TABLE ... ADD COLUMN under a prepared SELECT *.
//
//   - Raw pgx: an explicitly prepared *sql.Stmt fails with 0A000 on every execution (pgx never
//     prepares it again). Ad-hoc work fails once when pgx's own statement cache had the query
//     (pgx then drops it), and then works.
//   - hasql: the cached statement is evicted, prepared again and the work run once more, so the
//     *sql.Stmt works. A statement hasql keeps after its *sql.Stmt was closed does not stand in
//     for ad-hoc work with the same text (pgx would run it on that statement, every time
//     failing): ad-hoc work behaves as with raw pgx. Inside a transaction the error has already
//     aborted it: hasql returns it, and the statement is healed at its next use outside; a
//     statement prepared inside a transaction after the change is prepared afresh.
func TestStmtCachePGCachedPlanChanged(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	admin := sciOpen(t, "pgx", dsn)
	sciExec(t, admin, "CREATE TABLE t (a int)")
	sciExec(t, admin, "INSERT INTO t VALUES (1)")
	ctx := context.Background()
	const q = "SELECT * FROM t"
	ncols := func(x interface {
		QueryContext(context.Context, ...any) (*sql.Rows, error)
	}) (int, error) {
		rows, err := x.QueryContext(ctx)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
		}
		return len(cols), rows.Err()
	}
	adhocCols := func(conn *sql.Conn) (int, error) {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
		}
		return len(cols), rows.Err()
	}
	columns := 1
	addColumn := func(name string) {
		sciExec(t, admin, "ALTER TABLE t ADD COLUMN "+name+" int DEFAULT 0")
		columns++
	}

	// Raw pgx.
	raw := sciOpen(t, "pgx", dsn)
	rconn := sciConn(t, raw)
	rst := sciPrepare(t, rconn, q)
	if n, err := ncols(rst); n != columns || err != nil {
		t.Fatal(n, err)
	}
	addColumn("r1")
	for i := 0; i < 2; i++ {
		if _, err := ncols(rst); sciPGCode(err) != "0A000" {
			t.Fatalf("raw pgx, prepared statement, execution %d after ALTER: %v, want 0A000", i+1, err)
		}
	}
	rst.Close()
	if n, err := adhocCols(rconn); n != columns || err != nil { // now in pgx's own cache
		t.Fatal(n, err)
	}
	addColumn("r2")
	_, err1 := adhocCols(rconn)
	n2, err2 := adhocCols(rconn)
	if sciPGCode(err1) != "0A000" || err2 != nil || n2 != columns {
		t.Fatalf("raw pgx, ad-hoc after ALTER: %v, then %d columns, %v", err1, n2, err2)
	}
	t.Logf("raw pgx: the prepared statement fails with %v on every execution; ad-hoc work fails once", err1)
	rconn.Close()

	// hasql, explicit.
	db := sciOpen(t, "hasql", "pgx:"+dsn)
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	c := sciConnector(t, db)
	st := sciPrepare(t, conn, q)
	if n, err := ncols(st); n != columns || err != nil {
		t.Fatal(n, err)
	}
	addColumn("h1")
	for i := 0; i < 2; i++ {
		if n, err := ncols(st); n != columns || err != nil {
			t.Fatalf("hasql, prepared statement, execution %d after ALTER: %d columns, %v", i+1, n, err)
		}
	}
	sciWantStats(t, s, c, 0, 2, 1)
	st.Close() // cached

	// hasql, ad-hoc work with the same text as the cached statement: as raw pgx.
	addColumn("h2")
	if n, err := adhocCols(conn); n != columns || err != nil {
		t.Fatalf("hasql, ad-hoc after ALTER with the statement cached: %d columns, %v", n, err)
	}
	if n, err := adhocCols(conn); n != columns || err != nil { // now in pgx's own cache
		t.Fatalf("hasql, ad-hoc: %d columns, %v", n, err)
	}
	addColumn("h3")
	_, err1 = adhocCols(conn)
	n2, err2 = adhocCols(conn)
	if sciPGCode(err1) != "0A000" || err2 != nil || n2 != columns {
		t.Fatalf("hasql, ad-hoc after ALTER (pgx's cache): %v, then %d columns, %v; want raw pgx's behaviour", err1, n2, err2)
	}

	// In a transaction.
	st = sciPrepare(t, conn, q)
	defer st.Close()
	if n, err := ncols(st); n != columns || err != nil {
		t.Fatal(n, err)
	}
	addColumn("h4")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ncols(tx.StmtContext(ctx, st)); sciPGCode(err) != "0A000" {
		t.Fatalf("hasql, held prepared statement in a transaction after ALTER: %v, want 0A000", err)
	}
	tx.Rollback()
	if n, err := ncols(st); n != columns || err != nil {
		t.Fatalf("hasql, after the rollback: %d columns, %v", n, err)
	}
	st.Close()
	addColumn("h5")
	tx, err = conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tst := sciPrepare(t, tx, q) // the cached statement nobody holds: prepared afresh
	if n, err := ncols(tst); n != columns || err != nil {
		t.Fatalf("hasql, statement prepared in a transaction after ALTER: %d columns, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestStmtCachePGStatementGone: 26000 "prepared statement does not exist", after DEALLOCATE ALL
// run behind the cache's back (through Session.Unwrap, or as ordinary ad-hoc work). Raw pgx
// returns the error for the prepared *sql.Stmt; hasql prepares again and succeeds.
func TestStmtCachePGStatementGone(t *testing.T) {
	dsn := sciPGKV(t, sharedPG(t).FreshDB(t))
	ctx := context.Background()
	const q = "SELECT v FROM kv WHERE id = $1"

	raw := sciOpen(t, "pgx", dsn)
	rconn := sciConn(t, raw)
	rst := sciPrepare(t, rconn, q)
	sciStmtInt(t, rst, 1)
	sciExec(t, rconn, "DEALLOCATE ALL")
	var v int64
	err := rst.QueryRowContext(ctx, 1).Scan(&v)
	if sciPGCode(err) != "26000" {
		t.Fatalf("raw pgx after DEALLOCATE ALL: %v, want 26000", err)
	}
	t.Logf("raw pgx: %v", err)
	rst.Close()
	rconn.Close()

	db := sciOpen(t, "hasql", "pgx:"+dsn)
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	c := sciConnector(t, db)
	st := sciPrepare(t, conn, q)
	defer st.Close()
	sciStmtInt(t, st, 1)

	// Behind hasql's back, on the inner connection.
	ex, ok := s.Unwrap().(driver.ExecerContext)
	if !ok {
		t.Fatalf("inner connection %T has no ExecContext", s.Unwrap())
	}
	if _, err := ex.ExecContext(ctx, "DEALLOCATE ALL", nil); err != nil {
		t.Fatal(err)
	}
	if len(sciPGStmts(t, conn)) != 0 {
		t.Fatal("DEALLOCATE ALL left statements")
	}
	if v := sciStmtInt(t, st, 2); v != 20 {
		t.Fatalf("v = %d", v)
	}
	sciWantStats(t, s, c, 0, 2, 1)

	// As ordinary work through hasql.
	sciExec(t, conn, "DEALLOCATE ALL")
	if v := sciStmtInt(t, st, 3); v != 30 {
		t.Fatalf("v = %d", v)
	}
	sciWantStats(t, s, c, 0, 3, 2)
	if got := sciTexts(sciPGExplicit(t, conn)); !reflect.DeepEqual(got, []string{q}) {
		t.Fatalf("prepared statements: %q", got)
	}
}

// TestStmtCachePGTags: untagged and tagged statements with the same text are two hasql entries
// (two misses, then hits for each). pgx's stdlib names a prepared statement after its text, so
// on the server they are one statement, which pgx reference-counts: it is deallocated when the
// last entry is evicted.
func TestStmtCachePGTags(t *testing.T) {
	dsn := sciPGKV(t, sharedPG(t).FreshDB(t))
	db := sciOpen(t, "hasql", "pgx:"+dsn)
	conn := sciConn(t, db)
	defer conn.Close()
	s := sciSession(t, conn)
	c := sciConnector(t, db)
	ctx := context.Background()
	tagged := hasql.WithStmtTag(ctx, "reporting")
	const q = "SELECT v FROM kv WHERE id = $1"
	for i := 0; i < 3; i++ {
		for _, cx := range []context.Context{ctx, tagged} {
			st, err := conn.PrepareContext(cx, q)
			if err != nil {
				t.Fatal(err)
			}
			sciStmtInt(t, st, 1)
			st.Close()
		}
	}
	sciWantStats(t, s, c, 4, 2, 0)
	if got := sciTexts(sciPGStmts(t, conn)); !reflect.DeepEqual(got, []string{q}) {
		t.Fatalf("prepared statements: %q", got)
	}
	s.SetStmtCacheSize(1) // evicts one entry: pgx still has a reference
	if got := sciTexts(sciPGStmts(t, conn)); !reflect.DeepEqual(got, []string{q}) {
		t.Fatalf("after evicting one entry: %q", got)
	}
	s.SetStmtCacheSize(0) // evicts the other: deallocated
	if got := sciPGStmts(t, conn); len(got) != 0 {
		t.Fatalf("after evicting both: %q", got)
	}
	sciWantStats(t, s, c, 4, 2, 2)

	// Stale under both tags: healing one heals the statement they share.
	s.SetStmtCacheSize(20)
	admin := sciOpen(t, "pgx", dsn)
	st1 := sciPrepare(t, conn, "SELECT * FROM kv WHERE id = $1")
	defer st1.Close()
	st2, err := conn.PrepareContext(tagged, "SELECT * FROM kv WHERE id = $1")
	if err != nil {
		t.Fatal(err)
	}
	st2.Close() // cached, unused
	sciExec(t, admin, "ALTER TABLE kv ADD COLUMN extra int DEFAULT 1")
	rows, err := st1.QueryContext(ctx, 1)
	if err != nil {
		t.Fatalf("after ALTER, with the same text cached under another tag: %v", err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	if len(cols) != 3 {
		t.Fatalf("columns %q", cols)
	}
}

// TestStmtCachePGReconnect: after the backend is terminated (pg_terminate_backend from another
// connection), the new physical session starts with an empty cache and prepares statements again
// lazily; nothing of the dead session's is closed on the new one.
func TestStmtCachePGReconnect(t *testing.T) {
	dsn := sciPGKV(t, sharedPG(t).FreshDB(t))
	admin := sciOpen(t, "pgx", dsn)
	db := sciOpen(t, "hasql", "pgx:"+dsn)
	db.SetMaxOpenConns(1)
	c := sciConnector(t, db)
	ctx := context.Background()
	const q1, q2 = "SELECT v FROM kv WHERE id = $1", "SELECT v + 1 FROM kv WHERE id = $1"
	held := sciPrepare(t, db, q1)
	defer held.Close()
	sciStmtInt(t, held, 1)
	st2 := sciPrepare(t, db, q2)
	sciStmtInt(t, st2, 1)
	st2.Close() // cached
	sciWantStats(t, nil, c, 0, 2, 0)
	pid := sciInt(t, db, "SELECT pg_backend_pid()")
	if !func() bool {
		var ok bool
		return admin.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok) == nil && ok
	}() {
		t.Fatal("pg_terminate_backend failed")
	}
	for deadline := time.Now().Add(10 * time.Second); sciInt(t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the backend did not go")
		}
		time.Sleep(20 * time.Millisecond)
	}

	failures := 0
	for {
		var v int64
		err := held.QueryRowContext(ctx, 2).Scan(&v)
		if err == nil {
			break
		}
		if failures++; failures > 1 {
			t.Fatalf("after pg_terminate_backend: %v", err)
		}
		t.Logf("first call after pg_terminate_backend: %v", err)
	}
	conn := sciConn(t, db)
	defer conn.Close()
	if npid := sciInt(t, conn, "SELECT pg_backend_pid()"); npid == pid {
		t.Fatal("still the terminated backend")
	}
	s := sciSession(t, conn)
	sciWantStats(t, s, nil, 0, 1, 0)
	if got := sciTexts(sciPGExplicit(t, conn)); !reflect.DeepEqual(got, []string{q1}) {
		t.Fatalf("new session's prepared statements: %q, want only the one used since", got)
	}
	st2 = sciPrepare(t, conn, q2) // prepared again when used
	sciStmtInt(t, st2, 1)
	st2.Close()
	if got := sciTexts(sciPGExplicit(t, conn)); !reflect.DeepEqual(got, sciSorted([]string{q1, q2})) {
		t.Fatalf("new session's prepared statements: %q", got)
	}
	sciWantStats(t, s, nil, 0, 2, 0)
	sciWantStats(t, nil, c, 0, 4, 0) // both sessions
}

// ---------------------------------------------------------------------------------------------
// go-sqlmock.

// TestStmtCacheSQLMock shows how hasql's statement cache looks in go-sqlmock expectations.
//
// With the cache on (the default: 20 statements per session):
//
//   - A statement is prepared once per session: write one ExpectPrepare, then one
//     ExpectQuery/ExpectExec on it per execution, however many times the code calls Prepare
//     and Close.
//   - Closing the *sql.Stmt does not close the driver statement: it goes back to the cache.
//     WillBeClosed is satisfied when hasql evicts it: when more statements than the cache size
//     pass through the session (least recently used first), when the session's cache is resized
//     or turned off (Session.SetStmtCacheSize(0)), and at the latest when the session ends
//     (db.Close closes a session's statements before its connection, as database/sql does).
//     So check ExpectationsWereMet after db.Close, or turn the cache off for the test.
//   - Ad-hoc Query/Exec is sqlmock's own (it does it in one call, like pgx): no ExpectPrepare.
//
// With hasql.stmtcache=0 in the DSN (or hasql.WithStmtCacheSize(0)), everything is as without
// hasql: one ExpectPrepare per Prepare, and WillBeClosed is satisfied by each Close.
func TestStmtCacheSQLMock(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, params string) (*sql.DB, sqlmock.Sqlmock) {
		name := fmt.Sprintf("stmtcache-mock-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
		mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mdb.Close() })
		db := sciOpen(t, "hasql", "sqlmock:"+name+params)
		db.SetMaxOpenConns(1)
		return db, mock
	}
	const q = "SELECT name FROM users WHERE id = ?"
	lookup := func(t *testing.T, db *sql.DB, id int) string {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var name string
		if err := st.QueryRowContext(ctx, id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}

	t.Run("cached", func(t *testing.T) {
		db, mock := open(t, "")
		// One prepare for the session, then one expectation per execution.
		ep := mock.ExpectPrepare(q).WillBeClosed()
		ep.ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
		ep.ExpectQuery().WithArgs(2).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("bob"))
		// Ad-hoc work: sqlmock's own, no prepare.
		mock.ExpectExec("UPDATE users SET seen = ? WHERE id = ?").WithArgs(true, 1).WillReturnResult(sqlmock.NewResult(0, 1))

		if lookup(t, db, 1) != "ann" || lookup(t, db, 2) != "bob" { // Prepare+Close twice
			t.Fatal("wrong rows")
		}
		if _, err := db.ExecContext(ctx, "UPDATE users SET seen = ? WHERE id = ?", true, 1); err != nil {
			t.Fatal(err)
		}
		// The statement is still cached: WillBeClosed is not met yet.
		if err := mock.ExpectationsWereMet(); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("ExpectationsWereMet before eviction: %v, want an unclosed prepared statement", err)
		}
		// Turning the session's cache off evicts (closes) it.
		conn := sciConn(t, db)
		sciSession(t, conn).SetStmtCacheSize(0)
		conn.Close()
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("db.Close", func(t *testing.T) {
		db, mock := open(t, "")
		mock.ExpectPrepare(q).WillBeClosed().
			ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
		lookup(t, db, 1)
		// Closing the DB closes the session's cached statements, then its connection.
		mock.ExpectClose()
		db.Close()
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("evicted", func(t *testing.T) {
		db, mock := open(t, "?hasql.stmtcache=1")
		// With room for one statement, preparing a second evicts the first.
		mock.ExpectPrepare(q).WillBeClosed().
			ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
		mock.ExpectPrepare("DELETE FROM users WHERE id = ?").
			ExpectExec().WithArgs(1).WillReturnResult(sqlmock.NewResult(0, 1))

		lookup(t, db, 1)
		st, err := db.PrepareContext(ctx, "DELETE FROM users WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ExecContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stmtcache=0", func(t *testing.T) {
		db, mock := open(t, "?hasql.stmtcache=0")
		// As without hasql: a prepare per Prepare, closed by each Close.
		for _, r := range []struct {
			id   int
			name string
		}{{1, "ann"}, {2, "bob"}} {
			mock.ExpectPrepare(q).WillBeClosed().
				ExpectQuery().WithArgs(r.id).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow(r.name))
		}
		if lookup(t, db, 1) != "ann" || lookup(t, db, 2) != "bob" {
			t.Fatal("wrong rows")
		}
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Fatal(err)
		}
	})
}
