package hasqltest_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

var (
	errBoom  = errors.New("boom")
	countSeq atomic.Int64
)

// openCount opens hasql over the counting driver, with f attached.
func openCount(t *testing.T, f *hasqltest.Faults, opts ...hasql.Option) (*sql.DB, string) {
	t.Helper()
	dsn := fmt.Sprintf("count-%d", countSeq.Add(1))
	db, err := hasql.Open("hasqltest-count", dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := f.Attach(db); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

func oneRow(columns ...string) *sqlmock.Rows { return sqlmock.NewRows(columns).AddRow(1) }

// The four kinds of work, each run once through db with the query text
// "<verb> t".
var works = []struct {
	fn     hasql.Fn
	verb   string
	expect func(mock sqlmock.Sqlmock, prepares, times int)
	run    func(db *sql.DB, ctx context.Context) error
}{
	{hasql.FnExec, "UPDATE", func(mock sqlmock.Sqlmock, _, times int) {
		for range times {
			mock.ExpectExec("UPDATE t").WillReturnResult(sqlmock.NewResult(0, 1))
		}
	}, func(db *sql.DB, ctx context.Context) error {
		_, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
		return err
	}},
	{hasql.FnQuery, "SELECT", func(mock sqlmock.Sqlmock, _, times int) {
		for range times {
			mock.ExpectQuery("SELECT t").WillReturnRows(oneRow("v"))
		}
	}, func(db *sql.DB, ctx context.Context) error {
		var v int
		return db.QueryRowContext(ctx, "SELECT t.v FROM t").Scan(&v)
	}},
	{hasql.FnStmtExec, "DELETE", func(mock sqlmock.Sqlmock, prepares, times int) {
		for range prepares {
			mock.ExpectPrepare("DELETE t")
		}
		for range times {
			mock.ExpectExec("DELETE t").WillReturnResult(sqlmock.NewResult(0, 1))
		}
	}, func(db *sql.DB, ctx context.Context) error {
		st, err := db.PrepareContext(ctx, "DELETE t.* FROM t")
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.ExecContext(ctx)
		return err
	}},
	{hasql.FnStmtQuery, "WITH", func(mock sqlmock.Sqlmock, prepares, times int) {
		for range prepares {
			mock.ExpectPrepare("WITH t")
		}
		for range times {
			mock.ExpectQuery("WITH t").WillReturnRows(oneRow("v"))
		}
	}, func(db *sql.DB, ctx context.Context) error {
		st, err := db.PrepareContext(ctx, "WITH t AS (SELECT 1 AS v) SELECT v FROM t")
		if err != nil {
			return err
		}
		defer st.Close()
		var v int
		return st.QueryRowContext(ctx).Scan(&v)
	}},
}

// LoseBeforeSend is transparent outside a transaction: hasql runs the work
// again on a new session, and the work runs once.
func TestLoseBeforeSendIsTransparent(t *testing.T) {
	for _, w := range works {
		for _, mode := range []hasql.RetryMode{hasql.RetrySafe, hasql.RetryIdempotent, hasql.RetryOff} {
			t.Run(fmt.Sprintf("%v/%v", w.fn, mode), func(t *testing.T) {
				faults := hasqltest.NewFaults()
				db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults), hasqltest.WithHasql(hasql.WithRetry(mode)))
				c, _ := hasql.ConnectorOf(db)
				lose := faults.LoseBeforeSend("^"+w.verb+" ", 1)
				// Statements are prepared again on the new session.
				w.expect(mock, 2, 1)
				if err := w.run(db, context.Background()); err != nil {
					t.Fatalf("%v: %v", w.fn, err)
				}
				if lose.Fired() != 1 || lose.Seen() != 2 {
					t.Fatalf("fired %d, seen %d; want 1 and 2", lose.Fired(), lose.Seen())
				}
				if s := c.Stats(); s.Terminated != 1 {
					t.Fatalf("terminated %d sessions, want 1", s.Terminated)
				}
				// With retries off, database/sql's own retry on
				// driver.ErrBadConn ran it again, as without hasql.
			})
		}
	}
}

// LoseAfterSend: the work ran once and the application is told the outcome
// is unknown.
func TestLoseAfterSendReportsConnectionLost(t *testing.T) {
	for _, w := range works {
		t.Run(w.fn.String(), func(t *testing.T) {
			faults := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
			lose := faults.LoseAfterSend(w.verb, 1)
			w.expect(mock, 1, 1) // once: sqlmock fails a second run
			err := w.run(db, context.Background())
			if !errors.Is(err, hasql.ErrConnectionLost) {
				t.Fatalf("%v: %v, want ErrConnectionLost", w.fn, err)
			}
			var le *hasqltest.LostError
			if !errors.Is(err, hasqltest.ErrInjected) || !errors.Is(err, io.ErrUnexpectedEOF) ||
				!errors.As(err, &le) || le.Fn != w.fn || !strings.HasPrefix(le.Query, w.verb) {
				t.Fatalf("%v: %v does not reach the injected *LostError (%+v)", w.fn, err, le)
			}
			if errors.Is(err, driver.ErrBadConn) {
				t.Fatalf("%v: %v wraps driver.ErrBadConn, which says the work never ran", w.fn, err)
			}
			if lose.Fired() != 1 {
				t.Fatalf("fired %d", lose.Fired())
			}
			// The DB goes on working on a new session.
			mock.ExpectExec("SELECT 1").WillReturnResult(sqlmock.NewResult(0, 0))
			if _, err := db.Exec("SELECT 1"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// With hasql.retry=idempotent, work whose context is marked Idempotent runs
// again after a LoseAfterSend; unmarked work does not.
func TestLoseAfterSendIdempotent(t *testing.T) {
	for _, w := range works {
		t.Run(w.fn.String(), func(t *testing.T) {
			faults := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults),
				hasqltest.WithHasql(hasql.WithRetry(hasql.RetryIdempotent)))
			lose := faults.LoseAfterSend(w.verb, 1)
			// Run, lost, and run again on a new session (statements are
			// prepared there again).
			w.expect(mock, 1, 1)
			w.expect(mock, 1, 1)
			if err := w.run(db, hasql.Idempotent(context.Background())); err != nil {
				t.Fatalf("%v marked idempotent: %v", w.fn, err)
			}
			if lose.Fired() != 1 || lose.Seen() != 2 {
				t.Fatalf("fired %d, seen %d; want 1 and 2", lose.Fired(), lose.Seen())
			}
		})
	}
	t.Run("unmarked", func(t *testing.T) {
		faults := hasqltest.NewFaults()
		db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults),
			hasqltest.WithHasql(hasql.WithRetry(hasql.RetryIdempotent)))
		faults.LoseAfterSend("UPDATE", 1)
		mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
		if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, hasql.ErrConnectionLost) {
			t.Fatalf("unmarked: %v, want ErrConnectionLost", err)
		}
	})
	t.Run("safe mode ignores the mark", func(t *testing.T) {
		faults := hasqltest.NewFaults()
		db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
		faults.LoseAfterSend("UPDATE", 1)
		mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
		if _, err := db.ExecContext(hasql.Idempotent(context.Background()), "UPDATE t SET v = 1"); !errors.Is(err, hasql.ErrConnectionLost) {
			t.Fatalf("retry=safe: %v, want ErrConnectionLost", err)
		}
	})
}

func TestLoseAtCommit(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	lose := faults.LoseAtCommit(2)
	for range 2 {
		mock.ExpectBegin()
		mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(1, 1))
		mock.ExpectCommit() // the commit reaches the driver both times
	}
	for i := 1; i <= 2; i++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		err = tx.Commit()
		switch {
		case i == 1 && err != nil:
			t.Fatalf("first commit: %v", err)
		case i == 2 && !errors.Is(err, hasql.ErrTxResolutionUnknown):
			t.Fatalf("second commit: %v, want ErrTxResolutionUnknown", err)
		case i == 2 && (!errors.Is(err, hasqltest.ErrInjected) || errors.Is(err, hasql.ErrConnectionLost)):
			t.Fatalf("second commit: %v", err)
		}
	}
	if lose.Fired() != 1 || lose.Seen() != 2 {
		t.Fatalf("fired %d, seen %d", lose.Fired(), lose.Seen())
	}
	if got := faults.String(); got != "LoseAtCommit(2) fired 1 of 2\n" {
		t.Fatalf("String() = %q", got)
	}
	// The Tx is over, and the DB works on.
	mock.ExpectQuery("SELECT").WillReturnRows(oneRow("n"))
	var n int
	if err := db.QueryRow("SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
}

// A loss before the commit is sent: the commit never reaches the driver,
// and the application learns that the transaction did not commit.
func TestLoseBeforeCommit(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	faults.LoseBeforeSend("", 1).On(hasql.FnCommit)
	mock.ExpectBegin()
	mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(1, 1))
	// No ExpectCommit: the driver never sees it. (hasql ends the session;
	// the server would roll back.)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, hasql.ErrTxNotCommitted) || errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("commit: %v, want ErrTxNotCommitted", err)
	}
}

// Work inside a transaction is never run again: a loss before it was sent
// still ends the transaction.
func TestLoseBeforeSendInTransaction(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	faults.LoseBeforeSend("INSERT", 1)
	mock.ExpectBegin()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); !errors.Is(err, hasql.ErrTxNotCommitted) {
		t.Fatalf("insert in a transaction: %v, want ErrTxNotCommitted", err)
	}
	// The rollback the application then makes finds the session gone and
	// succeeds: the server rolled back with the connection.
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
}

func TestNthAndPattern(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	third := faults.Fail("^UPDATE", 3, errBoom)
	every := faults.Fail("DELETE", 0, errBoom)
	for i := 1; i <= 5; i++ {
		mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(0, 1))
		if _, err := db.Exec("INSERT INTO t VALUES (1)"); err != nil {
			t.Fatalf("INSERT %d: %v (matches no rule)", i, err)
		}
		if i != 3 {
			mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
		}
		_, err := db.Exec("UPDATE t SET v = 1")
		if (i == 3) != errors.Is(err, errBoom) {
			t.Fatalf("UPDATE %d: %v", i, err)
		}
		if _, err := db.Exec("DELETE FROM t"); !errors.Is(err, errBoom) {
			t.Fatalf("DELETE %d: %v", i, err)
		}
	}
	if third.Fired() != 1 || third.Seen() != 5 || every.Fired() != 5 || every.Seen() != 5 {
		t.Fatalf("counts: %v", faults)
	}
	if got := third.String(); got != `Fail("^UPDATE", 3, boom)` {
		t.Fatalf("String() = %s", got)
	}
}

// Fail returns its error as it is: hasql classifies it as the driver's.
func TestFailClassification(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	faults.Fail("UPDATE", 1, errBoom)
	faults.Fail("UPDATE", 2, fmt.Errorf("read: %w", io.ErrUnexpectedEOF)) // not retried: it may have run
	_, err := db.Exec("UPDATE t SET v = 1")
	if !errors.Is(err, errBoom) || errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("ordinary error: %v", err)
	}
	_, err = db.Exec("UPDATE t SET v = 1")
	if !errors.Is(err, hasql.ErrConnectionLost) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("dead-connection error: %v, want ErrConnectionLost", err)
	}
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
}

// Every rule counts the calls it matches; when two are due on one call, the
// one added first decides and the other has had its turn.
func TestRulesOnOneCall(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	lose := faults.LoseBeforeSend("UPDATE", 1)
	fail := faults.Fail("UPDATE", 1, errBoom)
	second := faults.Fail("UPDATE", 3, errBoom)
	// Call 1 is lost; hasql's retry, call 2, goes through.
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if lose.Fired() != 1 || fail.Fired() != 0 || lose.Seen() != 2 || fail.Seen() != 2 {
		t.Fatalf("counts: %v", faults)
	}
	// Call 3.
	if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, errBoom) {
		t.Fatalf("%v, want boom", err)
	}
	if second.Fired() != 1 {
		t.Fatalf("counts: %v", faults)
	}
}

func TestLatency(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	slow := faults.Latency("SELECT", 50*time.Millisecond)
	mock.ExpectQuery("SELECT").WillReturnRows(oneRow("v"))
	var v int
	start := time.Now()
	if err := db.QueryRow("SELECT v FROM t").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("query took %v, want at least 50ms", d)
	}
	// Not matching: no delay.
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if slow.Fired() != 1 || slow.Seen() != 1 {
		t.Fatalf("the latency rule saw %d and fired %d times, want once each (only the SELECT matches)", slow.Seen(), slow.Fired())
	}
	// A context that ends first fails the call with its error; the driver
	// is not called.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with a short deadline: %v", err)
	}
	if slow.Fired() != 2 {
		t.Fatalf("fired %d", slow.Fired())
	}
}

// Latency on connects: Rule.On widens a rule beyond the work calls.
func TestLatencyOnConnect(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	slow := faults.Latency("", 30*time.Millisecond).On(hasql.FnConnect)
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	start := time.Now()
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || slow.Fired() != 1 {
		t.Fatalf("first exec took %v, fired %d", d, slow.Fired())
	}
}

// A prepare lost before it was sent is prepared again (preparing changes no
// data).
func TestLoseBeforeSendOnPrepare(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	lose := faults.LoseBeforeSend("UPDATE", 1).On(hasql.FnPrepare)
	mock.ExpectPrepare("UPDATE").ExpectExec().WillReturnResult(sqlmock.NewResult(0, 1))
	st, err := db.Prepare("UPDATE t SET v = 1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Exec(); err != nil {
		t.Fatal(err)
	}
	if lose.Fired() != 1 || lose.Seen() != 2 {
		t.Fatalf("counts: %v", faults)
	}
}

func TestReset(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	fail := faults.Fail("", 0, errBoom)
	if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	faults.Reset()
	if faults.String() != "" {
		t.Fatalf("rules after Reset: %q", faults.String())
	}
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if fail.Fired() != 1 {
		t.Fatalf("fired %d after Reset, want the 1 from before", fail.Fired())
	}
}

func TestAttach(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t)
	c, _ := hasql.ConnectorOf(db)
	// A callback registered before: Attach chains to it.
	var seen atomic.Int64
	c.Callbacks().Register(hasql.FnExec, hasql.Exit, func(call *hasql.Call) error {
		seen.Add(1)
		return hasql.Continue
	})
	c.Callbacks().Register(hasql.FnExec, hasql.Replace, func(call *hasql.Call) error {
		if call.Query == "MAGIC" {
			call.Result = driver.RowsAffected(42)
			return nil
		}
		return hasql.Continue
	})
	if err := faults.Attach(db); err != nil {
		t.Fatal(err)
	}
	if err := faults.Attach(db); err == nil {
		t.Fatal("a second Attach to the same DB succeeded")
	}
	faults.Fail("UPDATE", 1, errBoom)
	if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	res, err := db.Exec("MAGIC")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 42 {
		t.Fatalf("the earlier replacement callback did not run: %d", n)
	}
	if seen.Load() != 2 {
		t.Fatalf("the earlier exit callback ran %d times, want 2", seen.Load())
	}
	_ = mock

	plain, _, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := faults.Attach(plain); err == nil || !strings.Contains(err.Error(), "not a hasql DB") {
		t.Fatalf("Attach to a plain sqlmock DB: %v", err)
	}
}

// One Faults may serve several DBs at once and counts their calls together.
func TestAttachSeveral(t *testing.T) {
	faults := hasqltest.NewFaults()
	db1, mock1 := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	db2, mock2 := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	second := faults.Fail("UPDATE", 2, errBoom)
	mock1.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db1.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Exec("UPDATE t SET v = 1"); !errors.Is(err, errBoom) {
		t.Fatalf("db2: %v", err)
	}
	_ = mock2
	if second.Seen() != 2 {
		t.Fatalf("seen %d", second.Seen())
	}
}

// As a callback package, loaded by name.
func TestRegisterPackage(t *testing.T) {
	faults := hasqltest.NewFaults()
	name := fmt.Sprintf("hasqltest-faults-test-%d", countSeq.Add(1)) // one per run (-count)
	faults.Register(name)
	defer func() {
		if recover() == nil {
			t.Error("registering the name twice did not panic")
		}
	}()
	for _, opt := range []hasqltest.Option{
		hasqltest.WithHasql(hasql.WithCallbackPackages(name)),
		hasqltest.WithDSNParams("hasql.callbacks=" + name),
	} {
		db, mock := hasqltest.NewMock(t, opt)
		lose := faults.LoseAfterSend("UPDATE", 1)
		mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
		if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, hasql.ErrConnectionLost) {
			t.Fatalf("%v, want ErrConnectionLost", err)
		}
		if lose.Fired() != 1 {
			t.Fatalf("fired %d", lose.Fired())
		}
		faults.Reset()
	}
	faults.Register(name)
}

// Over a driver that is not sqlmock: the work runs exactly as often as the
// retry rules say.
func TestFaultsOverAnotherDriver(t *testing.T) {
	ctx := context.Background()
	faults := hasqltest.NewFaults()
	db, dsn := openCount(t, faults, hasql.WithRetry(hasql.RetryIdempotent))

	faults.LoseBeforeSend("^UPDATE a", 1)
	if _, err := db.ExecContext(ctx, "UPDATE a"); err != nil {
		t.Fatalf("lost before send: %v", err)
	}
	faults.LoseAfterSend("^UPDATE b", 1)
	if _, err := db.ExecContext(ctx, "UPDATE b"); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("lost after send: %v", err)
	}
	faults.LoseAfterSend("^UPDATE c", 1)
	if _, err := db.ExecContext(hasql.Idempotent(ctx), "UPDATE c"); err != nil {
		t.Fatalf("lost after send, idempotent: %v", err)
	}
	faults.LoseAtCommit(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx.ExecContext(ctx, "UPDATE d")
	if err := tx.Commit(); !errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatalf("commit: %v", err)
	}
	for q, want := range map[string]int{"UPDATE a": 1, "UPDATE b": 1, "UPDATE c": 2, "UPDATE d": 1, "COMMIT": 1, "ROLLBACK": 0} {
		if got := counting.runs(dsn, q); got != want {
			t.Errorf("%s ran %d times, want %d", q, got, want)
		}
	}
	// Reading through the driver: a query rule fires on the query path.
	faults.LoseAfterSend("^SELECT n", 1)
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n UPDATE c").Scan(&n); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("query: %v", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT n UPDATE c").Scan(&n); err != nil || n != 2 {
		t.Fatalf("query after the loss: %d, %v", n, err)
	}
}

func TestRulePanics(t *testing.T) {
	faults := hasqltest.NewFaults()
	for name, f := range map[string]func(){
		"bad pattern": func() { faults.LoseBeforeSend("(", 1) },
		"negative":    func() { faults.LoseAfterSend("", -1) },
		"nil error":   func() { faults.Fail("", 1, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// Rules are counted exactly under concurrent calls, while other rules are
// added and reset.
func TestFaultsConcurrent(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, _ := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	errTenth := errors.New("tenth")
	tenth := faults.Fail("UPDATE", 10, errTenth)
	every := faults.Fail("UPDATE", 0, errBoom)
	const workers, calls = 8, 50
	var wg sync.WaitGroup
	var tenths atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				_, err := db.Exec("UPDATE t SET v = 1")
				switch {
				case errors.Is(err, errTenth):
					tenths.Add(1)
				case !errors.Is(err, errBoom):
					t.Errorf("exec: %v", err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // churn: rules that never match, added and dropped
		defer wg.Done()
		for i := range 200 {
			faults.Latency("^never$", time.Hour)
			if i%10 == 0 {
				_ = tenth.Fired()
				_ = faults.String()
			}
		}
	}()
	wg.Wait()
	if tenths.Load() != 1 || tenth.Fired() != 1 || tenth.Seen() != workers*calls {
		t.Fatalf("nth 10: %d calls got its error; %v", tenths.Load(), tenth)
	}
	if every.Fired() != workers*calls-1 {
		t.Fatalf("every: fired %d, want %d", every.Fired(), workers*calls-1)
	}
}
