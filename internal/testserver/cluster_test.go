package testserver

import (
	"context"
	"strings"
	"testing"
)

// TestPatroniCluster: the cluster forms with one leader and streaming replicas, and a node crash
// makes another node the leader; the crashed node rejoins as a replica.
func TestPatroniCluster(t *testing.T) {
	c, err := NewPatroni(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	t.Logf("Patroni cluster of 3 healthy after %v", c.StartTook)
	ld, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ld.Query("postgres", "select pg_is_in_recovery()"); err != nil || out != "f" {
		t.Fatalf("leader %s: pg_is_in_recovery = %q, %v", ld.Name, out, err)
	}
	reps, _ := c.Replicas()
	for _, r := range reps {
		if out, err := r.Query("postgres", "select pg_is_in_recovery()"); err != nil || out != "t" {
			t.Fatalf("replica %s: pg_is_in_recovery = %q, %v", r.Name, out, err)
		}
	}
	if err := c.Switchover(context.Background(), reps[0].Name); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	ld, _ = c.Leader()
	if ld != reps[0] {
		t.Fatalf("after switchover to %s the leader is %s", reps[0].Name, ld.Name)
	}
	if err := ld.KillNode(); err != nil {
		t.Fatal(err)
	}
	if err := ld.StartNode(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("members: %+v", mustMembers(t, c))
}

func mustMembers(t *testing.T, c *Patroni) []PatroniMember {
	ms, err := c.Members()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestGaleraCluster: three nodes form one Primary component; a killed node rejoins Synced.
func TestGaleraCluster(t *testing.T) {
	g, err := NewGalera(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	t.Logf("Galera cluster of 3 Synced after %v", g.StartTook)
	st, err := g.Nodes[1].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st["wsrep_cluster_size"] != "3" || strings.Count(st["wsrep_incoming_addresses"], ",") != 2 {
		t.Fatalf("status: size %s, incoming %s", st["wsrep_cluster_size"], st["wsrep_incoming_addresses"])
	}
	if err := g.Nodes[2].KillNode(); err != nil {
		t.Fatal(err)
	}
	if err := g.Nodes[2].RestartNode(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitSynced(context.Background()); err != nil {
		t.Fatal(err)
	}
}
