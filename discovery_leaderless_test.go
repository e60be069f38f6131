package hasql

import (
	"net/http"
	"testing"
)

// TestDiscoveryAsksFastWhilePatroniNamesNoLeader: discovery's short refresh (leaderlessRefresh)
// applies while Patroni's view names no usable leader, and only to Patroni's REST source.
func TestDiscoveryAsksFastWhilePatroniNamesNoLeader(t *testing.T) {
	leader := member{addr: "a:1", role: rolePrimary, usable: true}
	stopped := member{addr: "a:1", role: rolePrimary, usable: false}
	replica := member{addr: "b:1", role: roleStandby, usable: true}
	patroni := &discovery{http: &http.Client{}}
	galera := &discovery{}
	for _, tc := range []struct {
		name string
		d    *discovery
		ms   []member
		want bool
	}{
		{"usable leader", patroni, []member{leader, replica}, false},
		{"leader not running", patroni, []member{stopped, replica}, true},
		{"no leader listed", patroni, []member{replica}, true},
		{"not Patroni", galera, []member{{addr: "c:1", usable: true}}, false},
	} {
		if got := tc.d.awaitsLeader(tc.ms); got != tc.want {
			t.Errorf("%s: awaitsLeader = %v, want %v", tc.name, got, tc.want)
		}
	}
}
