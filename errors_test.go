package hasql_test

import (
	"context"
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
			sentinel: hasql.ErrTxResolutionUnknown, sent: true, inTx: true,
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

// TestUserFunctionPanicsFailOnlyTheirCall pins the one panic policy: every
// function of the application's that hasql calls may panic; the call it
// served fails with ErrCallbackPanic, the process lives, and the panic is
// counted in Stats.CallbackPanics.
func TestUserFunctionPanicsFailOnlyTheirCall(t *testing.T) {
	boom := func() { panic("boom") }
	cases := []struct {
		name  string
		opts  []hasql.Option
		fault func(f *hasqltest.Faults)
	}{
		{"failover callback", []hasql.Option{hasql.WithRetry(hasql.RetryIdempotent), hasql.WithFailoverCallback(func(ctx context.Context, s *hasql.Session, ev hasql.FailoverEvent) error {
			boom()
			return nil
		})}, func(f *hasqltest.Faults) { f.LoseBeforeSend("SELECT", 1) }},
		{"recovery function", []hasql.Option{hasql.WithRecovery(func(ctx context.Context, s *hasql.Session, cause error) error {
			boom()
			return nil
		})}, func(f *hasqltest.Faults) { f.LoseBeforeSend("SELECT", 1) }},
		{"session callback", []hasql.Option{hasql.WithSessionCallback(func(ctx context.Context, s *hasql.Session, tag string) error {
			boom()
			return nil
		})}, func(*hasqltest.Faults) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(f), hasqltest.WithHasql(tc.opts...))
			tc.fault(f)
			_ = mock // the call fails before any query reaches the driver
			var x int
			err := db.QueryRow("SELECT 1").Scan(&x)
			if !errors.Is(err, hasql.ErrCallbackPanic) || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("error = %v, want one wrapping ErrCallbackPanic that quotes the panic", err)
			}
			c, _ := hasql.ConnectorOf(db)
			if n := c.Stats().CallbackPanics; n != 1 {
				t.Errorf("Stats().CallbackPanics = %d, want 1", n)
			}
		})
	}
}

// TestEventReceiverPanicIsCountedAndLaterEventsArrive: the event receiver
// serves no call, so its panic is seen in Stats, and delivery goes on.
func TestEventReceiverPanicIsCountedAndLaterEventsArrive(t *testing.T) {
	got := make(chan hasql.Event, 4)
	n := 0
	db, _ := hasqltest.NewMock(t, hasqltest.WithHasql(hasql.WithEvents(func(e hasql.Event) {
		n++
		if n == 1 {
			panic("receiver bug")
		}
		got <- e
	})))
	c, _ := hasql.ConnectorOf(db)
	c.MarkHostDown("db1:5432") // HostDown (panics), then SessionsPurged
	e := <-got
	if e.Kind != hasql.SessionsPurged {
		t.Fatalf("after the panic got %v, want SessionsPurged", e.Kind)
	}
	if p := c.Stats().CallbackPanics; p != 1 {
		t.Errorf("Stats().CallbackPanics = %d, want 1", p)
	}
}

// TestSessionValidOnlyWhileItsCheckoutLasts (QNX ha_attach's EBADF, PCP's
// PM_ERR_NOCONTEXT): once the *sql.Conn is closed, every Session method
// fails with ErrSessionClosed, and a recovery function attached during the
// checkout does not carry over to the handle's next user.
func TestSessionValidOnlyWhileItsCheckoutLasts(t *testing.T) {
	ctx := context.Background()
	f := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(f))
	db.SetMaxOpenConns(1) // the next checkout gets the same handle
	conn, err := hasql.Acquire(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	s, err := hasql.SessionOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	recovered := 0
	if err := s.Attach(func(context.Context, *hasql.Session, error) error { recovered++; return nil }, 0); err != nil {
		t.Fatalf("Attach while checked out: %v", err)
	}
	conn.Close()

	for name, err := range map[string]error{
		"Attach":    s.Attach(func(context.Context, *hasql.Session, error) error { return nil }, hasql.ReplaceRecovery),
		"Reconnect": s.Reconnect(ctx),
		"SetTag":    s.SetTag("a=b"),
		"Exec":      s.Exec(ctx, "SET x = 1"),
	} {
		if !errors.Is(err, hasql.ErrSessionClosed) {
			t.Errorf("%s after the *sql.Conn was closed: %v, want ErrSessionClosed", name, err)
		}
	}
	if s.Unwrap() != nil || s.Tag() != "" || s.TagFound() {
		t.Error("a closed Session still shows a connection")
	}

	// The handle's next user does not inherit the recovery function.
	f.LoseAfterSend("UPDATE", 1)
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	conn2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := conn2.ExecContext(ctx, "UPDATE t SET v = 1"); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatalf("lost UPDATE: %v, want ErrConnectionLost", err)
	}
	if recovered != 0 {
		t.Errorf("the recovery function attached in an earlier checkout ran %d times", recovered)
	}
}
