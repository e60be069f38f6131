package hasql

// Tests of the physical session's own state (pool_session.go): its lifetime
// and when a listed session may be handed out.

import "testing"

func TestSessionExpiredAndUsable(t *testing.T) {
	for _, tc := range []struct {
		name          string
		retireAt, now int64
		idle, bad     bool
		expired       bool
		usable        bool
	}{
		{"no lifetime", 0, 1 << 62, true, false, false, true},
		{"before its lifetime", 100, 99, true, false, false, true},
		{"at its lifetime", 100, 100, true, false, true, true},
		{"held by someone", 0, 0, false, false, false, false},
		{"marked bad while parked", 0, 0, true, true, false, false},
	} {
		ph := &session{retireAt: tc.retireAt}
		ph.idle.Store(tc.idle)
		ph.bad.Store(tc.bad)
		if got := ph.expired(tc.now); got != tc.expired {
			t.Errorf("%s: expired(%d) = %v, want %v", tc.name, tc.now, got, tc.expired)
		}
		if got := ph.usable(); got != tc.usable {
			t.Errorf("%s: usable() = %v, want %v", tc.name, got, tc.usable)
		}
	}
}
