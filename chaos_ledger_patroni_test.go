package hasql_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// TestPatroniLedgerCrashFailover runs the ledger (chaos_ledger_test.go: every mode at once, 8
// workers each) on the shared Patroni cluster while the leader node crashes (Patroni and
// postmaster SIGKILLed) and Patroni promotes a replica about ttl (10 s) later. hasql finds the new
// leader through discovery (hasql.discover=patroni). Replication is asynchronous, so a commit the
// old leader acknowledged can be missing on the promoted replica (seen here in the raw mode, and
// in hasql's without durability=replicated): the hasql modes run with
// hasql.durability=replicated, and the guard settles the commits in flight at the crash
// (durability_settle.go). RunTx with hasql.txguard=on lets no error reach the application; in
// every hasql mode the ledger's invariants hold (total constant, every transfer told committed
// present exactly once, none told not committed present).
func TestPatroniLedgerCrashFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: real servers")
	}
	pc := testserver.SharedPatroni(t)
	db := pc.FreshDB(t)
	old, err := pc.Leader()
	if err != nil {
		t.Fatal(err)
	}
	reps, err := pc.Replicas()
	if err != nil {
		t.Fatal(err)
	}
	onLeader := func(q string) (string, error) {
		ld, err := pc.Leader()
		if err != nil {
			return "", err
		}
		return ld.Query(db, q)
	}
	dsn := pc.DSN(db)
	srv := &ledgerServer{driver: "pgx", dsn: dsn,
		raw:      dsn + "&target_session_attrs=read-write",
		admin:    func(q string) error { _, err := onLeader(q); return err },
		query:    onLeader,
		ph:       func(i int) string { return "$" + strconv.Itoa(i) },
		rawLoses: true,
	}
	extra := "&hasql.target=primary&hasql.discover=patroni&hasql.discover_url=" + reps[0].RESTURL() +
		"&hasql.durability=replicated&hasql.durability_wait=15s"
	rows := ledgerScenario(t, srv, "patroni-crash", dsn, extra, func(t *testing.T) {
		if err := old.KillNode(); err != nil {
			t.Fatal(err)
		}
		// The fault lasts until Patroni names another leader (about ttl).
		waitUntil(t, 60*time.Second, "a new leader", func() bool {
			ld, err := pc.Leader()
			return err == nil && ld.Name != old.Name
		})
	}, onLeader)
	ledgerReport(t, "Patroni crash failover", rows)
	if err := old.StartNode(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pc.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if f := strings.Split(row, "|"); len(f) > 4 && strings.TrimSpace(f[2]) == "runtx" && strings.TrimSpace(f[4]) != "0" {
			t.Errorf("RunTx with hasql.txguard=on: %s errors reached the application (%s)", strings.TrimSpace(f[4]), strings.TrimSpace(f[5]))
		}
	}
}
