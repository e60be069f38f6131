package hasql

// Tests of the handle's transactions (tx.go) on fakedb: how Commit and
// Rollback end when the session dies under them. Neither is ever run again.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"testing"
)

func TestTxEndsOnALostSession(t *testing.T) {
	errOrdinary := errors.New("fake: serialization failure")
	for _, tc := range []struct {
		name    string
		fault   FakeFault
		end     func(*sql.Tx) error
		wantErr error // nil: the end succeeds
		commits int   // commits that reached the server
	}{
		{"commit lost after it was sent: outcome unknown", FakeFault{Kind: "commit", Nth: 1, Sent: true, Kill: true, Err: io.ErrUnexpectedEOF}, (*sql.Tx).Commit, ErrTxResolutionUnknown, 1},
		{"commit lost before it was sent: not run again", FakeFault{Kind: "commit", Nth: 1, Kill: true}, (*sql.Tx).Commit, ErrTxResolutionUnknown, 0},
		{"commit refused: the server's error", FakeFault{Kind: "commit", Nth: 1, Err: errOrdinary}, (*sql.Tx).Commit, errOrdinary, 0},
		{"rollback on a dead session has happened", FakeFault{Kind: "rollback", Nth: 1, Kill: true}, (*sql.Tx).Rollback, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb := NoopFakeDB()
			commits := 0
			fdb.OnCommit = func(*FakeConn) error { commits++; return nil }
			fdb.Inject(tc.fault)
			inner, err := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewConnector(inner, WithRetry(RetryIdempotent))
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			tx, err := db.BeginTx(Idempotent(context.Background()), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.end(tx)
			if commits != tc.commits {
				t.Errorf("%d commits reached the server, want %d (a commit is never run again)", commits, tc.commits)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("error %v, want nil", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if errors.Is(err, driver.ErrBadConn) {
				t.Fatalf("error %v matches driver.ErrBadConn", err)
			}
			var lost *LostError
			if errors.As(err, &lost) && !lost.InTx {
				t.Errorf("LostError at the end of a transaction with InTx false: %v", err)
			}
			// The *sql.DB goes on: the next transaction gets a new session.
			tx2, err := db.Begin()
			if err != nil {
				t.Fatalf("Begin after the loss: %v", err)
			}
			if err := tx2.Commit(); err != nil {
				t.Fatalf("Commit after the loss: %v", err)
			}
		})
	}
}
