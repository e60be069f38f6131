package hasql

import (
	"testing"
	"time"
)

func TestPositionsPostgres(t *testing.T) {
	r := pgxReplication
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"0/3000108", "0/3000108", true},
		{"0/3000109", "0/3000108", true},
		{"0/3000107", "0/3000108", false},
		{"1/0", "0/FFFFFFFF", true},
		{"A/1", "B/0", false},
	} {
		got, err := r.atLeast(tc.have, tc.want)
		if err != nil || got != tc.ok {
			t.Errorf("atLeast(%s, %s) = %v, %v", tc.have, tc.want, got, err)
		}
	}
	for _, bad := range []string{"", "3000108", "0/xyz", "1/2/3", "100000000/0"} {
		if _, err := r.atLeast(bad, "0/1"); err == nil {
			t.Errorf("atLeast(%q) parsed", bad)
		}
	}
	if got := r.merge("0/5", "0/7"); got != "0/7" {
		t.Errorf("merge = %s", got)
	}
	if got := r.merge("bad", "0/7"); got != "0/7" {
		t.Errorf("merge(bad) = %s", got)
	}
}

func TestPositionsMariaDB(t *testing.T) {
	r := mysqlReplication
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"0-1-8", "0-1-8", true},
		{"0-2-9", "0-1-8", true}, // another server id, later sequence
		{"0-1-7", "0-1-8", false},
		{"0-1-9,1-1-3", "1-1-4", false},
		{"0-1-9,1-1-4", "0-1-2,1-1-4", true},
		{"", "0-1-1", false},
		{"0-1-5", "", true},
	} {
		got, err := r.atLeast(tc.have, tc.want)
		if err != nil || got != tc.ok {
			t.Errorf("atLeast(%q, %q) = %v, %v", tc.have, tc.want, got, err)
		}
	}
	for _, bad := range []string{"0-1", "a-b-c", "0-1-2-3"} {
		if _, err := r.atLeast("0-1-1", bad); err == nil {
			t.Errorf("atLeast(_, %q) parsed", bad)
		}
	}
	if got := r.merge("1-1-4,0-1-9", "0-1-12"); got != "0-1-12,1-1-4" {
		t.Errorf("merge = %s", got)
	}
	for _, v := range []any{int64(0), []byte("0"), "0"} {
		if !r.reached(v) {
			t.Errorf("reached(%#v) = false", v)
		}
	}
	for _, v := range []any{int64(-1), nil, "-1"} {
		if r.reached(v) {
			t.Errorf("reached(%#v) = true", v)
		}
	}
}

// TestLagOf: a standby's lag is the age, at its look, of the oldest primary
// position it had not replayed.
func TestLagOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	lc := &lagChecker{rw: &readRouter{repl: pgxReplication}}
	lc.samples = []posSample{{t0, "0/10"}, {t0.Add(time.Second), "0/20"}, {t0.Add(2 * time.Second), "0/30"}}
	at := t0.Add(2500 * time.Millisecond)
	for _, tc := range []struct {
		replay string
		want   time.Duration
	}{
		{"0/30", 0},
		{"0/25", 500 * time.Millisecond},
		{"0/10", 1500 * time.Millisecond},
		{"0/5", 2500 * time.Millisecond},
	} {
		if got := lc.lagOf(tc.replay, at); got != tc.want {
			t.Errorf("lagOf(%s) = %v, want %v", tc.replay, got, tc.want)
		}
	}
	// Primary positions looked at after the standby do not count.
	if got := lc.lagOf("0/20", t0.Add(1500*time.Millisecond)); got != 0 {
		t.Errorf("lag against a later look: %v", got)
	}
}

// TestPrimarySeenCoversDirty: a primary position read after writes of
// unknown position covers them (reads go back to standbys), and not writes
// counted after the read began.
func TestPrimarySeenCoversDirty(t *testing.T) {
	rw := &readRouter{repl: pgxReplication, session: true, wake: make(chan struct{}, 1)}
	lc := &lagChecker{rw: rw}
	rw.markUnknown()
	sel := selector{read: true}
	if _, ok := rw.required(&sel); ok {
		t.Fatal("a write of unknown position pending, yet the position is known")
	}
	dirty := rw.dirty.Load()
	rw.markUnknown() // after the read began
	lc.primarySeen("0/40", dirty)
	if _, ok := rw.required(&sel); ok {
		t.Fatal("a write counted after the primary's position was read is covered")
	}
	lc.primarySeen("0/48", rw.dirty.Load())
	want, ok := rw.required(&sel)
	if !ok || want != "0/48" {
		t.Fatalf("required = %q, %v", want, ok)
	}
	sel.after = "0/50"
	if want, ok := rw.required(&sel); !ok || want != "0/50" {
		t.Fatalf("with ReadAfter: %q, %v", want, ok)
	}
	sel.after = "junk"
	if _, ok := rw.required(&sel); ok {
		t.Fatal("a position that does not parse is accepted")
	}
}

func TestReadsConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg func(*config)
		ok  bool
	}{
		{func(c *config) {}, true},
		{func(c *config) { c.reads.Reads = TargetPreferPrimary }, false},
		{func(c *config) { c.reads.MaxLag = -1 }, false},
		{func(c *config) { c.reads.Consistency = 7 }, false},
		{func(c *config) { c.durability.Mode = 2 }, false},
		{func(c *config) { c.durability.Wait = -time.Second }, false},
		{func(c *config) { WithReadConfig(ReadConfig{Reads: TargetStandby, MaxLag: time.Second})(c) }, true},
		{func(c *config) { c.reads.MaxLag = time.Second; WithReads(TargetPreferStandby)(c) }, true},
		{func(c *config) { WithReads(TargetPreferPrimary)(c) }, false},
	} {
		c := defaultConfig()
		tc.cfg(&c)
		if err := c.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v %+v: %v", c.reads, c.durability, err)
		}
	}
	c := defaultConfig()
	c.reads.MaxLag = time.Second
	WithReads(TargetPreferStandby)(&c)
	if c.reads.Reads != TargetPreferStandby || c.reads.MaxLag != time.Second {
		t.Fatalf("WithReads replaced more than the target: %+v", c.reads)
	}
	c = defaultConfig()
	if c.reads.Consistency != ConsistencySession || c.reads.LagWait != 100*time.Millisecond || c.durability.Wait != 5*time.Second {
		t.Fatalf("defaults %+v %+v", c.reads, c.durability)
	}
}
