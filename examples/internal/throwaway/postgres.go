// Package throwaway starts database servers that live only as long as the
// program that started them: their own data directory in a temporary
// directory, a free loopback port, initdb/pg_ctl run as the postgres user
// when running as root. The failover demo and the recovery measurement tool
// share it.
package throwaway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNoPostgres says the PostgreSQL server binaries are missing; main turns
// it into exit status 2.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH")

// InstallHint tells how to get what ErrNoPostgres says is missing.
const InstallHint = "install them with: sudo apt-get update && sudo apt-get install -y postgresql (Debian/Ubuntu; the package's own service is not used), or put a directory holding initdb and pg_ctl on PATH"

// Postgres is a throwaway PostgreSQL instance: its own data directory, log
// and unix socket in a temporary directory, listening on a free loopback port.
type Postgres struct {
	bin      string // directory with initdb and pg_ctl
	Dir      string // instance directory (owned by postgres when we run as root)
	Port     int
	maxConns int
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }
func (p *Postgres) logFile() string { return filepath.Join(p.Dir, "log") }

// DSN is a pgx URL for the postgres database, with a query part so that
// hasql.* keys can be appended with '&'.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.Port)
}

// PGBinGlob is where Debian puts the server binaries (a variable for tests).
var PGBinGlob = "/usr/lib/postgresql/*/bin"

// findPGBin finds initdb and pg_ctl: the highest /usr/lib/postgresql/<v>/bin
// (Debian's layout), else PATH.
func findPGBin() (string, error) {
	dirs, _ := filepath.Glob(PGBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if IsExec(filepath.Join(d, "initdb")) && IsExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(initdb)
		if IsExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func IsExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartPostgres creates and starts a throwaway server. As root the server
// tools run as the postgres user (initdb refuses root) through runuser.
func StartPostgres(ctx context.Context, prefix string, maxConns int) (*Postgres, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if _, err := findRunuser(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "hasql-"+prefix+"-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin, Dir: dir, maxConns: max(100, maxConns)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			p.Remove()
			return nil, fmt.Errorf("running as root, the server must run as the system user postgres, which does not exist (the postgresql package creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			p.Remove()
			return nil, err
		}
	}
	if _, err := p.tool(ctx, time.Minute, "initdb", "-D", p.dataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		p.Remove()
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if p.Port, err = FreePort(); err != nil {
			p.Remove()
			return nil, err
		}
		logOff := FileSize(p.logFile())
		_, err = p.tool(ctx, time.Minute, "pg_ctl", "-D", p.dataDir(), "-o", p.serverOpts(),
			"-l", p.logFile(), "-w", "-t", "30", "start")
		if err == nil {
			return p, nil
		}
		newLog := ReadFrom(p.logFile(), logOff)
		if attempt < 4 && strings.Contains(newLog, "could not bind") {
			continue // someone took the port meanwhile
		}
		p.Destroy()
		return nil, fmt.Errorf("%v\nserver log:\n%s", err, Tail(newLog, 15))
	}
}

func (p *Postgres) serverOpts() string {
	return fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1 -c max_connections=%d -c fsync=off", p.Port, p.Dir, p.maxConns)
}

// restart runs pg_ctl restart -m mode (fast or immediate) and waits until the
// server accepts connections again (pg_ctl -w).
func (p *Postgres) Restart(ctx context.Context, mode string) error {
	_, err := p.tool(ctx, time.Minute, "pg_ctl", "-D", p.dataDir(), "-m", mode, "-o", p.serverOpts(),
		"-l", p.logFile(), "-w", "-t", "30", "restart")
	return err
}

// destroy stops the server (immediate: nothing in it is worth keeping) and
// removes its directory.
func (p *Postgres) Destroy() {
	if _, err := os.Stat(filepath.Join(p.dataDir(), "postmaster.pid")); err == nil {
		p.tool(context.Background(), 30*time.Second, "pg_ctl", "-D", p.dataDir(), "-m", "immediate", "-w", "stop")
	}
	p.Remove()
}

func (p *Postgres) Remove() { os.RemoveAll(p.Dir) }

// tool runs a server tool from p.bin, as postgres when we are root, with a
// clean environment (no PG* variables that could redirect it; C locale).
func (p *Postgres) tool(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	argv := append([]string{filepath.Join(p.bin, name)}, args...)
	if os.Geteuid() == 0 {
		ru, err := findRunuser()
		if err != nil {
			return "", err
		}
		argv = append([]string{ru, "-u", "postgres", "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Env = CleanEnv()
	cmd.WaitDelay = 5 * time.Second // pg_ctl start leaves the server holding no pipe of ours (-l), but be safe
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return out.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, Tail(out.String(), 15))
	}
	return out.String(), nil
}

func findRunuser() (string, error) {
	if p, err := exec.LookPath("runuser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runuser", "/sbin/runuser"} {
		if IsExec(p) {
			return p, nil
		}
	}
	return "", errors.New("running as root, the server tools must run as the postgres user, but runuser (util-linux) was not found")
}

func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func FileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func ReadFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
