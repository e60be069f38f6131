// External tests of the call pipeline through the public fault-injection kit
// (hasqltest): what a call gets when its session dies under it.
package hasql_test

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

// TestLostErrorSaysWhatTheCallerMayConclude pins the error model: a call
// whose session died gets a *LostError that wraps the sentinel for what the
// caller may conclude and the driver's error, says whether the work was sent
// and whether it was in a transaction, and never matches driver.ErrBadConn
// (database/sql would run the work again on its own).
func TestLostErrorSaysWhatTheCallerMayConclude(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(f *hasqltest.Faults, mock sqlmock.Sqlmock)
		run      func(db *sql.DB) error
		sentinel error
		sent     bool
		inTx     bool
	}{
		{
			name: "autocommit write lost after it was sent",
			setup: func(f *hasqltest.Faults, mock sqlmock.Sqlmock) {
				f.LoseAfterSend("INSERT", 1)
				mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(1, 1))
			},
			run: func(db *sql.DB) error {
				_, err := db.Exec("INSERT INTO t VALUES (1)")
				return err
			},
			sentinel: hasql.ErrConnectionLost, sent: true,
		},
		{
			name: "work lost before it was sent on every new session",
			setup: func(f *hasqltest.Faults, mock sqlmock.Sqlmock) {
				f.LoseBeforeSend("INSERT", 0)
			},
			run: func(db *sql.DB) error {
				_, err := db.Exec("INSERT INTO t VALUES (1)")
				return err
			},
			sentinel: hasql.ErrConnectionLost, sent: false,
		},
		{
			name: "statement in a transaction lost after it was sent",
			setup: func(f *hasqltest.Faults, mock sqlmock.Sqlmock) {
				f.LoseAfterSend("UPDATE", 1)
				mock.ExpectBegin()
				mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
			},
			run: func(db *sql.DB) error {
				tx, err := db.Begin()
				if err != nil {
					return err
				}
				defer tx.Rollback()
				_, err = tx.Exec("UPDATE t SET v = 2")
				return err
			},
			sentinel: hasql.ErrTxNotCommitted, sent: true, inTx: true,
		},
		{
			name: "commit lost",
			setup: func(f *hasqltest.Faults, mock sqlmock.Sqlmock) {
				f.LoseAtCommit(1)
				mock.ExpectBegin()
				mock.ExpectCommit()
			},
			run: func(db *sql.DB) error {
				tx, err := db.Begin()
				if err != nil {
					return err
				}
				return tx.Commit()
			},
			sentinel: hasql.ErrTxResolutionUnknown, sent: true, inTx: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(f))
			tc.setup(f, mock)
			err := tc.run(db)
			var lost *hasql.LostError
			if !errors.As(err, &lost) {
				t.Fatalf("error = %v (%T), want a *hasql.LostError", err, err)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tc.sentinel, err)
			}
			if errors.Is(err, driver.ErrBadConn) {
				t.Errorf("errors.Is(err, driver.ErrBadConn) = true: database/sql would re-run the work; err = %v", err)
			}
			if lost.Sent != tc.sent || lost.InTx != tc.inTx {
				t.Errorf("Sent, InTx = %v, %v; want %v, %v", lost.Sent, lost.InTx, tc.sent, tc.inTx)
			}
			if lost.SafeToRetry() != !tc.sent {
				t.Errorf("SafeToRetry() = %v, want %v", lost.SafeToRetry(), !tc.sent)
			}
			// driver.ErrBadConn itself is kept in Err but hidden from errors.Is.
			if lost.Err == nil || !errors.Is(err, lost.Err) && lost.Err != driver.ErrBadConn {
				t.Errorf("the driver's error is not kept: Err = %v", lost.Err)
			}
			if !strings.HasPrefix(err.Error(), "hasql: ") {
				t.Errorf("message %q does not start with \"hasql: \"", err.Error())
			}
		})
	}
}

// TestLostErrorBuiltByHand checks LostError's methods on a value built as an
// application's own test might build one.
func TestLostErrorBuiltByHand(t *testing.T) {
	cause := errors.New("EOF from server")
	for _, tc := range []struct {
		e        *hasql.LostError
		sentinel error
		text     string
	}{
		{&hasql.LostError{Host: "db1:5432", Sent: false, Err: cause}, hasql.ErrConnectionLost, "hasql: connection to db1:5432 lost before the work was sent; it did not run: EOF from server"},
		{&hasql.LostError{Host: "db1:5432", Sent: true, Err: cause}, hasql.ErrConnectionLost, "hasql: connection to db1:5432 lost; the work may or may not have run: EOF from server"},
		{&hasql.LostError{Sent: true, InTx: true, Err: driver.ErrBadConn}, hasql.ErrTxResolutionUnknown, "hasql: connection lost during a transaction; its outcome is unknown: driver: bad connection"},
	} {
		if got := tc.e.Error(); got != tc.text {
			t.Errorf("Error() = %q, want %q", got, tc.text)
		}
		if !errors.Is(tc.e, tc.sentinel) || !errors.Is(tc.e, tc.e.Err) && tc.e.Err != driver.ErrBadConn {
			t.Errorf("%v: does not wrap %v and its cause", tc.e, tc.sentinel)
		}
		if errors.Is(tc.e, driver.ErrBadConn) {
			t.Errorf("%v matches driver.ErrBadConn", tc.e)
		}
	}
}
