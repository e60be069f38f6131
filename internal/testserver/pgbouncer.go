package testserver

// A throwaway PgBouncer in front of a throwaway PostgreSQL.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PgBouncerPath is where the pgbouncer binary is looked for first (Debian's package), before PATH.
var PgBouncerPath = "/usr/sbin/pgbouncer"

// ErrNoPgBouncer is returned (wrapped) when the pgbouncer binary is missing.
var ErrNoPgBouncer = errors.New("pgbouncer not found in /usr/sbin or on PATH (apt-get install pgbouncer; its own service is not used)")

// PgBouncerOptions configures NewPgBouncer.
type PgBouncerOptions struct {
	// PoolMode is PgBouncer's pool_mode: "transaction" (the default here), "session" or
	// "statement".
	PoolMode string
	// DefaultPoolSize is the number of server connections per database and user; 0 means 2, so
	// that consecutive transactions of one client land on different server connections.
	DefaultPoolSize int
	// MaxClientConn is max_client_conn; 0 means 500.
	MaxClientConn int
	// ServerLoginRetry is server_login_retry in seconds: how long PgBouncer
	// waits after a failed server login (the server restarting) before it
	// tries again; 0 means PgBouncer's default, 15.
	ServerLoginRetry int
}

// PgBouncer is a PgBouncer started by this package, listening on 127.0.0.1:Port, in front of a
// PostgreSQL server started by this package (Backend), with trust authentication for user
// postgres and every database of the backend reachable under its own name (the admin console is
// database "pgbouncer"). Its config file, log and pid file live in Dir. As root it runs as the system
// user postgres: PgBouncer refuses root.
type PgBouncer struct {
	Port    int
	Dir     string
	Backend *Postgres
	Opts    PgBouncerOptions

	bin      string
	mu       sync.Mutex
	cmd      *exec.Cmd
	waitDone chan error // cmd.Wait's outcome; its goroutine ends with the process
}

func (b *PgBouncer) logFile() string { return filepath.Join(b.Dir, "pgbouncer.log") }
func (b *PgBouncer) iniFile() string { return filepath.Join(b.Dir, "pgbouncer.ini") }

// DSN returns a pgx URL for database db through PgBouncer (with a query part, so that more
// parameters can be appended with '&').
func (b *PgBouncer) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.Port, db)
}

// StartPgBouncer starts a PgBouncer in front of p (a server of StartPostgres or SharedPostgres that
// is not external) for test t, stopped and removed when the test ends; when the test failed, the
// tail of PgBouncer's log is logged first. It fails the test if it cannot start.
func StartPgBouncer(t testing.TB, p *Postgres, opts PgBouncerOptions) *PgBouncer {
	t.Helper()
	b, err := NewPgBouncer(context.Background(), p, opts)
	if err != nil {
		t.Fatalf("testserver: cannot start PgBouncer: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PgBouncer log (%s):\n%s", b.logFile(), logTail(b.logFile()))
		}
		b.Destroy()
	})
	return b
}

// NewPgBouncer starts a PgBouncer in front of p, for use outside tests; the caller calls Destroy.
// ctx bounds the start-up.
func NewPgBouncer(ctx context.Context, p *Postgres, opts PgBouncerOptions) (*PgBouncer, error) {
	if p == nil || p.external != "" || p.Port == 0 {
		return nil, errors.New("testserver: PgBouncer needs a PostgreSQL server started by this package")
	}
	bin := PgBouncerPath
	if !isExec(bin) {
		var err error
		if bin, err = exec.LookPath("pgbouncer"); err != nil {
			return nil, ErrNoPgBouncer
		}
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.DefaultPoolSize <= 0 {
		opts.DefaultPoolSize = 2
	}
	if opts.MaxClientConn <= 0 {
		opts.MaxClientConn = 500
	}
	dir, err := makeDir("pgb", "postgres")
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{Dir: dir, Backend: p, Opts: opts, bin: bin}
	for attempt := 0; ; attempt++ {
		if b.Port, err = freePort(); err != nil {
			break
		}
		var bindFailed bool
		if bindFailed, err = b.start(ctx); err == nil || !bindFailed || attempt == 4 {
			break
		}
	}
	if err != nil {
		b.Destroy()
		return nil, err
	}
	return b, nil
}

// writeConfig writes the ini (CLUSTERS.md, section 5: the user must be listed in auth_file even
// with trust; an unknown key such as max_prepared_statements is fatal in 1.18).
func (b *PgBouncer) writeConfig() error {
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s
admin_users = postgres
stats_users = postgres
pool_mode = %s
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = %d
max_db_connections = %d
ignore_startup_parameters = extra_float_digits
server_reset_query = DISCARD ALL
logfile = %s
pidfile = %s
`, b.Backend.Port, b.Port, b.Dir, filepath.Join(b.Dir, "userlist.txt"), b.Opts.PoolMode, b.Opts.DefaultPoolSize,
		b.Opts.MaxClientConn, b.Opts.DefaultPoolSize, b.logFile(), filepath.Join(b.Dir, "pgbouncer.pid"))
	if b.Opts.ServerLoginRetry > 0 {
		ini += fmt.Sprintf("server_login_retry = %d\n", b.Opts.ServerLoginRetry)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "userlist.txt"), []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(b.iniFile(), []byte(ini), 0o644)
}

// start runs pgbouncer in the foreground (so that the child's pid is PgBouncer's) and waits until
// its admin console answers; bindFailed reports that the port was taken.
func (b *PgBouncer) start(ctx context.Context) (bindFailed bool, err error) {
	if err := b.writeConfig(); err != nil {
		return false, err
	}
	logOff := fileSize(b.logFile())
	cmd := exec.Command(b.bin, b.iniFile())
	cmd.Dir, cmd.Env = b.Dir, toolEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return false, fmt.Errorf("testserver: running as root, PgBouncer must run as user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := os.OpenFile(filepath.Join(b.Dir, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting %s: %v", b.bin, err)
	}
	b.cmd = cmd
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	b.waitDone = done
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	deadline := time.Now().Add(waitLimit)
	for {
		select {
		case werr := <-done:
			b.cmd, b.waitDone = nil, nil
			newLog := readFrom(b.logFile(), logOff) + readFrom(filepath.Join(b.Dir, "stderr"), 0)
			bindFailed = strings.Contains(newLog, "Address already in use")
			return bindFailed, fmt.Errorf("pgbouncer on %s exited during start-up (%v)\n%s", addr, werr, tail(newLog, 30))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if _, err := b.Admin("SHOW VERSION"); err == nil {
				return false, nil
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			b.kill()
			return false, fmt.Errorf("pgbouncer on %s not answering after %v (%v)\n%s", addr, waitLimit, ctx.Err(), logTail(b.logFile()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Admin runs one command on PgBouncer's admin console (database "pgbouncer") with psql and returns
// its output (psql -At: rows on lines, columns separated by '|'), e.g. "SHOW VERSION",
// "SHOW SERVERS", or "KILL test" followed by "RESUME test" to drop a database's server
// connections (and so the prepared statements left on them).
func (b *PgBouncer) Admin(command string) (string, error) {
	psql := filepath.Join(b.Backend.bin, "psql")
	args := []string{"-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-U", "postgres", "-d", "pgbouncer", "-c", command}
	out, err := run(context.Background(), cmdTimeout, "", "", toolEnv("PGCONNECT_TIMEOUT=10"), psql, args...)
	return strings.TrimSpace(out), err
}

// Version returns what PgBouncer's SHOW VERSION says, such as "PgBouncer 1.18.0".
func (b *PgBouncer) Version() (string, error) { return b.Admin("SHOW VERSION") }

// LogTail returns the last lines of PgBouncer's log.
func (b *PgBouncer) LogTail() string { return logTail(b.logFile()) }

// kill ends pgbouncer: SIGTERM (a fast exit), SIGKILL if it is still there after 10 s.
func (b *PgBouncer) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.waitDone:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		select {
		case <-b.waitDone:
		case <-time.After(waitLimit):
		}
	}
	b.cmd, b.waitDone = nil, nil
}

// Destroy stops PgBouncer and removes its directory (the backend is left alone).
func (b *PgBouncer) Destroy() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kill()
	if b.Dir != "" {
		_ = os.RemoveAll(b.Dir)
	}
}

var sharedBouncer struct {
	once sync.Once
	pg   *Postgres
	b    *PgBouncer
	err  error
}

// SharedPgBouncer returns the process's shared PgBouncer (transaction mode, default_pool_size 2)
// in front of a PostgreSQL server of its own (not SharedPostgres's, which may be external), both
// started on first use and stopped by StopShared. Tests use FreshDB on its Backend for a database
// of their own (PgBouncer serves every database of the backend, each with its own pool), and must
// not stop it. On a failed test, StartPgBouncer's log dump is available as LogTail.
func SharedPgBouncer(t testing.TB) *PgBouncer {
	t.Helper()
	sharedBouncer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
		defer cancel()
		p, err := NewPostgres(ctx, PostgresOptions{})
		if err != nil {
			sharedBouncer.err = err
			return
		}
		p.shared = true
		b, err := NewPgBouncer(ctx, p, PgBouncerOptions{})
		if err != nil {
			p.destroy()
			sharedBouncer.err = err
			return
		}
		sharedBouncer.pg, sharedBouncer.b = p, b
	})
	if sharedBouncer.err != nil {
		t.Fatalf("testserver: cannot start the shared PgBouncer: %v\nTo get one: %s (and apt-get install pgbouncer)", sharedBouncer.err, pgHint)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PgBouncer log (%s):\n%s", sharedBouncer.b.logFile(), logTail(sharedBouncer.b.logFile()))
		}
	})
	return sharedBouncer.b
}

// stopSharedBouncer stops the shared PgBouncer and its PostgreSQL server, if started.
func stopSharedBouncer() {
	if b := sharedBouncer.b; b != nil {
		b.Destroy()
	}
	if p := sharedBouncer.pg; p != nil {
		p.destroy()
	}
}

// FreshDB creates an empty database on the backend for test t (dropped when the test ends, see
// Postgres.FreshDB) and returns the DSN that reaches it through PgBouncer; its name is the URL's
// path. PgBouncer gives each database its own pool of DefaultPoolSize server connections.
func (b *PgBouncer) FreshDB(t testing.TB) string {
	t.Helper()
	direct := b.Backend.FreshDB(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatalf("testserver: FreshDB: %v", err)
	}
	return b.DSN(strings.TrimPrefix(u.Path, "/"))
}

// Running reports whether the PgBouncer process is still there. PgBouncer 1.18 can exit on its own:
// a client that closes while its cancel request is being forwarded makes it abort with
// "FATAL @src/objects.c:1060 in function disconnect_client(): bad client state: 0" (seen here with
// pgx cancelling a query on context cancellation).
func (b *PgBouncer) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runningLocked()
}

func (b *PgBouncer) runningLocked() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.waitDone:
		b.cmd, b.waitDone = nil, nil
		return false
	default:
		return true
	}
}

// Restart starts PgBouncer again on the same port and configuration if it is not running (after a
// crash); it does nothing when it is running. It reports whether it had to start it.
func (b *PgBouncer) Restart(ctx context.Context) (restarted bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runningLocked() {
		return false, nil
	}
	for attempt := 0; ; attempt++ {
		bindFailed, err := b.start(ctx)
		if err == nil || !bindFailed || attempt == 20 || ctx.Err() != nil {
			return true, err
		}
		time.Sleep(200 * time.Millisecond) // the port is still held: wait for it
	}
}
