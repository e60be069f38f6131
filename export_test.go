package hasql

// Test-only hooks, as pgconn's export_test.go: what the tests need to reach inside the package
// (the pool's clock and reaper, the dialect's classification, the effective reconnect
// schedule) gathered in one place, for the internal unit tests and for the external
// integration tests (package hasql_test) alike. Nothing here is compiled into hasql itself.

import (
	"fmt"
	"time"
)

// installPool replaces a new connector's pool (unused so far) by one with config pc running on
// the clock now, and starts it. It must be called before the connector is used.
func installPool(c *Connector, pc PoolConfig, now func() time.Time) error {
	cfg := c.cfg
	cfg.pool = pc
	if err := cfg.validate(); err != nil {
		return err
	}
	c.pool.close()
	c.cfg.pool = pc
	p := newPool(c, pc)
	if now != nil {
		p.now, p.fakeClock = now, true
	}
	c.pool = p
	p.start()
	c.startHealth() // the old pool's close stopped it (a no-op without health_interval)
	return nil
}

// PoolTestInstallClock gives a connector that has not been used yet a pool with config pc
// running on the clock now. For tests only.
func PoolTestInstallClock(c *Connector, pc PoolConfig, now func() time.Time) error {
	return installPool(c, pc, now)
}

// PoolTestReap runs the pool's reaper as if the time were now. For tests only.
func PoolTestReap(c *Connector, now time.Time) { c.pool.reap(now) }

// PoolTestFillMin asks the pool to open sessions up to its min in the background. For tests only.
func PoolTestFillMin(c *Connector) { c.pool.fillMin() }

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

// membersText renders discovered members as "addr role usable" lines, for the discovery tests.
func membersText(ms []member) []string {
	var out []string
	for _, m := range ms {
		r := m.role.String()
		if r == "" {
			r = "any"
		}
		out = append(out, fmt.Sprintf("%s %s %v", m.addr, r, m.usable))
	}
	return out
}

// ParsePatroniCluster is parsePatroniCluster, rendered by membersText.
func ParsePatroniCluster(b []byte) ([]string, error) {
	ms, err := parsePatroniCluster(b)
	return membersText(ms), err
}

// GaleraMembers is galeraMembers, rendered by membersText.
func GaleraMembers(st map[string]string) ([]string, error) {
	ms, err := galeraMembers(st)
	return membersText(ms), err
}

// ReplicaMembers is replicaMembers, rendered by membersText.
func ReplicaMembers(primary string, rows [][]string) []string {
	return membersText(replicaMembers(primary, rows))
}

// TxGuardPurgeRound runs one round of the commit-outcome guard's janitor now
// (it runs once a minute otherwise).
func TxGuardPurgeRound(c *Connector) { c.guard.purgeRound() }

// PromotionTestWait sets how long a session that found a promotion under way waits for it
// (promotion.go) and returns the function that restores the default.
func PromotionTestWait(d time.Duration) (restore func()) {
	old := promotionWait.Swap(int64(d))
	return func() { promotionWait.Store(old) }
}

// RoleRecheckTestAfter sets how old a pooled session's role check may be before a checkout asks
// again (role_recheck.go) and returns the function that restores the default.
func RoleRecheckTestAfter(d time.Duration) (restore func()) {
	old := roleRecheckAfter.Swap(int64(d))
	return func() { roleRecheckAfter.Store(old) }
}
