// External tests of the one panic policy (panics.go) through the public API.
package hasql_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

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
