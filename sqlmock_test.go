package hasql_test

// go-sqlmock as hasql's inner driver: every flow below runs twice, once on a
// plain sqlmock DB (sqlmock.New) and once through hasql
// (sql.Open("hasql", "sqlmock:<dsn>") over sqlmock.NewWithDSN), and must
// observe the same thing both times, with the mock's expectations met.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
)

var (
	smSeq     atomic.Int64
	smErrBoom = errors.New("boom")
)

// smOpen returns a DB over a fresh sqlmock, raw or through hasql, with the
// query matcher and ping monitoring given. hasqlParams, if any, are added to
// the hasql DSN.
func smOpen(t *testing.T, viaHasql bool, m sqlmock.QueryMatcher, pings bool, hasqlParams string) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	if m == nil {
		m = sqlmock.QueryMatcherRegexp
	}
	if !viaHasql {
		db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(m), sqlmock.MonitorPingsOption(pings))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, mock
	}
	dsn := fmt.Sprintf("x-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), smSeq.Add(1))
	mockDB, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(m), sqlmock.MonitorPingsOption(pings))
	if err != nil {
		t.Fatal(err)
	}
	hdsn := "sqlmock:" + dsn
	if hasqlParams != "" {
		hdsn += "?" + hasqlParams
	}
	db, err := sql.Open("hasql", hdsn)
	if err != nil {
		mockDB.Close()
		t.Fatal(err)
	}
	if _, ok := hasql.ConnectorOf(db); !ok {
		t.Fatal("not a hasql DB")
	}
	t.Cleanup(func() {
		db.Close()
		mockDB.Close()
	})
	return db, mock
}

// smFlow sets expectations on mock, works on db and logs what it sees.
type smFlow struct {
	name   string
	equal  bool   // sqlmock.QueryMatcherEqual instead of the regexp matcher
	pings  bool   // sqlmock.MonitorPingsOption(true)
	params string // hasql.* settings for the hasql run
	run    func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(format string, args ...any))
}

// smErr describes an error by what callers test it for, not by its text
// (hasql may add to the text).
func smErr(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, smErrBoom):
		return "boom"
	case errors.Is(err, sql.ErrNoRows):
		return "ErrNoRows"
	case errors.Is(err, sql.ErrTxDone):
		return "ErrTxDone"
	case strings.Contains(err.Error(), "could not match actual sql"):
		return "mismatch"
	case strings.Contains(err.Error(), "was not expected"):
		return "unexpected"
	}
	return "other: " + err.Error()
}

// smRows logs every row of every result set.
func smRows(rows *sql.Rows, log func(string, ...any)) {
	for set := 0; ; set++ {
		cols, err := rows.Columns()
		log("set %d columns %q %s", set, cols, smErr(err))
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			err := rows.Scan(ptrs...)
			log("row %v %s", vals, smErr(err))
		}
		log("rows.Err %s", smErr(rows.Err()))
		if !rows.NextResultSet() {
			break
		}
	}
	log("rows.Close %s", smErr(rows.Close()))
}

var smFlows = []smFlow{
	{name: "query", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		q := "SELECT id, name FROM users WHERE id > ?"
		mock.ExpectQuery(regexp.QuoteMeta(q)).WithArgs(1).
			WillReturnRows(sqlmock.NewRows([]string{"id", "name"}).AddRow(2, "ann").AddRow(3, nil))
		rows, err := db.Query(q, 1)
		log("query %s", smErr(err))
		if err == nil {
			smRows(rows, log)
		}
	}},
	{name: "query row", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectQuery("SELECT name FROM users").WithArgs("x").
			WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
		mock.ExpectQuery("SELECT name FROM users").WithArgs("y").
			WillReturnRows(sqlmock.NewRows([]string{"name"}))
		var name string
		err := db.QueryRow("SELECT name FROM users WHERE k = ?", "x").Scan(&name)
		log("first %q %s", name, smErr(err))
		err = db.QueryRowContext(context.Background(), "SELECT name FROM users WHERE k = ?", "y").Scan(&name)
		log("second %s", smErr(err))
	}},
	{name: "exec", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		mock.ExpectExec("UPDATE users SET").WithArgs("bob", 2, at, []byte("b"), nil, 1.5, true).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectExec("INSERT INTO users").WillReturnResult(sqlmock.NewResult(42, 1))
		mock.ExpectExec("DELETE FROM users").WillReturnResult(sqlmock.NewErrorResult(smErrBoom))
		res, err := db.Exec("UPDATE users SET name = ? WHERE id = ? AND at = ? AND b = ? AND n = ? AND f = ? AND ok = ?",
			"bob", 2, at, []byte("b"), nil, 1.5, true)
		log("update %s", smErr(err))
		if err == nil {
			n, err := res.RowsAffected()
			log("affected %d %s", n, smErr(err))
		}
		res, err = db.ExecContext(context.Background(), "INSERT INTO users (name) VALUES ('cy')")
		log("insert %s", smErr(err))
		if err == nil {
			id, err := res.LastInsertId()
			log("id %d %s", id, smErr(err))
		}
		res, err = db.Exec("DELETE FROM users")
		log("delete %s", smErr(err))
		if err == nil {
			_, err := res.RowsAffected()
			log("affected %s", smErr(err))
		}
	}},
	{name: "named args", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectQuery("SELECT").WithArgs(sql.Named("id", 7), sqlmock.AnyArg()).
			WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1))
		var n int
		err := db.QueryRow("SELECT n FROM t WHERE id = :id AND x = :x", sql.Named("id", 7), sql.Named("x", "y")).Scan(&n)
		log("n %d %s", n, smErr(err))
	}},
	{name: "tx commit", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectBegin()
		mock.ExpectExec("INSERT INTO users").WithArgs("cy").WillReturnResult(sqlmock.NewResult(3, 1))
		mock.ExpectQuery("SELECT count").WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(3))
		mock.ExpectCommit()
		tx, err := db.BeginTx(context.Background(), nil)
		log("begin %s", smErr(err))
		if err != nil {
			return
		}
		res, err := tx.Exec("INSERT INTO users (name) VALUES (?)", "cy")
		log("insert %s", smErr(err))
		if err == nil {
			id, _ := res.LastInsertId()
			log("id %d", id)
		}
		var n int
		log("count %s", smErr(tx.QueryRow("SELECT count(*) FROM users").Scan(&n)))
		log("n %d", n)
		log("commit %s", smErr(tx.Commit()))
		log("commit again %s", smErr(tx.Commit()))
		log("rollback after commit %s", smErr(tx.Rollback()))
	}},
	{name: "tx rollback after error", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectBegin()
		mock.ExpectExec("INSERT INTO users").WillReturnError(smErrBoom)
		mock.ExpectRollback()
		tx, err := db.Begin()
		log("begin %s", smErr(err))
		if err != nil {
			return
		}
		_, err = tx.Exec("INSERT INTO users (name) VALUES ('dup')")
		log("insert %s", smErr(err))
		log("rollback %s", smErr(tx.Rollback()))
	}},
	{name: "tx errors", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectBegin().WillReturnError(smErrBoom)
		mock.ExpectBegin()
		mock.ExpectCommit().WillReturnError(smErrBoom)
		mock.ExpectBegin()
		mock.ExpectRollback().WillReturnError(smErrBoom)
		_, err := db.Begin()
		log("begin %s", smErr(err))
		tx, err := db.Begin()
		log("begin %s", smErr(err))
		if err == nil {
			log("commit %s", smErr(tx.Commit()))
		}
		tx, err = db.Begin()
		log("begin %s", smErr(err))
		if err == nil {
			log("rollback %s", smErr(tx.Rollback()))
		}
	}},
	{name: "query and exec errors", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectQuery("SELECT broken").WillReturnError(smErrBoom)
		mock.ExpectExec("UPDATE broken").WillReturnError(smErrBoom)
		mock.ExpectQuery("SELECT rows").WillReturnRows(
			sqlmock.NewRows([]string{"n"}).AddRow(1).AddRow(2).AddRow(3).RowError(1, smErrBoom))
		mock.ExpectQuery("SELECT closing").WillReturnRows(
			sqlmock.NewRows([]string{"n"}).AddRow(1).CloseError(smErrBoom))
		_, err := db.Query("SELECT broken")
		log("query %s", smErr(err))
		var n int
		log("query row %s", smErr(db.QueryRow("SELECT broken").Scan(&n))) // nothing left to match
		_, err = db.Exec("UPDATE broken")
		log("exec %s", smErr(err))
		rows, err := db.Query("SELECT rows")
		log("rows %s", smErr(err))
		if err == nil {
			smRows(rows, log)
		}
		rows, err = db.Query("SELECT closing")
		log("closing %s", smErr(err))
		if err == nil {
			smRows(rows, log)
		}
	}},
	{name: "prepare", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		q := "SELECT name FROM users WHERE id = ?"
		prep := mock.ExpectPrepare(regexp.QuoteMeta(q))
		prep.ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
		prep.ExpectQuery().WithArgs(2).WillReturnError(smErrBoom)
		prep.ExpectExec().WithArgs(3).WillReturnResult(sqlmock.NewResult(0, 1))
		stmt, err := db.Prepare(q)
		log("prepare %s", smErr(err))
		if err != nil {
			return
		}
		var name string
		log("first %s %q", smErr(stmt.QueryRow(1).Scan(&name)), name)
		log("second %s", smErr(stmt.QueryRow(2).Scan(&name)))
		res, err := stmt.Exec(3)
		log("exec %s", smErr(err))
		if err == nil {
			n, _ := res.RowsAffected()
			log("affected %d", n)
		}
		log("close %s", smErr(stmt.Close()))
	}},
	{name: "prepare will be closed", params: "hasql.stmtcache=0", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		q := "UPDATE users SET name = ? WHERE id = ?"
		mock.ExpectPrepare(regexp.QuoteMeta(q)).WillBeClosed().
			ExpectExec().WithArgs("ann", 1).WillReturnResult(sqlmock.NewResult(0, 1))
		stmt, err := db.Prepare(q)
		log("prepare %s", smErr(err))
		if err != nil {
			return
		}
		_, err = stmt.Exec("ann", 1)
		log("exec %s", smErr(err))
		log("close %s", smErr(stmt.Close()))
		// The inner statement is closed now, as with the mock alone, not when
		// the session is next checked out.
		log("met %s", smErr(mock.ExpectationsWereMet()))
	}},
	{name: "prepare errors", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectPrepare("SELECT broken").WillReturnError(smErrBoom)
		mock.ExpectPrepare("SELECT fine").WillReturnCloseError(smErrBoom).
			ExpectQuery().WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow(1))
		_, err := db.Prepare("SELECT broken")
		log("prepare %s", smErr(err))
		stmt, err := db.Prepare("SELECT fine")
		log("prepare %s", smErr(err))
		if err == nil {
			var a int
			log("query %s %d", smErr(stmt.QueryRow().Scan(&a)), a)
			stmt.Close()
		}
	}},
	{name: "prepare in tx", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectBegin()
		prep := mock.ExpectPrepare("INSERT INTO t")
		prep.ExpectExec().WithArgs(1).WillReturnResult(sqlmock.NewResult(1, 1))
		prep.ExpectExec().WithArgs(2).WillReturnResult(sqlmock.NewResult(2, 1))
		mock.ExpectCommit()
		tx, err := db.Begin()
		log("begin %s", smErr(err))
		if err != nil {
			return
		}
		stmt, err := tx.Prepare("INSERT INTO t (v) VALUES (?)")
		log("prepare %s", smErr(err))
		if err == nil {
			for v := 1; v <= 2; v++ {
				res, err := stmt.Exec(v)
				log("exec %s", smErr(err))
				if err == nil {
					id, _ := res.LastInsertId()
					log("id %d", id)
				}
			}
		}
		log("commit %s", smErr(tx.Commit()))
	}},
	{name: "multiple result sets", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		rs1 := sqlmock.NewRows([]string{"a"}).AddRow(1).AddRow(2)
		rs2 := sqlmock.NewRows([]string{"b", "c"}).AddRow("x", "y")
		rs3 := sqlmock.NewRows([]string{"d"})
		mock.ExpectQuery("CALL multi").WillReturnRows(rs1, rs2, rs3)
		rows, err := db.Query("CALL multi()")
		log("query %s", smErr(err))
		if err == nil {
			smRows(rows, log)
		}
	}},
	{name: "column types", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		rs := mock.NewRowsWithColumnDefinition(
			mock.NewColumn("id").OfType("BIGINT", int64(1)).Nullable(false),
			mock.NewColumn("name").OfType("VARCHAR", "").WithLength(255).Nullable(true),
			mock.NewColumn("price").OfType("DECIMAL", float64(0)).WithPrecisionAndScale(10, 2),
			mock.NewColumn("at").OfType("TIMESTAMP", time.Time{}),
		).AddRow(int64(1), "ann", 9.5, time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC))
		mock.ExpectQuery("SELECT id, name, price, at").WillReturnRows(rs)
		rows, err := db.Query("SELECT id, name, price, at FROM items")
		log("query %s", smErr(err))
		if err != nil {
			return
		}
		cts, err := rows.ColumnTypes()
		log("column types %s", smErr(err))
		for _, ct := range cts {
			nullable, nok := ct.Nullable()
			length, lok := ct.Length()
			prec, scale, dok := ct.DecimalSize()
			log("%s %s nullable=%v,%v length=%d,%v decimal=%d,%d,%v scan=%v", ct.Name(), ct.DatabaseTypeName(),
				nullable, nok, length, lok, prec, scale, dok, ct.ScanType())
		}
		smRows(rows, log)
	}},
	{name: "equal matcher", equal: true, run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		q := "SELECT * FROM t WHERE a = ? AND b IN (1, 2)"
		mock.ExpectQuery(q).WithArgs("x").WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow("x"))
		mock.ExpectExec("DELETE FROM t").WillReturnResult(sqlmock.NewResult(0, 2))
		var a string
		log("query %s %q", smErr(db.QueryRow(q, "x").Scan(&a)), a)
		_, err := db.Exec("DELETE FROM t WHERE 1") // not equal
		log("near miss %s", smErr(err))
		res, err := db.Exec("DELETE FROM t")
		log("exec %s", smErr(err))
		if err == nil {
			n, _ := res.RowsAffected()
			log("affected %d", n)
		}
	}},
	{name: "regexp matcher miss", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectExec("^UPDATE a$").WillReturnResult(sqlmock.NewResult(0, 1))
		_, err := db.Exec("UPDATE b")
		log("miss %s", smErr(err))
		_, err = db.Exec("UPDATE a")
		log("hit %s", smErr(err))
		_, err = db.Exec("UPDATE a")
		log("nothing left %s", smErr(err))
	}},
	{name: "ping", pings: true, run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectPing()
		mock.ExpectPing().WillReturnError(smErrBoom)
		log("ping %s", smErr(db.Ping()))
		log("ping %s", smErr(db.PingContext(context.Background())))
	}},
	{name: "conn", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectExec("SET x").WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectQuery("SELECT x").WillReturnRows(sqlmock.NewRows([]string{"x"}).AddRow(1))
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		log("conn %s", smErr(err))
		if err != nil {
			return
		}
		_, err = conn.ExecContext(ctx, "SET x = 1")
		log("exec %s", smErr(err))
		var x int
		log("query %s %d", smErr(conn.QueryRowContext(ctx, "SELECT x").Scan(&x)), x)
		log("close %s", smErr(conn.Close()))
	}},
	{name: "unordered", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.MatchExpectationsInOrder(false)
		mock.ExpectExec("UPDATE one").WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectExec("UPDATE two").WillReturnResult(sqlmock.NewResult(0, 2))
		for _, q := range []string{"UPDATE two", "UPDATE one"} {
			res, err := db.Exec(q)
			log("%s %s", q, smErr(err))
			if err == nil {
				n, _ := res.RowsAffected()
				log("affected %d", n)
			}
		}
	}},
	{name: "close", run: func(t *testing.T, db *sql.DB, mock sqlmock.Sqlmock, log func(string, ...any)) {
		mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectClose()
		_, err := db.Exec("UPDATE x")
		log("exec %s", smErr(err))
		log("close %s", smErr(db.Close()))
	}},
}

// TestSqlmockFlows runs each flow on a raw sqlmock DB and through hasql and
// compares what they saw.
func TestSqlmockFlows(t *testing.T) {
	for _, f := range smFlows {
		t.Run(f.name, func(t *testing.T) {
			var logs [2][]string
			var met [2]error
			for i, viaHasql := range []bool{false, true} {
				var m sqlmock.QueryMatcher
				if f.equal {
					m = sqlmock.QueryMatcherEqual
				}
				db, mock := smOpen(t, viaHasql, m, f.pings, f.params)
				f.run(t, db, mock, func(format string, args ...any) {
					logs[i] = append(logs[i], fmt.Sprintf(format, args...))
				})
				met[i] = mock.ExpectationsWereMet()
			}
			if met[0] != nil {
				t.Errorf("raw sqlmock: expectations not met: %v", met[0])
			}
			if met[1] != nil {
				t.Errorf("through hasql: expectations not met: %v", met[1])
			}
			if !reflect.DeepEqual(logs[0], logs[1]) {
				t.Errorf("hasql saw something else than raw sqlmock:\nraw:   %q\nhasql: %q", logs[0], logs[1])
			}
			if testing.Verbose() {
				t.Logf("%q", logs[1])
			}
		})
	}
}

// smCodeErr is a driver-specific error type, reached with errors.As.
type smCodeErr struct{ cause error }

func (e *smCodeErr) Error() string { return "code 42: " + e.cause.Error() }
func (e *smCodeErr) Unwrap() error { return e.cause }

// TestSqlmockErrorsIs: errors a mock injects come back through hasql with
// their identity, whatever hasql adds to them.
func TestSqlmockErrorsIs(t *testing.T) {
	custom := &smCodeErr{smErrBoom}
	db, mock := smOpen(t, true, nil, false, "")
	mock.ExpectQuery("SELECT").WillReturnError(custom)
	mock.ExpectExec("UPDATE").WillReturnError(fmt.Errorf("wrapped: %w", sql.ErrConnDone))
	_, err := db.Query("SELECT 1")
	var ce *smCodeErr
	if !errors.Is(err, smErrBoom) || !errors.As(err, &ce) || ce != custom {
		t.Errorf("query error %v: errors.Is/As lost the injected error", err)
	}
	_, err = db.Exec("UPDATE x")
	if !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("exec error %v does not wrap sql.ErrConnDone", err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// TestSqlmockStmtCache: with hasql's statement cache on (the default), a
// statement closed by the application goes back to the cache; the inner
// statement is closed at the latest when the DB is.
func TestSqlmockStmtCache(t *testing.T) {
	db, mock := smOpen(t, true, nil, false, "")
	q := "SELECT v FROM t WHERE id = ?"
	prep := mock.ExpectPrepare(regexp.QuoteMeta(q)).WillBeClosed()
	prep.ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow("a"))
	stmt, err := db.Prepare(q)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := stmt.QueryRow(1).Scan(&v); err != nil || v != "a" {
		t.Fatalf("query: %q %v", v, err)
	}
	stmt.Close()
	db.Close()
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Errorf("after DB.Close: %v", err)
	}
}

// TestSqlmockDSNSettings: hasql.* keys in a sqlmock DSN are stripped before
// sqlmock looks the DSN up (or it would not find its mock).
func TestSqlmockDSNSettings(t *testing.T) {
	db, mock := smOpen(t, true, nil, false, "hasql.stmtcache=0&hasql.pool.max=1&hasql.retry=off")
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"1"}).AddRow(1))
	var n int
	if err := db.QueryRow("SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("QueryRow: %d %v", n, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
	// An unknown mock DSN fails on first use with sqlmock's own error.
	db2, err := sql.Open("hasql", "sqlmock:x-no-such-mock?hasql.stmtcache=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.Ping(); err == nil || !strings.Contains(err.Error(), "expected a connection to be available") {
		t.Errorf("Ping on a mock that does not exist: %v", err)
	}
}
