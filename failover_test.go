// External tests of the application's Session hooks (failover.go: Attach,
// Reconnect) and their checkout scope.
package hasql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

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

// TestEveryLossTellsTheFailoverCallbackAndRunsRecovery (OCI TAF, QNX
// ha_attach): every detected loss of a session in use starts a failover
// (FoBegin) and ends it — FoEnd when a new session is bound, FoAbort when
// none is (inside a transaction, while rows stream, work not run again) —
// and the recovery function runs on every loss, whatever the retry rules
// then let reach the application. A recovery function's error comes joined
// with the loss.
func TestEveryLossTellsTheFailoverCallbackAndRunsRecovery(t *testing.T) {
	eof := io.ErrUnexpectedEOF
	errRec := errors.New("recovery: cannot rebuild")
	for _, tc := range []struct {
		name       string
		retry      string
		recovery   error // what the recovery function returns; noRecovery: none
		run        func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error
		wantEvents string
		wantRec    int
		wantErrs   []error // each must be reachable with errors.Is; nil: success
	}{
		{
			name: "sent autocommit work, not re-run, no recovery function", retry: "safe", recovery: noRecovery,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				f.Inject(hasql.FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof})
				_, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
				return err
			},
			wantEvents: "FoBegin,FoAbort", wantErrs: []error{hasql.ErrConnectionLost},
		},
		{
			name: "retry=off: the recovery function runs and a new session is bound", retry: "off", recovery: nil,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				f.Inject(hasql.FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof})
				_, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
				return err
			},
			wantEvents: "FoBegin,FoEnd", wantRec: 1, wantErrs: []error{hasql.ErrConnectionLost},
		},
		{
			name: "inside a transaction", retry: "idempotent", recovery: nil,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				f.Inject(hasql.FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof})
				_, err = tx.ExecContext(ctx, "UPDATE t SET v = 1")
				return err
			},
			wantEvents: "FoBegin,FoAbort", wantRec: 1, wantErrs: []error{hasql.ErrTxNotCommitted},
		},
		{
			name: "the recovery function fails: its error and the loss", retry: "safe", recovery: errRec,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				f.Inject(hasql.FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof})
				_, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
				return err
			},
			wantEvents: "FoBegin,FoAbort", wantRec: 1, wantErrs: []error{errRec, hasql.ErrConnectionLost},
		},
		{
			name: "lost while rows stream", retry: "safe", recovery: nil,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				f.OnQuery = func(*hasql.FakeConn, context.Context, string, []driver.NamedValue) (driver.Rows, error) {
					return &hasql.FakeSliceRows{Cols: []string{"n"}, Vals: [][]driver.Value{{int64(1)}}, CloseErr: eof}, nil
				}
				var n int
				return db.QueryRowContext(ctx, "SELECT n").Scan(&n)
			},
			wantEvents: "FoBegin,FoAbort", wantRec: 1, wantErrs: []error{hasql.ErrConnectionLost},
		},
		{
			name: "work never sent is re-run", retry: "safe", recovery: noRecovery,
			run: func(ctx context.Context, db *sql.DB, f *hasql.FakeDB) error {
				f.Inject(hasql.FakeFault{Kind: "exec", Nth: 1, Kill: true})
				_, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
				return err
			},
			wantEvents: "FoBegin,FoEnd",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := hasql.NoopFakeDB()
			inner, err := (&hasql.FakeDriver{Caps: hasql.FakeCapsContext, DB: f}).OpenConnector("")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var events []string
			recRuns := 0
			opts := []hasql.Option{
				hasql.WithRetry(map[string]hasql.RetryMode{"off": hasql.RetryOff, "safe": hasql.RetrySafe, "idempotent": hasql.RetryIdempotent}[tc.retry]),
				hasql.WithFailoverCallback(func(_ context.Context, _ *hasql.Session, ev hasql.FailoverEvent) error {
					mu.Lock()
					events = append(events, ev.String())
					mu.Unlock()
					return nil
				}),
			}
			if tc.recovery != noRecovery {
				opts = append(opts, hasql.WithRecovery(func(context.Context, *hasql.Session, error) error {
					recRuns++
					return tc.recovery
				}))
			}
			c, err := hasql.NewConnector(inner, opts...)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			err = tc.run(context.Background(), db, f)
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("error %v: want one that wraps %v", err, want)
				}
			}
			if tc.wantErrs == nil && err != nil {
				t.Errorf("error %v, want none", err)
			}
			mu.Lock()
			got := strings.Join(events, ",")
			mu.Unlock()
			if got != tc.wantEvents {
				t.Errorf("failover events %q, want %q", got, tc.wantEvents)
			}
			if recRuns != tc.wantRec {
				t.Errorf("the recovery function ran %d times, want %d", recRuns, tc.wantRec)
			}
		})
	}
}

// noRecovery marks a case without a recovery function.
var noRecovery = errors.New("no recovery function")
