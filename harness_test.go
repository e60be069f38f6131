package hasql_test

// Integration-test harness: throwaway and shared PostgreSQL and MariaDB servers on loopback.
//
// Standard library only, and no Go database driver: servers are driven with their own command-line
// tools (initdb, pg_ctl, pg_basebackup, psql, mariadb-install-db, mariadbd, mariadb), so the harness
// does not depend on the code under test.
//
//   startPostgres(t) / startMariaDB(t)  a private instance for tests that stop, kill or restart it;
//                                       removed at the end of the test.
//   sharedPG(t) / sharedMaria(t)         one instance per test binary (or the external server named
//                                       by HASQL_TEST_PG_DSN / HASQL_TEST_MYSQL_DSN), stopped by
//                                       TestMain; it refuses Stop/Start/Kill.
//   srv.FreshDB(t)                       a new empty database for this test, returns its DSN.
//
// Servers live in $TMPDIR/hasql-pg-* and $TMPDIR/hasql-maria-*. A file "owner" in each records the
// test binary's pid; directories left behind by a binary that died (timeout panic, SIGKILL) are
// cleaned up, server processes included, by the next binary that starts a server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	harnessWait       = 30 * time.Second // every wait for a server is bounded by this
	harnessCmdTimeout = 90 * time.Second // hard limit for one command-line tool run
)

const harnessInstallHint = "run 'make test' (it installs postgresql and mariadb-server)"

var (
	harnessPGHint    = harnessInstallHint + " or set HASQL_TEST_PG_DSN"
	harnessMariaHint = harnessInstallHint + " or set HASQL_TEST_MYSQL_DSN"
)

// ---------------------------------------------------------------------------------------------
// PostgreSQL

// pgServer is a PostgreSQL instance started by the harness, or (shared only) an external server.
type pgServer struct {
	Port int    // loopback TCP port
	Dir  string // instance directory: data/ (PGDATA), log, unix socket

	bin      string // directory holding initdb, pg_ctl, psql, pg_basebackup
	external string // DSN from HASQL_TEST_PG_DSN; only DSN, Exec, Query and FreshDB work
	shared   bool   // the per-binary shared instance: refuses Stop/Start/Kill
	mu       sync.Mutex
}

func (p *pgServer) dataDir() string { return filepath.Join(p.Dir, "data") }
func (p *pgServer) logFile() string { return filepath.Join(p.Dir, "log") }

// DSN returns a pgx URL for database db on this server.
func (p *pgServer) DSN(db string) string {
	if p.external != "" {
		return harnessPGWithDB(p.external, db)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, url.PathEscape(db))
}

func (p *pgServer) controllable() error {
	switch {
	case p.external != "":
		return fmt.Errorf("hasql test harness: the PostgreSQL server from HASQL_TEST_PG_DSN is external: it cannot be stopped, started or killed; use startPostgres(t) in tests that need that")
	case p.shared:
		return fmt.Errorf("hasql test harness: sharedPG's server is shared by all tests: it cannot be stopped, started or killed; use startPostgres(t) in tests that need that")
	}
	return nil
}

// startPostgres starts a throwaway PostgreSQL instance with database "test", stopped (immediate
// mode) and removed when the test ends. It always starts its own instance, whatever
// HASQL_TEST_PG_DSN says.
func startPostgres(t testing.TB) *pgServer {
	t.Helper()
	p, err := harnessNewPostgres()
	if err != nil {
		t.Fatalf("hasql test harness: cannot start a throwaway PostgreSQL server: %v\nTo get one: %s (the variable serves only tests on the shared server; this test stops or kills its own server and needs the local binaries)", err, harnessPGHint)
	}
	t.Cleanup(p.destroy)
	return p
}

func harnessNewPostgres() (*pgServer, error) {
	bin, err := harnessPGBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := harnessMkdir("pg", "postgres")
	if err != nil {
		return nil, err
	}
	p := &pgServer{Dir: dir, bin: bin}
	if _, err := p.tool(harnessCmdTimeout, "initdb", "-D", p.dataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		p.destroy()
		return nil, err
	}
	if err := p.startOnFreshPort(); err != nil {
		p.destroy()
		return nil, err
	}
	if err := p.Exec("CREATE DATABASE test"); err != nil {
		err = fmt.Errorf("%v\n%s", err, harnessLogTail(p.logFile()))
		p.destroy()
		return nil, err
	}
	return p, nil
}

// startOnFreshPort picks a free port and starts; a port someone else took meanwhile means another try.
func (p *pgServer) startOnFreshPort() error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if p.Port, err = harnessFreePort(); err != nil {
			return err
		}
		var bindFailed bool
		if bindFailed, err = p.start(); err == nil || !bindFailed {
			return err
		}
	}
	return err
}

// start runs pg_ctl start; bindFailed reports that the port was in use.
func (p *pgServer) start() (bindFailed bool, err error) {
	opts := fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", p.Port, p.Dir)
	logOff := harnessFileSize(p.logFile())
	_, err = p.tool(harnessWait+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-o", opts, "-l", p.logFile(),
		"-w", "-t", strconv.Itoa(int(harnessWait/time.Second)), "start")
	if err != nil {
		newLog := harnessReadFrom(p.logFile(), logOff)
		bindFailed = strings.Contains(newLog, "could not bind") || strings.Contains(newLog, "Address already in use")
		return bindFailed, fmt.Errorf("starting PostgreSQL on 127.0.0.1:%d: %v\n%s", p.Port, err, harnessLogTail(p.logFile()))
	}
	return false, nil
}

// Start starts the stopped server again on the same port with the same data directory.
func (p *pgServer) Start() error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(harnessWait)
	for {
		bindFailed, err := p.start()
		if err == nil || !bindFailed || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond) // port still held by someone: wait for it
	}
}

// Stop runs pg_ctl stop -m mode -w; mode is "fast", "immediate" or "smart" ("smart" waits for
// clients to disconnect, and fails after 30 s if they do not).
func (p *pgServer) Stop(mode string) error {
	if err := p.controllable(); err != nil {
		return err
	}
	switch mode {
	case "fast", "immediate", "smart":
	default:
		return fmt.Errorf("hasql test harness: pg_ctl stop mode %q: want fast, immediate or smart", mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop(mode)
}

func (p *pgServer) stop(mode string) error {
	_, err := p.tool(harnessWait+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-m", mode, "-w",
		"-t", strconv.Itoa(int(harnessWait/time.Second)), "stop")
	if err != nil {
		return fmt.Errorf("stopping PostgreSQL on 127.0.0.1:%d: %v\n%s", p.Port, err, harnessLogTail(p.logFile()))
	}
	return nil
}

// Restart is Stop(mode) then Start().
func (p *pgServer) Restart(mode string) error {
	if err := p.Stop(mode); err != nil {
		return err
	}
	return p.Start()
}

// PID returns the postmaster's pid, or 0 when the server is not running.
func (p *pgServer) PID() int {
	if p.external != "" {
		return 0
	}
	pid := harnessPidFromFile(filepath.Join(p.dataDir(), "postmaster.pid"))
	if pid <= 0 || !harnessAlive(pid) {
		return 0
	}
	return pid
}

// Kill9Postmaster sends SIGKILL to the postmaster, as a crash would. It returns once the postmaster
// and its children are gone (orphaned backends normally exit at once on postmaster death; any still
// there after 5 s are killed too), so that Start can follow at once and run crash recovery.
func (p *pgServer) Kill9Postmaster() error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pid := p.PID()
	if pid == 0 {
		return fmt.Errorf("hasql test harness: Kill9Postmaster: PostgreSQL on 127.0.0.1:%d is not running", p.Port)
	}
	return p.kill9(pid)
}

func (p *pgServer) kill9(pid int) error {
	children := harnessChildren(pid)
	if err := harnessSignal(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("hasql test harness: kill -9 %d (postmaster): %v", pid, err)
	}
	if !harnessWaitDead(harnessWait, pid) {
		return fmt.Errorf("hasql test harness: postmaster %d still alive %v after SIGKILL", pid, harnessWait)
	}
	if !harnessWaitDead(5*time.Second, children...) {
		for _, c := range children {
			_ = harnessSignal(c, syscall.SIGKILL)
		}
		if !harnessWaitDead(harnessWait, children...) {
			return fmt.Errorf("hasql test harness: children of postmaster %d still alive after SIGKILL", pid)
		}
	}
	// Where pid 1 does not reap orphans (some containers, this CI machine), the dead postmaster
	// stays a zombie and a new postmaster takes the stale lock files (data directory and socket)
	// for a live server's. Everything is dead: drop them.
	if harnessIsZombie(pid) {
		_ = os.Remove(filepath.Join(p.dataDir(), "postmaster.pid"))
		_ = os.Remove(filepath.Join(p.Dir, fmt.Sprintf(".s.PGSQL.%d.lock", p.Port)))
	}
	return nil
}

// Exec runs sql with psql in database "postgres" (ON_ERROR_STOP; several statements in one string
// run as one implicit transaction, so CREATE DATABASE must be alone).
func (p *pgServer) Exec(sql string) error {
	_, err := p.psql("postgres", sql)
	return err
}

// ExecIn is Exec in database db.
func (p *pgServer) ExecIn(db, sql string) error {
	_, err := p.psql(db, sql)
	return err
}

// Query runs sql with psql -At in database "postgres" and returns its output, trimmed
// (rows on lines, columns separated by '|').
func (p *pgServer) Query(sql string) (string, error) {
	out, err := p.psql("postgres", sql)
	return strings.TrimSpace(out), err
}

func (p *pgServer) psql(db, sql string) (string, error) {
	psql := "psql"
	if p.bin != "" {
		psql = filepath.Join(p.bin, "psql")
	} else if _, err := exec.LookPath("psql"); err != nil {
		return "", fmt.Errorf("hasql test harness: psql not found (needed to run SQL on the PostgreSQL server): %s", harnessPGHint)
	}
	args := []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	env := harnessEnv("PGCONNECT_TIMEOUT=10")
	if p.external != "" {
		args = append(args, "-d", p.DSN(db))
		env = append(os.Environ(), "LC_ALL=C", "PGCONNECT_TIMEOUT=10")
	} else {
		args = append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db)
	}
	args = append(args, "-c", sql)
	return harnessRun(harnessCmdTimeout, "", "", env, psql, args...)
}

// tool runs a PostgreSQL server tool as user postgres (when the test runs as root).
func (p *pgServer) tool(timeout time.Duration, name string, args ...string) (string, error) {
	return harnessRun(timeout, p.Dir, "postgres", harnessEnv(), filepath.Join(p.bin, name), args...)
}

// StartStandby makes a streaming standby of p with pg_basebackup -R, on a new port, started and
// accepting read-only connections; removed when the test ends. The standby has no database the
// primary lacks ("test" is there).
func (p *pgServer) StartStandby(t testing.TB) *pgServer {
	t.Helper()
	if err := p.controllable(); err != nil {
		t.Fatalf("hasql test harness: StartStandby: %v", err)
	}
	s, err := p.newStandby()
	if err != nil {
		t.Fatalf("hasql test harness: cannot start a PostgreSQL standby of 127.0.0.1:%d: %v", p.Port, err)
	}
	t.Cleanup(s.destroy)
	return s
}

func (p *pgServer) newStandby() (*pgServer, error) {
	dir, err := harnessMkdir("pg", "postgres")
	if err != nil {
		return nil, err
	}
	s := &pgServer{Dir: dir, bin: p.bin}
	if _, err := s.tool(harnessCmdTimeout, "pg_basebackup", "-D", s.dataDir(), "-R", "-X", "stream",
		"-c", "fast", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres"); err != nil {
		s.destroy()
		return nil, err
	}
	if err := s.startOnFreshPort(); err != nil {
		s.destroy()
		return nil, err
	}
	return s, nil
}

// Promote promotes a standby (pg_ctl promote -w): it returns once the server accepts writes.
func (p *pgServer) Promote() error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.tool(harnessWait+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-w",
		"-t", strconv.Itoa(int(harnessWait/time.Second)), "promote")
	if err != nil {
		return fmt.Errorf("promoting PostgreSQL on 127.0.0.1:%d: %v\n%s", p.Port, err, harnessLogTail(p.logFile()))
	}
	return nil
}

// FreshDB creates an empty database t_<random> for this test and returns its DSN; the database is
// dropped (best effort, WITH (FORCE)) when the test ends.
func (p *pgServer) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + harnessRandHex(8)
	if err := p.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("hasql test harness: FreshDB: %v", err)
	}
	t.Cleanup(func() {
		if p.Exec("DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") != nil {
			_ = p.Exec("DROP DATABASE IF EXISTS " + name) // before PostgreSQL 13
		}
	})
	return p.DSN(name)
}

// destroy stops the instance (immediate), killing it if that fails, and removes its directory.
func (p *pgServer) destroy() {
	if p.external != "" || p.Dir == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pid := p.PID(); pid != 0 {
		if p.stop("immediate") != nil {
			if pid := p.PID(); pid != 0 {
				_ = p.kill9(pid)
			}
		}
	}
	_ = os.RemoveAll(p.Dir)
}

// harnessPGBinDir finds the server binaries: the highest /usr/lib/postgresql/<v>/bin, else PATH.
func harnessPGBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if harnessIsExec(filepath.Join(d, "initdb")) && harnessIsExec(filepath.Join(d, "pg_ctl")) {
			found = append(found, d)
		}
	}
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	if len(found) > 0 {
		return found[0], nil
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(initdb)
		if harnessIsExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH")
}

// harnessPGWithDB points a libpq/pgx DSN (URL or key=value form) at database db.
func harnessPGWithDB(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path, u.RawPath = "/"+db, ""
			return u.String()
		}
	}
	re := regexp.MustCompile(`(^|\s)dbname\s*=\s*('(\\.|[^'])*'|\S*)`)
	if re.MatchString(dsn) {
		return re.ReplaceAllString(dsn, "${1}dbname="+db)
	}
	return strings.TrimSpace(dsn + " dbname=" + db)
}

// ---------------------------------------------------------------------------------------------
// MariaDB

// mariaServer is a MariaDB instance started by the harness, or (shared only) an external server.
type mariaServer struct {
	Port int    // loopback TCP port
	Dir  string // instance directory: data/, log, sock, mariadbd.pid

	mariadbd, installDB, client string
	external                    string // DSN from HASQL_TEST_MYSQL_DSN; only DSN, Exec, Query and FreshDB work
	shared                      bool
	mu                          sync.Mutex
	cmd                         *exec.Cmd // the running mariadbd, our child
}

func (m *mariaServer) dataDir() string { return filepath.Join(m.Dir, "data") }
func (m *mariaServer) logFile() string { return filepath.Join(m.Dir, "log") }

// DSN returns a go-sql-driver/mysql DSN for database db on this server.
func (m *mariaServer) DSN(db string) string {
	if m.external != "" {
		return harnessMySQLWithDB(m.external, db)
	}
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", m.Port, db)
}

func (m *mariaServer) controllable() error {
	switch {
	case m.external != "":
		return fmt.Errorf("hasql test harness: the MariaDB server from HASQL_TEST_MYSQL_DSN is external: it cannot be stopped, started or killed; use startMariaDB(t) in tests that need that")
	case m.shared:
		return fmt.Errorf("hasql test harness: sharedMaria's server is shared by all tests: it cannot be stopped, started or killed; use startMariaDB(t) in tests that need that")
	}
	return nil
}

// startMariaDB starts a throwaway MariaDB instance (root, empty password, TCP on loopback) with
// database "test", killed and removed when the test ends. It always starts its own instance,
// whatever HASQL_TEST_MYSQL_DSN says.
func startMariaDB(t testing.TB) *mariaServer {
	t.Helper()
	m, err := harnessNewMariaDB()
	if err != nil {
		t.Fatalf("hasql test harness: cannot start a throwaway MariaDB server: %v\nTo get one: %s (the variable serves only tests on the shared server; this test stops or kills its own server and needs the local binaries)", err, harnessMariaHint)
	}
	t.Cleanup(m.destroy)
	return m
}

func harnessNewMariaDB() (*mariaServer, error) {
	m := &mariaServer{}
	var err error
	if m.mariadbd, err = harnessFindExec("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd"); err != nil {
		return nil, err
	}
	if m.installDB, err = harnessFindExec("mariadb-install-db", "/usr/bin/mariadb-install-db", "/usr/scripts/mariadb-install-db"); err != nil {
		return nil, err
	}
	if m.client, err = harnessFindExec("mariadb", "/usr/bin/mariadb"); err != nil {
		return nil, err
	}
	if m.Dir, err = harnessMkdir("maria", "mysql"); err != nil {
		return nil, err
	}
	args := []string{"--no-defaults", "--datadir=" + m.dataDir(), "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=mysql")
	}
	if _, err := harnessRun(harnessCmdTimeout, m.Dir, "", harnessEnv(), m.installDB, args...); err != nil {
		m.destroy()
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if m.Port, err = harnessFreePort(); err != nil {
			break
		}
		var bindFailed bool
		if bindFailed, err = m.start(0); err == nil || !bindFailed || attempt == 4 {
			break
		}
	}
	if err == nil {
		err = m.Exec("CREATE DATABASE test")
	}
	if err != nil {
		err = fmt.Errorf("%v\n%s", err, harnessLogTail(m.logFile()))
		m.destroy()
		return nil, err
	}
	return m, nil
}

// start launches mariadbd and waits until it answers "select 1" over TCP. portWait is passed as
// --port-open-timeout (seconds mariadbd retries a busy port).
func (m *mariaServer) start(portWait int) (bindFailed bool, err error) {
	if m.cmd != nil {
		return false, fmt.Errorf("hasql test harness: MariaDB on 127.0.0.1:%d is already running", m.Port)
	}
	logOff := harnessFileSize(m.logFile())
	logf, err := os.OpenFile(m.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"--no-defaults", "--datadir=" + m.dataDir(), "--port=" + strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(m.Dir, "sock"),
		"--pid-file=" + filepath.Join(m.Dir, "mariadbd.pid"), "--skip-log-bin", "--skip-name-resolve",
		"--max-connections=300", "--innodb-flush-log-at-trx-commit=0",
		"--port-open-timeout=" + strconv.Itoa(portWait)}
	if os.Geteuid() == 0 {
		args = append(args, "--user=mysql")
	}
	cmd := exec.Command(m.mariadbd, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Env = m.Dir, logf, logf, harnessEnv()
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting %s: %v", m.mariadbd, err)
	}
	m.cmd = cmd
	deadline := time.Now().Add(harnessWait + time.Duration(portWait)*time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	for {
		if !harnessAlive(cmd.Process.Pid) {
			werr := m.wait(harnessWait)
			newLog := harnessReadFrom(m.logFile(), logOff)
			bindFailed = strings.Contains(newLog, "Bind on TCP/IP port") || strings.Contains(newLog, "Address already in use")
			return bindFailed, fmt.Errorf("mariadbd on 127.0.0.1:%d exited during start-up (%v)\n%s", m.Port, werr, harnessLogTail(m.logFile()))
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if _, err := m.mariadb("", "SELECT 1", 5); err == nil {
				return false, nil
			}
		}
		if time.Now().After(deadline) {
			_ = m.kill(syscall.SIGKILL)
			return false, fmt.Errorf("mariadbd on 127.0.0.1:%d not accepting connections after %v\n%s", m.Port, harnessWait, harnessLogTail(m.logFile()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait reaps the mariadbd child; the goroutine lives only as long as this call.
func (m *mariaServer) wait(timeout time.Duration) error {
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
			return fmt.Errorf("hasql test harness: mariadbd (pid %d) did not exit within %v; killed it", cmd.Process.Pid, timeout)
		case <-time.After(harnessWait):
			return fmt.Errorf("hasql test harness: mariadbd (pid %d) survives SIGKILL", cmd.Process.Pid)
		}
	}
}

// kill signals mariadbd and waits until it has exited.
func (m *mariaServer) kill(sig os.Signal) error {
	if m.cmd == nil {
		return fmt.Errorf("hasql test harness: MariaDB on 127.0.0.1:%d is not running", m.Port)
	}
	if err := m.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if err := m.wait(harnessWait); err != nil && !harnessIsExitError(err) {
		return err
	}
	return nil
}

func harnessIsExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// Stop sends SIGTERM (clean shutdown) and waits for mariadbd to exit (SIGKILL after 30 s).
func (m *mariaServer) Stop() error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kill(syscall.SIGTERM)
}

// Kill9 sends SIGKILL to mariadbd and waits for it to exit; Start then runs crash recovery.
func (m *mariaServer) Kill9() error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kill(syscall.SIGKILL)
}

// Start starts the stopped server again on the same port and data directory.
func (m *mariaServer) Start() error {
	if err := m.controllable(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.start(10)
	return err
}

// Restart is Stop then Start.
func (m *mariaServer) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

// PID returns mariadbd's pid, or 0 when it is not running.
func (m *mariaServer) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || !harnessAlive(m.cmd.Process.Pid) {
		return 0
	}
	return m.cmd.Process.Pid
}

// Exec runs sql with the mariadb client as root, no default database.
func (m *mariaServer) Exec(sql string) error {
	_, err := m.mariadb("", sql, 10)
	return err
}

// ExecIn is Exec in database db.
func (m *mariaServer) ExecIn(db, sql string) error {
	_, err := m.mariadb(db, sql, 10)
	return err
}

// Query runs sql with mariadb -N -B and returns its output, trimmed (rows on lines, columns
// separated by tabs).
func (m *mariaServer) Query(sql string) (string, error) {
	out, err := m.mariadb("", sql, 10)
	return strings.TrimSpace(out), err
}

func (m *mariaServer) mariadb(db, sql string, connectTimeout int) (string, error) {
	client := m.client
	if client == "" {
		var err error
		if client, err = harnessFindExec("mariadb", "/usr/bin/mariadb"); err != nil {
			if client, err = harnessFindExec("mysql", "/usr/bin/mysql"); err != nil {
				return "", fmt.Errorf("hasql test harness: the mariadb client is needed to run SQL on the MariaDB server: %s", harnessMariaHint)
			}
		}
	}
	args := []string{"--no-defaults", "--connect-timeout=" + strconv.Itoa(connectTimeout), "-N", "-B"}
	env := harnessEnv()
	if m.external != "" {
		conn, pw, err := harnessMySQLClientArgs(m.external)
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
	return harnessRun(harnessCmdTimeout, "", "", env, client, args...)
}

// FreshDB creates an empty database t_<random> for this test and returns its DSN; the database is
// dropped (best effort) when the test ends.
func (m *mariaServer) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + harnessRandHex(8)
	if err := m.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("hasql test harness: FreshDB: %v", err)
	}
	t.Cleanup(func() { _ = m.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	return m.DSN(name)
}

func (m *mariaServer) destroy() {
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

// harnessMySQLWithDB points a go-sql-driver/mysql DSN at database db.
func harnessMySQLWithDB(dsn, db string) string {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return dsn + "/" + db
	}
	rest := dsn[slash+1:]
	params := ""
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params = rest[q:]
	}
	return dsn[:slash+1] + db + params
}

// harnessMySQLClientArgs turns user:pass@net(addr)/db?params into mariadb client arguments.
func harnessMySQLClientArgs(dsn string) (args []string, password string, err error) {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return nil, "", fmt.Errorf("hasql test harness: HASQL_TEST_MYSQL_DSN %q: want user:password@tcp(host:port)/dbname", dsn)
	}
	head := dsn[:slash]
	userinfo, netaddr := "", head
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		userinfo, netaddr = head[:at], head[at+1:]
	}
	usr := userinfo
	if c := strings.IndexByte(userinfo, ':'); c >= 0 {
		usr, password = userinfo[:c], userinfo[c+1:]
	}
	if usr == "" {
		usr = "root"
	}
	args = []string{"-u", usr}
	proto, addr := "tcp", ""
	if open := strings.IndexByte(netaddr, '('); open >= 0 && strings.HasSuffix(netaddr, ")") {
		proto, addr = netaddr[:open], netaddr[open+1:len(netaddr)-1]
	} else if netaddr != "" {
		proto = netaddr
	}
	switch proto {
	case "unix":
		if addr == "" {
			addr = "/tmp/mysql.sock"
		}
		args = append(args, "--protocol=SOCKET", "-S", addr)
	default:
		host, port := "127.0.0.1", "3306"
		if addr != "" {
			if h, p, err := net.SplitHostPort(addr); err == nil {
				host, port = h, p
			} else {
				host = addr
			}
		}
		args = append(args, "--protocol=TCP", "-h", host, "-P", port)
	}
	return args, password, nil
}

// ---------------------------------------------------------------------------------------------
// Shared servers

var harnessShared struct {
	pgOnce, mariaOnce sync.Once
	pg                *pgServer
	pgErr             error
	maria             *mariaServer
	mariaErr          error
}

// sharedPG returns the test binary's shared PostgreSQL server (started on first use, stopped by
// TestMain), or the external server named by HASQL_TEST_PG_DSN. Use FreshDB for a database.
func sharedPG(t testing.TB) *pgServer {
	t.Helper()
	harnessShared.pgOnce.Do(func() {
		if dsn := os.Getenv("HASQL_TEST_PG_DSN"); dsn != "" {
			harnessShared.pg = &pgServer{external: dsn}
			return
		}
		harnessShared.pg, harnessShared.pgErr = harnessNewPostgres()
		if harnessShared.pg != nil {
			harnessShared.pg.shared = true
		}
	})
	if harnessShared.pgErr != nil {
		t.Fatalf("hasql test harness: cannot start the shared PostgreSQL server: %v\nTo get one: %s", harnessShared.pgErr, harnessPGHint)
	}
	return harnessShared.pg
}

// sharedMaria returns the test binary's shared MariaDB server (started on first use, stopped by
// TestMain), or the external server named by HASQL_TEST_MYSQL_DSN. Use FreshDB for a database.
func sharedMaria(t testing.TB) *mariaServer {
	t.Helper()
	harnessShared.mariaOnce.Do(func() {
		if dsn := os.Getenv("HASQL_TEST_MYSQL_DSN"); dsn != "" {
			harnessShared.maria = &mariaServer{external: dsn}
			return
		}
		harnessShared.maria, harnessShared.mariaErr = harnessNewMariaDB()
		if harnessShared.maria != nil {
			harnessShared.maria.shared = true
		}
	})
	if harnessShared.mariaErr != nil {
		t.Fatalf("hasql test harness: cannot start the shared MariaDB server: %v\nTo get one: %s", harnessShared.mariaErr, harnessMariaHint)
	}
	return harnessShared.maria
}

// stopSharedServers stops and removes the shared servers, if started; called by TestMain after
// m.Run. Nothing of the harness runs afterwards (no goroutine, no process).
func stopSharedServers() {
	if p := harnessShared.pg; p != nil {
		p.destroy()
	}
	if m := harnessShared.maria; m != nil {
		m.destroy()
	}
}

// ---------------------------------------------------------------------------------------------
// Helpers

// harnessRun runs a command with a time limit. As root, a non-empty asUser runs it as that user
// (initdb and pg_ctl refuse root). The error carries the command line and the tail of its output.
func harnessRun(timeout time.Duration, dir, asUser string, env []string, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	if asUser != "" && os.Geteuid() == 0 {
		var err error
		if argv, err = harnessAsUser(asUser, argv); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = 5 * time.Second // never hang on a pipe held by a grandchild
	var stdout bytes.Buffer
	both := &harnessLockedBuffer{} // written by two copying goroutines
	cmd.Stdout = io.MultiWriter(&stdout, both)
	cmd.Stderr = both
	err := cmd.Run()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%v (%s)", err, harnessInstallHint)
		}
		return stdout.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, harnessTail(both.String(), 30))
	}
	return stdout.String(), nil
}

type harnessLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *harnessLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *harnessLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func harnessAsUser(usr string, argv []string) ([]string, error) {
	if ru, err := harnessFindExec("runuser", "/usr/sbin/runuser", "/sbin/runuser"); err == nil {
		return append([]string{ru, "-u", usr, "--"}, argv...), nil
	}
	if su, err := harnessFindExec("su", "/bin/su", "/usr/bin/su"); err == nil {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		return []string{su, "-s", "/bin/sh", usr, "-c", "exec " + strings.Join(quoted, " ")}, nil
	}
	return nil, errors.New("hasql test harness: neither runuser nor su found to run server tools as a non-root user")
}

// harnessEnv is the environment without PG*/MYSQL* variables that could redirect the tools, with
// the C locale so that messages are in English, plus extra.
func harnessEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	return append(env, extra...)
}

func harnessFindExec(name string, fallbacks ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, f := range fallbacks {
		if harnessIsExec(f) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(fallbacks, ", "))
}

func harnessIsExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

var harnessPorts struct {
	sync.Mutex
	used map[int]bool
}

// harnessFreePort returns a free loopback port, never the same twice in one test binary. It
// prefers ports below the kernel's ephemeral range, so that an outgoing connection cannot take
// the port while a test has the server stopped; it falls back to listening on 127.0.0.1:0.
func harnessFreePort() (int, error) {
	harnessPorts.Lock()
	defer harnessPorts.Unlock()
	if harnessPorts.used == nil {
		harnessPorts.used = map[int]bool{}
	}
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	try := func(addr string) (int, bool) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, false
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if harnessPorts.used[port] {
			return 0, false
		}
		harnessPorts.used[port] = true
		return port, true
	}
	if lo > 20000+1000 {
		for i := 0; i < 50; i++ {
			var b [4]byte
			_, _ = rand.Read(b[:])
			port := 20000 + int(binary.BigEndian.Uint32(b[:])%uint32(lo-20000))
			if p, ok := try(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); ok {
				return p, nil
			}
		}
	}
	for i := 0; i < 50; i++ {
		if p, ok := try("127.0.0.1:0"); ok {
			return p, nil
		}
	}
	return 0, errors.New("hasql test harness: no free loopback port found")
}

func harnessRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// harnessMkdir makes $TMPDIR/hasql-<kind>-*, records the owning test binary, and (as root) hands
// it to the server's system user. Stale directories of dead test binaries are removed first.
func harnessMkdir(kind, owner string) (string, error) {
	harnessReapOnce.Do(harnessReapStale)
	dir, err := os.MkdirTemp("", "hasql-"+kind+"-")
	if err != nil {
		return "", err
	}
	_ = os.WriteFile(filepath.Join(dir, "owner"), []byte(harnessSelfID()+"\n"), 0o644)
	if os.Geteuid() == 0 {
		u, err := user.Lookup(owner)
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("system user %q not found (the server package creates it): %v", owner, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// harnessSelfID is "pid starttime" of this process ("pid 0" where /proc is missing).
func harnessSelfID() string {
	pid := os.Getpid()
	return fmt.Sprintf("%d %s", pid, harnessStartTime(pid))
}

func harnessProcStat(pid int) (fields []string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true // [0]=state [1]=ppid ... [19]=starttime
}

func harnessStartTime(pid int) string {
	if f, ok := harnessProcStat(pid); ok && len(f) > 19 {
		return f[19]
	}
	return "0"
}

func harnessIsZombie(pid int) bool {
	f, ok := harnessProcStat(pid)
	return ok && len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// harnessAlive: the process exists and is not a zombie.
func harnessAlive(pid int) bool {
	if f, ok := harnessProcStat(pid); ok {
		return len(f) > 0 && f[0] != "Z" && f[0] != "X"
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // Linux, and no /proc/<pid>: gone
	}
	proc, err := os.FindProcess(pid)
	return err == nil && proc.Signal(syscall.Signal(0)) == nil
}

func harnessWaitDead(timeout time.Duration, pids ...int) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, pid := range pids {
			if harnessAlive(pid) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func harnessSignal(pid int, sig os.Signal) error {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	err = proc.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// harnessChildren lists the live children of pid (Linux /proc; empty elsewhere).
func harnessChildren(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	var kids []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, ok := harnessProcStat(c); ok && len(f) > 1 && f[1] == want && f[0] != "Z" {
			kids = append(kids, c)
		}
	}
	return kids
}

func harnessPidFromFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// harnessCmdlineHas reports whether process pid's command line mentions s (protection against a
// reused pid).
func harnessCmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(s))
}

var harnessReapOnce sync.Once

// harnessReapStale removes hasql-pg-*/hasql-maria-* directories whose owning test binary is dead,
// after killing (by pid, checked against the directory) the server processes left in them.
func harnessReapStale() {
	if _, ok := harnessProcStat(os.Getpid()); !ok {
		return // no /proc: cannot tell dead owners from live ones
	}
	for _, kind := range []string{"pg", "maria"} {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "hasql-"+kind+"-*"))
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, "owner"))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) != 2 {
				continue
			}
			owner, _ := strconv.Atoi(f[0])
			if owner <= 0 || (harnessAlive(owner) && harnessStartTime(owner) == f[1]) {
				continue
			}
			var pids []int
			if kind == "pg" {
				if pid := harnessPidFromFile(filepath.Join(dir, "data", "postmaster.pid")); pid > 0 && harnessCmdlineHas(pid, dir) {
					pids = append(harnessChildren(pid), pid)
				}
			} else if pid := harnessPidFromFile(filepath.Join(dir, "mariadbd.pid")); pid > 0 && harnessCmdlineHas(pid, dir) {
				pids = append(pids, pid)
			}
			for _, pid := range pids {
				_ = harnessSignal(pid, syscall.SIGKILL)
			}
			harnessWaitDead(5*time.Second, pids...)
			_ = os.RemoveAll(dir)
		}
	}
}

func harnessFileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func harnessReadFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ""
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(f)
	return buf.String()
}

// harnessLogTail is the last lines of a server log, for failure messages.
func harnessLogTail(path string) string {
	size := harnessFileSize(path)
	off := size - 16<<10
	if off < 0 {
		off = 0
	}
	s := harnessReadFrom(path, off)
	if s == "" {
		return "(server log " + path + " is empty or missing)"
	}
	return "--- tail of " + path + " ---\n" + harnessTail(s, 30)
}

func harnessTail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
