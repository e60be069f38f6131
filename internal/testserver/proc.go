package testserver

// Running tools, instance directories, ports and processes.

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
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	waitLimit  = 30 * time.Second // every wait for a server is bounded by this
	cmdTimeout = 90 * time.Second // hard limit for one command-line tool run
)

// makeTestHint says how to get the server binaries when tests miss them.
const makeTestHint = "run 'make test' in the repository root (it installs postgresql and mariadb-server)"

// run runs a command with a time limit (and ctx). As root, a non-empty asUser runs it as that user
// (initdb and pg_ctl refuse root). The error carries the command line and the tail of its output;
// when ctx ends first, it wraps ctx.Err().
func run(ctx context.Context, timeout time.Duration, dir, asUser string, env []string, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	if asUser != "" && os.Geteuid() == 0 {
		var err error
		if argv, err = asUserArgv(asUser, argv); err != nil {
			return "", err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = 5 * time.Second // never hang on a pipe held by a grandchild
	var stdout bytes.Buffer
	both := &lockedBuffer{} // written by two copying goroutines
	cmd.Stdout = io.MultiWriter(&stdout, both)
	cmd.Stderr = both
	err := cmd.Run()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		case cctx.Err() == context.DeadlineExceeded:
			err = fmt.Errorf("timed out after %v", timeout)
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (%s)", err, makeTestHint)
		}
		return stdout.String(), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(both.String(), 30))
	}
	return stdout.String(), nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// asUserArgv wraps argv to run as usr: runuser -u usr -- argv, else su -s /bin/sh usr -c.
func asUserArgv(usr string, argv []string) ([]string, error) {
	if ru, err := findExec("runuser", "/usr/sbin/runuser", "/sbin/runuser"); err == nil {
		return append([]string{ru, "-u", usr, "--"}, argv...), nil
	}
	if su, err := findExec("su", "/bin/su", "/usr/bin/su"); err == nil {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		return []string{su, "-s", "/bin/sh", usr, "-c", "exec " + strings.Join(quoted, " ")}, nil
	}
	return nil, errors.New("testserver: running as root, the server tools must run as a non-root user, but neither runuser nor su was found")
}

// toolEnv is the environment without PG*/MYSQL* variables that could redirect the tools, with the
// C locale so that messages are in English, plus extra.
func toolEnv(extra ...string) []string {
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

// findExec finds name on PATH, else the first executable of fallbacks.
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

var ports struct {
	sync.Mutex
	used map[int]bool
}

// freePort returns a free loopback port, never the same twice in one process. It prefers ports
// below the kernel's ephemeral range, so that an outgoing connection cannot take the port while a
// test has the server stopped; it falls back to listening on 127.0.0.1:0.
func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
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
		if ports.used[port] {
			return 0, false
		}
		ports.used[port] = true
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
	return 0, errors.New("testserver: no free loopback port found")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// makeDir makes $TMPDIR/hasql-<kind>-*, records the owning process, and (as root) hands it to the
// server's system user. Stale directories of dead processes are removed first.
func makeDir(kind, owner string) (string, error) {
	reapOnce.Do(reapStale)
	dir, err := os.MkdirTemp("", "hasql-"+kind+"-")
	if err != nil {
		return "", err
	}
	_ = os.WriteFile(filepath.Join(dir, "owner"), []byte(selfID()+"\n"), 0o644)
	if os.Geteuid() == 0 {
		u, err := user.Lookup(owner)
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("running as root, the server must run as the system user %q, which does not exist (the server package creates it): %v", owner, err)
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

// selfID is "pid starttime" of this process ("pid 0" where /proc is missing).
func selfID() string {
	pid := os.Getpid()
	return fmt.Sprintf("%d %s", pid, startTime(pid))
}

func procStat(pid int) (fields []string, ok bool) {
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

func startTime(pid int) string {
	if f, ok := procStat(pid); ok && len(f) > 19 {
		return f[19]
	}
	return "0"
}

func isZombie(pid int) bool {
	f, ok := procStat(pid)
	return ok && len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	if f, ok := procStat(pid); ok {
		return len(f) > 0 && f[0] != "Z" && f[0] != "X"
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // Linux, and no /proc/<pid>: gone
	}
	proc, err := os.FindProcess(pid)
	return err == nil && proc.Signal(syscall.Signal(0)) == nil
}

func waitDead(timeout time.Duration, pids ...int) bool {
	deadline := time.Now().Add(timeout)
	for {
		anyAlive := false
		for _, pid := range pids {
			if alive(pid) {
				anyAlive = true
				break
			}
		}
		if !anyAlive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func signal(pid int, sig os.Signal) error {
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

// children lists the live children of pid (Linux /proc; empty elsewhere).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	var kids []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, ok := procStat(c); ok && len(f) > 1 && f[1] == want && f[0] != "Z" {
			kids = append(kids, c)
		}
	}
	return kids
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

// cmdlineHas reports whether process pid's command line mentions s (protection against a reused
// pid).
func cmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(s))
}

var reapOnce sync.Once

// reapStale removes hasql-pg-*/hasql-maria-* directories whose owning process is dead, after
// killing (by pid, checked against the directory) the server processes left in them.
func reapStale() {
	if _, ok := procStat(os.Getpid()); !ok {
		return // no /proc: cannot tell dead owners from live ones
	}
	for _, kind := range []string{"pg", "maria", "pgb", "patroni", "galera"} {
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
			if owner <= 0 || (alive(owner) && startTime(owner) == f[1]) {
				continue
			}
			var pids []int
			switch kind {
			case "patroni", "galera":
				// Their daemons died with their owner (Pdeathsig); PostgreSQL's postmasters, Patroni's
				// children, did not.
				nodes, _ := filepath.Glob(filepath.Join(dir, "node*"))
				for _, nd := range nodes {
					killPidFile(filepath.Join(nd, "data", "postmaster.pid"), nd)
					killPidFile(filepath.Join(nd, "mariadbd.pid"), nd)
				}
			case "pg":
				if pid := pidFromFile(filepath.Join(dir, "data", "postmaster.pid")); pid > 0 && cmdlineHas(pid, dir) {
					pids = append(children(pid), pid)
				}
			default:
				if pid := pidFromFile(filepath.Join(dir, "pgbouncer.pid")); kind == "pgb" && pid > 0 && cmdlineHas(pid, dir) {
					pids = append(pids, pid)
				} else if pid := pidFromFile(filepath.Join(dir, "mariadbd.pid")); pid > 0 && cmdlineHas(pid, dir) {
					pids = append(pids, pid)
				}
			}
			for _, pid := range pids {
				_ = signal(pid, syscall.SIGKILL)
			}
			waitDead(5*time.Second, pids...)
			_ = os.RemoveAll(dir)
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) string {
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

// logTail is the last lines of a server log, for failure messages.
func logTail(path string) string {
	size := fileSize(path)
	off := size - 16<<10
	if off < 0 {
		off = 0
	}
	s := readFrom(path, off)
	if s == "" {
		return "(server log " + path + " is empty or missing)"
	}
	return "--- tail of " + path + " ---\n" + tail(s, 30)
}

func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
