// External tests of the application's Session hooks (failover.go: Attach,
// Reconnect) and their checkout scope.
package hasql_test

import (
	"context"
	"errors"
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
