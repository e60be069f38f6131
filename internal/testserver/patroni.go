package testserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoPatroni is returned (wrapped) when Patroni or etcd is missing.
var ErrNoPatroni = errors.New("patroni, patronictl or etcd not found (Debian: apt-get install patroni etcd-server etcd-client)")

// Patroni is a Patroni cluster of PostgreSQL nodes (3 by default) on one etcd node (v3 API), on
// loopback ports, in a throwaway directory; Patroni, etcd and PostgreSQL run as the system user
// postgres when the tests run as root. The DCS timings are short (ttl 10 s, loop_wait 1 s,
// retry_timeout 3 s): a crashed leader is replaced after about ttl.
//
// Which node leads is decided by Patroni (the first leader is whichever won the initialize race);
// ask Leader. Its methods are safe for concurrent use.
type Patroni struct {
	Dir       string // the cluster's directory: etcd/, node1/, node2/, ...
	Scope     string // Patroni's cluster name
	EtcdPort  int    // etcd client port
	Nodes     []*PatroniNode
	StartTook time.Duration // from NewPatroni's call to a healthy cluster

	bin, patroni, patronictl, etcdBin string
	uid, gid                          int
	shared                            bool

	mu   sync.Mutex
	etcd *daemon
}

// PatroniNode is one member: PostgreSQL on 127.0.0.1:Port, Patroni's REST API on RESTPort.
type PatroniNode struct {
	Name     string
	Port     int
	RESTPort int
	Dir      string

	c       *Patroni
	patroni *daemon // guarded by c.mu
}

// PatroniMember is a member as Patroni's GET /cluster reports it.
type PatroniMember struct {
	Name     string `json:"name"`
	Role     string `json:"role"` // "leader", "replica", "sync_standby", "standby_leader"
	State    string `json:"state"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Timeline int    `json:"timeline"`
	APIURL   string `json:"api_url"`
}

// RESTURL is the node's REST API base URL (http://127.0.0.1:port).
func (n *PatroniNode) RESTURL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.RESTPort) }

// Addr is the node's PostgreSQL host:port.
func (n *PatroniNode) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.Port) }

func (n *PatroniNode) dataDir() string { return filepath.Join(n.Dir, "data") }
func (n *PatroniNode) logFile() string { return filepath.Join(n.Dir, "patroni.log") }
func (n *PatroniNode) yml() string     { return filepath.Join(n.Dir, "patroni.yml") }

var sharedPatroni struct {
	once sync.Once
	c    *Patroni
	err  error
}

// SharedPatroni returns the test binary's Patroni cluster, started on first use (about 5-10 s) and
// stopped by StopShared. Tests may kill and restart its nodes and switch its leader over, but must
// leave it healthy (WaitHealthy) when they end. It skips the test when Patroni or etcd is not
// installed (make test installs them), and fails it when the cluster does not come up. When the
// test fails, the tails of the cluster's logs are logged.
func SharedPatroni(t testing.TB) *Patroni {
	t.Helper()
	sharedPatroni.once.Do(func() {
		c, err := NewPatroni(context.Background(), 3)
		if err == nil {
			c.shared = true
		}
		sharedPatroni.c, sharedPatroni.err = c, err
	})
	if err := sharedPatroni.err; err != nil {
		if errors.Is(err, ErrNoPatroni) || errors.Is(err, ErrNoPostgres) {
			t.Skipf("testserver: no Patroni cluster: %v (%s)", err, makeTestHint)
		}
		t.Fatalf("testserver: cannot start the shared Patroni cluster: %v", err)
	}
	c := sharedPatroni.c
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails())
		}
	})
	return c
}

// NewPatroni starts etcd and n Patroni nodes and waits until one leader and n-1 replicas are
// running on one timeline. The caller must call Destroy. The error wraps ErrNoPatroni when the
// programs are missing.
func NewPatroni(ctx context.Context, n int) (*Patroni, error) {
	began := time.Now()
	c := &Patroni{}
	var err error
	if c.bin, err = pgBinDir(); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&c.patroni, "patroni"}, {&c.patronictl, "patronictl"}, {&c.etcdBin, "etcd"}} {
		if *f.dst, err = findExec(f.name, "/usr/bin/"+f.name, "/usr/local/bin/"+f.name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoPatroni, err)
		}
	}
	if c.uid, c.gid, err = sysUser("postgres"); err != nil {
		return nil, err
	}
	if c.Dir, err = makeDir("patroni", "postgres"); err != nil {
		return nil, err
	}
	c.Scope = "hasql-" + randHex(3)
	if err := c.start(ctx, n); err != nil {
		err = fmt.Errorf("%w\n%s", err, c.LogTails())
		c.destroy()
		return nil, err
	}
	c.StartTook = time.Since(began)
	return c, nil
}

func (c *Patroni) etcdLog() string { return filepath.Join(c.Dir, "etcd", "etcd.log") }

func (c *Patroni) env(home string) []string {
	return []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C.UTF-8", "HOME=" + home, "PYTHONUNBUFFERED=1"}
}

func (c *Patroni) start(ctx context.Context, n int) error {
	etcdDir := filepath.Join(c.Dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o755); err != nil {
		return err
	}
	var err error
	if c.EtcdPort, err = freePort(); err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		nd := &PatroniNode{Name: "node" + strconv.Itoa(i), Dir: filepath.Join(c.Dir, "node"+strconv.Itoa(i)), c: c}
		if nd.Port, err = freePort(); err != nil {
			return err
		}
		if nd.RESTPort, err = freePort(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(nd.Dir, "sock"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(nd.yml(), []byte(c.nodeYAML(nd)), 0o644); err != nil {
			return err
		}
		c.Nodes = append(c.Nodes, nd)
	}
	if err := chownTree(c.Dir, c.uid, c.gid); err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	c.etcd, err = startDaemon(etcdDir, c.etcdLog(), c.uid, c.gid, c.env(etcdDir), c.etcdBin,
		"--name", "etcd1", "--data-dir", filepath.Join(etcdDir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "etcd1="+peerURL, "--initial-cluster-state", "new",
		"--initial-cluster-token", c.Scope)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, waitLimit, "etcd healthy", func() (bool, error) {
		if !c.etcd.running() {
			return false, fmt.Errorf("etcd exited during start-up: %v", c.etcd.err)
		}
		b, code, err := httpGet(client + "/health")
		return err == nil && code == 200 && bytes.Contains(b, []byte("true")), nil
	}); err != nil {
		return err
	}
	for _, nd := range c.Nodes {
		if err := nd.startPatroni(); err != nil {
			return err
		}
	}
	return c.WaitHealthy(ctx)
}

func (c *Patroni) nodeYAML(nd *PatroniNode) string {
	return fmt.Sprintf(`scope: %[1]s
name: %[2]s
restapi:
  listen: 127.0.0.1:%[3]d
  connect_address: 127.0.0.1:%[3]d
etcd3:
  host: 127.0.0.1:%[4]d
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        max_connections: 200
  initdb: [{encoding: UTF8}, {locale: C}, data-checksums]
postgresql:
  listen: 127.0.0.1:%[5]d
  connect_address: 127.0.0.1:%[5]d
  data_dir: %[6]s
  bin_dir: %[7]s
  pgpass: %[8]s
  authentication:
    superuser: {username: postgres, password: postgres}
    replication: {username: replicator, password: replicator}
    rewind: {username: rewinder, password: rewinder}
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
  parameters:
    unix_socket_directories: '%[9]s'
    shared_buffers: 32MB
    fsync: "off"
`, c.Scope, nd.Name, nd.RESTPort, c.EtcdPort, nd.Port, nd.dataDir(), c.bin,
		filepath.Join(nd.Dir, "pgpass"), filepath.Join(nd.Dir, "sock"))
}

// startPatroni starts the node's Patroni (which starts its PostgreSQL).
func (nd *PatroniNode) startPatroni() error {
	c := nd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if nd.patroni.running() {
		return fmt.Errorf("testserver: Patroni %s is already running", nd.Name)
	}
	d, err := startDaemon(nd.Dir, nd.logFile(), c.uid, c.gid, c.env(nd.Dir), c.patroni, nd.yml())
	if err != nil {
		return err
	}
	nd.patroni = d
	return nil
}

// WaitHealthy waits (at most 120 s: a rejoin under load is slow) until every node is running in Patroni's view, exactly one is
// the leader, every replica follows it on its timeline, and every node's PostgreSQL answers with
// the role Patroni gives it.
func (c *Patroni) WaitHealthy(ctx context.Context) error {
	var last string
	err := waitFor(ctx, 4*waitLimit, "Patroni cluster healthy", func() (bool, error) {
		ms, err := c.Members()
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%+v", ms)
		if len(ms) != len(c.Nodes) {
			return false, nil
		}
		leaders, tl := 0, 0
		for _, m := range ms {
			if m.Role == "leader" {
				leaders++
				tl = m.Timeline
			}
		}
		if leaders != 1 {
			return false, nil
		}
		for _, m := range ms {
			if m.State != "running" && m.State != "streaming" || m.Timeline != tl {
				return false, nil
			}
			nd := c.Node(m.Name)
			if nd == nil {
				return false, nil
			}
			out, err := nd.Query("postgres", "select pg_is_in_recovery()")
			if err != nil || (out == "f") != (m.Role == "leader") {
				return false, nil
			}
		}
		// Replicas stream (not just running): pg_basebackup's own stream does not count.
		ld, _ := c.Leader()
		out, err := ld.Query("postgres", "select count(*) from pg_stat_replication where state='streaming' and application_name like 'node%'")
		return err == nil && out == strconv.Itoa(len(c.Nodes)-1), nil
	})
	if err != nil {
		return fmt.Errorf("%w (last /cluster: %s)", err, last)
	}
	return nil
}

// Node returns the node named name, or nil.
func (c *Patroni) Node(name string) *PatroniNode {
	for _, nd := range c.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// Members asks the REST API of the first node that answers for GET /cluster.
func (c *Patroni) Members() ([]PatroniMember, error) {
	var lastErr error
	for _, nd := range c.Nodes {
		ms, err := nd.Members()
		if err == nil {
			return ms, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Members asks this node's REST API for GET /cluster.
func (nd *PatroniNode) Members() ([]PatroniMember, error) {
	b, code, err := httpGet(nd.RESTURL() + "/cluster")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET %s/cluster: HTTP %d: %s", nd.RESTURL(), code, b)
	}
	var v struct {
		Members []PatroniMember `json:"members"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("GET %s/cluster: %v", nd.RESTURL(), err)
	}
	return v.Members, nil
}

// Leader returns the node Patroni's /cluster lists as leader.
func (c *Patroni) Leader() (*PatroniNode, error) {
	ms, err := c.Members()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Role == "leader" {
			if nd := c.Node(m.Name); nd != nil {
				return nd, nil
			}
		}
	}
	return nil, fmt.Errorf("testserver: no leader in /cluster: %+v", ms)
}

// Replicas returns the nodes that are not the leader.
func (c *Patroni) Replicas() ([]*PatroniNode, error) {
	ld, err := c.Leader()
	if err != nil {
		return nil, err
	}
	var out []*PatroniNode
	for _, nd := range c.Nodes {
		if nd != ld {
			out = append(out, nd)
		}
	}
	return out, nil
}

// Addrs returns every node's PostgreSQL host:port, in node order.
func (c *Patroni) Addrs() []string {
	var out []string
	for _, nd := range c.Nodes {
		out = append(out, nd.Addr())
	}
	return out
}

// DSN returns a pgx URL for database db naming the given nodes (all when none), as a multi-host
// URL when several.
func (c *Patroni) DSN(db string, nodes ...*PatroniNode) string {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	var hs []string
	for _, nd := range nodes {
		hs = append(hs, nd.Addr())
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", strings.Join(hs, ","), db)
}

// Patronictl runs patronictl with this cluster's configuration and args.
func (c *Patroni) Patronictl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, cmdTimeout, c.Dir, "", c.env(c.Dir), c.patronictl, append([]string{"-c", c.Nodes[0].yml()}, args...)...)
}

// Switchover runs patronictl switchover --force from the current leader to the node named to
// ("" lets Patroni choose), and waits until to (or some other node) leads and answers writes. It
// does not wait for the old leader to rejoin: WaitHealthy does.
func (c *Patroni) Switchover(ctx context.Context, to string) error {
	ld, err := c.Leader()
	if err != nil {
		return err
	}
	args := []string{"switchover", "--leader", ld.Name, "--force"}
	if to != "" {
		args = append(args, "--candidate", to)
	}
	args = append(args, c.Scope)
	if _, err := c.Patronictl(ctx, args...); err != nil {
		return err
	}
	return waitFor(ctx, 2*waitLimit, "new leader after switchover", func() (bool, error) {
		nl, err := c.Leader()
		if err != nil || nl == ld || to != "" && nl.Name != to {
			return false, nil
		}
		out, err := nl.Query("postgres", "select pg_is_in_recovery()")
		return err == nil && out == "f", nil
	})
}

// postmasterPID is the node's postmaster pid (0 when it is not running).
func (nd *PatroniNode) postmasterPID() int {
	pid := pidFromFile(filepath.Join(nd.dataDir(), "postmaster.pid"))
	if pid > 0 && alive(pid) && cmdlineHas(pid, nd.dataDir()) {
		return pid
	}
	return 0
}

// KillNode is a node crash: SIGKILL to the postmaster and to Patroni at once. The leader lock
// then expires after ttl (10 s) and another node is promoted. StartNode brings it back.
func (nd *PatroniNode) KillNode() error {
	c := nd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	pm := nd.postmasterPID()
	if nd.patroni.running() {
		_ = nd.patroni.cmd.Process.Signal(syscall.SIGKILL)
	}
	if pm > 0 {
		kids := children(pm)
		_ = signal(pm, syscall.SIGKILL)
		for _, k := range kids {
			_ = signal(k, syscall.SIGKILL)
		}
		if !waitDead(waitLimit, append(kids, pm)...) {
			return fmt.Errorf("testserver: postmaster %d of %s survives SIGKILL", pm, nd.Name)
		}
	}
	if nd.patroni != nil {
		if err := nd.patroni.stop(syscall.SIGKILL, waitLimit); err != nil {
			return err
		}
	}
	return nil
}

// KillPatroniOnly SIGKILLs the node's Patroni and leaves its PostgreSQL running: with no watchdog
// the node stays writable after Patroni promotes another (split brain) until its Patroni is
// started again (StartNode), which demotes and rewinds it.
func (nd *PatroniNode) KillPatroniOnly() error {
	c := nd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !nd.patroni.running() {
		return fmt.Errorf("testserver: Patroni %s is not running", nd.Name)
	}
	return nd.patroni.stop(syscall.SIGKILL, waitLimit)
}

// StartNode starts the node's Patroni again after KillNode or KillPatroniOnly; it rejoins as a
// replica (pg_rewind where needed). It does not wait: WaitHealthy does.
func (nd *PatroniNode) StartNode() error { return nd.startPatroni() }

// PatroniRunning reports whether the node's Patroni process is alive.
func (nd *PatroniNode) PatroniRunning() bool {
	nd.c.mu.Lock()
	defer nd.c.mu.Unlock()
	return nd.patroni.running()
}

// Query runs sql with psql on this node's PostgreSQL (database db) and returns its unaligned,
// tuples-only output, trimmed.
func (nd *PatroniNode) Query(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := run(ctx, 10*time.Second, "", "", toolEnv("PGCONNECT_TIMEOUT=3"), filepath.Join(nd.c.bin, "psql"),
		"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(nd.Port), "-U", "postgres", "-d", db, "-c", sql)
	return strings.TrimSpace(out), err
}

// FreshDB creates database t_<random> on the leader for test t and returns its name; it is dropped
// (best effort) when the test ends.
func (c *Patroni) FreshDB(t testing.TB) string {
	t.Helper()
	ld, err := c.Leader()
	if err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	name := "t_" + randHex(8)
	if _, err := ld.Query("postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	t.Cleanup(func() {
		if ld, err := c.Leader(); err == nil {
			_, _ = ld.Query("postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	})
	return name
}

// LogTails returns the tails of etcd's and every node's Patroni log (PostgreSQL's own lines are
// in Patroni's), for failure messages.
func (c *Patroni) LogTails() string {
	var b strings.Builder
	b.WriteString(logTail(c.etcdLog()))
	for _, nd := range c.Nodes {
		b.WriteString("\n")
		b.WriteString(logTail(nd.logFile()))
	}
	return b.String()
}

// Destroy kills every process of the cluster and removes its directory. It does nothing for the
// shared cluster (StopShared stops it).
func (c *Patroni) Destroy() {
	if c.shared {
		return
	}
	c.destroy()
}

func (c *Patroni) destroy() {
	if c.Dir == "" {
		return
	}
	c.mu.Lock()
	for _, nd := range c.Nodes {
		if nd.patroni != nil {
			_ = nd.patroni.stop(syscall.SIGKILL, waitLimit)
		}
	}
	for _, nd := range c.Nodes {
		killPidFile(filepath.Join(nd.dataDir(), "postmaster.pid"), nd.dataDir())
	}
	if c.etcd != nil {
		_ = c.etcd.stop(syscall.SIGKILL, waitLimit)
	}
	c.mu.Unlock()
	_ = os.RemoveAll(c.Dir)
}

// waitFor polls cond every 100 ms until it reports true, returns an error, limit passes or ctx
// ends.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("testserver: waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testserver: %s: not within %v", what, limit)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testserver: waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restClient keeps no idle connections: nothing of it outlives a request (goleak).
var restClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet GETs url and returns the body and status code.
func httpGet(url string) ([]byte, int, error) {
	resp, err := restClient.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b, resp.StatusCode, err
}
