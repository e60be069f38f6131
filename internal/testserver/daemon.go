package testserver

// Long-running server processes of the clusters (etcd, Patroni, Galera's mariadbd): started as a
// system user directly (no runuser in between, so that the pid is the server's own), killed with
// this process (Pdeathsig), reaped by one goroutine each that lives exactly as long as the process.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// daemon is one server process, our child.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit status, valid after done
}

// sysUser returns the uid and gid of a system user; as non-root, our own (no switch).
func sysUser(name string) (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("running as root, the server must run as the system user %q, which does not exist (the server package creates it): %v", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// chownTree hands dir and everything in it to uid:gid (nothing as non-root).
func chownTree(dir string, uid, gid int) error {
	if uid < 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// startDaemon starts name with args in dir as uid:gid (uid < 0: as ourselves), its output appended
// to logPath. It is killed when this process dies (Pdeathsig), and runs in a process group of its
// own so that a terminal's Ctrl-C reaches only the test binary.
func startDaemon(dir, logPath string, uid, gid int, env []string, name string, args ...string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Env = dir, logf, logf, env
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if uid >= 0 {
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (%s)", err, makeTestHint)
		}
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// running reports whether the process has not exited yet.
func (d *daemon) running() bool {
	if d == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits (bounded) for the exit; SIGKILL after timeout.
func (d *daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	if d == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return nil
	case <-time.After(timeout):
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
		return fmt.Errorf("testserver: %s (pid %d) did not exit within %v of signal %v; killed it", filepath.Base(d.cmd.Path), d.pid(), timeout, sig)
	case <-time.After(waitLimit):
		return fmt.Errorf("testserver: %s (pid %d) survives SIGKILL", filepath.Base(d.cmd.Path), d.pid())
	}
}

// killPidFile SIGKILLs the process whose pid the file holds, if it is alive and its command line
// mentions mention (protection against a reused pid), and waits for it to go.
func killPidFile(path, mention string) {
	pid := pidFromFile(path)
	if pid <= 0 || !alive(pid) || !cmdlineHas(pid, mention) {
		return
	}
	_ = signal(pid, syscall.SIGKILL)
	waitDead(10*time.Second, pid)
}
