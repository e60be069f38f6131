package hasqltest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

// recordingTB is a testing.TB whose failures and cleanups are recorded
// instead of acted on, to test what NewMock reports.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	fatals   []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	panic(r) // stands in for runtime.Goexit
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestNewMockQueryExecTx(t *testing.T) {
	db, mock := hasqltest.NewMock(t)
	if _, ok := hasql.ConnectorOf(db); !ok {
		t.Fatal("NewMock's DB is not a hasql DB")
	}
	mock.ExpectQuery("SELECT name FROM users").WithArgs(1).
		WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
	mock.ExpectExec("UPDATE users").WithArgs("bob", 1).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectBegin()
	mock.ExpectExec("INSERT INTO audit").WillReturnResult(sqlmock.NewResult(7, 1))
	mock.ExpectCommit()

	var name string
	if err := db.QueryRow("SELECT name FROM users WHERE id = ?", 1).Scan(&name); err != nil || name != "ann" {
		t.Fatalf("query: %q, %v", name, err)
	}
	res, err := db.Exec("UPDATE users SET name = ? WHERE id = ?", "bob", 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("affected %d", n)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO audit (what) VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Each NewMock has a mock of its own, also when tests run in parallel.
func TestNewMockParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			db, mock := hasqltest.NewMock(t)
			for j := range 20 {
				mock.ExpectQuery("SELECT").WithArgs(i, j).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(i*100 + j))
			}
			for j := range 20 {
				var v int
				if err := db.QueryRow("SELECT v FROM t WHERE a = ? AND b = ?", i, j).Scan(&v); err != nil || v != i*100+j {
					t.Errorf("subtest %d query %d: %d, %v", i, j, v, err)
				}
			}
		})
	}
}

// An expectation left unmet fails the test, at cleanup, with the mock's
// message.
func TestNewMockReportsUnmetExpectations(t *testing.T) {
	rec := &recordingTB{TB: t}
	_, mock := hasqltest.NewMock(rec)
	mock.ExpectExec("DELETE FROM users").WillReturnResult(sqlmock.NewResult(0, 1))
	if len(rec.cleanups) != 1 {
		t.Fatalf("NewMock registered %d cleanups, want 1", len(rec.cleanups))
	}
	rec.runCleanups()
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "DELETE FROM users") {
		t.Fatalf("errors reported: %q; want one naming the unmet expectation", rec.errors)
	}

	// Met expectations report nothing.
	rec = &recordingTB{TB: t}
	db, mock := hasqltest.NewMock(rec)
	mock.ExpectExec("DELETE FROM users").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("DELETE FROM users"); err != nil {
		t.Fatal(err)
	}
	rec.runCleanups()
	if len(rec.errors) != 0 {
		t.Fatalf("errors reported: %q", rec.errors)
	}
	// The cleanup closed the DB.
	if err := db.Ping(); err == nil {
		t.Fatal("the DB still works after the cleanup")
	}
}

// A setup failure (a bad hasql.* key) fails the test at once, naming it.
func TestNewMockBadSettingIsFatal(t *testing.T) {
	rec := &recordingTB{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != any(rec) {
				panic(p)
			}
		}()
		hasqltest.NewMock(rec, hasqltest.WithDSNParams("hasql.bogus=1"))
	}()
	if len(rec.fatals) != 1 || !strings.Contains(rec.fatals[0], "hasql.bogus") {
		t.Fatalf("fatal errors: %q; want one naming hasql.bogus", rec.fatals)
	}
}

// After a lost connection hasql opens a new session on the same mock: the
// expectations go on where they were.
func TestNewMockReconnectsAfterLoss(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	c, _ := hasql.ConnectorOf(db)
	faults.LoseAfterSend("SELECT 1", 0)
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1))
	mock.ExpectQuery("SELECT 2").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(2))
	mock.ExpectQuery("SELECT 3").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(3))
	var n int
	if err := db.QueryRow("SELECT 1").Scan(&n); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("SELECT 1: %v, want ErrConnectionLost", err)
	}
	for i := 2; i <= 3; i++ {
		if err := db.QueryRow(fmt.Sprintf("SELECT %d", i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d after the loss: %d, %v", i, n, err)
		}
	}
	if s := c.Stats(); s.Terminated != 1 || s.Created != 2 {
		t.Fatalf("stats: created %d, terminated %d; want 2 and 1", s.Created, s.Terminated)
	}
}

func TestWithSqlmockOptions(t *testing.T) {
	db, mock := hasqltest.NewMock(t, hasqltest.WithSqlmock(
		sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual),
		sqlmock.MonitorPingsOption(true)))
	mock.ExpectPing()
	mock.ExpectQuery("SELECT a FROM t WHERE x = ?").WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow(5))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	var a int
	if err := db.QueryRow("SELECT a FROM t WHERE x = ?", 1).Scan(&a); err != nil || a != 5 {
		t.Fatalf("exact match: %d, %v", a, err)
	}
	// With the equality matcher a regular expression matches nothing.
	mock.ExpectQuery("SELECT .*").WillReturnRows(sqlmock.NewRows([]string{"a"}))
	if err := db.QueryRow("SELECT b FROM t").Scan(&a); err == nil {
		t.Fatal("the equality matcher matched a regular expression")
	}
	// The expectation is still pending: the literal text meets it.
	if err := db.QueryRow("SELECT .*").Scan(&a); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("literal match: %v, want sql.ErrNoRows", err)
	}
}

// With the statement cache on (the default) a statement is prepared once
// per session; with hasql.stmtcache=0 once per Prepare, closed at Close.
func TestStmtCacheScripting(t *testing.T) {
	prepareTwice := func(t *testing.T, db *sql.DB) {
		for i := range 2 {
			st, err := db.Prepare("SELECT v FROM t WHERE id = ?")
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := st.QueryRow(i).Scan(&v); err != nil || v != i {
				t.Fatalf("run %d: %d, %v", i, v, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("cache on", func(t *testing.T) {
		db, mock := hasqltest.NewMock(t)
		db.SetMaxOpenConns(1)
		mock.ExpectPrepare("SELECT v FROM t").WillBeClosed()
		mock.ExpectQuery("SELECT v FROM t").WithArgs(0).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(0))
		mock.ExpectQuery("SELECT v FROM t").WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
		prepareTwice(t, db)
		c, _ := hasql.ConnectorOf(db)
		if s := c.Stats(); s.StmtCacheHits != 1 || s.StmtCacheMisses != 1 {
			t.Fatalf("cache hits %d, misses %d; want 1 and 1", s.StmtCacheHits, s.StmtCacheMisses)
		}
		// WillBeClosed is met when the DB closes, before the check.
	})
	for name, opt := range map[string]hasqltest.Option{
		"dsn":    hasqltest.WithDSNParams("hasql.stmtcache=0"),
		"option": hasqltest.WithHasql(hasql.WithStmtCacheSize(0)),
	} {
		t.Run("cache off by "+name, func(t *testing.T) {
			db, mock := hasqltest.NewMock(t, opt)
			for i := range 2 {
				ep := mock.ExpectPrepare("SELECT v FROM t").WillBeClosed()
				ep.ExpectQuery().WithArgs(i).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(i))
			}
			prepareTwice(t, db)
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Fatalf("before the DB closes: %v", err)
			}
		})
	}
}

// A lost connection ends the session: with the cache on, the statement is
// prepared again on the next one.
func TestStmtCachePreparesAgainAfterLoss(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	lose := faults.LoseBeforeSend("UPDATE", 1)
	mock.ExpectPrepare("UPDATE t") // not closed: its connection is gone
	mock.ExpectPrepare("UPDATE t").WillBeClosed()
	mock.ExpectExec("UPDATE t").WithArgs(1).WillReturnResult(sqlmock.NewResult(0, 1))
	st, err := db.Prepare("UPDATE t SET v = v + 1 WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Exec(1); err != nil {
		t.Fatalf("exec: %v (hasql should have run it again on a new session)", err)
	}
	if lose.Fired() != 1 {
		t.Fatalf("fired %d times", lose.Fired())
	}
}

func TestWithDSNParamsCombine(t *testing.T) {
	db, _ := hasqltest.NewMock(t, hasqltest.WithDSNParams("?hasql.stmtcache=3"), hasqltest.WithDSNParams(""),
		hasqltest.WithDSNParams("hasql.retry=idempotent"))
	conn, err := hasql.Acquire(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := hasql.SessionOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.StmtCacheSize(); n != 3 {
		t.Fatalf("statement cache size %d, want 3", n)
	}
}

func TestOpenMock(t *testing.T) {
	db, mock, closeFn, err := hasqltest.OpenMock()
	if err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec("DELETE")
	if _, err := db.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	err = closeFn()
	if err == nil || !strings.Contains(err.Error(), "DELETE") {
		t.Fatalf("closeFn: %v; want the unmet DELETE", err)
	}
	if err := closeFn(); err != nil {
		t.Fatalf("second closeFn: %v", err)
	}

	if _, _, _, err := hasqltest.OpenMock(hasqltest.WithDSNParams("hasql.stmtcache=x")); err == nil || !errors.Is(err, hasql.ErrDSN) {
		t.Fatalf("bad setting: %v, want ErrDSN", err)
	}
}
