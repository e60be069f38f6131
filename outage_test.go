package hasql

// Internal tests of the failure handling that needs no server: the back-off
// schedules (Backoff.delay, Backoff.reconnectDelay, and where their settings
// come from) and the outage prober's timing within them (outage_watch.go). The host set is tested in hosts_test.go, the error
// classification in dialect_test.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
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

// ---------------------------------------------------------------------------------------------
// The outage prober's timing (outage_watch.go)

// obRefused is a refused dial as net reports it.
func obRefused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// obServer is a fake server that refuses connections (nobody listening on
// its port) while down, with a port the prober's watch can be pointed at.
type obServer struct {
	db                      *FakeDB
	down                    atomic.Bool
	refusedConns, portCalls atomic.Int64
	portOpen                atomic.Bool // the port accepts (while down: the server still refuses the connect)
}

func obOpen(t *testing.T, b Backoff) (*sql.DB, *Connector, *obServer) {
	t.Helper()
	s := &obServer{db: newTPDriver()}
	s.db.OnConnect = func(context.Context, int64) error {
		if s.down.Load() {
			s.refusedConns.Add(1)
			return obRefused()
		}
		return nil
	}
	c, err := NewConnector(tpConnector(s.db), WithBackoff(b))
	if err != nil {
		t.Fatal(err)
	}
	c.outage.checkPorts = func(context.Context) error {
		s.portCalls.Add(1)
		if s.down.Load() && !s.portOpen.Load() {
			return obRefused()
		}
		return nil
	}
	// As if sessions had been open before: a failed connect is an outage.
	c.everConnected.Store(true)
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, c, s
}

// TestOutageRefusedPortWatchedThenConnectAtOnce: while connects are refused
// (nobody listens), the prober makes no further connect attempts and watches
// the port instead; the moment the port accepts, it connects, without
// waiting out the back-off schedule's next interval (an hour here), and the
// waiting call runs on the session the probe opened.
func TestOutageRefusedPortWatchedThenConnectAtOnce(t *testing.T) {
	// Four short delays give the budget room; then an hour, which the call
	// (bounded by its context) would never see the end of.
	b := Backoff{Delays: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond, time.Hour},
		ConnectTimeout: time.Second, OutageWait: time.Minute}
	db, c, s := obOpen(t, b)
	s.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- db.PingContext(ctx) }()
	// The prober either watches the port, or (without the watch) has used
	// up the short delays of its timetable.
	tpEventually(t, "the prober watching the port or past its short delays", func() bool {
		return s.portCalls.Load() > 0 || s.refusedConns.Load() >= 5
	})
	refusedWhileWatched := s.refusedConns.Load()
	tpEventually(t, "a few port checks", func() bool { return s.portCalls.Load() >= 3 || s.refusedConns.Load() >= 5 })
	if got := s.refusedConns.Load(); got != refusedWhileWatched {
		t.Fatalf("%d refused connects while the port was watched, want none (the watch replaces them)", got-refusedWhileWatched)
	}
	opensBefore := s.db.Opens.Load()
	s.down.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("the waiting call: %v; want it to succeed once the port accepts (the schedule's next attempt is an hour away)", err)
	}
	if got := s.db.Opens.Load() - opensBefore; got != 1 {
		t.Fatalf("%d sessions opened after the server came back, want 1: the probe's, handed to the waiting call", got)
	}
	if st := c.Stats(); st.PortChecks < 1 {
		t.Fatalf("Stats().PortChecks = %d, want the watch's dials counted", st.PortChecks)
	}
}

// TestOutagePortWatchKeepsToTheBackoffBudget: a port that accepts while the
// server still refuses does not make the prober connect more often than the
// back-off schedule allows: with delays of 1ms then an hour, one attempt in
// all, however often the port is seen open.
func TestOutagePortWatchKeepsToTheBackoffBudget(t *testing.T) {
	b := Backoff{Delays: []time.Duration{time.Millisecond, time.Hour}, ConnectTimeout: time.Second, OutageWait: time.Minute}
	db, c, s := obOpen(t, b)
	s.down.Store(true)
	s.portOpen.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.PingContext(ctx) }()
	// The caller's own connect, then the prober's first attempt; the watch
	// then finds the port open at once and the prober waits for its budget.
	tpEventually(t, "the prober's first attempt and a port check", func() bool {
		return s.refusedConns.Load() >= 2 && s.portCalls.Load() >= 1
	})
	callerAndProbe := s.refusedConns.Load()
	// Let the prober run for a while: it must make no further attempt.
	for i := 0; i < 50; i++ {
		time.Sleep(time.Millisecond)
		runtime.Gosched()
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the call succeeded against a refusing server")
	}
	if got := s.refusedConns.Load(); got != callerAndProbe {
		t.Fatalf("%d connect attempts, want %d: the prober went beyond the back-off budget", got, callerAndProbe)
	}
	if !c.outage.on.Load() {
		t.Fatal("the outage ended")
	}
}

func TestOutageBudgetFollowsTheSchedule(t *testing.T) {
	// Defaults: 50ms for the first second, then doubling per delay to 5s.
	u := budget{b: &Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Hold: time.Second}}
	want := []time.Duration{}
	for k := 1; k <= 20; k++ {
		want = append(want, time.Duration(k)*50*time.Millisecond)
	}
	want = append(want, 1050*time.Millisecond, 1150*time.Millisecond, 1350*time.Millisecond, 1750*time.Millisecond,
		2550*time.Millisecond, 4150*time.Millisecond, 7350*time.Millisecond, 12350*time.Millisecond, 17350*time.Millisecond)
	for i, w := range want {
		if got := u.when(i + 1); got != w {
			t.Fatalf("budget: attempt %d allowed at %v, want %v", i+1, got, w)
		}
	}
	// A list is served as it is; the last delay repeats.
	u = budget{b: &Backoff{Delays: []time.Duration{5 * time.Second, 10 * time.Second}}}
	for i, w := range []time.Duration{5, 15, 25, 35} {
		if got := u.when(i + 1); got != w*time.Second {
			t.Fatalf("list budget: attempt %d allowed at %v, want %v", i+1, got, w*time.Second)
		}
	}
	// The budget is never ahead of the timetable: a jittered delay is at
	// most the base one.
	b := defaultConfig().backoff
	for i := 0; i < 200; i++ {
		el := time.Duration(i) * 37 * time.Millisecond
		if d := b.delay(i, el); d > b.base(i, el) {
			t.Fatalf("delay(%d, %v) = %v above its base %v", i, el, d, b.base(i, el))
		}
	}
}

// TestOutageHedgesASlowConnectToAServerComingUp: once the server answers on
// its port, a connect that goes unanswered (a just-started server's first
// backends are slow) does not hold the waiting callers: the prober starts
// another beside it, within the back-off budget, and the first session
// opened ends the outage. Here the first connect after the server came back
// blocks until the test lets it go, which it does only after the waiting
// call returned: one attempt at a time would leave the call waiting for its
// context.
func TestOutageHedgesASlowConnectToAServerComingUp(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: time.Millisecond, ConnectTimeout: 10 * time.Second, OutageWait: time.Minute}
	db, c, s := obOpen(t, b)
	release := make(chan struct{})
	var slow atomic.Bool
	s.db.OnConnect = func(ctx context.Context, _ int64) error {
		if s.down.Load() {
			s.refusedConns.Add(1)
			return obRefused()
		}
		if slow.CompareAndSwap(false, true) {
			select { // the first connect after the server came back
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	s.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- db.PingContext(ctx) }()
	tpEventually(t, "the prober watching the port", func() bool { return s.portCalls.Load() > 0 })
	s.down.Store(false)
	err := <-done
	close(release)
	if err != nil {
		t.Fatalf("the waiting call: %v; want it served by a second attempt while the first hung", err)
	}
	if !slow.Load() {
		t.Fatal("no connect reached the server")
	}
	tpEventually(t, "the hung attempt to finish", func() bool { return !c.outage.on.Load() })
}

// TestOutageHedgingKeepsToTheBackoffBudget: hedged attempts count against
// the schedule's budget: with delays of 1ms then an hour, a server that
// answers on its port but never completes a connect gets two attempts in
// all (the caller's own and the prober's first), however long they hang.
func TestOutageHedgingKeepsToTheBackoffBudget(t *testing.T) {
	b := Backoff{Delays: []time.Duration{time.Millisecond, time.Hour}, ConnectTimeout: 10 * time.Second, OutageWait: time.Minute}
	db, _, s := obOpen(t, b)
	var attempts atomic.Int64
	hang := make(chan struct{})
	s.db.OnConnect = func(ctx context.Context, _ int64) error {
		n := attempts.Add(1)
		if n == 1 {
			return obRefused() // the caller's own connect: the outage begins
		}
		select {
		case <-hang:
		case <-ctx.Done():
		}
		return obRefused()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.PingContext(ctx) }()
	tpEventually(t, "the prober's first attempt", func() bool { return attempts.Load() >= 2 })
	for i := 0; i < 50; i++ {
		time.Sleep(time.Millisecond)
		runtime.Gosched()
	}
	got := attempts.Load()
	cancel()
	close(hang)
	if err := <-done; err == nil {
		t.Fatal("the call succeeded against a server that never completed a connect")
	}
	if got != 2 {
		t.Fatalf("%d connect attempts, want 2: hedging went beyond the back-off budget", got)
	}
}
