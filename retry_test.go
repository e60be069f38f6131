package hasql

// Tests of the retry rules (retry.go): which lost work the pipeline runs
// again, and what the caller gets when it does not, on fakedb with injected
// losses. One row per rule; the error model itself is in errors_test.go and
// pipeline_test.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"testing"
)

func TestRetryRules(t *testing.T) {
	eof := io.ErrUnexpectedEOF // what a driver says when the server vanished mid-reply
	for _, tc := range []struct {
		name     string
		retry    RetryMode
		idem     bool      // the context is marked Idempotent
		fault    FakeFault // injected on the first exec
		wantRuns int       // execs that reached the server
		wantErr  error     // nil: the call succeeds
		sent     bool      // the *LostError's Sent
	}{
		{"never sent: run again (safe)", RetrySafe, false, FakeFault{Kind: "exec", Nth: 1, Kill: true}, 1, nil, false},
		{"sent, not idempotent: lost (safe)", RetrySafe, false, FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}, 1, ErrConnectionLost, true},
		{"sent, idempotent but mode safe: lost", RetrySafe, true, FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}, 1, ErrConnectionLost, true},
		{"sent, idempotent: run again (idempotent)", RetryIdempotent, true, FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}, 2, nil, false},
		{"sent, not marked: lost (idempotent)", RetryIdempotent, false, FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}, 1, ErrConnectionLost, true},
		{"never sent, retry off: database/sql's own retry", RetryOff, false, FakeFault{Kind: "exec", Nth: 1, Kill: true}, 1, nil, false},
		{"sent, retry off: lost", RetryOff, true, FakeFault{Kind: "exec", Nth: 1, Sent: true, Kill: true, Err: eof}, 1, ErrConnectionLost, true},
		{"lost on every session: bounded", RetrySafe, false, FakeFault{Kind: "exec", Kill: true}, 0, ErrConnectionLost, false},
		{"ordinary error: as it came", RetryIdempotent, true, FakeFault{Kind: "exec", Nth: 1, Err: errFakeOrdinary}, 0, errFakeOrdinary, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb := NoopFakeDB()
			runs := 0
			fdb.OnExec = func(*FakeConn, context.Context, string, []driver.NamedValue) (driver.Result, error) {
				runs++
				return driver.RowsAffected(1), nil
			}
			fdb.Inject(tc.fault)
			inner, err := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewConnector(inner, WithRetry(tc.retry))
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			ctx := context.Background()
			if tc.idem {
				ctx = Idempotent(ctx)
			}
			_, err = db.ExecContext(ctx, "UPDATE t SET v = v + 1")
			if runs != tc.wantRuns {
				t.Errorf("the work reached the server %d times, want %d", runs, tc.wantRuns)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("error %v, want the work run again unseen", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			var lost *LostError
			if tc.wantErr == ErrConnectionLost {
				if !errors.As(err, &lost) || lost.Sent != tc.sent {
					t.Fatalf("error %v: want a *LostError with Sent=%v", err, tc.sent)
				}
				if errors.Is(err, driver.ErrBadConn) {
					t.Fatalf("error %v matches driver.ErrBadConn: database/sql would run the work again", err)
				}
			} else if errors.As(err, &lost) {
				t.Fatalf("an ordinary error became %v", err)
			}
		})
	}
}

var errFakeOrdinary = errors.New("fake: duplicate key")

// TestRetryMayRerun pins the one rule shared by calls and by the re-run of a
// query whose connection was lost at Rows.Close.
func TestRetryMayRerun(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		mode    RetryMode
		ctx     context.Context
		notSent bool
		want    bool
	}{
		{RetrySafe, live, true, true},
		{RetrySafe, Idempotent(live), false, false},
		{RetryIdempotent, Idempotent(live), false, true},
		{RetryIdempotent, live, false, false},
		{RetryOff, live, true, false},
		{RetrySafe, ended, true, false},
		{RetryIdempotent, Idempotent(ended), false, false},
	} {
		c := &Connector{cfg: config{retry: tc.mode}}
		if got := c.mayRerun(tc.ctx, tc.notSent); got != tc.want {
			t.Errorf("mayRerun(mode %v, idempotent %v, ended %v, notSent %v) = %v, want %v",
				tc.mode, isIdempotent(tc.ctx), tc.ctx.Err() != nil, tc.notSent, got, tc.want)
		}
	}
}
