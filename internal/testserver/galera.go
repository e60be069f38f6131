package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoGalera is returned (wrapped) when the Galera provider library or rsync is missing.
var ErrNoGalera = errors.New("Galera (/usr/lib/galera/libgalera_smm.so) or rsync not found (Debian: apt-get install galera-4 rsync)")

// GaleraProvider is where the Galera 4 provider library is looked for.
var GaleraProvider = "/usr/lib/galera/libgalera_smm.so"

// Galera is a MariaDB Galera cluster of 3 nodes on loopback ports in a throwaway directory (rsync
// SST, short EVS timeouts so that survivors of a crashed node stall about 3 s rather than 6 s).
// mariadbd runs as the system user mysql when the tests run as root; root has an empty password.
// Its methods are safe for concurrent use.
type Galera struct {
	Dir       string
	Nodes     []*GaleraNode
	StartTook time.Duration // from NewGalera's call to 3 nodes Synced

	mariaBins
	uid, gid int
	shared   bool
	mu       sync.Mutex
}

// GaleraNode is one node: SQL on 127.0.0.1:Port.
type GaleraNode struct {
	Name  string
	Port  int
	Dir   string
	gcomm int // gcomm base port; IST and SST have their own (ist, sst)
	ist   int
	sst   int

	g *Galera
	d *daemon // guarded by g.mu
}

var sharedGalera struct {
	once sync.Once
	c    *Galera
	err  error
}

// SharedGalera returns the test binary's Galera cluster, started on first use (about 10-15 s) and
// stopped by StopShared. Tests may kill, stop and restart nodes but must leave all three Synced
// (WaitSynced) when they end. It skips the test when MariaDB or Galera is not installed (make test
// installs them), and fails it when the cluster does not form. When the test fails, the tails of
// the nodes' logs are logged.
func SharedGalera(t testing.TB) *Galera {
	t.Helper()
	sharedGalera.once.Do(func() {
		c, err := NewGalera(context.Background())
		if err == nil {
			c.shared = true
		}
		sharedGalera.c, sharedGalera.err = c, err
	})
	if err := sharedGalera.err; err != nil {
		if errors.Is(err, ErrNoGalera) || errors.Is(err, ErrNoMariaDB) {
			t.Skipf("testserver: no Galera cluster: %v (%s)", err, makeTestHint)
		}
		t.Fatalf("testserver: cannot start the shared Galera cluster: %v", err)
	}
	c := sharedGalera.c
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails())
		}
	})
	return c
}

// NewGalera forms a 3-node Galera cluster: node1 bootstraps it, node2 and node3 join one after
// the other by SST. The caller must call Destroy.
func NewGalera(ctx context.Context) (*Galera, error) {
	began := time.Now()
	g := &Galera{}
	var err error
	if !isExec(GaleraProvider) && !fileExists(GaleraProvider) {
		return nil, ErrNoGalera
	}
	if _, err := findExec("rsync", "/usr/bin/rsync"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoGalera, err)
	}
	if g.mariaBins, err = findMariaBins(); err != nil {
		return nil, err
	}
	if g.uid, g.gid, err = sysUser("mysql"); err != nil {
		return nil, err
	}
	if g.Dir, err = makeDir("galera", "mysql"); err != nil {
		return nil, err
	}
	if err := g.start(ctx); err != nil {
		err = fmt.Errorf("%w\n%s", err, g.LogTails())
		g.destroy()
		return nil, err
	}
	g.StartTook = time.Since(began)
	return g, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (g *Galera) start(ctx context.Context) error {
	var err error
	for i := 1; i <= 3; i++ {
		n := &GaleraNode{Name: "node" + strconv.Itoa(i), Dir: filepath.Join(g.Dir, "node"+strconv.Itoa(i)), g: g}
		for _, p := range []*int{&n.Port, &n.gcomm, &n.ist, &n.sst} {
			if *p, err = freePort(); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return err
		}
		g.Nodes = append(g.Nodes, n)
	}
	var gcomm []string
	for _, n := range g.Nodes {
		gcomm = append(gcomm, fmt.Sprintf("127.0.0.1:%d", n.gcomm))
	}
	for _, n := range g.Nodes {
		if err := os.WriteFile(n.cnf(), []byte(n.config(strings.Join(gcomm, ","))), 0o644); err != nil {
			return err
		}
	}
	if err := chownTree(g.Dir, g.uid, g.gid); err != nil {
		return err
	}
	// One after the other: three in parallel failed here now and then (2 cores).
	for _, n := range g.Nodes {
		// Native AIO (io_uring/libaio) fails now and then when many servers share the machine.
		args := []string{"--no-defaults", "--datadir=" + n.dataDir(), "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-use-native-aio=0"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=mysql")
		}
		if _, err := run(ctx, cmdTimeout, n.Dir, "", toolEnv(), g.installDB, args...); err != nil {
			return err
		}
	}
	for i, n := range g.Nodes {
		var extra []string
		if i == 0 {
			extra = append(extra, "--wsrep-new-cluster")
		}
		if err := n.launch(extra...); err != nil {
			return err
		}
		if err := n.WaitSynced(ctx); err != nil {
			return err
		}
	}
	return g.Nodes[0].Exec("CREATE DATABASE IF NOT EXISTS test")
}

func (n *GaleraNode) cnf() string      { return filepath.Join(n.Dir, "node.cnf") }
func (n *GaleraNode) dataDir() string  { return filepath.Join(n.Dir, "data") }
func (n *GaleraNode) logFile() string  { return filepath.Join(n.Dir, "error.log") }
func (n *GaleraNode) Addr() string     { return fmt.Sprintf("127.0.0.1:%d", n.Port) }
func (n *GaleraNode) pidFile() string  { return filepath.Join(n.Dir, "mariadbd.pid") }
func (n *GaleraNode) sockFile() string { return filepath.Join(n.Dir, "mariadbd.sock") }

func (n *GaleraNode) config(gcomm string) string {
	return fmt.Sprintf(`[mariadbd]
datadir=%[1]s
socket=%[2]s
pid-file=%[3]s
log-error=%[4]s
port=%[5]d
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=48M
innodb_flush_log_at_trx_commit=0
innodb_use_native_aio=0
max_connections=300
wsrep_on=ON
wsrep_provider=%[6]s
wsrep_cluster_name=%[7]s
wsrep_cluster_address=gcomm://%[8]s
wsrep_node_name=%[9]s
wsrep_node_address=127.0.0.1:%[10]d
wsrep_node_incoming_address=127.0.0.1:%[5]d
wsrep_provider_options="base_port=%[10]d;gmcast.listen_addr=tcp://127.0.0.1:%[10]d;ist.recv_addr=127.0.0.1:%[11]d;gcache.size=64M;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT4S"
wsrep_sst_receive_address=127.0.0.1:%[12]d
wsrep_sst_method=rsync
wsrep_slave_threads=2
`, n.dataDir(), n.sockFile(), n.pidFile(), n.logFile(), n.Port, GaleraProvider, "hasql-"+filepath.Base(n.g.Dir),
		gcomm, n.Name, n.gcomm, n.ist, n.sst)
}

// launch starts mariadbd (--defaults-file must come first).
func (n *GaleraNode) launch(extra ...string) error {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.d.running() {
		return fmt.Errorf("testserver: Galera %s is already running", n.Name)
	}
	d, err := startDaemon(n.Dir, filepath.Join(n.Dir, "stdout.log"), g.uid, g.gid, toolEnv("PATH=/usr/bin:/bin:/usr/sbin:/sbin"),
		g.mariadbd, append([]string{"--defaults-file=" + n.cnf()}, extra...)...)
	if err != nil {
		return err
	}
	n.d = d
	return nil
}

// Status returns the node's wsrep status variables (wsrep_local_state_comment, wsrep_ready,
// wsrep_cluster_size, wsrep_incoming_addresses...).
func (n *GaleraNode) Status() (map[string]string, error) {
	out, err := n.Query("SHOW GLOBAL STATUS LIKE 'wsrep_%'")
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			st[k] = v
		}
	}
	return st, nil
}

// WaitSynced waits (at most 180 s: an SST on a loaded machine is slow) until the node is Synced and ready in a Primary component.
func (n *GaleraNode) WaitSynced(ctx context.Context) error {
	return waitFor(ctx, 6*waitLimit, "Galera "+n.Name+" Synced", func() (bool, error) {
		n.g.mu.Lock()
		running := n.d.running()
		n.g.mu.Unlock()
		if !running {
			return false, fmt.Errorf("mariadbd %s is not running", n.Name)
		}
		st, err := n.Status()
		return err == nil && st["wsrep_local_state_comment"] == "Synced" && st["wsrep_ready"] == "ON" &&
			st["wsrep_cluster_status"] == "Primary", nil
	})
}

// WaitSynced waits until every node is Synced and the cluster has all of them.
func (g *Galera) WaitSynced(ctx context.Context) error {
	for _, n := range g.Nodes {
		if err := n.WaitSynced(ctx); err != nil {
			return err
		}
	}
	return waitFor(ctx, waitLimit, "Galera cluster size 3", func() (bool, error) {
		st, err := g.Nodes[0].Status()
		return err == nil && st["wsrep_cluster_size"] == strconv.Itoa(len(g.Nodes)), nil
	})
}

// KillNode SIGKILLs the node's mariadbd. The survivors stall commits until they evict it (about
// 3 s with this cluster's EVS timeouts).
func (n *GaleraNode) KillNode() error { return n.stop(syscall.SIGKILL) }

// StopNode stops the node's mariadbd cleanly (SIGTERM): it leaves the cluster without a stall.
func (n *GaleraNode) StopNode() error { return n.stop(syscall.SIGTERM) }

func (n *GaleraNode) stop(sig syscall.Signal) error {
	n.g.mu.Lock()
	defer n.g.mu.Unlock()
	if !n.d.running() {
		return fmt.Errorf("testserver: Galera %s is not running", n.Name)
	}
	return n.d.stop(sig, waitLimit)
}

var recoveredPos = regexp.MustCompile(`WSREP: Recovered position: ([0-9a-f-]+:-?[0-9]+)`)

// RestartNode starts a stopped or killed node again and waits until it is Synced. It recovers the
// node's position first (--wsrep-recover) so that it rejoins by IST rather than a full SST.
func (n *GaleraNode) RestartNode(ctx context.Context) error {
	recLog := filepath.Join(n.Dir, "recover.log")
	_ = os.Remove(recLog)
	var extra []string
	if _, err := run(ctx, cmdTimeout, n.Dir, "", toolEnv(), n.g.mariadbd, "--defaults-file="+n.cnf(), "--wsrep-recover",
		"--log-error="+recLog, userArg()); err == nil {
		b, _ := os.ReadFile(recLog)
		if m := recoveredPos.FindSubmatch(b); m != nil && !strings.HasSuffix(string(m[1]), ":-1") {
			extra = append(extra, "--wsrep_start_position="+string(m[1]))
		}
	}
	if err := n.launch(extra...); err != nil {
		return err
	}
	return n.WaitSynced(ctx)
}

// userArg is mariadbd's --user when run as root (by hand, not through startDaemon), else nothing
// of consequence.
func userArg() string {
	if os.Geteuid() == 0 {
		return "--user=mysql"
	}
	return "--skip-name-resolve"
}

// Running reports whether the node's mariadbd is alive.
func (n *GaleraNode) Running() bool {
	n.g.mu.Lock()
	defer n.g.mu.Unlock()
	return n.d.running()
}

// NodeDSN returns a go-sql-driver/mysql DSN (root, empty password) for database db on this node.
func (n *GaleraNode) NodeDSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", n.Port, db)
}

// Addrs returns every node's host:port, in node order.
func (g *Galera) Addrs() []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Query runs sql on the node with the mariadb client (root, -N -B) and returns its output,
// trimmed.
func (n *GaleraNode) Query(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := run(ctx, 20*time.Second, "", "", toolEnv(), n.g.client, "--no-defaults", "--connect-timeout=3",
		"-N", "-B", "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(n.Port), "-u", "root", "-e", sql)
	return strings.TrimSpace(out), err
}

// Exec is Query without the output.
func (n *GaleraNode) Exec(sql string) error {
	_, err := n.Query(sql)
	return err
}

// FreshDB creates database t_<random> (replicated to every node) for test t and returns its name;
// it is dropped (best effort) when the test ends.
func (g *Galera) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + randHex(8)
	var err error
	for _, n := range g.Nodes {
		if err = n.Exec("CREATE DATABASE `" + name + "`"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range g.Nodes {
			if n.Exec("DROP DATABASE IF EXISTS `"+name+"`") == nil {
				return
			}
		}
	})
	return name
}

// LogTails returns the tails of the nodes' error logs.
func (g *Galera) LogTails() string {
	var b strings.Builder
	for _, n := range g.Nodes {
		b.WriteString(logTail(n.logFile()))
		b.WriteString("\n")
	}
	return b.String()
}

// Destroy kills every node and removes the directory; nothing for the shared cluster.
func (g *Galera) Destroy() {
	if g.shared {
		return
	}
	g.destroy()
}

func (g *Galera) destroy() {
	if g.Dir == "" {
		return
	}
	g.mu.Lock()
	for _, n := range g.Nodes {
		if n.d != nil {
			_ = n.d.stop(syscall.SIGKILL, waitLimit)
		}
	}
	g.mu.Unlock()
	_ = os.RemoveAll(g.Dir)
}
