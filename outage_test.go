package hasql

// Internal tests of the failure handling that needs no server: the back-off
// schedules (Backoff.delay, Backoff.reconnectDelay, and where their settings
// come from). The host set is tested in hosts_test.go, the error
// classification in dialect_test.go.

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Back-off schedules

func TestBackoffDelaysListExactAndLastRepeats(t *testing.T) {
	b := Backoff{Delays: []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}}
	want := []time.Duration{5, 10, 20, 40, 80, 80, 80}
	for i, w := range want {
		// A given list is served as it is, without jitter, whatever the
		// outage's age.
		for _, el := range []time.Duration{0, time.Second, time.Hour} {
			if got := b.delay(i, el); got != w*time.Second {
				t.Errorf("delay(%d, %v) = %v, want %v", i, el, got, w*time.Second)
			}
		}
		if got := b.reconnectDelay(i); got != w*time.Second {
			t.Errorf("reconnectDelay(%d) = %v, want %v", i, got, w*time.Second)
		}
	}
}

// rcJitterBounds samples b.delay(i, elapsed) and checks every value lies in
// [3/4 d, d] and that the jitter actually varies.
func rcJitterBounds(t *testing.T, b Backoff, i int, elapsed, d time.Duration) {
	t.Helper()
	lo, hi := d-d/4, d
	seen := map[time.Duration]bool{}
	for n := 0; n < 400; n++ {
		got := b.delay(i, elapsed)
		if got < lo || got > hi {
			t.Fatalf("delay(%d, %v) = %v, want within [%v, %v]", i, elapsed, got, lo, hi)
		}
		seen[got] = true
	}
	if d >= time.Millisecond && len(seen) < 10 {
		t.Fatalf("delay(%d, %v): only %d distinct values in 400 draws: no jitter", i, elapsed, len(seen))
	}
}

func TestBackoffDefaultScheduleHoldThenDoubleJittered(t *testing.T) {
	b := defaultConfig().backoff
	if b.Initial != 50*time.Millisecond || b.Max != 5*time.Second || b.Hold != time.Second ||
		b.ConnectTimeout != 5*time.Second || b.OutageWait != 30*time.Second || len(b.Delays) != 0 {
		t.Fatalf("default back-off = %+v, want 50ms doubling to 5s after 1s hold, connect 5s, outage wait 30s", b)
	}
	// During the hold, every attempt waits Initial (jittered), however many
	// attempts there have been.
	for _, i := range []int{0, 1, 5, 19} {
		rcJitterBounds(t, b, i, 500*time.Millisecond, 50*time.Millisecond)
	}
	// After the hold, the delay doubles once per delay served since: at 1s
	// it is 50ms, after 1.05s 100ms, after 1.15s 200ms, 1.35s 400ms ...
	steps := []struct {
		elapsed time.Duration
		d       time.Duration
	}{
		{time.Second, 50 * time.Millisecond},
		{1050 * time.Millisecond, 100 * time.Millisecond},
		{1150 * time.Millisecond, 200 * time.Millisecond},
		{1350 * time.Millisecond, 400 * time.Millisecond},
		{1750 * time.Millisecond, 800 * time.Millisecond},
		{2550 * time.Millisecond, 1600 * time.Millisecond},
		{4150 * time.Millisecond, 3200 * time.Millisecond},
		{7350 * time.Millisecond, 5 * time.Second}, // capped at Max
		{time.Hour, 5 * time.Second},
	}
	for _, s := range steps {
		rcJitterBounds(t, b, 0, s.elapsed, s.d)
	}
	// Monotonic in the outage's age (upper bound).
	prev := time.Duration(0)
	for el := time.Duration(0); el < 20*time.Second; el += 10 * time.Millisecond {
		d := b.Initial
		for j := b.doublings(el); j > 0 && d < b.Max && el >= b.Hold; j-- {
			d *= 2
		}
		d = min(d, b.Max)
		if d < prev {
			t.Fatalf("upper bound of the delay fell from %v to %v at %v", prev, d, el)
		}
		prev = d
	}
}

func TestBackoffZeroAndOddSettings(t *testing.T) {
	if got := (&Backoff{}).delay(3, time.Hour); got != 0 {
		t.Fatalf("zero Backoff: delay = %v, want 0", got)
	}
	// Max below Initial: Max wins.
	b := Backoff{Initial: time.Second, Max: 100 * time.Millisecond, Hold: 0}
	rcJitterBounds(t, b, 0, 0, 100*time.Millisecond)
	// No hold: doubling starts at once.
	b = Backoff{Initial: 10 * time.Millisecond, Max: time.Second}
	rcJitterBounds(t, b, 0, 0, 10*time.Millisecond)
	rcJitterBounds(t, b, 0, 10*time.Millisecond, 20*time.Millisecond)
	rcJitterBounds(t, b, 0, 30*time.Millisecond, 40*time.Millisecond)
}

func TestBackoffReconnectDelayDoublesWithoutJitter(t *testing.T) {
	b := Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Hold: time.Hour}
	want := []time.Duration{50, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.reconnectDelay(i); got != w*time.Millisecond {
			t.Errorf("reconnectDelay(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
}

// The schedule's three sources: HASQL_RECONNECT_TIMEOUT (plain seconds, as in
// PCP), the DSN key hasql.reconnect, and WithBackoff; DSN and options win.
func TestBackoffSources(t *testing.T) {
	pcp := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
	t.Setenv("HASQL_RECONNECT_TIMEOUT", "5,10,20,40,80")
	t.Setenv("HASQL_CONNECT_TIMEOUT", "0.25")
	cfg := defaultConfig()
	if err := cfg.applyEnv(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.backoff.Delays) != fmt.Sprint(pcp) {
		t.Fatalf("HASQL_RECONNECT_TIMEOUT=5,10,20,40,80 gave %v, want %v", cfg.backoff.Delays, pcp)
	}
	if cfg.backoff.ConnectTimeout != 250*time.Millisecond {
		t.Fatalf("HASQL_CONNECT_TIMEOUT=0.25 gave %v", cfg.backoff.ConnectTimeout)
	}
	for i, w := range append(pcp, 80*time.Second) {
		if got := cfg.backoff.delay(i, 0); got != w {
			t.Fatalf("env schedule: delay(%d) = %v, want %v", i, got, w)
		}
	}

	// The DSN key wins over the environment.
	if err := cfg.set("reconnect", "100ms;200ms"); err != nil {
		t.Fatal(err)
	}
	if got := cfg.backoff.delay(5, 0); got != 200*time.Millisecond {
		t.Fatalf("hasql.reconnect=100ms;200ms: delay(5) = %v, want 200ms", got)
	}
	if err := cfg.set("reconnect", "5,x"); err == nil || !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "hasql.reconnect") {
		t.Fatalf("bad hasql.reconnect: %v, want ErrDSN naming the key", err)
	}

	// And through a connector: environment, then DSN, then options.
	c, err := NewConnector(rcNopConnector(), WithBackoff(Backoff{Delays: []time.Duration{time.Millisecond, 2 * time.Millisecond}, ConnectTimeout: time.Second, OutageWait: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.cfg.backoff.reconnectDelay(9); got != 2*time.Millisecond {
		t.Fatalf("WithBackoff: reconnectDelay(9) = %v, want 2ms", got)
	}
	c2, err := NewConnector(rcNopConnector())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := c2.cfg.backoff.delay(1, 0); got != 10*time.Second {
		t.Fatalf("connector under HASQL_RECONNECT_TIMEOUT: delay(1) = %v, want 10s", got)
	}
	t.Setenv("HASQL_RECONNECT_TIMEOUT", "5,-1")
	if _, err := NewConnector(rcNopConnector()); err == nil || !errors.Is(err, ErrDSN) {
		t.Fatalf("bad HASQL_RECONNECT_TIMEOUT: %v, want ErrDSN", err)
	}
}

// rcNopConnector is an inner connector that never connects.
func rcNopConnector() driver.Connector {
	return (&FakeDriver{Mode: FakeDSNRecord, Name: "rcNopConnector"}).Connector()
}
