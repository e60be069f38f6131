package testserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MariaDBReplication is a MariaDB primary with one replica that follows it by GTID
// (MASTER_USE_GTID=slave_pos, gtid_strict_mode, row-based binlog, log_slave_updates), both
// throwaway instances on loopback (see NewMariaDB). The replica runs with read_only=ON.
//
// Both servers have the user app (password "app") holding every privilege but READ_ONLY ADMIN
// and SUPER, so that the replica refuses its writes (ERROR 1290) as it would an application's;
// root could write on the replica despite read_only, and such a write breaks GTID strict-mode
// replication (error 1950). Use AppDSN for the code under test, the servers' Exec (root) for
// setup on the primary only.
type MariaDBReplication struct {
	Primary, Replica *MariaDB
}

// replicationArgs are the mariadbd options of both servers (CLUSTERS.md, section 3): the binary
// log in the data directory, GTIDs in strict mode, what the replica applies logged again.
func replicationArgs(serverID int) []string {
	return []string{"--server-id=" + strconv.Itoa(serverID), "--log-bin=binlog", "--binlog-format=ROW",
		"--log-slave-updates=ON", "--gtid-strict-mode=ON", "--gtid-domain-id=0", "--relay-log=relay",
		"--sync-binlog=0"}
}

// StartMariaDBReplication starts a primary and its GTID replica for test t, both removed when the
// test ends; it fails the test if it cannot.
func StartMariaDBReplication(t testing.TB) *MariaDBReplication {
	t.Helper()
	r, err := NewMariaDBReplication(context.Background())
	if err != nil {
		t.Fatalf("testserver: cannot start a MariaDB primary with a GTID replica: %v\nTo get one: %s", err, makeTestHint)
	}
	t.Cleanup(r.Destroy)
	return r
}

// NewMariaDBReplication starts a primary and a replica following it, and returns once the replica
// has caught up with both replication threads running; the caller must call Destroy.
func NewMariaDBReplication(ctx context.Context) (*MariaDBReplication, error) {
	p, err := NewMariaDB(ctx, MariaDBOptions{ServerArgs: replicationArgs(1)})
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	// report-host: SHOW SLAVE HOSTS on the primary lists only replicas that
	// report an address (hasql.discover=mysql-replicas reads it).
	s, err := NewMariaDB(ctx, MariaDBOptions{ServerArgs: append(replicationArgs(2), "--read-only=ON", "--report-host=127.0.0.1")})
	if err != nil {
		p.destroy()
		return nil, fmt.Errorf("replica: %w", err)
	}
	r := &MariaDBReplication{Primary: p, Replica: s}
	// The same users on both, outside the binary log; then both logs are
	// reset, so that the two servers start from the same content with an
	// empty GTID state (the "test" database each made is not replayed).
	users := "SET sql_log_bin=0; " +
		"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'; " +
		"CREATE USER 'app'@'%' IDENTIFIED BY 'app'; GRANT ALL ON *.* TO 'app'@'%'; " +
		"REVOKE READ_ONLY ADMIN, SUPER ON *.* FROM 'app'@'%'; RESET MASTER;"
	for _, m := range []*MariaDB{p, s} {
		if err := m.Exec(users); err != nil {
			r.Destroy()
			return nil, err
		}
	}
	if err := s.Exec(fmt.Sprintf("SET GLOBAL gtid_slave_pos=''; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, "+
		"MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;", p.Port)); err != nil {
		r.Destroy()
		return nil, err
	}
	if err := r.WaitCaughtUp(30 * time.Second); err != nil {
		r.Destroy()
		return nil, err
	}
	return r, nil
}

// AppDSN is a go-sql-driver/mysql DSN for database db on m (the primary or the replica) as user
// app.
func (r *MariaDBReplication) AppDSN(m *MariaDB, db string) string {
	return fmt.Sprintf("app:app@tcp(127.0.0.1:%d)/%s", m.Port, db)
}

// FreshDB creates an empty database t_<random> on the primary, waits until the replica has it, and
// returns its name; it is dropped (best effort) when the test ends.
func (r *MariaDBReplication) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + randHex(8)
	if err := r.Primary.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	t.Cleanup(func() { _ = r.Primary.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	if err := r.WaitCaughtUp(30 * time.Second); err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	return name
}

// WaitCaughtUp waits until the replica has applied everything in the primary's binary log now.
func (r *MariaDBReplication) WaitCaughtUp(timeout time.Duration) error {
	pos, err := r.Primary.Query("SELECT @@gtid_binlog_pos")
	if err != nil {
		return err
	}
	out, err := r.Replica.Query(fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %g)", pos, timeout.Seconds()))
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "0" {
		status, _ := r.Replica.Query("SHOW SLAVE STATUS\\G")
		return fmt.Errorf("testserver: the replica did not reach %s within %v\n%s", pos, timeout, status)
	}
	return nil
}

// Destroy kills both servers and removes their directories.
func (r *MariaDBReplication) Destroy() {
	if r.Replica != nil {
		r.Replica.destroy()
	}
	if r.Primary != nil {
		r.Primary.destroy()
	}
}
