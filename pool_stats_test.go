package hasql

// Tests of the pool's statistics (pool_stats.go): Stats checked against a
// model of the pool under random concurrent work, on fakedb, with the
// helpers of pool_test.go.

import "testing"

// TestStatsModelStress runs a random mix of checkouts on the fake driver from 8 goroutines and
// then checks Stats against what the driver saw and what the goroutines did.
func TestStatsModelStress(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pc          PoolConfig
		reconfigure bool
	}{
		{name: "wait-max6", pc: PoolConfig{Min: 2, Max: 6, Incr: 2, GetMode: GetWait}},
		{name: "force-max3", pc: PoolConfig{Min: 1, Max: 3, Incr: 2, GetMode: GetForce}},
		{name: "unbounded", pc: PoolConfig{Min: 0, Max: 0, Incr: 3}},
		{name: "reconfigure", pc: PoolConfig{Min: 2, Max: 4, Incr: 2, GetMode: GetWait}, reconfigure: true},
	} {
		t.Run(tc.name, func(t *testing.T) { tpStress(t, tc.pc, tc.reconfigure) })
	}
}
