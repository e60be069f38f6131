package hasql

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// Tests of the host set (hosts.go) on fake times, with no server: blacklist doubling, picker
// order, blacklisted hosts tried last but still tried, which roles a target wants, and pointing
// a DSN at one host.

func rcHostSet(picker Picker, blacklist time.Duration, addrs ...string) *hostSet {
	cfg := defaultConfig()
	cfg.picker = picker
	cfg.host.Blacklist = blacklist
	hs := &hostSet{c: &Connector{cfg: cfg}}
	for _, a := range addrs {
		hs.hosts = append(hs.hosts, &host{addr: a})
	}
	return hs
}

func rcAddrs(hs []*host) string {
	var b []string
	for _, h := range hs {
		b = append(b, h.addr)
	}
	return strings.Join(b, ",")
}

func TestHostBlacklistDoublingOnFakeTime(t *testing.T) {
	hs := rcHostSet(PickOrdered, 10*time.Second, "a:1", "b:2")
	a := hs.hosts[0]
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	boom := errors.New("connect refused")
	if !hs.failed(a, boom, t0) {
		t.Fatal("first failure of an up host: failed() should report it was up")
	}
	// Repeated failures double the blacklist: 10s, 20s, 40s ... up to 64×.
	now := t0
	for i, want := range []time.Duration{10, 20, 40, 80, 160, 320, 640, 640, 640} {
		if i > 0 {
			if hs.failed(a, boom, now) {
				t.Fatalf("failure %d: failed() reported an already failing host as up", i+1)
			}
		}
		if got := a.until.Sub(now); got != want*time.Second {
			t.Fatalf("failure %d: blacklisted for %v, want %v", i+1, got, want*time.Second)
		}
		if a.state != HostStateBlacklisted {
			t.Fatalf("failure %d: state %v, want blacklisted", i+1, a.state)
		}
		// While blacklisted, the host goes last.
		if got := rcAddrs(hs.order(now.Add(time.Second))); got != "b:2,a:1" {
			t.Fatalf("failure %d: order while blacklisted = %s, want b:2,a:1", i+1, got)
		}
		now = a.until // retried the moment its blacklist ends, and it fails again
		if got := rcAddrs(hs.order(now)); got != "a:1,b:2" {
			t.Fatalf("failure %d: order once the blacklist ended = %s, want a:1,b:2", i+1, got)
		}
	}
	if a.failures != 9 || a.total != 9 || a.lastErr != boom {
		t.Fatalf("failures %d total %d lastErr %v", a.failures, a.total, a.lastErr)
	}
	st := hs.stats()
	if st[0].Failures != 9 || st[0].LastError != boom {
		t.Fatalf("stats: %+v", st[0])
	}
	// A success clears the blacklist and the doubling.
	if !hs.connected(a, time.Millisecond, rolePrimary) {
		t.Fatal("connected() on a blacklisted host should report it was down")
	}
	if a.state != HostStateUp || !a.until.IsZero() || a.penalty != 0 || a.failures != 0 || a.total != 9 {
		t.Fatalf("after connect: %+v", a)
	}
	hs.failed(a, boom, now)
	if got := a.until.Sub(now); got != 10*time.Second {
		t.Fatalf("first failure after a success: blacklisted for %v, want 10s again", got)
	}
}

func TestHostAllBlacklistedStillTried(t *testing.T) {
	hs := rcHostSet(PickRoundRobin, time.Minute, "a:1", "b:2", "c:3")
	t0 := time.Now()
	for _, h := range hs.hosts {
		hs.failed(h, io.EOF, t0)
	}
	got := hs.order(t0.Add(time.Second))
	if len(got) != 3 {
		t.Fatalf("every host blacklisted: order returned %d hosts (%s), want all 3 (tried anyway)", len(got), rcAddrs(got))
	}
	// Stats show an expired blacklist as down, a live one as blacklisted.
	st := hs.stats()
	for _, s := range st {
		if s.State != HostStateBlacklisted {
			t.Fatalf("stats during blacklist: %+v", s)
		}
	}
	hs.hosts[1].until = t0.Add(-time.Second)
	for i, s := range hs.stats() {
		want := HostStateBlacklisted
		if i == 1 {
			want = HostStateDown
		}
		if s.State != want {
			t.Fatalf("host %d: state %v, want %v", i, s.State, want)
		}
	}
	// No blacklist configured: failing hosts are down, never skipped.
	hs = rcHostSet(PickOrdered, 0, "a:1", "b:2")
	hs.failed(hs.hosts[0], io.EOF, t0)
	if hs.hosts[0].state != HostStateDown {
		t.Fatalf("blacklist 0: state %v, want down", hs.hosts[0].state)
	}
	if got := rcAddrs(hs.order(t0)); got != "a:1,b:2" {
		t.Fatalf("blacklist 0: order %s, want a:1,b:2", got)
	}
}

func TestHostPickers(t *testing.T) {
	now := time.Now()
	hs := rcHostSet(PickRoundRobin, time.Minute, "a:1", "b:2", "c:3")
	var firsts []string
	for i := 0; i < 6; i++ {
		firsts = append(firsts, hs.order(now)[0].addr)
	}
	if got := strings.Join(firsts, ","); got != "a:1,b:2,c:3,a:1,b:2,c:3" {
		t.Fatalf("round robin firsts = %s", got)
	}
	// Round robin passes a blacklisted host's turn to the next host
	// (Droplet's "the next one is tried") and tries it last.
	hs.failed(hs.hosts[1], io.EOF, now)
	firsts = firsts[:0]
	for i := 0; i < 3; i++ {
		firsts = append(firsts, rcAddrs(hs.order(now)))
	}
	if got := strings.Join(firsts, " "); got != "a:1,c:3,b:2 c:3,a:1,b:2 c:3,a:1,b:2" {
		t.Fatalf("round robin with b blacklisted = %s", got)
	}

	hs = rcHostSet(PickOrdered, time.Minute, "a:1", "b:2", "c:3")
	for i := 0; i < 3; i++ {
		if got := rcAddrs(hs.order(now)); got != "a:1,b:2,c:3" {
			t.Fatalf("ordered = %s", got)
		}
	}

	hs = rcHostSet(PickRandom, time.Minute, "a:1", "b:2", "c:3")
	first := map[string]int{}
	for i := 0; i < 300; i++ {
		o := hs.order(now)
		if len(o) != 3 {
			t.Fatalf("random: %d hosts", len(o))
		}
		first[o[0].addr]++
	}
	for _, a := range []string{"a:1", "b:2", "c:3"} {
		if first[a] < 50 {
			t.Fatalf("random: %s first %d times in 300 (%v)", a, first[a], first)
		}
	}

	hs = rcHostSet(PickLatency, time.Minute, "a:1", "b:2", "c:3")
	if got := rcAddrs(hs.order(now)); got != "a:1,b:2,c:3" {
		t.Fatalf("latency, nothing measured = %s", got)
	}
	hs.connected(hs.hosts[0], 30*time.Millisecond, roleUnknown)
	hs.connected(hs.hosts[1], 5*time.Millisecond, roleUnknown)
	// c was never measured: it goes first so that it gets measured.
	if got := rcAddrs(hs.order(now)); got != "c:3,b:2,a:1" {
		t.Fatalf("latency = %s, want c:3,b:2,a:1", got)
	}
	hs.connected(hs.hosts[2], 10*time.Millisecond, roleUnknown)
	if got := rcAddrs(hs.order(now)); got != "b:2,c:3,a:1" {
		t.Fatalf("latency = %s, want b:2,c:3,a:1", got)
	}
	// The latency is a moving average: one fast connect does not flip it.
	hs.connected(hs.hosts[0], time.Millisecond, roleUnknown)
	if got := rcAddrs(hs.order(now)); got != "b:2,c:3,a:1" {
		t.Fatalf("latency after one fast connect of a = %s, want b:2,c:3,a:1", got)
	}
	hs.failed(hs.hosts[1], io.EOF, now)
	if got := rcAddrs(hs.order(now)); got != "c:3,a:1,b:2" {
		t.Fatalf("latency with b blacklisted = %s, want c:3,a:1,b:2", got)
	}
}

func TestHostTargetWants(t *testing.T) {
	cases := []struct {
		t              Target
		r              role
		strict, expect bool
	}{
		{TargetAny, roleStandby, true, true},
		{TargetPrimary, rolePrimary, false, true},
		{TargetPrimary, roleStandby, false, false},
		{TargetStandby, roleStandby, false, true},
		{TargetStandby, rolePrimary, false, false},
		{TargetPreferStandby, rolePrimary, true, false},
		{TargetPreferStandby, rolePrimary, false, true},
		{TargetPreferStandby, roleStandby, true, true},
		{TargetPreferPrimary, roleStandby, true, false},
		{TargetPreferPrimary, roleStandby, false, true},
	}
	for _, c := range cases {
		if got := wants(c.t, c.r, c.strict); got != c.expect {
			t.Errorf("wants(%v, %v, strict=%v) = %v", c.t, c.r, c.strict, got)
		}
	}
}
