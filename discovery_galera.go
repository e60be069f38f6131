package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
)

// galeraSource reads the wsrep status of the first node that answers and
// is a Synced, ready member of the primary component: its
// wsrep_incoming_addresses are the members (a node outside the primary
// component lists only itself, so its answer is not taken). Galera is
// multi-primary: every member takes writes, so members have no role; one
// that is not ready is refused when a session is opened on it
// (discoveryVeto) and its errors (1047) count as the wrong role.
type galeraSource struct{}

func (galeraSource) fetch(ctx context.Context, c *Connector) ([]member, error) {
	return sqlSource(ctx, c, func(ctx context.Context, h *host, conn driver.Conn) ([]member, error) {
		rows, err := queryInner(ctx, conn, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_incoming_addresses','wsrep_ready','wsrep_cluster_status','wsrep_local_state_comment')")
		if err != nil {
			return nil, err
		}
		st := map[string]string{}
		for _, r := range rows {
			if len(r) == 2 {
				st[strings.ToLower(r[0])] = r[1]
			}
		}
		return galeraMembers(st)
	})
}

// galeraMembers reads the members from one node's wsrep status.
func galeraMembers(st map[string]string) ([]member, error) {
	if st["wsrep_ready"] != "ON" || st["wsrep_cluster_status"] != "Primary" || st["wsrep_local_state_comment"] != "Synced" {
		return nil, fmt.Errorf("hasql: Galera discovery: node not a Synced member of the primary component (ready=%s status=%s state=%s)",
			st["wsrep_ready"], st["wsrep_cluster_status"], st["wsrep_local_state_comment"])
	}
	var out []member
	for _, a := range splitAddrs(st["wsrep_incoming_addresses"]) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			continue
		}
		out = append(out, member{addr: a, usable: true})
	}
	if len(out) == 0 {
		return nil, errors.New("hasql: Galera discovery: wsrep_incoming_addresses is empty")
	}
	return out, nil
}

// replicaSource asks the primary (the first host that answers with
// @@global.read_only = 0) for SHOW SLAVE HOSTS: the primary and every
// replica that reports its address (report_host, report_port).
type replicaSource struct{}

func (replicaSource) fetch(ctx context.Context, c *Connector) ([]member, error) {
	return sqlSource(ctx, c, func(ctx context.Context, h *host, conn driver.Conn) ([]member, error) {
		ro, err := queryInner(ctx, conn, "SELECT @@global.read_only")
		if err != nil {
			return nil, err
		}
		if len(ro) != 1 || len(ro[0]) != 1 || ro[0][0] != "0" {
			return nil, nil // a replica: ask the next host
		}
		rows, err := queryInner(ctx, conn, "SHOW SLAVE HOSTS")
		if err != nil {
			return nil, err
		}
		return replicaMembers(h.addr, rows), nil
	})
}

// replicaMembers: the primary at addr, and the replicas SHOW SLAVE HOSTS
// lists (columns Server_id, Host, Port, Master_id) with an address.
func replicaMembers(primary string, rows [][]string) []member {
	out := []member{{addr: primary, role: rolePrimary, usable: true}}
	for _, r := range rows {
		if len(r) < 3 || r[1] == "" || r[2] == "" || r[2] == "0" {
			continue
		}
		out = append(out, member{addr: net.JoinHostPort(r[1], r[2]), role: roleStandby, usable: true})
	}
	return out
}
