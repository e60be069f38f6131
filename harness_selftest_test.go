package hasql_test

// Self-test of the integration-test harness (harness_test.go). It checks the servers with net.Dial
// and their own command-line clients only, never with a Go driver, so that it does not depend on
// the code under test.

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func harnessCheckDial(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatalf("dial 127.0.0.1:%d: %v", port, err)
	}
	c.Close()
}

func harnessCheckRefused(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("127.0.0.1:%d still accepts connections with the server down", port)
	}
}

func harnessWantQuery(t *testing.T, query func(string) (string, error), sql, want string) {
	t.Helper()
	got, err := query(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if got != want {
		t.Fatalf("%s = %q, want %q", sql, got, want)
	}
}

func TestHarnessStartsAndRestartsPostgres(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := startPostgres(t)
	t.Logf("throwaway PostgreSQL on port %d ready in %v", p.Port, time.Since(start).Round(time.Millisecond))
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.Port) + "/test?sslmode=disable"; p.DSN("test") != want {
		t.Fatalf("DSN = %q, want %q", p.DSN("test"), want)
	}
	check := func() {
		t.Helper()
		harnessCheckDial(t, p.Port)
		harnessWantQuery(t, p.Query, "SELECT 1", "1")
		harnessWantQuery(t, p.Query, "SELECT count(*) FROM pg_database WHERE datname = 'test'", "1")
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
	harnessCheckRefused(t, p.Port)
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
	harnessCheckRefused(t, p.Port)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 and crash recovery in %v", time.Since(start).Round(time.Millisecond))
	check()
	harnessWantQuery(t, func(s string) (string, error) {
		out, err := p.psql("test", s)
		return strings.TrimSpace(out), err
	}, "SELECT v FROM kept", "42")
}

func TestHarnessPostgresStandbyPromote(t *testing.T) {
	t.Parallel()
	p := startPostgres(t)
	if err := p.ExecIn("test", "CREATE TABLE r (v int); INSERT INTO r VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := p.StartStandby(t)
	t.Logf("standby on port %d ready in %v", s.Port, time.Since(start).Round(time.Millisecond))
	harnessCheckDial(t, s.Port)
	harnessWantQuery(t, s.Query, "SELECT pg_is_in_recovery()", "t")
	harnessWantQuery(t, p.Query, "SELECT pg_is_in_recovery()", "f")
	if err := s.ExecIn("test", "INSERT INTO r VALUES (2)"); err == nil {
		t.Fatal("write on the standby succeeded")
	}
	// Streaming: a row written on the primary shows up on the standby.
	if err := p.ExecIn("test", "INSERT INTO r VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := s.psql("test", "SELECT count(*) FROM r")
		if err == nil && strings.TrimSpace(out) == "2" {
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
	harnessWantQuery(t, s.Query, "SELECT pg_is_in_recovery()", "f")
	if err := s.ExecIn("test", "INSERT INTO r VALUES (4)"); err != nil {
		t.Fatalf("write on the promoted standby: %v", err)
	}
}

func TestHarnessStartsAndRestartsMariaDB(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := startMariaDB(t)
	t.Logf("throwaway MariaDB on port %d ready in %v", m.Port, time.Since(start).Round(time.Millisecond))
	if want := "root@tcp(127.0.0.1:" + strconv.Itoa(m.Port) + ")/test"; m.DSN("test") != want {
		t.Fatalf("DSN = %q, want %q", m.DSN("test"), want)
	}
	check := func() {
		t.Helper()
		harnessCheckDial(t, m.Port)
		harnessWantQuery(t, m.Query, "SELECT 1", "1")
		harnessWantQuery(t, m.Query, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'test'", "1")
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
	harnessCheckRefused(t, m.Port)
	if m.PID() != 0 {
		t.Fatalf("PID() = %d for a killed server", m.PID())
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 and crash recovery in %v", time.Since(start).Round(time.Millisecond))
	check()
	harnessWantQuery(t, m.Query, "SELECT v FROM test.kept", "42")
}

func TestHarnessSharedServersFreshDB(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := sharedPG(t)
		if p != sharedPG(t) {
			t.Fatal("sharedPG returned two servers")
		}
		a, b := p.FreshDB(t), p.FreshDB(t)
		if a == b {
			t.Fatalf("FreshDB twice gave %q", a)
		}
		name := a[strings.LastIndexByte(a, '/')+1 : strings.IndexByte(a, '?')]
		harnessWantQuery(t, p.Query, "SELECT count(*) FROM pg_database WHERE datname = '"+name+"'", "1")
		if p.external == "" {
			if err := p.Stop("fast"); err == nil || !strings.Contains(err.Error(), "shared") {
				t.Fatalf("Stop on the shared server: %v", err)
			}
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		t.Parallel()
		m := sharedMaria(t)
		if m != sharedMaria(t) {
			t.Fatal("sharedMaria returned two servers")
		}
		a, b := m.FreshDB(t), m.FreshDB(t)
		if a == b {
			t.Fatalf("FreshDB twice gave %q", a)
		}
		name := a[strings.LastIndexByte(a, '/')+1:]
		harnessWantQuery(t, m.Query, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '"+name+"'", "1")
		if m.external == "" {
			if err := m.Kill9(); err == nil || !strings.Contains(err.Error(), "shared") {
				t.Fatalf("Kill9 on the shared server: %v", err)
			}
		}
	})
}

func TestHarnessExternalDSNs(t *testing.T) {
	pg := []struct{ in, want string }{
		{"postgres://u:p@db.example:5433/app?sslmode=disable", "postgres://u:p@db.example:5433/t_1?sslmode=disable"},
		{"postgresql://u@h/", "postgresql://u@h/t_1"},
		{"host=h port=5 dbname=app sslmode=disable", "host=h port=5 dbname=t_1 sslmode=disable"},
		{"host=h port=5", "host=h port=5 dbname=t_1"},
	}
	for _, c := range pg {
		if got := harnessPGWithDB(c.in, "t_1"); got != c.want {
			t.Errorf("harnessPGWithDB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	my := []struct{ in, want string }{
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/t_1"},
		{"u:p@tcp(h:3307)/app?parseTime=true", "u:p@tcp(h:3307)/t_1?parseTime=true"},
		{"u:p@tcp(h:3307)/", "u:p@tcp(h:3307)/t_1"},
	}
	for _, c := range my {
		if got := harnessMySQLWithDB(c.in, "t_1"); got != c.want {
			t.Errorf("harnessMySQLWithDB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	args, pw, err := harnessMySQLClientArgs("bob:s3:cr@t@tcp(db.example:3307)/app?x=1")
	if err != nil || pw != "s3:cr@t" || strings.Join(args, " ") != "-u bob --protocol=TCP -h db.example -P 3307" {
		t.Errorf("harnessMySQLClientArgs = %q, %q, %v", args, pw, err)
	}
	args, _, _ = harnessMySQLClientArgs("root@unix(/run/mysqld/mysqld.sock)/x")
	if strings.Join(args, " ") != "-u root --protocol=SOCKET -S /run/mysqld/mysqld.sock" {
		t.Errorf("unix: %q", args)
	}
}
