package hasql

// Internal tests of the failure handling that needs no server: the back-off
// schedules (Backoff.delay, Backoff.reconnectDelay, and where their settings
// come from), the host set (blacklist doubling on fake times, picker order,
// blacklisted hosts tried last but still tried) and the error classification
// on constructed errors. The classification of errors provoked on real
// servers is in failover_integration_test.go; it reaches the dialect through
// RecoverTestClassify below.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// RecoverTestClassify reports how hasql's dialect for driverName ("pgx" or
// "mysql") classifies err. For the external tests that provoke errors on real
// servers; tests only.
func RecoverTestClassify(driverName string, err error) (connDead, notSent, wrongRole, connectRetryable bool) {
	d := dialectOf(driverName, nil)
	return d.connDead(err), d.notSent(err), d.wrongRole(err), d.connectRetryable(err)
}

// RecoverTestBackoff returns a connector's effective reconnect schedule.
// Tests only.
func RecoverTestBackoff(c *Connector) Backoff { return c.cfg.backoff }

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
// Host set

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

func TestHostPointAt(t *testing.T) {
	cases := []struct {
		d         dialect
		dsn, addr string
		want      string
	}{
		{dialectPgx, "postgres://u:pw@db1:5432,db2:5433/shop?sslmode=disable", "db3:7", "postgres://u:pw@db3:7/shop?sslmode=disable"},
		{dialectPgx, "postgresql://db1/shop", "10.0.0.1:5432", "postgresql://10.0.0.1:5432/shop"},
		{dialectPgx, "host=a,b port=1,2 dbname=x", "h:9", "host=a,b port=1,2 dbname=x host='h' port=9"},
		{dialectMySQL, "root@tcp(127.0.0.1:3306)/test", "db2:3307", "root@tcp(db2:3307)/test"},
	}
	for _, c := range cases {
		got, err := c.d.pointAt(c.dsn, c.addr)
		if err != nil || got != c.want {
			t.Errorf("pointAt(%q, %q) = %q, %v; want %q", c.dsn, c.addr, got, err, c.want)
		}
	}
	for _, dsn := range []string{"host=a,b port=1,2 dbname=x", "postgres://u@a:1,b:2/db"} {
		if got := strings.Join(pgxHosts(dsn), ","); got != "a:1,b:2" {
			t.Errorf("pgxHosts(%q) = %s, want a:1,b:2", dsn, got)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Classification on constructed errors (the real servers' errors are in
// failover_integration_test.go).

func TestClassifyConstructed(t *testing.T) {
	pg := func(sev, code string) error { return &pgconn.PgError{Severity: sev, Code: code, Message: "m"} }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "m"} }
	wrapped := func(err error) error { return fmt.Errorf("layer: %w", err) }
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	type row struct {
		name                                      string
		d                                         dialect
		err                                       error
		dead, notSent, wrongRole, connectRetrying bool
	}
	rows := []row{
		{"ctx canceled", dialectPgx, context.Canceled, false, false, false, false},
		{"ctx deadline", dialectPgx, context.DeadlineExceeded, false, false, false, true},
		{"ctx canceled + EOF", dialectPgx, errors.Join(context.Canceled, io.ErrUnexpectedEOF), false, false, false, false},
		{"wrapped canceled (mysql)", dialectMySQL, wrapped(context.Canceled), false, false, false, false},
		{"bad conn", dialectMySQL, driver.ErrBadConn, true, true, false, true},
		{"invalid conn", dialectMySQL, mysql.ErrInvalidConn, true, false, false, true},
		{"unexpected EOF", dialectPgx, io.ErrUnexpectedEOF, true, false, false, true},
		{"net.OpError", dialectPgx, opErr, true, false, false, true},
		{"pg 57P01 FATAL", dialectPgx, pg("FATAL", "57P01"), true, false, false, true},
		{"pg 57P03 FATAL", dialectPgx, pg("FATAL", "57P03"), true, false, false, true},
		{"pg 08006", dialectPgx, pg("ERROR", "08006"), true, false, false, true},
		{"pg 25006", dialectPgx, pg("ERROR", "25006"), false, false, true, true},
		{"pg 23505", dialectPgx, pg("ERROR", "23505"), false, false, false, true},
		{"pg 28P01", dialectPgx, pg("FATAL", "28P01"), true, false, false, false},
		{"pg 3D000", dialectPgx, pg("FATAL", "3D000"), true, false, false, false},
		{"my 1927 killed", dialectMySQL, my(1927), true, false, false, true},
		{"my 1053 shutdown", dialectMySQL, my(1053), true, false, false, true},
		{"my 1290 read-only", dialectMySQL, my(1290), false, false, true, true},
		{"my 1792 ro tx", dialectMySQL, my(1792), false, false, true, true},
		{"my 1062 dup", dialectMySQL, my(1062), false, false, false, true},
		{"my 1045 denied", dialectMySQL, my(1045), false, false, false, false},
		{"my 1049 unknown db", dialectMySQL, my(1049), false, false, false, false},
		{"wrong role", dialectPgx, errWrongRole, false, false, false, true},
	}
	for _, r := range rows {
		dead, ns, wr, cr := r.d.connDead(r.err), r.d.notSent(r.err), r.d.wrongRole(r.err), r.d.connectRetryable(r.err)
		if dead != r.dead || ns != r.notSent || wr != r.wrongRole || cr != r.connectRetrying {
			t.Errorf("%s: connDead=%v notSent=%v wrongRole=%v connectRetryable=%v; want %v %v %v %v",
				r.name, dead, ns, wr, cr, r.dead, r.notSent, r.wrongRole, r.connectRetrying)
		}
	}
}
