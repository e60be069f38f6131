package compat_test

// Test harness: one throwaway PostgreSQL and one throwaway MariaDB per package run, on free loopback
// ports, started on first use and stopped by TestMain (by pid). HASQL_TEST_PG_DSN /
// HASQL_TEST_MYSQL_DSN point the tests at servers of your own instead.
//
// Same approach as the root package's harness_test.go (which test files elsewhere cannot import):
// PostgreSQL with initdb + pg_ctl run as user postgres, MariaDB with mariadb-install-db + mariadbd
// --user=mysql, each in $TMPDIR/hasql-compat-{pg,maria}-*. A file "owner" there names the test
// binary ("pid starttime"); directories of binaries that died without TestMain's cleanup (timeout
// panic, SIGKILL) are removed, their servers killed by pid, by the next run that starts a server.
//
// Databases are created and dropped with the raw drivers (pgx, go-sql-driver/mysql), never through
// hasql.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
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

	_ "github.com/go-sql-driver/mysql" // raw "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // raw "pgx"
	"go.uber.org/goleak"
)

const (
	hWait       = 30 * time.Second // bound on every wait for a server
	hCmdTimeout = 90 * time.Second // bound on one command-line tool run
	hInstall    = "run 'make test' in the repository root (it installs postgresql and mariadb-server with apt-get), or point these tests at servers of your own with HASQL_TEST_PG_DSN / HASQL_TEST_MYSQL_DSN"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopServers()
	if code == 0 {
		// Every test closes its *sql.DB (and so its hasql Connector): nothing may outlive them.
		// Except GORM's own: PrepareStmt's statement LRU starts a janitor goroutine that nothing
		// stops (gorm v1.31, internal/lru).
		if err := goleak.Find(goleak.IgnoreAnyFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// dbServer is a running server (ours or external) that hands out fresh databases.
type dbServer struct {
	kind   string  // "postgres" or "mariadb"
	admin  *sql.DB // raw driver, for CREATE/DROP DATABASE
	dsnFor func(db string) string
	stop   func() // nil for an external server
}

var servers struct {
	pgOnce, mariaOnce sync.Once
	pg, maria         *dbServer
	pgErr, mariaErr   error
}

func serverFor(t testing.TB, kind string) *dbServer {
	t.Helper()
	var s *dbServer
	var err error
	switch kind {
	case "postgres":
		servers.pgOnce.Do(func() { servers.pg, servers.pgErr = startPG() })
		s, err = servers.pg, servers.pgErr
	case "mariadb":
		servers.mariaOnce.Do(func() { servers.maria, servers.mariaErr = startMaria() })
		s, err = servers.maria, servers.mariaErr
	default:
		t.Fatalf("harness: unknown server kind %q", kind)
	}
	if err != nil {
		t.Fatalf("harness: no %s server for the compat tests: %v\nTo get one: %s", kind, err, hInstall)
	}
	return s
}

// freshDB creates an empty database for this test and returns its raw-driver DSN (pgx URL or
// go-sql-driver/mysql DSN); the database is dropped when the test ends.
func freshDB(t testing.TB, kind string) string {
	t.Helper()
	s := serverFor(t, kind)
	name := "t_" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), hWait)
	defer cancel()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("harness: CREATE DATABASE %s on %s: %v", name, kind, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hWait)
		defer cancel()
		drop := "DROP DATABASE IF EXISTS " + name
		var err error
		if kind == "postgres" {
			_, err = s.admin.ExecContext(ctx, drop+" WITH (FORCE)") // PostgreSQL 13 and later
		}
		if kind != "postgres" || err != nil {
			_, err = s.admin.ExecContext(ctx, drop)
		}
		if err != nil {
			t.Logf("harness: %s: %v", drop, err)
		}
	})
	return s.dsnFor(name)
}

func stopServers() {
	for _, s := range []*dbServer{servers.pg, servers.maria} {
		if s == nil {
			continue
		}
		if s.admin != nil {
			s.admin.Close()
		}
		if s.stop != nil {
			s.stop()
		}
	}
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

func startPG() (*dbServer, error) {
	if ext := os.Getenv("HASQL_TEST_PG_DSN"); ext != "" {
		return newServer("postgres", "pgx", ext, func(db string) string { return pgWithDB(ext, db) }, nil)
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := mkServerDir("pg", "postgres")
	if err != nil {
		return nil, err
	}
	data, logf := filepath.Join(dir, "data"), filepath.Join(dir, "log")
	stop := func() {
		if _, err := run(hWait+10*time.Second, dir, "postgres", filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			if pid := pidFromFile(filepath.Join(data, "postmaster.pid")); pid > 0 && cmdlineHas(pid, dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				waitDead(hWait, pid)
			}
		}
		_ = os.RemoveAll(dir)
	}
	if _, err := run(hCmdTimeout, dir, "postgres", filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			break
		}
		before := fileSize(logf)
		opts := fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
		_, err = run(hWait+10*time.Second, dir, "postgres", filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts,
			"-l", logf, "-w", "-t", strconv.Itoa(int(hWait/time.Second)), "start")
		if err == nil {
			break
		}
		newLog := readFrom(logf, before)
		err = fmt.Errorf("%v\n%s", err, tail(newLog, 20))
		if attempt == 4 || !(strings.Contains(newLog, "could not bind") || strings.Contains(newLog, "Address already in use")) {
			break
		}
	}
	if err != nil {
		stop()
		return nil, err
	}
	dsnFor := func(db string) string {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, db)
	}
	s, err := newServer("postgres", "pgx", dsnFor("postgres"), dsnFor, stop)
	if err != nil {
		stop()
	}
	return s, err
}

func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			found = append(found, d)
		}
	}
	ver := func(d string) float64 { v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64); return v }
	sort.Slice(found, func(i, j int) bool { return ver(found[i]) > ver(found[j]) })
	if len(found) > 0 {
		return found[0], nil
	}
	if p, err := exec.LookPath("initdb"); err == nil && isExec(filepath.Join(filepath.Dir(p), "pg_ctl")) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH")
}

// pgWithDB points a pgx DSN (URL or key=value) at database db.
func pgWithDB(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
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

func startMaria() (*dbServer, error) {
	if ext := os.Getenv("HASQL_TEST_MYSQL_DSN"); ext != "" {
		return newServer("mariadb", "mysql", mysqlWithDB(ext, ""), func(db string) string { return mysqlWithDB(ext, db) }, nil)
	}
	mariadbd, err := findExec("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd")
	if err != nil {
		return nil, err
	}
	installDB, err := findExec("mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return nil, err
	}
	dir, err := mkServerDir("maria", "mysql")
	if err != nil {
		return nil, err
	}
	data, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "log")
	asRoot := os.Geteuid() == 0
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if asRoot {
		args = append(args, "--user=mysql")
	}
	if _, err := run(hCmdTimeout, dir, "", installDB, args...); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	var cmd *exec.Cmd
	exited := make(chan struct{})
	stop := func() {
		if cmd != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(hWait):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		_ = os.RemoveAll(dir)
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			break
		}
		var bindFailed bool
		cmd, exited, bindFailed, err = startMariadbd(mariadbd, dir, data, logPath, port, asRoot)
		if err == nil || !bindFailed || attempt == 4 {
			break
		}
	}
	if err != nil {
		stop()
		return nil, err
	}
	dsnFor := func(db string) string { return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", port, db) }
	s, err := newServer("mariadb", "mysql", dsnFor(""), dsnFor, stop)
	if err != nil {
		stop()
	}
	return s, err
}

// startMariadbd runs mariadbd as our child and waits until it accepts TCP connections. exited is
// closed once the process has been reaped.
func startMariadbd(bin, dir, data, logPath string, port int, asRoot bool) (cmd *exec.Cmd, exited chan struct{}, bindFailed bool, err error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, false, err
	}
	defer logf.Close()
	before := fileSize(logPath)
	args := []string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "sock"),
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--skip-log-bin", "--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=0"}
	if asRoot {
		args = append(args, "--user=mysql")
	}
	cmd = exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Env = dir, logf, logf, toolEnv()
	if err := cmd.Start(); err != nil {
		return nil, nil, false, fmt.Errorf("starting %s: %v", bin, err)
	}
	exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(hWait)
	for {
		select {
		case <-exited:
			newLog := readFrom(logPath, before)
			bindFailed = strings.Contains(newLog, "Bind on TCP/IP port") || strings.Contains(newLog, "Address already in use")
			return nil, nil, bindFailed, fmt.Errorf("mariadbd on %s exited during start-up\n%s", addr, tail(newLog, 20))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return cmd, exited, false, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, nil, false, fmt.Errorf("mariadbd on %s not accepting connections after %v\n%s", addr, hWait, tail(readFrom(logPath, before), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mysqlWithDB points a go-sql-driver/mysql DSN at database db.
func mysqlWithDB(dsn, db string) string {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return dsn + "/" + db
	}
	params := ""
	if q := strings.IndexByte(dsn[slash+1:], '?'); q >= 0 {
		params = dsn[slash+1+q:]
	}
	return dsn[:slash+1] + db + params
}

// ---------------------------------------------------------------------------------------------
// Helpers

// newServer opens the raw-driver admin handle and waits until the server answers.
func newServer(kind, driverName, adminDSN string, dsnFor func(string) string, stop func()) (*dbServer, error) {
	admin, err := sql.Open(driverName, adminDSN)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(hWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
		if err == nil {
			return &dbServer{kind: kind, admin: admin, dsnFor: dsnFor, stop: stop}, nil
		}
		if time.Now().After(deadline) {
			admin.Close()
			return nil, fmt.Errorf("%s server not answering after %v: %v", kind, hWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs a tool with a time limit; as root, a non-empty asUser runs it as that user.
func run(timeout time.Duration, dir, asUser, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	if asUser != "" && os.Geteuid() == 0 {
		ru, err := findExec("runuser", "/usr/sbin/runuser", "/sbin/runuser")
		if err != nil {
			return "", fmt.Errorf("runuser is needed to run %s as %s: %v", filepath.Base(name), asUser, err)
		}
		argv = append([]string{ru, "-u", asUser, "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, toolEnv()
	cmd.WaitDelay = 5 * time.Second // a daemonized grandchild may hold the pipes
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return out.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out.String(), 20))
	}
	return out.String(), nil
}

// toolEnv drops PG*/MYSQL* variables that could redirect the tools and forces the C locale.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func findExec(name string, fallbacks ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, f := range fallbacks {
		if isExec(f) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(fallbacks, ", "))
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freePort returns a loopback port that was free a moment ago, never the same one twice.
func freePort() (int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts.m[port] {
			usedPorts.m[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var reapOnce sync.Once

// mkServerDir makes $TMPDIR/hasql-compat-<kind>-*, records this binary as its owner and, as root,
// hands it to the server's system user.
func mkServerDir(kind, owner string) (string, error) {
	reapOnce.Do(reapStale)
	dir, err := os.MkdirTemp("", "hasql-compat-"+kind+"-")
	if err != nil {
		return "", err
	}
	_ = os.WriteFile(filepath.Join(dir, "owner"), []byte(selfID(os.Getpid())+"\n"), 0o644)
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

// selfID is "pid starttime" (starttime from /proc, so that a reused pid is not taken for its owner).
func selfID(pid int) string {
	st := "0"
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 19 {
				st = f[19]
			}
		}
	}
	return fmt.Sprintf("%d %s", pid, st)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func waitDead(timeout time.Duration, pids ...int) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		any := false
		for _, p := range pids {
			any = any || alive(p)
		}
		if !any {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reapStale removes server directories of dead test binaries, killing (by pid, checked against the
// directory) the servers left running in them.
func reapStale() {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "hasql-compat-*-*"))
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
		if owner <= 0 || (alive(owner) && selfID(owner) == strings.Join(f, " ")) {
			continue
		}
		var pids []int
		for _, pf := range []string{filepath.Join(dir, "data", "postmaster.pid"), filepath.Join(dir, "mariadbd.pid")} {
			if pid := pidFromFile(pf); pid > 0 && alive(pid) && cmdlineHas(pid, dir) {
				pids = append(pids, pid)
			}
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		waitDead(5*time.Second, pids...)
		_ = os.RemoveAll(dir)
	}
}

func pidFromFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func cmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(s))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
