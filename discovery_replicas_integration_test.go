package hasql_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// TestDiscoverMySQLReplicasFromThePrimary: with hasql.discover=mysql-replicas and only the
// primary in the DSN, hasql learns the GTID replica from SHOW SLAVE HOSTS on the primary: the
// replica appears in Stats as a standby, read-only work moves to it, and writes stay on the
// primary.
func TestDiscoverMySQLReplicasFromThePrimary(t *testing.T) {
	r, name, _ := startRWMaria(t)
	dsn := r.AppDSN(r.Primary, name) + "?hasql.discover=mysql-replicas&hasql.discover_interval=1s&hasql.target=primary&hasql.reads=prefer-standby"
	db, c := foOpen(t, "mysql", dsn)
	port := func(ctx context.Context) int {
		t.Helper()
		var p int
		if err := db.QueryRowContext(ctx, "SELECT @@port").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ro := hasql.ReadOnly(context.Background())
	waitUntil(t, 30*time.Second, "a read-only query served by the discovered replica", func() bool {
		return port(ro) == r.Replica.Port
	})
	found := false
	for _, h := range c.Stats().Hosts {
		if h.Addr == "127.0.0.1:"+strconv.Itoa(r.Replica.Port) {
			found = h.Role == "standby"
		}
	}
	if !found {
		t.Fatalf("the replica is not among the hosts as a standby: %+v", c.Stats().Hosts)
	}
	for i := 0; i < 5; i++ {
		if _, err := db.Exec("UPDATE kv SET v = v + 1 WHERE k = 1"); err != nil {
			t.Fatal(err)
		}
		if p := port(context.Background()); p != r.Primary.Port {
			t.Fatalf("work that is not read-only ran on port %d, want the primary's %d", p, r.Primary.Port)
		}
	}
}
