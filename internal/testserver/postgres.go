package testserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoPostgres is returned (wrapped or not: test with errors.Is) when the PostgreSQL server
// binaries are missing. PostgresInstallHint says how to get them.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH")

// PostgresInstallHint tells a user of a program (not a test) how to get what ErrNoPostgres says is
// missing.
const PostgresInstallHint = "install them with: sudo apt-get update && sudo apt-get install -y postgresql (Debian/Ubuntu; the package's own service is not used), or put a directory holding initdb and pg_ctl on PATH"

// PostgresBinGlob is where the server binaries are looked for first (Debian's layout; the highest
// version wins), before PATH. It is a variable so that tests can make the binaries look missing.
var PostgresBinGlob = "/usr/lib/postgresql/*/bin"

const pgHint = makeTestHint + " or set HASQL_TEST_PG_DSN"

// PostgresOptions configures NewPostgres.
type PostgresOptions struct {
	// MaxConnections is the server's max_connections; 0 means 200.
	MaxConnections int
}

// Postgres is a PostgreSQL server: an instance started by this package (its own data directory,
// log and unix socket in Dir, listening on 127.0.0.1:Port, trust authentication, superuser
// postgres, database "test"), or an external server given by HASQL_TEST_PG_DSN to SharedPostgres.
// Its methods are safe for concurrent use.
type Postgres struct {
	Port int    // loopback TCP port (0 for an external server)
	Dir  string // instance directory: data/ (PGDATA), log, unix socket ("" for an external server)

	bin      string // directory holding initdb, pg_ctl, psql, pg_basebackup
	external string // DSN from HASQL_TEST_PG_DSN; only DSN, Exec, Query and FreshDB work
	shared   bool   // the per-process shared instance: refuses Stop/Start/Kill
	maxConns int
	mu       sync.Mutex
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }
func (p *Postgres) logFile() string { return filepath.Join(p.Dir, "log") }

// DSN returns a pgx URL for database db on this server (with a query part, so that more
// parameters can be appended with '&'; for an external server, its DSN pointed at db).
func (p *Postgres) DSN(db string) string {
	if p.external != "" {
		return pgWithDB(p.external, db)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, url.PathEscape(db))
}

// External reports whether this is the external server named by HASQL_TEST_PG_DSN (see
// SharedPostgres).
func (p *Postgres) External() bool { return p.external != "" }

func (p *Postgres) controllable() error {
	return refuseControl(p.external != "", p.shared, "PostgreSQL", "HASQL_TEST_PG_DSN", "SharedPostgres", "StartPostgres")
}

// controllableIn is controllable, and mode a pg_ctl stop mode.
func (p *Postgres) controllableIn(mode string) error {
	if err := p.controllable(); err != nil {
		return err
	}
	switch mode {
	case "fast", "immediate", "smart":
		return nil
	}
	return fmt.Errorf("testserver: pg_ctl stop mode %q: want fast, immediate or smart", mode)
}

// StartPostgres starts a throwaway PostgreSQL instance with database "test" for test t, stopped
// (immediate mode) and removed when the test ends; it fails the test if it cannot. It always starts
// its own instance, whatever HASQL_TEST_PG_DSN says.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := NewPostgres(context.Background(), PostgresOptions{})
	if err != nil {
		t.Fatalf("testserver: cannot start a throwaway PostgreSQL server: %v\nTo get one: %s (the variable serves only tests on the shared server; this test stops or kills its own server and needs the local binaries)", err, pgHint)
	}
	t.Cleanup(p.destroy)
	return p
}

// NewPostgres creates and starts a throwaway PostgreSQL instance with database "test", for use
// outside tests; the caller must call Destroy. ctx bounds the start-up (initdb, pg_ctl start). When
// the binaries are missing the error wraps ErrNoPostgres.
func NewPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir("pg", "postgres")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, bin: bin, maxConns: opts.MaxConnections}
	if p.maxConns <= 0 {
		p.maxConns = 200
	}
	if _, err := p.tool(ctx, cmdTimeout, "initdb", "-D", p.dataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		p.destroy()
		return nil, err
	}
	if err := p.startOnFreshPort(ctx); err != nil {
		p.destroy()
		return nil, err
	}
	if _, err := p.psql(ctx, "postgres", "CREATE DATABASE test"); err != nil {
		err = fmt.Errorf("%w\n%s", err, logTail(p.logFile()))
		p.destroy()
		return nil, err
	}
	return p, nil
}

// startOnFreshPort picks a free port and starts; a port someone else took meanwhile means another
// try.
func (p *Postgres) startOnFreshPort(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if p.Port, err = freePort(); err != nil {
			return err
		}
		var bindFailed bool
		if bindFailed, err = p.start(ctx); err == nil || !bindFailed {
			return err
		}
	}
	return err
}

func (p *Postgres) serverOpts() string {
	return fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1 -c max_connections=%d -c fsync=off", p.Port, p.Dir, p.maxConns)
}

// start runs pg_ctl start; bindFailed reports that the port was in use.
func (p *Postgres) start(ctx context.Context) (bindFailed bool, err error) {
	logOff := fileSize(p.logFile())
	_, err = p.tool(ctx, waitLimit+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-o", p.serverOpts(), "-l", p.logFile(),
		"-w", "-t", strconv.Itoa(int(waitLimit/time.Second)), "start")
	if err != nil {
		return p.bindFailedSince(logOff), fmt.Errorf("starting PostgreSQL on 127.0.0.1:%d: %w\n%s", p.Port, err, logTail(p.logFile()))
	}
	return false, nil
}

// bindFailedSince reports whether the log says, after offset off, that the port was in use.
func (p *Postgres) bindFailedSince(off int64) bool {
	newLog := readFrom(p.logFile(), off)
	return strings.Contains(newLog, "could not bind") || strings.Contains(newLog, "Address already in use")
}

// startRetrying starts the server on its port, waiting (up to 30 s) for a port still held by
// someone else.
func (p *Postgres) startRetrying(ctx context.Context) error {
	deadline := time.Now().Add(waitLimit)
	for {
		bindFailed, err := p.start(ctx)
		if err == nil || !bindFailed || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond) // port still held by someone: wait for it
	}
}

// Start starts the stopped server again on the same port with the same data directory (pg_ctl
// start -w, waiting up to 30 s for a port someone else still holds).
func (p *Postgres) Start() error { return p.StartContext(context.Background()) }

// StartContext is Start with a context that bounds it.
func (p *Postgres) StartContext(ctx context.Context) error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startRetrying(ctx)
}

// Stop runs pg_ctl stop -m mode -w; mode is "fast", "immediate" or "smart" ("smart" waits for
// clients to disconnect, and fails after 30 s if they do not).
func (p *Postgres) Stop(mode string) error {
	if err := p.controllableIn(mode); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop(mode)
}

func (p *Postgres) stop(mode string) error {
	_, err := p.tool(context.Background(), waitLimit+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-m", mode, "-w",
		"-t", strconv.Itoa(int(waitLimit/time.Second)), "stop")
	if err != nil {
		return fmt.Errorf("stopping PostgreSQL on 127.0.0.1:%d: %w\n%s", p.Port, err, logTail(p.logFile()))
	}
	return nil
}

// Restart runs pg_ctl restart -m mode -w (mode as for Stop): it returns once the server accepts
// connections again on the same port. Should someone have taken the port meanwhile, it waits for
// it as Start does.
func (p *Postgres) Restart(mode string) error { return p.RestartContext(context.Background(), mode) }

// RestartContext is Restart with a context that bounds it.
func (p *Postgres) RestartContext(ctx context.Context, mode string) error {
	if err := p.controllableIn(mode); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	logOff := fileSize(p.logFile())
	_, err := p.tool(ctx, 2*waitLimit+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-m", mode, "-o", p.serverOpts(),
		"-l", p.logFile(), "-w", "-t", strconv.Itoa(int(waitLimit/time.Second)), "restart")
	if err == nil {
		return nil
	}
	if p.bindFailedSince(logOff) && ctx.Err() == nil {
		return p.startRetrying(ctx) // stopped, but the port was taken: wait for it as Start does
	}
	return fmt.Errorf("restarting PostgreSQL on 127.0.0.1:%d: %w\n%s", p.Port, err, logTail(p.logFile()))
}

// PID returns the postmaster's pid, or 0 when the server is not running (or is external).
func (p *Postgres) PID() int {
	if p.external != "" {
		return 0
	}
	pid := pidFromFile(filepath.Join(p.dataDir(), "postmaster.pid"))
	if pid <= 0 || !alive(pid) {
		return 0
	}
	return pid
}

// Kill9Postmaster sends SIGKILL to the postmaster, as a crash would. It returns once the postmaster
// and its children are gone (orphaned backends normally exit at once on postmaster death; any still
// there after 5 s are killed too), so that Start can follow at once and run crash recovery.
func (p *Postgres) Kill9Postmaster() error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pid := p.PID()
	if pid == 0 {
		return fmt.Errorf("testserver: Kill9Postmaster: PostgreSQL on 127.0.0.1:%d is not running", p.Port)
	}
	return p.kill9(pid)
}

func (p *Postgres) kill9(pid int) error {
	kids := children(pid)
	if err := signal(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("testserver: kill -9 %d (postmaster): %v", pid, err)
	}
	if !waitDead(waitLimit, pid) {
		return fmt.Errorf("testserver: postmaster %d still alive %v after SIGKILL", pid, waitLimit)
	}
	if !waitDead(5*time.Second, kids...) {
		for _, c := range kids {
			_ = signal(c, syscall.SIGKILL)
		}
		if !waitDead(waitLimit, kids...) {
			return fmt.Errorf("testserver: children of postmaster %d still alive after SIGKILL", pid)
		}
	}
	// Where pid 1 does not reap orphans (some containers, this CI machine), the dead postmaster
	// stays a zombie and a new postmaster takes the stale lock files (data directory and socket)
	// for a live server's. Everything is dead: drop them.
	if isZombie(pid) {
		_ = os.Remove(filepath.Join(p.dataDir(), "postmaster.pid"))
		_ = os.Remove(filepath.Join(p.Dir, fmt.Sprintf(".s.PGSQL.%d.lock", p.Port)))
	}
	return nil
}

// Exec runs sql with psql in database "postgres" (ON_ERROR_STOP; several statements in one string
// run as one implicit transaction, so CREATE DATABASE must be alone).
func (p *Postgres) Exec(sql string) error {
	_, err := p.psql(context.Background(), "postgres", sql)
	return err
}

// ExecIn is Exec in database db.
func (p *Postgres) ExecIn(db, sql string) error {
	_, err := p.psql(context.Background(), db, sql)
	return err
}

// Query runs sql with psql -At in database "postgres" and returns its output, trimmed (rows on
// lines, columns separated by '|').
func (p *Postgres) Query(sql string) (string, error) { return p.QueryIn("postgres", sql) }

// QueryIn is Query in database db.
func (p *Postgres) QueryIn(db, sql string) (string, error) {
	out, err := p.psql(context.Background(), db, sql)
	return strings.TrimSpace(out), err
}

func (p *Postgres) psql(ctx context.Context, db, sql string) (string, error) {
	psql := "psql"
	if p.bin != "" {
		psql = filepath.Join(p.bin, "psql")
	} else if _, err := exec.LookPath("psql"); err != nil {
		return "", fmt.Errorf("testserver: psql not found (needed to run SQL on the PostgreSQL server): %s", pgHint)
	}
	args := []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	env := toolEnv("PGCONNECT_TIMEOUT=10")
	if p.external != "" {
		args = append(args, "-d", p.DSN(db))
		env = append(os.Environ(), "LC_ALL=C", "PGCONNECT_TIMEOUT=10")
	} else {
		args = append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db)
	}
	args = append(args, "-c", sql)
	return run(ctx, cmdTimeout, "", "", env, psql, args...)
}

// Tool runs one of the server's programs (pg_ctl, pg_controldata, ...) from its bin directory with
// args, in Dir, as user postgres when running as root, with a clean environment (no PG*
// variables, C locale); timeout bounds it. It returns the program's standard output; the error
// carries the command line and the tail of its output. It is for what the other methods do not
// offer (the data directory is Dir/data, the log Dir/log); not for an external server.
func (p *Postgres) Tool(timeout time.Duration, name string, args ...string) (string, error) {
	if p.external != "" {
		return "", fmt.Errorf("testserver: Tool %s: the PostgreSQL server from HASQL_TEST_PG_DSN is external", name)
	}
	return p.tool(context.Background(), timeout, name, args...)
}

// tool runs a PostgreSQL server tool as user postgres (when running as root).
func (p *Postgres) tool(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	return run(ctx, timeout, p.Dir, "postgres", toolEnv(), filepath.Join(p.bin, name), args...)
}

// StartStandby makes a streaming standby of p (see NewStandby) for test t, removed when the test
// ends; it fails the test if it cannot.
func (p *Postgres) StartStandby(t testing.TB) *Postgres {
	t.Helper()
	if err := p.controllable(); err != nil {
		t.Fatalf("testserver: StartStandby: %v", err)
	}
	s, err := p.NewStandby(context.Background())
	if err != nil {
		t.Fatalf("testserver: cannot start a PostgreSQL standby of 127.0.0.1:%d: %v", p.Port, err)
	}
	t.Cleanup(s.destroy)
	return s
}

// NewStandby makes a streaming standby of p with pg_basebackup -R, on a new port, started and
// accepting read-only connections; the caller must call Destroy. The standby has no database the
// primary lacks ("test" is there). Promote makes it a primary.
func (p *Postgres) NewStandby(ctx context.Context) (*Postgres, error) {
	if err := p.controllable(); err != nil {
		return nil, err
	}
	dir, err := makeDir("pg", "postgres")
	if err != nil {
		return nil, err
	}
	s := &Postgres{Dir: dir, bin: p.bin, maxConns: p.maxConns}
	if _, err := s.tool(ctx, cmdTimeout, "pg_basebackup", "-D", s.dataDir(), "-R", "-X", "stream",
		"-c", "fast", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres"); err != nil {
		s.destroy()
		return nil, err
	}
	if err := s.startOnFreshPort(ctx); err != nil {
		s.destroy()
		return nil, err
	}
	return s, nil
}

// Promote promotes a standby (pg_ctl promote -w): it returns once the server accepts writes.
func (p *Postgres) Promote() error {
	if err := p.controllable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.tool(context.Background(), waitLimit+10*time.Second, "pg_ctl", "-D", p.dataDir(), "-w",
		"-t", strconv.Itoa(int(waitLimit/time.Second)), "promote")
	if err != nil {
		return fmt.Errorf("promoting PostgreSQL on 127.0.0.1:%d: %w\n%s", p.Port, err, logTail(p.logFile()))
	}
	return nil
}

// FreshDB creates an empty database t_<random> for test t and returns its DSN; the database is
// dropped (best effort, WITH (FORCE)) when the test ends.
func (p *Postgres) FreshDB(t testing.TB) string {
	t.Helper()
	name := "t_" + randHex(8)
	if err := p.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	t.Cleanup(func() {
		if p.Exec("DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") != nil {
			_ = p.Exec("DROP DATABASE IF EXISTS " + name) // before PostgreSQL 13
		}
	})
	return p.DSN(name)
}

// Destroy stops the instance (immediate mode: nothing in it is worth keeping), killing it if that
// fails, and removes its directory. It does nothing for the shared or an external server (StopShared
// stops the shared one).
func (p *Postgres) Destroy() {
	if p.shared {
		return
	}
	p.destroy()
}

func (p *Postgres) destroy() {
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

// pgBinDir finds the server binaries: the highest PostgresBinGlob match, else PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob(PostgresBinGlob)
	var found []string
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
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
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}
