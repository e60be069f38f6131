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
		{"commit lost before it was sent: not committed, not run again", FakeFault{Kind: "commit", Nth: 1, Kill: true}, (*sql.Tx).Commit, ErrTxNotCommitted, 0},
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

// lostRows is a result whose connection dies after its first row.
type lostRows struct {
	c *FakeConn
	n int
}

func (r *lostRows) Columns() []string { return []string{"n"} }
func (r *lostRows) Close() error      { return nil }
func (r *lostRows) Next(dest []driver.Value) error {
	if r.n++; r.n == 1 {
		dest[0] = int64(1)
		return nil
	}
	r.c.Kill()
	return io.ErrUnexpectedEOF
}

// A session that dies inside a transaction before COMMIT was sent: the
// server rolled the transaction back, so the application learns that it
// did not commit (ErrTxNotCommitted), from the call that saw the loss and
// again from a Commit, which does not reach the driver; a Rollback
// succeeds. Each such transaction counts once in Stats.TxNotCommitted. A
// loss at COMMIT after it was sent stays unknown (TxUnknown).
func TestTxLossBeforeCommitIsNotCommitted(t *testing.T) {
	eof := io.ErrUnexpectedEOF
	for _, tc := range []struct {
		name     string
		fault    *FakeFault
		work     func(ctx context.Context, tx *sql.Tx) error
		end      func(*sql.Tx) error
		wantWork error // what the work inside the transaction gets
		wantEnd  error // nil: the end succeeds
		commits  int
		stats    [2]int64 // TxNotCommitted, TxUnknown
	}{
		{"exec lost after it was sent, then commit", &FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof},
			execInTx, (*sql.Tx).Commit, ErrTxNotCommitted, ErrTxNotCommitted, 0, [2]int64{1, 0}},
		{"exec lost before it was sent, then commit", &FakeFault{Kind: "exec", Nth: 1, Kill: true},
			execInTx, (*sql.Tx).Commit, ErrTxNotCommitted, ErrTxNotCommitted, 0, [2]int64{1, 0}},
		{"exec lost, then rollback", &FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof},
			execInTx, (*sql.Tx).Rollback, ErrTxNotCommitted, nil, 0, [2]int64{1, 0}},
		{"rows lost while read, then commit", nil,
			queryInTx, (*sql.Tx).Commit, ErrTxNotCommitted, ErrTxNotCommitted, 0, [2]int64{1, 0}},
		{"commit lost after it was sent", &FakeFault{Kind: "commit", Nth: 1, Sent: true, Kill: true, Err: eof},
			execInTx, (*sql.Tx).Commit, nil, ErrTxResolutionUnknown, 1, [2]int64{0, 1}},
		{"commit lost before it was sent", &FakeFault{Kind: "commit", Nth: 1, Kill: true},
			execInTx, (*sql.Tx).Commit, nil, ErrTxNotCommitted, 0, [2]int64{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb := NoopFakeDB()
			commits := 0
			fdb.OnCommit = func(*FakeConn) error { commits++; return nil }
			fdb.OnQuery = func(c *FakeConn, _ context.Context, _ string, _ []driver.NamedValue) (driver.Rows, error) {
				return &lostRows{c: c}, nil
			}
			if tc.fault != nil {
				fdb.Inject(*tc.fault)
			}
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
			ctx := Idempotent(context.Background())
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.work(ctx, tx)
			if !errorIs(err, tc.wantWork) {
				t.Fatalf("work in the transaction: %v, want %v", err, tc.wantWork)
			}
			err = tc.end(tx)
			if !errorIs(err, tc.wantEnd) {
				t.Fatalf("end: %v, want %v", err, tc.wantEnd)
			}
			if tc.wantEnd == ErrTxNotCommitted && errors.Is(err, ErrTxResolutionUnknown) {
				t.Fatalf("end: %v also says the outcome is unknown", err)
			}
			var lost *LostError
			if err != nil && (!errors.As(err, &lost) || !lost.InTx || lost.Err == nil) {
				t.Fatalf("end: %v is not a *LostError inside a transaction wrapping the driver's error", err)
			}
			if errors.Is(err, driver.ErrBadConn) {
				t.Fatalf("end: %v matches driver.ErrBadConn", err)
			}
			if commits != tc.commits {
				t.Errorf("%d commits reached the driver, want %d", commits, tc.commits)
			}
			st := c.Stats()
			if got := [2]int64{st.TxNotCommitted, st.TxUnknown}; got != tc.stats {
				t.Errorf("Stats TxNotCommitted, TxUnknown = %v, want %v", got, tc.stats)
			}
			if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
				t.Errorf("Rollback after the end: %v, want sql.ErrTxDone", err)
			}
			// The pool goes on with a new session.
			if _, err := db.ExecContext(ctx, "UPDATE after"); err != nil {
				t.Fatalf("exec after the loss: %v", err)
			}
		})
	}
}

func execInTx(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "UPDATE t SET v = 1")
	return err
}

func queryInTx(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT n FROM t")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// errorIs is errors.Is with nil meaning "no error".
func errorIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}
