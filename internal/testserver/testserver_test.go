package testserver

// Self-test of the package. It checks the servers with net.Dial and their own command-line clients
// only, never with a Go driver.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func checkDial(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatalf("dial 127.0.0.1:%d: %v", port, err)
	}
	c.Close()
}

func checkRefused(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("127.0.0.1:%d still accepts connections with the server down", port)
	}
}

func wantQuery(t *testing.T, query func(string) (string, error), sql, want string) {
	t.Helper()
	got, err := query(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if got != want {
		t.Fatalf("%s = %q, want %q", sql, got, want)
	}
}

func TestStartsAndRestartsPostgres(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := StartPostgres(t)
	t.Logf("throwaway PostgreSQL on port %d ready in %v", p.Port, time.Since(start).Round(time.Millisecond))
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.Port) + "/test?sslmode=disable"; p.DSN("test") != want {
		t.Fatalf("DSN = %q, want %q", p.DSN("test"), want)
	}
	check := func() {
		t.Helper()
		checkDial(t, p.Port)
		wantQuery(t, p.Query, "SELECT 1", "1")
		wantQuery(t, p.Query, "SELECT count(*) FROM pg_database WHERE datname = 'test'", "1")
	}
	check()
	if err := p.ExecIn("test", "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	pid := p.PID()
	if pid == 0 {
		t.Fatal("PID() = 0 for a running server")
	}
	start = time.Now()
	if err := p.Restart("fast"); err != nil {
		t.Fatal(err)
	}
	t.Logf("fast restart in %v", time.Since(start).Round(time.Millisecond))
	check()
	if p.PID() == pid || p.PID() == 0 {
		t.Fatalf("PID() after restart = %d, before %d", p.PID(), pid)
	}

	if err := p.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, p.Port)
	if p.PID() != 0 {
		t.Fatalf("PID() = %d for a stopped server", p.PID())
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	check()

	start = time.Now()
	if err := p.Kill9Postmaster(); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, p.Port)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 and crash recovery in %v", time.Since(start).Round(time.Millisecond))
	check()
	wantQuery(t, func(s string) (string, error) { return p.QueryIn("test", s) }, "SELECT v FROM kept", "42")
}

func TestPostgresStandbyPromote(t *testing.T) {
	t.Parallel()
	p := StartPostgres(t)
	if err := p.ExecIn("test", "CREATE TABLE r (v int); INSERT INTO r VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := p.StartStandby(t)
	t.Logf("standby on port %d ready in %v", s.Port, time.Since(start).Round(time.Millisecond))
	checkDial(t, s.Port)
	wantQuery(t, s.Query, "SELECT pg_is_in_recovery()", "t")
	wantQuery(t, p.Query, "SELECT pg_is_in_recovery()", "f")
	if err := s.ExecIn("test", "INSERT INTO r VALUES (2)"); err == nil {
		t.Fatal("write on the standby succeeded")
	}
	// Streaming: a row written on the primary shows up on the standby.
	if err := p.ExecIn("test", "INSERT INTO r VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := s.QueryIn("test", "SELECT count(*) FROM r")
		if err == nil && out == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row not replicated to the standby after 30 s (%q, %v)", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	wantQuery(t, s.Query, "SELECT pg_is_in_recovery()", "f")
	if err := s.ExecIn("test", "INSERT INTO r VALUES (4)"); err != nil {
		t.Fatalf("write on the promoted standby: %v", err)
	}
}

func TestStartsAndRestartsMariaDB(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := StartMariaDB(t)
	t.Logf("throwaway MariaDB on port %d ready in %v", m.Port, time.Since(start).Round(time.Millisecond))
	if want := "root@tcp(127.0.0.1:" + strconv.Itoa(m.Port) + ")/test"; m.DSN("test") != want {
		t.Fatalf("DSN = %q, want %q", m.DSN("test"), want)
	}
	check := func() {
		t.Helper()
		checkDial(t, m.Port)
		wantQuery(t, m.Query, "SELECT 1", "1")
		wantQuery(t, m.Query, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'test'", "1")
	}
	check()
	if err := m.ExecIn("test", "CREATE TABLE kept (v int) ENGINE=InnoDB; INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	if pid == 0 {
		t.Fatal("PID() = 0 for a running server")
	}
	start = time.Now()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart in %v", time.Since(start).Round(time.Millisecond))
	check()
	if m.PID() == pid || m.PID() == 0 {
		t.Fatalf("PID() after restart = %d, before %d", m.PID(), pid)
	}

	start = time.Now()
	if err := m.Kill9(); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, m.Port)
	if m.PID() != 0 {
		t.Fatalf("PID() = %d for a killed server", m.PID())
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 and crash recovery in %v", time.Since(start).Round(time.Millisecond))
	check()
	wantQuery(t, m.Query, "SELECT v FROM test.kept", "42")
}

func TestSharedServersFreshDB(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := SharedPostgres(t)
		if p != SharedPostgres(t) {
			t.Fatal("SharedPostgres returned two servers")
		}
		a, b := p.FreshDB(t), p.FreshDB(t)
		if a == b {
			t.Fatalf("FreshDB twice gave %q", a)
		}
		name := a[strings.LastIndexByte(a, '/')+1 : strings.IndexByte(a, '?')]
		wantQuery(t, p.Query, "SELECT count(*) FROM pg_database WHERE datname = '"+name+"'", "1")
		if p.external == "" {
			if err := p.Stop("fast"); err == nil || !strings.Contains(err.Error(), "shared") {
				t.Fatalf("Stop on the shared server: %v", err)
			}
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		t.Parallel()
		m := SharedMariaDB(t)
		if m != SharedMariaDB(t) {
			t.Fatal("SharedMariaDB returned two servers")
		}
		a, b := m.FreshDB(t), m.FreshDB(t)
		if a == b {
			t.Fatalf("FreshDB twice gave %q", a)
		}
		name := a[strings.LastIndexByte(a, '/')+1:]
		wantQuery(t, m.Query, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '"+name+"'", "1")
		if m.external == "" {
			if err := m.Kill9(); err == nil || !strings.Contains(err.Error(), "shared") {
				t.Fatalf("Kill9 on the shared server: %v", err)
			}
		}
	})
}

func TestExternalDSNs(t *testing.T) {
	pg := []struct{ in, want string }{
		{"postgres://u:p@db.example:5433/app?sslmode=disable", "postgres://u:p@db.example:5433/t_1?sslmode=disable"},
		{"postgresql://u@h/", "postgresql://u@h/t_1"},
		{"host=h port=5 dbname=app sslmode=disable", "host=h port=5 dbname=t_1 sslmode=disable"},
		{"host=h port=5", "host=h port=5 dbname=t_1"},
	}
	for _, c := range pg {
		if got := pgWithDB(c.in, "t_1"); got != c.want {
			t.Errorf("pgWithDB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	my := []struct{ in, want string }{
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/t_1"},
		{"u:p@tcp(h:3307)/app?parseTime=true", "u:p@tcp(h:3307)/t_1?parseTime=true"},
		{"u:p@tcp(h:3307)/", "u:p@tcp(h:3307)/t_1"},
	}
	for _, c := range my {
		if got := mysqlWithDB(c.in, "t_1"); got != c.want {
			t.Errorf("mysqlWithDB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	args, pw, err := mysqlClientArgs("bob:s3:cr@t@tcp(db.example:3307)/app?x=1")
	if err != nil || pw != "s3:cr@t" || strings.Join(args, " ") != "-u bob --protocol=TCP -h db.example -P 3307" {
		t.Errorf("mysqlClientArgs = %q, %q, %v", args, pw, err)
	}
	args, _, _ = mysqlClientArgs("root@unix(/run/mysqld/mysqld.sock)/x")
	if strings.Join(args, " ") != "-u root --protocol=SOCKET -S /run/mysqld/mysqld.sock" {
		t.Errorf("unix: %q", args)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// TestNewPostgresOutsideTests: the constructor for programs, with options, pg_ctl restart and
// Destroy; the shared server's Destroy does nothing.
func TestNewPostgresOutsideTests(t *testing.T) {
	t.Parallel()
	p, err := NewPostgres(context.Background(), PostgresOptions{MaxConnections: 123})
	if err != nil {
		t.Fatal(err)
	}
	dir := p.Dir
	defer func() {
		if _, err := os.Stat(dir); err == nil {
			p.Destroy()
		}
	}()
	wantQuery(t, p.Query, "SHOW max_connections", "123")
	pid := p.PID()
	for _, mode := range []string{"fast", "immediate"} {
		if err := p.RestartContext(context.Background(), mode); err != nil {
			t.Fatal(err)
		}
		wantQuery(t, p.Query, "SHOW max_connections", "123")
	}
	if p.PID() == pid || p.PID() == 0 {
		t.Fatalf("PID() after restart = %d, before %d", p.PID(), pid)
	}
	if err := p.Restart("sideways"); err == nil {
		t.Fatal("Restart accepted the mode \"sideways\"")
	}
	if out, err := p.Tool(30*time.Second, "pg_controldata", filepath.Join(p.Dir, "data")); err != nil || !strings.Contains(out, "in production") {
		t.Fatalf("Tool pg_controldata: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.psql(ctx, "postgres", "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("psql with a cancelled context: %v, want context.Canceled", err)
	}
	pid = p.PID()
	p.Destroy()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Destroy (%v)", dir, err)
	}
	if alive(pid) {
		t.Fatalf("postmaster %d still alive after Destroy", pid)
	}
	if s := SharedPostgres(t); !s.External() {
		s.Destroy()
		wantQuery(t, s.Query, "SELECT 1", "1")
	}
}

// TestNoPostgres: without the binaries the error wraps ErrNoPostgres.
func TestNoPostgres(t *testing.T) {
	old := PostgresBinGlob
	PostgresBinGlob = filepath.Join(t.TempDir(), "nothing", "*", "bin")
	defer func() { PostgresBinGlob = old }()
	t.Setenv("PATH", t.TempDir())
	if _, err := NewPostgres(context.Background(), PostgresOptions{}); !errors.Is(err, ErrNoPostgres) {
		t.Fatalf("NewPostgres without binaries: %v, want ErrNoPostgres", err)
	}
}

// TestNoMariaDB: without the binaries the error wraps ErrNoMariaDB.
func TestNoMariaDB(t *testing.T) {
	old := mariaBinDirs
	mariaBinDirs = []string{filepath.Join(t.TempDir(), "nothing")}
	defer func() { mariaBinDirs = old }()
	t.Setenv("PATH", t.TempDir())
	if _, err := NewMariaDB(context.Background(), MariaDBOptions{}); !errors.Is(err, ErrNoMariaDB) {
		t.Fatalf("NewMariaDB without binaries: %v, want ErrNoMariaDB", err)
	}
}

// TestNewMariaDBOutsideTests: the constructor for programs, with options, and Destroy.
func TestNewMariaDBOutsideTests(t *testing.T) {
	t.Parallel()
	m, err := NewMariaDB(context.Background(), MariaDBOptions{
		MaxConnections:  77,
		ServerArgs:      []string{"--innodb-flush-log-at-trx-commit=2"},
		NewProcessGroup: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := m.Dir
	defer func() {
		if _, err := os.Stat(dir); err == nil {
			m.Destroy()
		}
	}()
	wantQuery(t, m.Query, "SELECT @@max_connections, @@innodb_flush_log_at_trx_commit", "77\t2")
	pid := m.PID()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Fatalf("mariadbd %d: process group %d (%v), want its own", pid, pgid, err)
	}
	if err := m.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := m.StartContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantQuery(t, func(s string) (string, error) { return m.QueryIn("test", s) }, "SELECT DATABASE()", "test")
	pid = m.PID()
	m.Destroy()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Destroy (%v)", dir, err)
	}
	if alive(pid) {
		t.Fatalf("mariadbd %d still alive after Destroy", pid)
	}
	if m.PID() != 0 {
		t.Fatalf("PID() = %d after Destroy", m.PID())
	}
}
