package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hasqlgo/hasql/examples/internal/throwaway"
)

// errNoMariaDB says the MariaDB server binaries are missing; main turns it
// into exit status 2.
var errNoMariaDB = errors.New("MariaDB server binaries (mariadbd, mariadb-install-db) not found in /usr/sbin, /usr/bin or on PATH")

const mariaInstallHint = "install them with: sudo apt-get update && sudo apt-get install -y mariadb-server (Debian/Ubuntu; the package's own service is not used)"

// mariaServer is a throwaway MariaDB instance: its own data directory, log
// and unix socket in a temporary directory, listening on a free loopback
// port. The server process is a child of ours (in its own process group, so
// that a Ctrl-C in the terminal reaches only us and we stop it cleanly).
type mariaServer struct {
	mariadbd, installDB string
	dir                 string // owned by mysql when we run as root
	port                int
	maxConns            int

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *os.File
}

func (m *mariaServer) dataDir() string { return filepath.Join(m.dir, "data") }
func (m *mariaServer) logFile() string { return filepath.Join(m.dir, "log") }

// DSN is a go-sql-driver/mysql DSN for the test database, with a query part
// so that hasql.* keys can be appended with '&'.
func (m *mariaServer) DSN() string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/test?timeout=5s", m.port)
}

// adminDSN reaches the server without naming a database (test may not
// exist yet).
func (m *mariaServer) adminDSN() string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/?timeout=5s", m.port)
}

// mariaBinDirs is where the binaries are looked for besides PATH (a variable
// for tests).
var mariaBinDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

func findMariaBin() (mariadbd, installDB string, err error) {
	find := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
			for _, d := range mariaBinDirs {
				if p := filepath.Join(d, n); throwaway.IsExec(p) {
					return p
				}
			}
		}
		return ""
	}
	mariadbd = find("mariadbd", "mysqld")
	installDB = find("mariadb-install-db", "mysql_install_db")
	if mariadbd == "" || installDB == "" {
		return "", "", errNoMariaDB
	}
	return mariadbd, installDB, nil
}

// startMariaDB creates and starts a throwaway server and creates the
// database test. As root the server runs as the mysql user (--user=mysql).
func startMariaDB(ctx context.Context, maxConns int) (*mariaServer, error) {
	mariadbd, installDB, err := findMariaBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hasql-recovery-mariadb-")
	if err != nil {
		return nil, err
	}
	m := &mariaServer{mariadbd: mariadbd, installDB: installDB, dir: dir, maxConns: max(151, maxConns)}
	runAs := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			m.remove()
			return nil, fmt.Errorf("running as root, the server must run as the system user mysql, which does not exist (the mariadb-server package creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			m.remove()
			return nil, err
		}
		runAs = "mysql"
	} else if u, err := user.Current(); err == nil {
		runAs = u.Username
	}
	args := []string{"--no-defaults", "--datadir=" + m.dataDir(),
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if runAs != "" {
		args = append(args, "--user="+runAs)
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ictx, installDB, args...)
	cmd.Dir = dir
	cmd.Env = throwaway.CleanEnv()
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		m.remove()
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, throwaway.Tail(string(out), 15))
	}
	if m.log, err = os.OpenFile(m.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		m.remove()
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if m.port, err = throwaway.FreePort(); err != nil {
			m.destroy()
			return nil, err
		}
		logOff := throwaway.FileSize(m.logFile())
		if err = m.launch(); err == nil {
			err = m.waitReady(ctx, time.Minute)
		}
		if err == nil {
			break
		}
		newLog := throwaway.ReadFrom(m.logFile(), logOff)
		m.stop(syscall.SIGKILL, 10*time.Second)
		if attempt < 4 && ctx.Err() == nil && strings.Contains(newLog, "Address already in use") {
			continue // someone took the port meanwhile
		}
		m.destroy()
		return nil, fmt.Errorf("starting mariadbd: %v\nserver log:\n%s", err, throwaway.Tail(newLog, 15))
	}
	db, err := sql.Open("mysql", m.adminDSN())
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = db.ExecContext(sctx, "CREATE DATABASE IF NOT EXISTS test")
		cancel()
		db.Close()
	}
	if err != nil {
		m.destroy()
		return nil, fmt.Errorf("creating the database test: %w", err)
	}
	return m, nil
}

func (m *mariaServer) args() []string {
	a := []string{"--no-defaults",
		"--datadir=" + m.dataDir(),
		"--port=" + strconv.Itoa(m.port),
		"--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(m.dir, "sock"),
		"--pid-file=" + filepath.Join(m.dir, "mariadbd.pid"),
		"--skip-log-bin",
		"--skip-name-resolve",
		"--port-open-timeout=10",
		"--max-connections=" + strconv.Itoa(m.maxConns),
		"--innodb-buffer-pool-size=64M",
		"--innodb-flush-log-at-trx-commit=2",
	}
	if os.Geteuid() == 0 {
		a = append(a, "--user=mysql")
	}
	return a
}

// launch starts mariadbd in the background; it does not wait for it to be
// ready.
func (m *mariaServer) launch() error {
	cmd := exec.Command(m.mariadbd, m.args()...)
	cmd.Dir = m.dir
	cmd.Env = throwaway.CleanEnv()
	cmd.Stdout, cmd.Stderr = m.log, m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	return nil
}

// waitReady waits until the server accepts a connection and answers a ping.
func (m *mariaServer) waitReady(ctx context.Context, timeout time.Duration) error {
	c, err := connectorFor("mysql", m.adminDSN())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("mariadbd exited: %v", m.cmd.ProcessState)
		default:
		}
		if last = probeOnce(ctx, c, time.Second); last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restart stops the server with SIGTERM (mode "sigterm": a clean shutdown)
// or SIGKILL (mode "sigkill": a crash, InnoDB recovers at start), waits for
// the process to exit, starts it again on the same port and waits until it
// accepts connections.
func (m *mariaServer) restart(ctx context.Context, mode string) error {
	sig := syscall.SIGTERM
	if mode == "sigkill" {
		sig = syscall.SIGKILL
	}
	if err := m.stop(sig, time.Minute); err != nil {
		return err
	}
	if err := m.launch(); err != nil {
		return err
	}
	return m.waitReady(ctx, time.Minute)
}

// stop signals the server and waits up to timeout for it to exit, then
// kills it.
func (m *mariaServer) stop(sig syscall.Signal, timeout time.Duration) error {
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.exited:
		return nil
	default:
	}
	m.cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-m.exited:
		return nil
	case <-t.C:
	}
	m.cmd.Process.Kill()
	<-m.exited
	return fmt.Errorf("mariadbd did not exit within %v of %v; killed it", timeout, sig)
}

// destroy stops the server (SIGTERM, then SIGKILL after 20 s) and removes
// its directory.
func (m *mariaServer) destroy() {
	m.stop(syscall.SIGTERM, 20*time.Second)
	if m.log != nil {
		m.log.Close()
	}
	m.remove()
}

func (m *mariaServer) remove() { os.RemoveAll(m.dir) }

// connectorFor returns the registered driver's connector for dsn, for
// connections of our own that bypass database/sql's pool.
func connectorFor(driverName, dsn string) (driver.Connector, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	dc, ok := db.Driver().(driver.DriverContext)
	if !ok {
		return nil, fmt.Errorf("driver %s has no OpenConnector", driverName)
	}
	return dc.OpenConnector(dsn)
}

// probeOnce opens a fresh connection, pings it and closes it: the protocol
// level check that the server accepts connections.
func probeOnce(ctx context.Context, c driver.Connector, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if p, ok := conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
