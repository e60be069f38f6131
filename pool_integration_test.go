package hasql_test

// The session pool on real servers (shared PostgreSQL and MariaDB from harness_test.go, a fresh
// database per test): session state applied by a session callback for a tag is there on reuse
// and absent from untagged sessions; purity NEW gets a new backend every time; connection
// classes and users never share a session, under concurrent load; the get modes under
// contention; idle and lifetime reaping driven by a fake clock (PoolTest* hooks from
// pool_test.go); and no goroutine outlives Connector.Close.
//
// Nothing here asserts on background timing: tests wait (bounded) for background work to settle.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hasqlgo/hasql"
)

// ptOpen opens hasql over the registered driver name with dsn and closes it when the test ends.
func ptOpen(t *testing.T, driverName, dsn string, opts ...hasql.Option) (*sql.DB, *hasql.Connector) {
	t.Helper()
	db, err := hasql.Open(driverName, dsn, opts...)
	if err != nil {
		t.Fatalf("hasql.Open(%s): %v", driverName, err)
	}
	// database/sql keeps every handle it is given back, so that what these tests see is hasql's
	// own pool: a handle database/sql closes closes its session too (pool_handles.go).
	db.SetMaxIdleConns(1 << 10)
	t.Cleanup(func() { db.Close() })
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatalf("ConnectorOf: not a hasql DB")
	}
	return db, c
}

// ptEventually waits (bounded) until cond holds.
func ptEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ptDialect is what the tests need to know of a server.
type ptDialect struct {
	name   string // hasql inner driver name
	pid    string // the backend's id
	whoami string // the session's user
	getVar string // a session variable, NULL when unset
	setVar string // sets it to the one argument
}

var (
	ptPG = ptDialect{
		name:   "pgx",
		pid:    "SELECT pg_backend_pid()",
		whoami: "SELECT current_user",
		getVar: "SELECT current_setting('hasqltest.label', true)",
		setVar: "SELECT set_config('hasqltest.label', $1, false)",
	}
	ptMaria = ptDialect{
		name:   "mysql",
		pid:    "SELECT CONNECTION_ID()",
		whoami: "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
		getVar: "SELECT @hasqltest_label",
		setVar: "SET @hasqltest_label = ?",
	}
)

func ptPID(t *testing.T, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, d ptDialect) int64 {
	t.Helper()
	var pid int64
	if err := q.QueryRowContext(ctx, d.pid).Scan(&pid); err != nil {
		t.Fatalf("%s: %v", d.pid, err)
	}
	return pid
}

func ptString(t *testing.T, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string) string {
	t.Helper()
	var s sql.NullString
	if err := q.QueryRowContext(ctx, query).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s.String
}

func ptAcquire(t *testing.T, ctx context.Context, db *sql.DB) (*sql.Conn, *hasql.Session) {
	t.Helper()
	c, err := hasql.Acquire(ctx, db)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	s, err := hasql.SessionOf(c)
	if err != nil {
		t.Fatalf("SessionOf: %v", err)
	}
	return c, s
}

// ptTagProps splits a tag into its k=v properties.
func ptTagProps(tag string) map[string]string {
	m := map[string]string{}
	if tag == "" {
		return m
	}
	for _, p := range strings.Split(tag, ";") {
		k, v, _ := strings.Cut(p, "=")
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// ---------------------------------------------------------------------------------------------
// Tags and the session callback.

const ptZone = "Pacific/Chatham" // not any server's default

func TestTagCallbackStatePG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()
	setup, _ := ptOpen(t, "pgx", dsn)
	for _, q := range []string{
		"CREATE SCHEMA s1", "CREATE TABLE s1.marker (v text)", "INSERT INTO s1.marker VALUES ('s1')",
		"CREATE TABLE public.marker (v text)", "INSERT INTO public.marker VALUES ('public')",
	} {
		if _, err := setup.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defZone := ptString(t, ctx, setup, "SHOW TimeZone")
	defPath := ptString(t, ctx, setup, "SHOW search_path")
	if defZone == ptZone {
		t.Fatalf("the server's default time zone is already %s, so the tag's effect cannot be seen; use a server with another default", ptZone)
	}

	var calls atomic.Int64
	cb := func(ctx context.Context, s *hasql.Session, requested string) error {
		calls.Add(1)
		// Back to the defaults, then what the tag asks for.
		if err := s.Exec(ctx, "RESET TIME ZONE"); err != nil {
			return err
		}
		if err := s.Exec(ctx, "RESET search_path"); err != nil {
			return err
		}
		props := ptTagProps(requested)
		if tz, ok := props["tz"]; ok {
			if err := s.Exec(ctx, "SET TIME ZONE '"+tz+"'"); err != nil {
				return err
			}
		}
		if sp, ok := props["sp"]; ok {
			if err := s.Exec(ctx, "SET search_path TO "+sp); err != nil {
				return err
			}
		}
		return s.SetTag(requested)
	}
	db, c := ptOpen(t, "pgx", dsn, hasql.WithSessionCallback(cb), hasql.WithPool(hasql.PoolConfig{Max: 4, Incr: 1}))
	tag := "sp=s1;tz=" + ptZone // normalised: properties sorted
	tagged := hasql.WithTag(ctx, tag)

	untaggedPID := ptPID(t, ctx, db, ptPG) // an untagged session, now idle
	calls.Store(0)

	cn, s := ptAcquire(t, tagged, db)
	pid1 := ptPID(t, ctx, cn, ptPG)
	if pid1 != untaggedPID || s.TagFound() || calls.Load() != 1 {
		t.Errorf("first tagged checkout: pid %d (untagged idle was %d) found %v callback calls %d", pid1, untaggedPID, s.TagFound(), calls.Load())
	}
	if z, p, m := ptString(t, ctx, cn, "SHOW TimeZone"), ptString(t, ctx, cn, "SHOW search_path"), ptString(t, ctx, cn, "SELECT v FROM marker"); z != ptZone || p != "s1" || m != "s1" {
		t.Fatalf("after the callback: TimeZone %q search_path %q marker %q", z, p, m)
	}
	cn.Close() // keeps the tag the callback set

	// Untagged: a new session, with the server's defaults.
	cn, s = ptAcquire(t, ctx, db)
	if pid := ptPID(t, ctx, cn, ptPG); pid == pid1 || s.Tag() != "" {
		t.Errorf("untagged checkout got pid %d tag %q (tagged session is %d)", pid, s.Tag(), pid1)
	}
	if z, m := ptString(t, ctx, cn, "SHOW TimeZone"), ptString(t, ctx, cn, "SELECT v FROM marker"); z != defZone || m != "public" {
		t.Errorf("untagged session: TimeZone %q marker %q; want %q and public", z, m, defZone)
	}
	cn.Close()

	// The tag again: the same session, found, the state still there, the callback not run.
	calls.Store(0)
	cn, s = ptAcquire(t, tagged, db)
	if pid := ptPID(t, ctx, cn, ptPG); pid != pid1 || !s.TagFound() || s.Tag() != tag || calls.Load() != 0 {
		t.Errorf("tagged reuse: pid %d (want %d) found %v tag %q calls %d", pid, pid1, s.TagFound(), s.Tag(), calls.Load())
	}
	if z, p := ptString(t, ctx, cn, "SHOW TimeZone"), ptString(t, ctx, cn, "SHOW search_path"); z != ptZone || p != "s1" {
		t.Errorf("tagged reuse: TimeZone %q search_path %q", z, p)
	}
	cn.Close()

	// Under load, with the pool at max (4) and waiters: every tagged query sees the tag's state and
	// every untagged query the defaults.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				qctx, wantZone, wantMarker := ctx, defZone, "public"
				if (g+i)%2 == 0 {
					qctx, wantZone, wantMarker = tagged, ptZone, "s1"
				}
				var z, m string
				err := db.QueryRowContext(qctx, "SELECT current_setting('TimeZone'), (SELECT v FROM marker)").Scan(&z, &m)
				if err != nil || z != wantZone || m != wantMarker {
					if bad.Add(1) < 5 {
						t.Errorf("query (tagged %v): TimeZone %q marker %q, %v; want %q %q", qctx != ctx, z, m, err, wantZone, wantMarker)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	st := c.Stats()
	if st.Open > 4 || st.Busy != 0 {
		t.Errorf("after the load: %+v", st)
	}
	if st.TagHits == 0 {
		t.Errorf("no tag hits under load: %+v", st)
	}
	if p := ptString(t, ctx, db, "SHOW search_path"); p != defPath {
		t.Errorf("untagged search_path %q, want %q", p, defPath)
	}
	t.Logf("%+v", st)
}

func TestTagCallbackStateMaria(t *testing.T) {
	dsn := sharedMaria(t).FreshDB(t)
	ctx := context.Background()
	var calls atomic.Int64
	cb := func(ctx context.Context, s *hasql.Session, requested string) error {
		calls.Add(1)
		if err := s.Exec(ctx, "SET SESSION sql_mode = DEFAULT"); err != nil {
			return err
		}
		if err := s.Exec(ctx, "SET SESSION time_zone = DEFAULT"); err != nil {
			return err
		}
		props := ptTagProps(requested)
		if props["mode"] == "ansi" {
			if err := s.Exec(ctx, "SET SESSION sql_mode = 'ANSI_QUOTES'"); err != nil {
				return err
			}
		}
		if tz, ok := props["tz"]; ok {
			if err := s.Exec(ctx, "SET SESSION time_zone = ?", tz); err != nil {
				return err
			}
		}
		return s.SetTag(requested)
	}
	db, c := ptOpen(t, "mysql", dsn, hasql.WithSessionCallback(cb), hasql.WithPool(hasql.PoolConfig{Max: 4, Incr: 1}))
	tag := "mode=ansi;tz=+05:45"
	tagged := hasql.WithTag(ctx, tag)
	mode := "SELECT @@SESSION.sql_mode"
	zone := "SELECT @@SESSION.time_zone"
	defMode := ptString(t, ctx, db, mode)
	if strings.Contains(defMode, "ANSI_QUOTES") {
		t.Fatalf("the server's default sql_mode already has ANSI_QUOTES (%s), so the tag's effect cannot be seen; use a server with another default", defMode)
	}

	cn, s := ptAcquire(t, tagged, db)
	pid1 := ptPID(t, ctx, cn, ptMaria)
	if m, z := ptString(t, ctx, cn, mode), ptString(t, ctx, cn, zone); m != "ANSI_QUOTES" || z != "+05:45" || s.TagFound() {
		t.Fatalf("after the callback: sql_mode %q time_zone %q found %v", m, z, s.TagFound())
	}
	cn.Close()

	cn, s = ptAcquire(t, ctx, db)
	if pid := ptPID(t, ctx, cn, ptMaria); pid == pid1 || s.Tag() != "" {
		t.Errorf("untagged checkout got connection %d tag %q (tagged is %d)", pid, s.Tag(), pid1)
	}
	if m := ptString(t, ctx, cn, mode); m != defMode {
		t.Errorf("untagged session sql_mode %q, want %q", m, defMode)
	}
	cn.Close()

	calls.Store(0)
	cn, s = ptAcquire(t, tagged, db)
	if pid := ptPID(t, ctx, cn, ptMaria); pid != pid1 || !s.TagFound() || calls.Load() != 0 {
		t.Errorf("tagged reuse: connection %d (want %d) found %v calls %d", pid, pid1, s.TagFound(), calls.Load())
	}
	if m, z := ptString(t, ctx, cn, mode), ptString(t, ctx, cn, zone); m != "ANSI_QUOTES" || z != "+05:45" {
		t.Errorf("tagged reuse: sql_mode %q time_zone %q", m, z)
	}
	cn.Close()

	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				qctx, want := ctx, defMode
				if (g+i)%2 == 0 {
					qctx, want = tagged, "ANSI_QUOTES"
				}
				var m string
				if err := db.QueryRowContext(qctx, mode).Scan(&m); err != nil || m != want {
					if bad.Add(1) < 5 {
						t.Errorf("query (tagged %v): sql_mode %q, %v; want %q", qctx != ctx, m, err, want)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if st := c.Stats(); st.Open > 4 || st.Busy != 0 {
		t.Errorf("after the load: %+v", st)
	}
}

// ---------------------------------------------------------------------------------------------
// Purity.

func ptPurity(t *testing.T, d ptDialect, dsn string) {
	ctx := context.Background()
	db, c := ptOpen(t, d.name, dsn)
	seen := map[int64]bool{}
	first := ptPID(t, ctx, db, d)
	seen[first] = true
	for i := 0; i < 5; i++ {
		pid := ptPID(t, hasql.WithPurity(ctx, hasql.PurityNew), db, d)
		if seen[pid] {
			t.Fatalf("purity NEW got backend %d, seen before", pid)
		}
		seen[pid] = true
	}
	if st := c.Stats(); st.Created != 6 {
		t.Errorf("Created %d after 1 + 5 NEW checkouts", st.Created)
	}
	// SELF (and the default) reuse: one backend over and over.
	self := ptPID(t, hasql.WithPurity(ctx, hasql.PuritySelf), db, d)
	for i := 0; i < 5; i++ {
		for _, pctx := range []context.Context{hasql.WithPurity(ctx, hasql.PuritySelf), ctx} {
			if pid := ptPID(t, pctx, db, d); pid != self {
				t.Fatalf("purity SELF/DEFAULT got backend %d, want the pooled %d", pid, self)
			}
		}
	}
	// hasql.purity=new as the default.
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db2, _ := ptOpen(t, d.name, dsn+sep+"hasql.purity=new")
	seen2 := map[int64]bool{}
	for i := 0; i < 4; i++ {
		pid := ptPID(t, ctx, db2, d)
		if seen2[pid] {
			t.Fatalf("hasql.purity=new: backend %d reused", pid)
		}
		seen2[pid] = true
	}
}

func TestPurityNewPG(t *testing.T) {
	ptPurity(t, ptPG, sharedPG(t).FreshDB(t))
}

func TestPurityNewMaria(t *testing.T) {
	ptPurity(t, ptMaria, sharedMaria(t).FreshDB(t))
}

// ---------------------------------------------------------------------------------------------
// Classes and users never share a session, under concurrent load.

// ptUsers creates two login roles/users for the test and returns their names (password "pw").
type ptUsers []string

func ptPGUsers(t *testing.T, srv *pgServer) ptUsers {
	var us ptUsers
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("hq_u%d_%s", i+1, harnessRandHex(4))
		if err := srv.Exec("CREATE ROLE " + name + " LOGIN PASSWORD 'pw'"); err != nil {
			t.Fatalf("cannot create a role on this server: %v", err)
		}
		t.Cleanup(func() { _ = srv.Exec("DROP ROLE IF EXISTS " + name) })
		us = append(us, name)
	}
	return us
}

func ptMariaUsers(t *testing.T, srv *mariaServer, dsn string) ptUsers {
	db := dsn[strings.LastIndexByte(dsn, '/')+1:]
	if i := strings.IndexByte(db, '?'); i >= 0 {
		db = db[:i]
	}
	var us ptUsers
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("hq_u%d_%s", i+1, harnessRandHex(4))
		for _, host := range []string{"%", "localhost", "127.0.0.1"} {
			q := fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY 'pw'; GRANT ALL ON `%s`.* TO '%s'@'%s'", name, host, db, name, host)
			if err := srv.Exec(q); err != nil {
				t.Fatalf("cannot create a user on this server: %v", err)
			}
			t.Cleanup(func() { _ = srv.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", name, host)) })
		}
		us = append(us, name)
	}
	return us
}

// ptIsolation runs 8 goroutines × ops checkouts over every (user, class) pair. Each session is
// labelled with its (user, class) in a session variable the first time it is seen; a session
// showing another pair's label, or another user, is a session that crossed.
func ptIsolation(t *testing.T, d ptDialect, dsn, defUser string, users ptUsers, pc hasql.PoolConfig, checkPIDs bool) {
	ctx := context.Background()
	db, c := ptOpen(t, d.name, dsn, hasql.WithPool(pc), hasql.WithDefaultClass("app"))
	classes := []string{"", "hr", "rec"}
	type who struct{ user, pass string }
	whos := []who{{"", ""}, {users[0], "pw"}, {users[1], "pw"}}

	var (
		mu     sync.Mutex
		labels = map[int64]string{} // backend → label
		bad    atomic.Int64
		ops    atomic.Int64
	)
	report := func(format string, args ...any) {
		if bad.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				w := whos[(g+i)%len(whos)]
				class := classes[(g*7+i)%len(classes)]
				qctx := ctx
				if w.user != "" {
					qctx = hasql.WithUser(qctx, w.user, w.pass)
				}
				if class != "" {
					qctx = hasql.WithClass(qctx, class)
				}
				wantUser := w.user
				if wantUser == "" {
					wantUser = defUser
				}
				wantClass := class
				if wantClass == "" {
					wantClass = "app" // the default class
				}
				label := wantUser + "/" + wantClass

				cn, err := hasql.Acquire(qctx, db)
				if err != nil {
					report("Acquire(%s): %v", label, err)
					continue
				}
				var pid int64
				var user string
				var have sql.NullString
				err = cn.QueryRowContext(qctx, d.pid).Scan(&pid)
				if err == nil {
					err = cn.QueryRowContext(qctx, d.whoami).Scan(&user)
				}
				if err == nil {
					err = cn.QueryRowContext(qctx, d.getVar).Scan(&have)
				}
				switch {
				case err != nil:
					report("%s: %v", label, err)
				case user != wantUser:
					report("checkout for %s ran as user %s (backend %d)", label, user, pid)
				case have.Valid && have.String != "" && have.String != label:
					report("checkout for %s got backend %d labelled %s", label, pid, have.String)
				case !have.Valid || have.String == "":
					if _, err := cn.ExecContext(qctx, d.setVar, label); err != nil {
						report("label %s: %v", label, err)
					}
				}
				if checkPIDs && err == nil {
					mu.Lock()
					if l, ok := labels[pid]; ok && l != label {
						report("backend %d served %s and %s", pid, l, label)
					}
					labels[pid] = label
					mu.Unlock()
				}
				cn.Close()
				ops.Add(1)
			}
		}(g)
	}
	wg.Wait()
	st := c.Stats()
	if st.Busy != 0 || (pc.Max > 0 && st.Open > pc.Max) {
		t.Errorf("after the load: %+v", st)
	}
	t.Logf("%d checkouts over %d backends; %+v", ops.Load(), len(labels), st)
}

func TestClassUserIsolationPG(t *testing.T) {
	srv := sharedPG(t)
	dsn := srv.FreshDB(t)
	users := ptPGUsers(t, srv)
	u, _ := url.Parse(dsn)
	def := u.User.Username()
	t.Run("unbounded", func(t *testing.T) { ptIsolation(t, ptPG, dsn, def, users, hasql.PoolConfig{Incr: 1}, true) })
	t.Run("max4-churn", func(t *testing.T) { ptIsolation(t, ptPG, dsn, def, users, hasql.PoolConfig{Max: 4, Incr: 2}, false) })
}

func TestClassUserIsolationMaria(t *testing.T) {
	srv := sharedMaria(t)
	dsn := srv.FreshDB(t)
	users := ptMariaUsers(t, srv, dsn)
	def := "root"
	if srv.External() {
		def = dsn[:strings.IndexAny(dsn, ":@")]
	}
	t.Run("unbounded", func(t *testing.T) { ptIsolation(t, ptMaria, dsn, def, users, hasql.PoolConfig{Incr: 1}, true) })
	t.Run("max4-churn", func(t *testing.T) { ptIsolation(t, ptMaria, dsn, def, users, hasql.PoolConfig{Max: 4, Incr: 2}, false) })
}

// hasql.cclass sets the default class: checkouts naming it share sessions with those naming none.
func TestClassDefaultFromDSNPG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()
	db, _ := ptOpen(t, "pgx", dsn+"&hasql.cclass=app")
	def := ptPID(t, ctx, db, ptPG)
	if pid := ptPID(t, hasql.WithClass(ctx, "app"), db, ptPG); pid != def {
		t.Errorf("class app (the DSN's default) got backend %d, want %d", pid, def)
	}
	if pid := ptPID(t, hasql.WithClass(ctx, "other"), db, ptPG); pid == def {
		t.Errorf("class other got the default class's backend %d", pid)
	}
	for _, bad := range []string{"a*b", strings.Repeat("c", 1025)} {
		if db, err := hasql.Open("pgx", dsn+"&hasql.cclass="+bad); !errors.Is(err, hasql.ErrInvalidClass) {
			if db != nil {
				db.Close()
			}
			t.Errorf("hasql.cclass=%.10q…: %v, want ErrInvalidClass", bad, err)
		}
	}
	var pid int64
	if err := db.QueryRowContext(hasql.WithClass(ctx, "x*"), ptPG.pid).Scan(&pid); !errors.Is(err, hasql.ErrInvalidClass) {
		t.Errorf("WithClass(x*): %v, want ErrInvalidClass", err)
	}
}

// A wrong password is another pool key: it never gets a session another caller authenticated
// (on a trust-auth server it connects, but separately).
func TestUserPasswordIsPartOfTheKeyPG(t *testing.T) {
	srv := sharedPG(t)
	dsn := srv.FreshDB(t)
	users := ptPGUsers(t, srv)
	ctx := context.Background()
	db, _ := ptOpen(t, "pgx", dsn)
	good := ptPID(t, hasql.WithUser(ctx, users[0], "pw"), db, ptPG)
	if pid := ptPID(t, hasql.WithUser(ctx, users[0], "pw"), db, ptPG); pid != good {
		t.Errorf("same user and password did not reuse: %d then %d", good, pid)
	}
	var pid int64
	err := db.QueryRowContext(hasql.WithUser(ctx, users[0], "wrong"), ptPG.pid).Scan(&pid)
	if err == nil && pid == good {
		t.Errorf("a wrong password got the session authenticated with the right one")
	}
	if who := ptString(t, hasql.WithUser(ctx, users[1], "pw"), db, ptPG.whoami); who != users[1] {
		t.Errorf("WithUser(%s): current_user %s", users[1], who)
	}
}

// ---------------------------------------------------------------------------------------------
// Get modes under contention.

func TestGetModeContentionPG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()

	// run makes 8 goroutines each do n checkouts that hold the session for hold.
	run := func(t *testing.T, db *sql.DB, c *hasql.Connector, n int, hold time.Duration) (ok, exhausted int64, pids map[int64]bool, maxOpen int) {
		var mu sync.Mutex
		pids = map[int64]bool{}
		var okN, exN atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					cn, err := hasql.Acquire(ctx, db)
					if errors.Is(err, hasql.ErrPoolExhausted) {
						exN.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					var pid int64
					if err := cn.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM pg_sleep($1)", hold.Seconds()).Scan(&pid); err != nil {
						t.Errorf("query: %v", err)
					}
					mu.Lock()
					pids[pid] = true
					if o := c.Stats().Open; o > maxOpen {
						maxOpen = o
					}
					mu.Unlock()
					cn.Close()
					okN.Add(1)
				}
			}()
		}
		wg.Wait()
		return okN.Load(), exN.Load(), pids, maxOpen
	}

	t.Run("wait", func(t *testing.T) {
		db, c := ptOpen(t, "pgx", dsn, hasql.WithPool(hasql.PoolConfig{Max: 2, Incr: 1, GetMode: hasql.GetWait}))
		ok, ex, pids, maxOpen := run(t, db, c, 10, 5*time.Millisecond)
		st := c.Stats()
		if ok != 80 || ex != 0 || len(pids) > 2 || maxOpen > 2 || st.Waits == 0 || st.WaitTime <= 0 || st.WaitTimeouts != 0 {
			t.Errorf("wait: %d ok %d exhausted, %d backends, max open %d; %+v", ok, ex, len(pids), maxOpen, st)
		}
	})

	t.Run("nowait", func(t *testing.T) {
		db, c := ptOpen(t, "pgx", dsn, hasql.WithPool(hasql.PoolConfig{Max: 2, Incr: 1, GetMode: hasql.GetNoWait}))
		// Deterministically first: both sessions held, a third checkout fails at once.
		a, _ := ptAcquire(t, ctx, db)
		b, _ := ptAcquire(t, ctx, db)
		if _, err := hasql.Acquire(ctx, db); !errors.Is(err, hasql.ErrPoolExhausted) {
			t.Fatalf("nowait at max: %v", err)
		}
		a.Close()
		b.Close()
		ok, ex, pids, maxOpen := run(t, db, c, 10, 5*time.Millisecond)
		st := c.Stats()
		if ok == 0 || ex == 0 || ok+ex != 80 || len(pids) > 2 || maxOpen > 2 || st.Waits != 0 {
			t.Errorf("nowait: %d ok %d exhausted, %d backends, max open %d; %+v", ok, ex, len(pids), maxOpen, st)
		}
	})

	t.Run("forceget", func(t *testing.T) {
		db, c := ptOpen(t, "pgx", dsn, hasql.WithPool(hasql.PoolConfig{Max: 2, Incr: 1, GetMode: hasql.GetForce}))
		a, _ := ptAcquire(t, ctx, db)
		b, _ := ptAcquire(t, ctx, db)
		e, _ := ptAcquire(t, ctx, db) // beyond max
		if st := c.Stats(); st.Open != 3 || st.Busy != 3 {
			t.Fatalf("forced: %+v", st)
		}
		e.Close()
		if st := c.Stats(); st.Open != 2 || st.Closed != 1 {
			t.Errorf("the forced session was not destroyed on release: %+v", st)
		}
		a.Close()
		b.Close()
		ok, ex, _, maxOpen := run(t, db, c, 10, 5*time.Millisecond)
		st := c.Stats()
		if ok != 80 || ex != 0 || st.Waits != 0 || st.Open > 2 || st.Busy != 0 || st.Created-st.Closed != int64(st.Open) {
			t.Errorf("forceget: %d ok %d exhausted, max open %d; %+v", ok, ex, maxOpen, st)
		}
		t.Logf("forceget: max open seen %d; %+v", maxOpen, st)
	})

	t.Run("timedwait", func(t *testing.T) {
		db, c := ptOpen(t, "pgx", dsn, hasql.WithPool(hasql.PoolConfig{Max: 2, Incr: 1, GetMode: hasql.GetTimedWait, WaitTimeout: 50 * time.Millisecond}))
		a, _ := ptAcquire(t, ctx, db)
		b, _ := ptAcquire(t, ctx, db)
		var wg sync.WaitGroup
		var fails atomic.Int64
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := hasql.Acquire(ctx, db); errors.Is(err, hasql.ErrPoolExhausted) {
					fails.Add(1)
				} else {
					t.Errorf("timedwait at max: %v", err)
				}
			}()
		}
		wg.Wait()
		if st := c.Stats(); fails.Load() != 4 || st.WaitTimeouts != 4 || st.Waits != 4 {
			t.Errorf("4 checkouts at max: %d failed; %+v (want 4 waits, 4 timeouts)", fails.Load(), st)
		}
		a.Close()
		b.Close()
		before := c.Stats().WaitTimeouts
		ok, ex, pids, maxOpen := run(t, db, c, 6, 10*time.Millisecond)
		st := c.Stats()
		if ok == 0 || ok+ex != 48 || len(pids) > 2 || maxOpen > 2 || st.WaitTimeouts-before != ex {
			t.Errorf("timedwait: %d ok %d exhausted, %d backends, max open %d; %+v", ok, ex, len(pids), maxOpen, st)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Reaping with an injected clock, on a real server.

type ptClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func TestPoolReapIdleAndLifetimePG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()
	observer, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	alive := func(pids ...int64) int {
		n := 0
		for _, pid := range pids {
			var x int
			if err := observer.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&x); err != nil {
				t.Fatal(err)
			}
			n += x
		}
		return n
	}

	db, c := ptOpen(t, "pgx", dsn)
	clk := &ptClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	pc := hasql.PoolConfig{Min: 1, Incr: 1, IdleTimeout: time.Minute, MaxLifetime: time.Hour}
	if err := hasql.PoolTestInstallClock(c, pc, clk.Now); err != nil {
		t.Fatal(err)
	}
	ptEventually(t, "the min session", func() bool { return c.Stats().Idle == 1 })

	var conns []*sql.Conn
	var pids []int64
	for i := 0; i < 3; i++ {
		cn, _ := ptAcquire(t, ctx, db)
		conns = append(conns, cn)
		pids = append(pids, ptPID(t, ctx, cn, ptPG))
	}
	for _, cn := range conns {
		cn.Close()
	}
	if n := alive(pids...); n != 3 {
		t.Fatalf("%d of 3 backends alive", n)
	}

	t0 := clk.Now()
	hasql.PoolTestReap(c, t0.Add(59*time.Second))
	if st := c.Stats(); st.Open != 3 || st.Closed != 0 {
		t.Fatalf("idle less than idle_timeout: %+v", st)
	}
	hasql.PoolTestReap(c, t0.Add(2*time.Minute))
	if st := c.Stats(); st.Open != 1 || st.Idle != 1 || st.Closed != 2 {
		t.Fatalf("after idle reaping: %+v (min is 1)", st)
	}
	ptEventually(t, "two backends gone", func() bool { return alive(pids...) == 1 })
	kept := ptPID(t, ctx, db, ptPG)
	if alive(kept) != 1 {
		t.Fatalf("kept backend %d not alive", kept)
	}

	// Past max_lifetime: retired even below min, then min restored with a new backend.
	hasql.PoolTestReap(c, t0.Add(2*time.Hour))
	if st := c.Stats(); st.Open != 0 || st.Closed != 3 {
		t.Fatalf("after lifetime reaping: %+v", st)
	}
	ptEventually(t, "the retired backend gone", func() bool { return alive(kept) == 0 })
	hasql.PoolTestFillMin(c)
	ptEventually(t, "min restored", func() bool { return c.Stats().Idle == 1 })
	if pid := ptPID(t, ctx, db, ptPG); pid == kept || alive(pid) != 1 {
		t.Errorf("after refill: backend %d (retired %d)", pid, kept)
	}
}

// ---------------------------------------------------------------------------------------------
// Reconfigure on a real server.

func TestReconfigureShrinkPG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()
	db, c := ptOpen(t, "pgx", dsn, hasql.WithPool(hasql.PoolConfig{Max: 4, Incr: 1}))
	var conns []*sql.Conn
	for i := 0; i < 4; i++ {
		cn, _ := ptAcquire(t, ctx, db)
		ptPID(t, ctx, cn, ptPG)
		conns = append(conns, cn)
	}
	conns[0].Close()
	conns[1].Close()
	if err := c.Reconfigure(hasql.PoolConfig{Max: 1, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Open != 2 || st.Idle != 0 || st.Closed != 2 {
		t.Errorf("after shrinking: %+v (idle ones closed first)", st)
	}
	conns[2].Close()
	if st := c.Stats(); st.Open != 1 || st.Closed != 3 {
		t.Errorf("released above max: %+v", st)
	}
	conns[3].Close()
	if st := c.Stats(); st.Open != 1 || st.Idle != 1 {
		t.Errorf("released at max: %+v", st)
	}
	if err := c.Reconfigure(hasql.PoolConfig{Min: 3, Max: 5, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	ptEventually(t, "min 3", func() bool { st := c.Stats(); return st.Open == 3 && st.Idle == 3 })
}

// ---------------------------------------------------------------------------------------------
// No goroutine outlives Connector.Close.

func TestPoolCloseNoGoroutineLeftPG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, err := hasql.Open("pgx", dsn, hasql.WithPool(hasql.PoolConfig{Min: 3, Incr: 2, IdleTimeout: time.Minute, MaxLifetime: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := hasql.ConnectorOf(db)
	ptEventually(t, "min 3", func() bool { return c.Stats().Idle == 3 })
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				qctx := ctx
				if i%3 == 0 {
					qctx = hasql.WithTag(ctx, fmt.Sprintf("k=%d", g%2))
				}
				var one int
				if err := db.QueryRowContext(qctx, "SELECT 1").Scan(&one); err != nil {
					t.Errorf("query: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if st := c.Stats(); st.Open < 3 {
		t.Errorf("below min: %+v", st)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Open != 0 || st.Closed != st.Created {
		t.Errorf("after Close: %+v", st)
	}
}

// ---------------------------------------------------------------------------------------------
// One pool: database/sql's own knobs govern the real connections through hasql as they do raw
// (pool_handles.go), counted as backends of the test's database in pg_stat_activity.

func TestOnePoolBackendsFollowDatabaseSQLPG(t *testing.T) {
	dsn := sharedPG(t).FreshDB(t)
	ctx := context.Background()
	observer, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	observer.SetMaxOpenConns(1)
	// The backends of the test's database other than the observer's own.
	backends := func() map[int64]bool {
		t.Helper()
		rows, err := observer.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		pids := map[int64]bool{}
		for rows.Next() {
			var pid int64
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return pids
	}
	// hold checks out n connections at once, returns their backends and releases them.
	hold := func(db *sql.DB, n int) []int64 {
		t.Helper()
		var pids []int64
		var conns []*sql.Conn
		for i := 0; i < n; i++ {
			cn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, cn)
			pids = append(pids, ptPID(t, ctx, cn, ptPG))
		}
		for _, cn := range conns {
			cn.Close()
		}
		return pids
	}

	for _, mode := range []string{"raw", "hasql"} {
		t.Run(mode, func(t *testing.T) {
			var db *sql.DB
			if mode == "raw" {
				if db, err = sql.Open("pgx", dsn); err != nil {
					t.Fatal(err)
				}
				defer db.Close()
			} else {
				db, _ = ptOpen(t, "pgx", dsn)
			}

			// SetMaxIdleConns(0): every checkout a new backend, gone after its release.
			db.SetMaxIdleConns(0)
			seen := map[int64]bool{}
			for i := 0; i < 3; i++ {
				pid := ptPID(t, ctx, db, ptPG)
				if seen[pid] {
					t.Errorf("checkout %d ran on backend %d again", i, pid)
				}
				seen[pid] = true
				ptEventually(t, "no backend left", func() bool { return len(backends()) == 0 })
			}

			// SetConnMaxLifetime: three backends kept idle, then past the lifetime three
			// checkouts get three new ones and the old ones end.
			db.SetMaxIdleConns(3)
			old := hold(db, 3)
			if b := backends(); len(b) != 3 {
				t.Fatalf("%d backends after three were released with MaxIdleConns(3), want 3 (%v; %+v)", len(b), old, db.Stats())
			}
			// Set after the hold, so that a slow machine cannot expire them before the count.
			const lifetime = 300 * time.Millisecond
			db.SetConnMaxLifetime(lifetime)
			time.Sleep(2 * lifetime) // past it
			for _, pid := range hold(db, 3) {
				for _, o := range old {
					if pid == o {
						t.Errorf("backend %d served a checkout past SetConnMaxLifetime", pid)
					}
				}
			}
			ptEventually(t, "the old backends gone", func() bool {
				b := backends()
				return !b[old[0]] && !b[old[1]] && !b[old[2]]
			})
			db.Close()
			ptEventually(t, "no backend left after Close", func() bool { return len(backends()) == 0 })
		})
	}
}
