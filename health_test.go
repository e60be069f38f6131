package hasql

// Tests of the background host checks (health.go) on fakedb: a check dials each host once and
// closes the connection without touching the pool; a host that fails is reported down once,
// one that answers again up; health_interval starts the checker, and closing the connector
// stops it.

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// hcOpen makes a connector on a fresh FakeDB whose connects fail while *down is set, and
// records its HA events.
func hcOpen(t *testing.T, hc HostConfig) (*Connector, *FakeDB, *sync.Mutex, *bool, func() []EventKind) {
	t.Helper()
	d := NoopFakeDB()
	var mu sync.Mutex
	down := new(bool)
	// A refused dial, as net reports it: a dead connection to every dialect.
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	d.OnConnect = func(context.Context, int64) error {
		mu.Lock()
		defer mu.Unlock()
		if *down {
			return refused
		}
		return nil
	}
	var events []EventKind
	c, err := NewConnector(tpConnector(d), WithHostConfig(hc), WithEvents(func(e Event) {
		mu.Lock()
		events = append(events, e.Kind)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	taken := func() []EventKind {
		mu.Lock()
		defer mu.Unlock()
		ev := events
		events = nil
		return ev
	}
	return c, d, &mu, down, taken
}

func TestHealthCheckDialsAndCloses(t *testing.T) {
	c, d, mu, down, events := hcOpen(t, HostConfig{Blacklist: time.Hour})
	ctx := context.Background()
	steps := []struct {
		name            string
		down            bool
		started, opened int64
		wantEvent       []EventKind
	}{
		{"healthy host: one dial, closed again", false, 1, 1, nil},
		{"host goes down: reported once, its idle sessions purged", true, 2, 1, []EventKind{HostDown, SessionsPurged}},
		{"still down: tried again, not reported again", true, 3, 1, nil},
		{"back up: reported up", false, 4, 2, []EventKind{HostUp}},
	}
	for _, s := range steps {
		mu.Lock()
		*down = s.down
		mu.Unlock()
		c.checkHosts(ctx)
		if d.Started.Load() != s.started || d.Opens.Load() != s.opened || d.Closes.Load() != d.Opens.Load() {
			t.Fatalf("%s: driver connects %d, opened %d, closed %d; want %d, %d, all closed",
				s.name, d.Started.Load(), d.Opens.Load(), d.Closes.Load(), s.started, s.opened)
		}
		if st := c.Stats(); st.Open != 0 || st.Created != 0 {
			t.Fatalf("%s: the check touched the pool: Open %d Created %d", s.name, st.Open, st.Created)
		}
		var got []EventKind
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < len(s.wantEvent) && time.Now().Before(deadline) {
			got = append(got, events()...)
			time.Sleep(time.Millisecond)
		}
		if !slices.Equal(got, s.wantEvent) {
			t.Fatalf("%s: events %v, want %v", s.name, got, s.wantEvent)
		}
	}
}

func TestHealthIntervalStartsAndCloseStops(t *testing.T) {
	c, d, _, _, _ := hcOpen(t, HostConfig{HealthInterval: time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for d.Started.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the checker dialled %d times in 10s", d.Started.Load())
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	n := d.Started.Load()
	time.Sleep(20 * time.Millisecond)
	if d.Started.Load() != n {
		t.Fatalf("the checker kept dialling after Close: %d, then %d", n, d.Started.Load())
	}

	c2, d2, _, _, _ := hcOpen(t, HostConfig{})
	time.Sleep(20 * time.Millisecond)
	if n := d2.Started.Load(); n != 0 {
		t.Fatalf("without health_interval the connector dialled %d times", n)
	}
	c2.Close()
}
