package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoMariaDB is returned (wrapped: test with errors.Is) when the MariaDB binaries (mariadbd,
// mariadb-install-db, the mariadb client) are missing. MariaDBInstallHint says how to get them.
var ErrNoMariaDB = errors.New("MariaDB server binaries (mariadbd, mariadb-install-db, mariadb) not found")

// MariaDBInstallHint tells a user of a program (not a test) how to get what ErrNoMariaDB says is
// missing.
const MariaDBInstallHint = "install them with: sudo apt-get update && sudo apt-get install -y mariadb-server (Debian/Ubuntu; the package's own service is not used)"

const mariaHint = makeTestHint + " or set HASQL_TEST_MYSQL_DSN"

// MariaDBOptions configures NewMariaDB.
type MariaDBOptions struct {
	// MaxConnections is the server's max_connections; 0 means 300.
	MaxConnections int
	// ServerArgs are more mariadbd options, after the package's own (so they win where they set
	// the same variable), e.g. "--innodb-flush-log-at-trx-commit=2". The package starts mariadbd
	// with --innodb-flush-log-at-trx-commit=0: commits of the last second can be lost on kill -9.
	ServerArgs []string
	// NewProcessGroup runs mariadbd in a process group of its own, so that a terminal's Ctrl-C
	// reaches only the calling program, which then stops the server itself.
	NewProcessGroup bool
}

// MariaDB is a MariaDB server: an instance started by this package (its own data directory, log,
// unix socket and pid file in Dir, listening on 127.0.0.1:Port, root with an empty password,
// database "test"; mariadbd is a child of this process), or an external server given by
// HASQL_TEST_MYSQL_DSN to SharedMariaDB. Its methods are safe for concurrent use.
type MariaDB struct {
	Port int    // loopback TCP port (0 for an external server)
	Dir  string // instance directory: data/, log, sock, mariadbd.pid ("" for an external server)

	mariaBins
	opts     MariaDBOptions
	external string // DSN from HASQL_TEST_MYSQL_DSN; only DSN, Exec, Query and FreshDB work
	shared   bool
	mu       sync.Mutex
	cmd      *exec.Cmd // the running mariadbd, our child
}

func (m *MariaDB) dataDir() string { return filepath.Join(m.Dir, "data") }
func (m *MariaDB) logFile() string { return filepath.Join(m.Dir, "log") }

// DSN returns a go-sql-driver/mysql DSN for database db on this server, without parameters ("?"
// and parameters may be appended; for an external server, its DSN pointed at db, with its
// parameters).
func (m *MariaDB) DSN(db string) string {
	if m.external != "" {
		return mysqlWithDB(m.external, db)
	}
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", m.Port, db)
}

// External reports whether this is the external server named by HASQL_TEST_MYSQL_DSN (see
// SharedMariaDB).
func (m *MariaDB) External() bool { return m.external != "" }

func (m *MariaDB) controllable() error {
	return refuseControl(m.external != "", m.shared, "MariaDB", "HASQL_TEST_MYSQL_DSN", "SharedMariaDB", "StartMariaDB")
}

// StartMariaDB starts a throwaway MariaDB instance (root, empty password, TCP on loopback) with
// database "test" for test t, killed and removed when the test ends; it fails the test if it
// cannot. It always starts its own instance, whatever HASQL_TEST_MYSQL_DSN says.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	m, err := NewMariaDB(context.Background(), MariaDBOptions{})
	if err != nil {
		t.Fatalf("testserver: cannot start a throwaway MariaDB server: %v\nTo get one: %s (the variable serves only tests on the shared server; this test stops or kills its own server and needs the local binaries)", err, mariaHint)
	}
	t.Cleanup(m.destroy)
	return m
}

// mariaBinDirs is where the MariaDB binaries are looked for after PATH.
var mariaBinDirs = []string{"/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/scripts", "/usr/local/sbin", "/usr/local/bin"}

// mariaBins are the MariaDB programs a server or a cluster of this package runs.
type mariaBins struct {
	mariadbd, installDB, client string
}

// findMariaBins looks up mariadbd, mariadb-install-db and the mariadb client (or their mysql
// names).
func findMariaBins() (b mariaBins, err error) {
	if b.mariadbd, err = findMaria("mariadbd", "mysqld"); err != nil {
		return b, err
	}
	if b.installDB, err = findMaria("mariadb-install-db", "mysql_install_db"); err != nil {
		return b, err
	}
	b.client, err = findMaria("mariadb", "mysql")
	return b, err
}

// findMaria finds the first of names on PATH, else in mariaBinDirs.
func findMaria(names ...string) (string, error) {
	for _, n := range names {
		var fallbacks []string
		for _, d := range mariaBinDirs {
			fallbacks = append(fallbacks, filepath.Join(d, n))
		}
		if p, err := findExec(n, fallbacks...); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of %s on PATH or in %s", ErrNoMariaDB, strings.Join(names, ", "), strings.Join(mariaBinDirs, ", "))
}

// NewMariaDB creates and starts a throwaway MariaDB instance with database "test", for use outside
// tests; the caller must call Destroy. ctx bounds the start-up. When the binaries are missing the
// error wraps ErrNoMariaDB.
func NewMariaDB(ctx context.Context, opts MariaDBOptions) (*MariaDB, error) {
	m := &MariaDB{opts: opts}
	if m.opts.MaxConnections <= 0 {
		m.opts.MaxConnections = 300
	}
	var err error
	if m.mariaBins, err = findMariaBins(); err != nil {
		return nil, err
	}
	if m.Dir, err = makeDir("maria", "mysql"); err != nil {
		return nil, err
	}
	args := []string{"--no-defaults", "--datadir=" + m.dataDir(), "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=mysql")
	}
	if _, err := run(ctx, cmdTimeout, m.Dir, "", toolEnv(), m.installDB, args...); err != nil {
		m.destroy()
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if m.Port, err = freePort(); err != nil {
			break
		}
		var bindFailed bool
		if bindFailed, err = m.start(ctx, 0); err == nil || !bindFailed || attempt == 4 {
			break
		}
	}
	if err == nil {
		_, err = m.mariadb(ctx, "", "CREATE DATABASE test", 10)
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, logTail(m.logFile()))
		m.destroy()
		return nil, err
	}
	return m, nil
}

// start launches mariadbd and waits until it answers "select 1" over TCP. portWait is passed as
// --port-open-timeout (seconds mariadbd retries a busy port).
func (m *MariaDB) start(ctx context.Context, portWait int) (bindFailed bool, err error) {
	if m.cmd != nil {
		return false, fmt.Errorf("testserver: MariaDB on 127.0.0.1:%d is already running", m.Port)
	}
	logOff := fileSize(m.logFile())
	logf, err := os.OpenFile(m.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"--no-defaults", "--datadir=" + m.dataDir(), "--port=" + strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(m.Dir, "sock"),
		"--pid-file=" + filepath.Join(m.Dir, "mariadbd.pid"), "--skip-log-bin", "--skip-name-resolve",
		"--max-connections=" + strconv.Itoa(m.opts.MaxConnections), "--innodb-flush-log-at-trx-commit=0",
		"--port-open-timeout=" + strconv.Itoa(portWait)}
	if os.Geteuid() == 0 {
		args = append(args, "--user=mysql")
	}
	args = append(args, m.opts.ServerArgs...)
	cmd := exec.Command(m.mariadbd, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Env = m.Dir, logf, logf, toolEnv()
	if m.opts.NewProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting %s: %v", m.mariadbd, err)
	}
	m.cmd = cmd
	deadline := time.Now().Add(waitLimit + time.Duration(portWait)*time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	for {
		if !alive(cmd.Process.Pid) {
			werr := m.wait(waitLimit)
			newLog := readFrom(m.logFile(), logOff)
			bindFailed = strings.Contains(newLog, "Bind on TCP/IP port") || strings.Contains(newLog, "Address already in use")
			return bindFailed, fmt.Errorf("mariadbd on 127.0.0.1:%d exited during start-up (%v)\n%s", m.Port, werr, logTail(m.logFile()))
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if _, err := m.mariadb(ctx, "", "SELECT 1", 5); err == nil {
				return false, nil
			}
		}
		if ctx.Err() != nil {
			_ = m.kill(syscall.SIGKILL)
			return false, fmt.Errorf("starting mariadbd on 127.0.0.1:%d: %w", m.Port, ctx.Err())
		}
		if time.Now().After(deadline) {
			_ = m.kill(syscall.SIGKILL)
			return false, fmt.Errorf("mariadbd on 127.0.0.1:%d not accepting connections after %v\n%s", m.Port, waitLimit, logTail(m.logFile()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait reaps the mariadbd child; the goroutine lives only as long as this call.
func (m *MariaDB) wait(timeout time.Duration) error {
	cmd := m.cmd
	if cmd == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		m.cmd = nil
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		select {
		case <-done:
			m.cmd = nil
			return fmt.Errorf("testserver: mariadbd (pid %d) did not exit within %v; killed it", cmd.Process.Pid, timeout)
		case <-time.After(waitLimit):
			return fmt.Errorf("testserver: mariadbd (pid %d) survives SIGKILL", cmd.Process.Pid)
		}
	}
}

// kill signals mariadbd and waits until it has exited.
func (m *MariaDB) kill(sig os.Signal) error {
	if m.cmd == nil {
		return fmt.Errorf("testserver: MariaDB on 127.0.0.1:%d is not running", m.Port)
	}
	if err := m.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	var ee *exec.ExitError
	if err := m.wait(waitLimit); err != nil && !errors.As(err, &ee) {
		return err
	}
	return nil
}

// Stop sends SIGTERM (clean shutdown) and waits for mariadbd to exit (SIGKILL after 30 s).
func (m *MariaDB) Stop() error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kill(syscall.SIGTERM)
}

// Kill9 sends SIGKILL to mariadbd and waits for it to exit; Start then runs crash recovery.
func (m *MariaDB) Kill9() error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kill(syscall.SIGKILL)
}

// Start starts the stopped server again on the same port and data directory, and returns once it
// answers queries (mariadbd retries a port still held by someone else for 10 s).
func (m *MariaDB) Start() error { return m.StartContext(context.Background()) }

// StartContext is Start with a context that bounds it.
func (m *MariaDB) StartContext(ctx context.Context) error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.start(ctx, 10)
	return err
}

// Restart is Stop then Start.
func (m *MariaDB) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

// PID returns mariadbd's pid, or 0 when it is not running (or the server is external).
func (m *MariaDB) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || !alive(m.cmd.Process.Pid) {
		return 0
	}
	return m.cmd.Process.Pid
}

// Exec runs sql with the mariadb client as root, no default database.
func (m *MariaDB) Exec(sql string) error {
	_, err := m.mariadb(context.Background(), "", sql, 10)
	return err
}

// ExecIn is Exec in database db.
func (m *MariaDB) ExecIn(db, sql string) error {
	_, err := m.mariadb(context.Background(), db, sql, 10)
	return err
}

// Query runs sql with mariadb -N -B, no default database, and returns its output, trimmed (rows
// on lines, columns separated by tabs).
func (m *MariaDB) Query(sql string) (string, error) { return m.QueryIn("", sql) }

// QueryIn is Query in database db.
func (m *MariaDB) QueryIn(db, sql string) (string, error) {
	out, err := m.mariadb(context.Background(), db, sql, 10)
	return strings.TrimSpace(out), err
}

func (m *MariaDB) mariadb(ctx context.Context, db, sql string, connectTimeout int) (string, error) {
	client := m.client
	if client == "" {
		var err error
		if client, err = findExec("mariadb", "/usr/bin/mariadb"); err != nil {
			if client, err = findExec("mysql", "/usr/bin/mysql"); err != nil {
				return "", fmt.Errorf("testserver: the mariadb client is needed to run SQL on the MariaDB server: %s", mariaHint)
			}
		}
	}
	args := []string{"--no-defaults", "--connect-timeout=" + strconv.Itoa(connectTimeout), "-N", "-B"}
	env := toolEnv()
	if m.external != "" {
		conn, pw, err := mysqlClientArgs(m.external)
		if err != nil {
			return "", err
		}
		args = append(args, conn...)
		env = append(env, "MYSQL_PWD="+pw)
	} else {
		args = append(args, "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(m.Port), "-u", "root")
	}
	if db != "" {
		args = append(args, "-D", db)
	}
	args = append(args, "-e", sql)
	return run(ctx, cmdTimeout, "", "", env, client, args...)
}

// FreshDB creates an empty database t_<random> for test t and returns its DSN; the database is
// dropped (best effort) when the test ends.
func (m *MariaDB) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + randHex(8)
	if err := m.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	t.Cleanup(func() { _ = m.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	return m.DSN(name)
}

// Destroy kills mariadbd (SIGKILL: nothing in it is worth keeping), waits for it to exit and
// removes its directory. It does nothing for the shared or an external server (StopShared stops the
// shared one).
func (m *MariaDB) Destroy() {
	if m.shared {
		return
	}
	m.destroy()
}

func (m *MariaDB) destroy() {
	if m.external != "" || m.Dir == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.kill(syscall.SIGKILL)
	}
	_ = os.RemoveAll(m.Dir)
}
