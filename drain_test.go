package hasql_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// TestDrain: Drain waits for the sessions in use on the host and returns once none is open (or
// its context ends); with every host drained new work waits at the outage gate and runs once the
// host is undrained.
func TestDrain(t *testing.T) {
	fdb := hasql.NewFakeDB(t)
	c, err := hasql.NewConnector((&hasql.FakeDriver{Caps: hasql.FakeCapsContext, DB: fdb}).Connector(),
		hasql.WithBackoff(hasql.Backoff{Delays: []time.Duration{20 * time.Millisecond}, OutageWait: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	addr := c.Stats().Hosts[0].Addr
	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	// A session in use: Drain waits for it, here until its context ends.
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = c.Drain(sctx, addr)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a session in use: %v, want the context's deadline", err)
	}
	// Released: it retires, and Drain returns.
	held.Close()
	if err := c.Drain(ctx, addr); err != nil {
		t.Fatalf("Drain after release: %v", err)
	}
	if open := c.Stats().Hosts[0].Open; open != 0 {
		t.Fatalf("%d sessions open on the drained host", open)
	}
	// Every host drained: work waits at the gate until Undrain.
	done := make(chan error, 1)
	go func() { done <- db.PingContext(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("ping on a drained connector returned %v, want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Undrain(addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ping after Undrain: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ping still waiting 5s after Undrain")
	}
}
