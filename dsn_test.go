package hasql

// Tests of DSN parsing: the split into driver name and inner DSN, the three
// parameter forms, every hasql.* key, the HASQL_* environment, and the rule
// that no password ever shows up in an error. Internal, so that the pure
// functions (splitDSN, formOf, stripSettings, dsnSecrets) and the resulting
// config (Connector.cfg) can be checked directly.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-sql-driver/mysql"
)

// Test drivers, registered once per test binary under names no other test uses.
const (
	dsntRec      = "dsntest-rec"      // accepts any DSN and records it
	dsntEcho     = "dsntest-echo"     // accepts any DSN; Connect fails quoting the DSN verbatim
	dsntEchoOpen = "dsntest-echoopen" // OpenConnector fails quoting the DSN verbatim
	dsntPlain    = "dsntest-plain"    // no DriverContext: database/sql's Open(dsn) path
)

// Callback packages for hasql.callbacks / HASQL_CALLBACK_PACKAGES.
var dsntPackages = []string{"dsntest-a", "dsntest-b", "dsntest-c", "dsntest-d", "dsntest-e", "dsntest-f"}

// The test drivers are fakedb's in its DSN modes: they keep no server, only the DSN.
func init() {
	sql.Register(dsntRec, &FakeDriver{Mode: FakeDSNRecord, Name: "dsntest-rec"})
	// The worst case for password hiding: their errors repeat the DSN whole, the way net/url's
	// parse errors do.
	sql.Register(dsntEcho, &FakeDriver{Mode: FakeDSNEcho, Name: "dsntest-echo"})
	sql.Register(dsntEchoOpen, &FakeDriver{Mode: FakeDSNEchoOpen, Name: "dsntest-echo"})
	sql.Register(dsntPlain, &FakePlainDriver{D: FakeDriver{Mode: FakeDSNEchoPlain, Name: "dsntest-plain"}})
	for _, name := range dsntPackages {
		RegisterPackage(name, func(*Callbacks) error { return nil })
	}
}

// dsntRecConnector is an inner connector of the recording driver, as if opened with dsn.
func dsntRecConnector(dsn string) *FakeConnector {
	c, _ := (&FakeDriver{Mode: FakeDSNRecord, Name: "dsntest-rec"}).OpenConnector(dsn)
	return c.(*FakeConnector)
}

// dsntOpen opens a connector from a full hasql DSN and closes it when the test ends.
func dsntOpen(t *testing.T, dsn string) (*Connector, error) {
	t.Helper()
	dc, err := (&Driver{}).OpenConnector(dsn)
	if err != nil {
		if dc != nil {
			t.Errorf("OpenConnector(%q) returned a connector with error %v", dsn, err)
		}
		return nil, err
	}
	c := dc.(*Connector)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func dsntMustOpen(t *testing.T, dsn string) *Connector {
	t.Helper()
	c, err := dsntOpen(t, dsn)
	if err != nil {
		t.Fatalf("OpenConnector(%q): %v", dsn, err)
	}
	return c
}

// dsntSeen returns the DSN the inner driver was given, for the drivers whose
// connector keeps it.
func dsntSeen(t *testing.T, c *Connector) string {
	t.Helper()
	switch ic := c.inner.(type) {
	case *FakeConnector:
		return ic.DSN
	case dsnConnector:
		return ic.dsn
	}
	v := reflect.ValueOf(c.inner)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("name"); f.IsValid() && f.Kind() == reflect.String {
			return f.String() // pgx stdlib's driverConnector
		}
	}
	t.Fatalf("cannot see the DSN inside %T", c.inner)
	return ""
}

// dsntMySQLConfig returns the parsed config inside go-sql-driver/mysql's connector.
func dsntMySQLConfig(t *testing.T, c *Connector) *mysql.Config {
	t.Helper()
	v := reflect.ValueOf(c.inner)
	if v.Kind() != reflect.Pointer {
		t.Fatalf("inner connector %T is not mysql's", c.inner)
	}
	f := v.Elem().FieldByName("cfg")
	if !f.IsValid() {
		t.Fatalf("inner connector %T has no cfg", c.inner)
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*mysql.Config)
}

// dsntWantErr checks that err wraps ErrDSN and mentions every fragment.
func dsntWantErr(t *testing.T, what string, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error; want one mentioning %q", what, fragments)
		return
	}
	if !errors.Is(err, ErrDSN) {
		t.Errorf("%s: error %q does not wrap ErrDSN", what, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not mention %q", what, err, f)
		}
	}
}

func TestDSNSplit(t *testing.T) {
	for _, tc := range []struct {
		dsn, name, inner string
		err              string // fragment of the error; "" = success
	}{
		{dsn: "pgx:postgres://u@h/db", name: "pgx", inner: "postgres://u@h/db"},
		{dsn: "mysql:u:p@tcp(h:3306)/db", name: "mysql", inner: "u:p@tcp(h:3306)/db"},
		{dsn: "sqlmock:", name: "sqlmock", inner: ""},
		{dsn: "sqlite:file:x.db?mode=ro", name: "sqlite", inner: "file:x.db?mode=ro"},
		{dsn: "pgx/v5:host=h", name: "pgx/v5", inner: "host=h"},
		{dsn: "", err: "no ':'"},
		{dsn: "postgres", err: "no ':'"},
		{dsn: ":host=h", err: "names no inner driver"},
		{dsn: "host=h password=pw:x", err: "does not start with an inner driver name"},
		{dsn: "u@h:5432", err: "does not start with an inner driver name"},
	} {
		name, inner, err := splitDSN(tc.dsn)
		if tc.err != "" {
			dsntWantErr(t, fmt.Sprintf("splitDSN(%q)", tc.dsn), err, tc.err)
			continue
		}
		if err != nil || name != tc.name || inner != tc.inner {
			t.Errorf("splitDSN(%q) = %q, %q, %v; want %q, %q", tc.dsn, name, inner, err, tc.name, tc.inner)
		}
	}
}

func TestDSNStripSettings(t *testing.T) {
	type S = []setting
	for _, tc := range []struct {
		name  string
		form  dsnForm
		inner string
		want  string // what the inner driver sees
		set   S
		err   string
	}{
		// URL form.
		{"url pgx multi-host", formQuery,
			"postgres://u:p@h1:5432,h2:5432/db?sslmode=disable&hasql.stmtcache=50",
			"postgres://u:p@h1:5432,h2:5432/db?sslmode=disable", S{{"stmtcache", "50"}}, ""},
		{"url only hasql keys", formQuery,
			"postgres://u@h/db?hasql.pool.max=3&hasql.retry=off",
			"postgres://u@h/db", S{{"pool.max", "3"}, {"retry", "off"}}, ""},
		{"url keys first middle last", formQuery,
			"postgres://h/db?hasql.pick=random&a=1&hasql.target=primary&b=%2F&hasql.retry=off",
			"postgres://h/db?a=1&b=%2F", S{{"pick", "random"}, {"target", "primary"}, {"retry", "off"}}, ""},
		{"url no hasql keys untouched", formQuery,
			"postgres://h/db?a=1&&b=2;c#f", "postgres://h/db?a=1&&b=2;c#f", nil, ""},
		{"url no query", formQuery, "postgres://h/db", "postgres://h/db", nil, ""},
		{"url fragment", formQuery,
			"postgres://h/db?a=1&hasql.stmtcache=5#frag?hasql.x=1",
			"postgres://h/db?a=1#frag?hasql.x=1", S{{"stmtcache", "5"}}, ""},
		{"url fragment only hasql", formQuery,
			"postgres://h/db?hasql.stmtcache=5#frag", "postgres://h/db#frag", S{{"stmtcache", "5"}}, ""},
		{"url percent-encoded", formQuery,
			"postgres://h/db?application_name=a%20b&hasql.cclass=rep%20orts%2Bx&hasql.hosts=h1%3A1%2Ch2%3A2",
			"postgres://h/db?application_name=a%20b", S{{"cclass", "rep orts+x"}, {"hosts", "h1:1,h2:2"}}, ""},
		{"url plus is a space", formQuery, "x?hasql.cclass=a+b", "x", S{{"cclass", "a b"}}, ""},
		{"url semicolons in values", formQuery,
			"postgres://h/db?options=-c%20a=1;b&hasql.callbacks=a;b;c&hasql.hosts=a:1;b:2&x=1;2",
			"postgres://h/db?options=-c%20a=1;b&x=1;2", S{{"callbacks", "a;b;c"}, {"hosts", "a:1;b:2"}}, ""},
		{"url key without value", formQuery, "x?hasql.stmtcache&y", "x?y", S{{"stmtcache", ""}}, ""},
		{"url value with =", formQuery, "x?hasql.cclass=a=b", "x", S{{"cclass", "a=b"}}, ""},
		{"url bad percent-encoding", formQuery, "x?hasql.cclass=%zz", "", nil, "hasql.cclass"},
		{"url prefix is case-sensitive", formQuery, "x?HASQL.stmtcache=1", "x?HASQL.stmtcache=1", nil, ""},

		// sqlite-style generic form.
		{"sqlite pragma", formQuery,
			"file:x.db?_pragma=busy_timeout(5000)&hasql.pool.max=3",
			"file:x.db?_pragma=busy_timeout(5000)", S{{"pool.max", "3"}}, ""},
		{"sqlite memory", formQuery,
			"file::memory:?cache=shared&hasql.stmtcache=0&_pragma=foreign_keys(1)",
			"file::memory:?cache=shared&_pragma=foreign_keys(1)", S{{"stmtcache", "0"}}, ""},
		{"generic no params", formQuery, "x-unique", "x-unique", nil, ""},

		// libpq key=value form.
		{"kv end", formKeyValue, "host=h port=5432 hasql.stmtcache=50",
			"host=h port=5432", S{{"stmtcache", "50"}}, ""},
		{"kv start", formKeyValue, "hasql.pool.max=3 host=h dbname=d",
			"host=h dbname=d", S{{"pool.max", "3"}}, ""},
		{"kv middle quoted with spaces", formKeyValue, "host=h hasql.cclass='a b c' dbname=d",
			"host=h dbname=d", S{{"cclass", "a b c"}}, ""},
		{"kv escaped quotes and spaces around =", formKeyValue,
			`password='p w\'x' hasql.cclass = 'it\'s' host = h`,
			`password='p w\'x' host = h`, S{{"cclass", "it's"}}, ""},
		{"kv odd blanks kept", formKeyValue, "  host=h \t port=5432\thasql.stmtcache=3\n",
			"  host=h \t port=5432\n", S{{"stmtcache", "3"}}, ""},
		{"kv no hasql keys untouched", formKeyValue, "host=h  \n port=5432 ",
			"host=h  \n port=5432 ", nil, ""},
		{"kv all hasql", formKeyValue, " hasql.stmtcache=1 hasql.retry=off ", "", S{{"stmtcache", "1"}, {"retry", "off"}}, ""},
		{"kv escaped trailing blank", formKeyValue, `hasql.stmtcache=1 a=b\ `,
			`a=b\ `, S{{"stmtcache", "1"}}, ""},
		{"kv bare escapes", formKeyValue, `a=b\ c hasql.cclass=x\'y`,
			`a=b\ c`, S{{"cclass", "x'y"}}, ""},
		{"kv quoted value followed directly", formKeyValue, `password='a b'hasql.stmtcache=4 host=h`,
			`password='a b' host=h`, S{{"stmtcache", "4"}}, ""},
		{"kv empty value", formKeyValue, "hasql.cclass='' host=h", "host=h", S{{"cclass", ""}}, ""},
		{"kv semicolons", formKeyValue, "host=h hasql.callbacks=a;b;c hasql.hosts='a:1; b:2'",
			"host=h", S{{"callbacks", "a;b;c"}, {"hosts", "a:1; b:2"}}, ""},
		{"kv unterminated quote with hasql key", formKeyValue, "host=h hasql.cclass='x", "", nil, "does not parse"},
		{"kv unterminated quote without hasql key", formKeyValue, "host=h password='x", "host=h password='x", nil, ""},
		{"kv no = with hasql key", formKeyValue, "host hasql.stmtcache=1", "", nil, "does not parse"},

		// mysql form.
		{"mysql password with / ? @ :", formMySQL,
			"user:p@ss/w?rd@tcp(h:3306)/db?parseTime=true&hasql.hosts=a:1,b:2",
			"user:p@ss/w?rd@tcp(h:3306)/db?parseTime=true", S{{"hosts", "a:1,b:2"}}, ""},
		{"mysql password hides fake key", formMySQL,
			"u:x?hasql.stmtcache=9@tcp(h)/db?hasql.stmtcache=5&charset=utf8mb4",
			"u:x?hasql.stmtcache=9@tcp(h)/db?charset=utf8mb4", S{{"stmtcache", "5"}}, ""},
		{"mysql only hasql", formMySQL, "u:pw@tcp(h)/db?hasql.stmtcache=5", "u:pw@tcp(h)/db", S{{"stmtcache", "5"}}, ""},
		{"mysql no params", formMySQL, "u:pw@/db", "u:pw@/db", nil, ""},
		{"mysql no slash", formMySQL, "u:pw@tcp(h)?hasql.stmtcache=1", "u:pw@tcp(h)?hasql.stmtcache=1", nil, ""},
		{"mysql semicolons", formMySQL, "u@unix(/tmp/s)/db?hasql.callbacks=a;b&loc=Local",
			"u@unix(/tmp/s)/db?loc=Local", S{{"callbacks", "a;b"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, set, err := stripSettings(tc.form, tc.inner)
			if tc.err != "" {
				dsntWantErr(t, "stripSettings", err, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("stripSettings(%v, %q): %v", tc.form, tc.inner, err)
			}
			if got != tc.want {
				t.Errorf("inner DSN = %q, want %q", got, tc.want)
			}
			if !reflect.DeepEqual(set, tc.set) {
				t.Errorf("settings = %q, want %q", set, tc.set)
			}
			// Stripping is idempotent.
			again, set2, err := stripSettings(tc.form, got)
			if err != nil || again != got || len(set2) != 0 {
				t.Errorf("stripping again gave %q, %q, %v", again, set2, err)
			}
		})
	}
}

// TestDSNInnerSeen checks, end to end through OpenConnector, the DSN each
// real inner driver is handed and the settings hasql took from it.
func TestDSNInnerSeen(t *testing.T) {
	t.Run("pgx url", func(t *testing.T) {
		c := dsntMustOpen(t, "pgx:postgres://u:p@h1:5432,h2:5432/db?sslmode=disable&hasql.stmtcache=50")
		if got, want := dsntSeen(t, c), "postgres://u:p@h1:5432,h2:5432/db?sslmode=disable"; got != want {
			t.Errorf("pgx sees %q, want %q", got, want)
		}
		if c.cfg.stmtCacheSize != 50 || c.dialect != dialectPgx {
			t.Errorf("stmtcache %d dialect %v", c.cfg.stmtCacheSize, c.dialect)
		}
		if c.host != "h1:5432" {
			t.Errorf("host = %q", c.host)
		}
	})
	t.Run("pgx key=value", func(t *testing.T) {
		c := dsntMustOpen(t, `pgx:hasql.retry=off host=h  password='s e\'cret' hasql.cclass='a b' dbname=d hasql.pick=ordered`)
		if got, want := dsntSeen(t, c), `host=h  password='s e\'cret' dbname=d`; got != want {
			t.Errorf("pgx sees %q, want %q", got, want)
		}
		if c.cfg.retry != RetryOff || c.cfg.defaultClass != "a b" || c.cfg.picker != PickOrdered {
			t.Errorf("cfg = %+v", c.cfg)
		}
	})
	t.Run("mysql", func(t *testing.T) {
		c := dsntMustOpen(t, "mysql:user:p@ss/w?rd@tcp(h:3306)/db?parseTime=true&hasql.hosts=a:1,b:2&hasql.target=primary")
		mc := dsntMySQLConfig(t, c)
		if mc.Passwd != "p@ss/w?rd" || mc.User != "user" || mc.Addr != "h:3306" || mc.DBName != "db" || !mc.ParseTime {
			t.Errorf("mysql config %+v", mc)
		}
		if len(mc.Params) != 0 {
			t.Errorf("hasql keys reached mysql as system variables: %v", mc.Params)
		}
		want, _ := mysql.ParseDSN("user:p@ss/w?rd@tcp(h:3306)/db?parseTime=true")
		if mc.FormatDSN() != want.FormatDSN() {
			t.Errorf("mysql config %q, want %q", mc.FormatDSN(), want.FormatDSN())
		}
		if !slices.Equal(c.cfg.hosts, []string{"a:1", "b:2"}) || c.cfg.target != TargetPrimary || c.host != "h:3306" {
			t.Errorf("hosts %q target %v host %q", c.cfg.hosts, c.cfg.target, c.host)
		}
	})
	t.Run("sqlmock", func(t *testing.T) {
		c := dsntMustOpen(t, "sqlmock:x-dsn-seen?hasql.stmtcache=0")
		if got := dsntSeen(t, c); got != "x-dsn-seen" {
			t.Errorf("sqlmock sees %q", got)
		}
		if c.cfg.stmtCacheSize != 0 || c.dialect != dialectSQLMock {
			t.Errorf("stmtcache %d dialect %v", c.cfg.stmtCacheSize, c.dialect)
		}
	})
	for _, tc := range []struct{ dsn, want string }{
		{"file:x.db?_pragma=busy_timeout(5000)&hasql.pool.max=3", "file:x.db?_pragma=busy_timeout(5000)"},
		{"file:x.db?hasql.pool.max=3#frag", "file:x.db#frag"},
		{"file:x.db?a=%41&hasql.pool.max=3&b=c;d", "file:x.db?a=%41&b=c;d"},
		{"host=h dbname=d hasql.pool.max=3", "host=h dbname=d"}, // lib/pq-style key=value
		{"x", "x"},
		{"", ""},
	} {
		t.Run("generic "+tc.dsn, func(t *testing.T) {
			c := dsntMustOpen(t, dsntRec+":"+tc.dsn)
			if got := dsntSeen(t, c); got != tc.want {
				t.Errorf("driver sees %q, want %q", got, tc.want)
			}
			if strings.Contains(tc.dsn, "pool.max") && c.cfg.pool.Max != 3 {
				t.Errorf("pool.max = %d", c.cfg.pool.Max)
			}
		})
	}
	t.Run("driver without DriverContext", func(t *testing.T) {
		c := dsntMustOpen(t, dsntPlain+":some dsn?hasql.stmtcache=7")
		if got := dsntSeen(t, c); got != "some dsn" || c.cfg.stmtCacheSize != 7 {
			t.Errorf("sees %q, stmtcache %d", got, c.cfg.stmtCacheSize)
		}
	})
	t.Run("hasql.Open", func(t *testing.T) {
		db, err := Open("mysql", "u:pw@tcp(h:1)/db?hasql.stmtcache=9")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		c, ok := ConnectorOf(db)
		if !ok || c.cfg.stmtCacheSize != 9 || dsntMySQLConfig(t, c).Passwd != "pw" {
			t.Errorf("ConnectorOf = %v, %v", c, ok)
		}
	})
}

// TestDSNFirstUse checks that a driver's first use, before hasql has looked
// it up, parses its DSN the same way as later uses.
func TestDSNFirstUse(t *testing.T) {
	for _, dsn := range []string{
		"mysql:user:p?w@tcp(h:3306)/db?hasql.stmtcache=5&parseTime=true",
		"pgx:host=h password='a?b' hasql.stmtcache=5",
		"pgx:postgres://u@h/db?hasql.stmtcache=5",
	} {
		name, _, _ := splitDSN(dsn)
		for i := range 2 {
			if i == 0 {
				driverCache.Delete(name)
			}
			c := dsntMustOpen(t, dsn)
			if c.cfg.stmtCacheSize != 5 {
				t.Errorf("%q (use %d): stmtcache = %d", dsn, i, c.cfg.stmtCacheSize)
			}
		}
	}
}

// dsntKeyCase is one hasql.* key with values it takes and values it refuses.
type dsntKeyCase struct {
	key  string
	good []string
	bad  []string
	// check inspects the config after the last good value.
	check func(c config) bool
}

var dsntKeyCases = []dsntKeyCase{
	{"stmtcache", []string{"0", "50", " 7 "}, []string{"x", "-1", "1.5", ""},
		func(c config) bool { return c.stmtCacheSize == 7 }},
	{"pool.min", []string{"0", "2"}, []string{"-1", "a"},
		func(c config) bool { return c.pool.Min == 2 }},
	{"pool.max", []string{"0", "10"}, []string{"-2", "ten"},
		func(c config) bool { return c.pool.Max == 10 }},
	{"pool.incr", []string{"1", "3"}, []string{"-1", "1.5"},
		func(c config) bool { return c.pool.Incr == 3 }},
	{"getmode", []string{"wait", "nowait", "timedwait", "FORCEGET"}, []string{"sometimes", ""},
		func(c config) bool { return c.pool.GetMode == GetForce }},
	{"wait_timeout", []string{"2s", "0.25"}, []string{"-1s", "abc", "-0.5"},
		func(c config) bool { return c.pool.WaitTimeout == 250*time.Millisecond }},
	{"idle_timeout", []string{"0", "90"}, []string{"-5", "5x"},
		func(c config) bool { return c.pool.IdleTimeout == 90*time.Second }},
	{"max_lifetime", []string{"1h"}, []string{"-1h", "NaN"},
		func(c config) bool { return c.pool.MaxLifetime == time.Hour }},
	{"cclass", []string{"", "reports"}, []string{"a*b", "nul\x00", strings.Repeat("c", maxClassLen+1)},
		func(c config) bool { return c.defaultClass == "reports" }},
	{"purity", []string{"default", "self", "new"}, []string{"dirty", "2"},
		func(c config) bool { return c.defaultPurity == PurityNew }},
	{"callbacks", []string{"dsntest-a", "dsntest-a;dsntest-b,dsntest-c"},
		[]string{"dsntest-a;dsntest-b;dsntest-c;dsntest-d;dsntest-e;dsntest-f"},
		func(c config) bool { return slices.Equal(c.callbacks, dsntPackages[:3]) }},
	{"hosts", []string{"a:1", "a:1,b:2", " a:1 ; [::1]:5432 "},
		[]string{"", ",", "a", "a:", ":1", "a:0", "a:65536", "a b:1", "a:x", "[::1:5", "a:1,b"},
		func(c config) bool { return slices.Equal(c.hosts, []string{"a:1", "[::1]:5432"}) }},
	{"pick", []string{"roundrobin", "random", "ordered", "latency"}, []string{"best", ""},
		func(c config) bool { return c.picker == PickLatency }},
	{"target", []string{"any", "primary", "standby", "prefer-primary", "prefer-standby"}, []string{"leader", "prefer"},
		func(c config) bool { return c.target == TargetPreferStandby }},
	{"blacklist", []string{"0", "0.5"}, []string{"-1", "soon"},
		func(c config) bool { return c.host.Blacklist == 500*time.Millisecond }},
	{"health_interval", []string{"0", "250ms"}, []string{"1x", "-1ms"},
		func(c config) bool { return c.host.HealthInterval == 250*time.Millisecond }},
	{"reconnect", []string{"5s", "5,10,20,40,80", "50ms;1s; 2"}, []string{"", ",", "5s,-1s", "a", "1;x"},
		func(c config) bool {
			return slices.Equal(c.backoff.Delays, []time.Duration{50 * time.Millisecond, time.Second, 2 * time.Second})
		}},
	{"connect_timeout", []string{"0", "1.5"}, []string{"-0.5", "Inf", "1e400"},
		func(c config) bool { return c.backoff.ConnectTimeout == 1500*time.Millisecond }},
	{"outage_wait", []string{"1m"}, []string{"forever", "-1m"},
		func(c config) bool { return c.backoff.OutageWait == time.Minute }},
	{"retry", []string{"off", "safe", "idempotent"}, []string{"always", ""},
		func(c config) bool { return c.retry == RetryIdempotent }},
	{"tx_retries", []string{"0", "3"}, []string{"-1", "many", ""},
		func(c config) bool { return c.txRetries == 3 }},
}

// TestDSNKeys takes every key of the API table through a DSN, with good and
// bad values, in the URL and the key=value form.
func TestDSNKeys(t *testing.T) {
	if len(dsntKeyCases) != len(dsnKeys) {
		t.Errorf("%d key cases for %d keys", len(dsntKeyCases), len(dsnKeys))
	}
	for _, kc := range dsntKeyCases {
		if !slices.Contains(dsnKeys, kc.key) {
			t.Errorf("key %q is not in dsnKeys", kc.key)
		}
		t.Run(kc.key, func(t *testing.T) {
			var last *Connector
			for _, v := range kc.good {
				dsn := "pgx:postgres://u@h/db?sslmode=disable&hasql." + kc.key + "=" + url.QueryEscape(v)
				c, err := dsntOpen(t, dsn)
				if err != nil {
					t.Errorf("%q: %v", dsn, err)
					continue
				}
				if got := dsntSeen(t, c); got != "postgres://u@h/db?sslmode=disable" {
					t.Errorf("%q: driver sees %q", dsn, got)
				}
				last = c
			}
			if last != nil && !kc.check(last.cfg) {
				t.Errorf("after hasql.%s=%q: config %+v", kc.key, kc.good[len(kc.good)-1], last.cfg)
			}
			// The same last value in the key=value form.
			kv := "pgx:host=h hasql." + kc.key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kc.good[len(kc.good)-1]) + "' dbname=d"
			if c, err := dsntOpen(t, kv); err != nil {
				t.Errorf("%q: %v", kv, err)
			} else if !kc.check(c.cfg) {
				t.Errorf("%q: config %+v", kv, c.cfg)
			}
			for _, v := range kc.bad {
				dsn := "mysql:u:pw@tcp(h:3306)/db?hasql." + kc.key + "=" + url.QueryEscape(v)
				_, err := dsntOpen(t, dsn)
				dsntWantErr(t, dsn, err, "hasql."+kc.key)
				if kc.key == "cclass" && err != nil && !errors.Is(err, ErrInvalidClass) {
					t.Errorf("%q: %v does not wrap ErrInvalidClass", dsn, err)
				}
			}
		})
	}
}

// TestDSNKeyCombinations covers what only validate can see: values that are
// fine alone but not together.
func TestDSNKeyCombinations(t *testing.T) {
	for _, tc := range []struct{ params, err string }{
		{"hasql.pool.min=5&hasql.pool.max=2", "pool min 5 is above pool max 2"},
		{"hasql.getmode=timedwait&hasql.wait_timeout=0", "timedwait needs a wait timeout"},
		{"hasql.callbacks=dsntest-a;dsntest-a", `"dsntest-a" is listed twice`},
		{"hasql.callbacks=dsntest-nope", `callback package "dsntest-nope" is not registered`},
	} {
		_, err := dsntOpen(t, dsntRec+":x?"+tc.params)
		dsntWantErr(t, tc.params, err, tc.err)
	}
	for _, params := range []string{
		"hasql.pool.min=2&hasql.pool.max=0", // max 0 = no limit
		"hasql.pool.min=2&hasql.pool.max=2",
		"hasql.getmode=timedwait&hasql.wait_timeout=1",
		"hasql.getmode=timedwait", // default wait timeout 5s
	} {
		if _, err := dsntOpen(t, dsntRec+":x?"+params); err != nil {
			t.Errorf("%s: %v", params, err)
		}
	}
}

func TestDSNDefaults(t *testing.T) {
	c := dsntMustOpen(t, dsntRec+":x")
	want := defaultConfig()
	if !reflect.DeepEqual(c.cfg, want) {
		t.Errorf("config %+v, want defaults %+v", c.cfg, want)
	}
	if want.stmtCacheSize != 20 || want.pool.Incr != 1 || want.pool.WaitTimeout != 5*time.Second ||
		want.pool.IdleTimeout != 10*time.Minute || want.pool.MaxLifetime != 30*time.Minute ||
		want.host.Blacklist != 10*time.Second || want.host.HealthInterval != 0 ||
		want.backoff.Initial != 50*time.Millisecond || want.backoff.Max != 5*time.Second ||
		want.backoff.ConnectTimeout != 5*time.Second || want.backoff.OutageWait != 30*time.Second ||
		want.retry != RetrySafe || want.picker != PickRoundRobin || want.target != TargetAny ||
		want.pool.GetMode != GetWait || want.defaultPurity != PurityDefault {
		t.Errorf("defaults differ from the API table: %+v", want)
	}
}

func TestDSNErrors(t *testing.T) {
	for _, tc := range []struct{ dsn, err string }{
		{dsntRec + ":x?hasql.nope=1", `unknown DSN key hasql.nope`},
		{dsntRec + ":x?hasql.=1", `unknown DSN key hasql.`},
		{"pgx:host=h hasql.Stmtcache=1", `unknown DSN key hasql.Stmtcache`},
		{dsntRec + ":x?hasql.stmtcache=1&a=b&hasql.stmtcache=2", "hasql.stmtcache is given more than once"},
		{"pgx:host=h hasql.retry=off hasql.retry=safe", "hasql.retry is given more than once"},
		{"mysql:u@/db?hasql.pick=random&hasql.pick=random", "hasql.pick is given more than once"},
		{"pgx", "no ':'"},
		{":postgres://h/db", "names no inner driver"},
		{"nosuchdriver:x?hasql.stmtcache=1", `inner driver "nosuchdriver" is not registered`},
		{"Pgx:host=h", `inner driver "Pgx" is not registered`},
		{"hasql:pgx:host=h", "hasql cannot wrap itself"},
		{"hasql:hasql:pgx:host=h", "hasql cannot wrap itself"},
		{dsntEchoOpen + ":x", `inner driver "dsntest-echoopen" rejected its DSN`},
		{"mysql:u:pw@tcp(h:3306/db", `inner driver "mysql" rejected its DSN`},
		{"mysql:u@tcp(h)/db?hasql.stmtcache=1&parseTime=maybe", `inner driver "mysql" rejected its DSN`},
		// pgx's parser panics on these (found by FuzzParseDSN).
		{`pgx:0='\`, `inner driver "pgx" cannot parse its DSN`},
		{`pgx:host=h password='x\`, `inner driver "pgx" cannot parse its DSN`},
		{`pgx:host=h hasql.stmtcache=1 password='x\`, "key=value DSN does not parse"},
	} {
		_, err := dsntOpen(t, tc.dsn)
		dsntWantErr(t, tc.dsn, err, tc.err)
	}
	// The unknown-key error lists the keys there are.
	_, err := dsntOpen(t, dsntRec+":x?hasql.stmtcach=1")
	dsntWantErr(t, "typo", err, "hasql.stmtcache", "hasql.outage_wait")
	// The inner driver's own error stays in the text.
	_, err = dsntOpen(t, "mysql:u:pw@tcp(h:3306/db")
	dsntWantErr(t, "mysql", err, "missing closing brace")
}

func TestDSNDurationsAndLists(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"5", 5 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{" 2 ", 2 * time.Second, false},
		{"0", 0, false},
		{"500ms", 500 * time.Millisecond, false},
		{"1m30s", 90 * time.Second, false},
		{"1h", time.Hour, false},
		{"1.5h", 90 * time.Minute, false},
		{"1e1", 10 * time.Second, false},
		{"-5", 0, true},
		{"-0.5", 0, true},
		{"-1s", 0, true},
		{"5 s", 0, true},
		{"s", 0, true},
		{"", 0, true},
		{"NaN", 0, true},
		{"+Inf", 0, true},
		{"1e300", 0, true},
		{"999999999999h", 0, true},
	} {
		d, err := parseDuration(tc.in)
		if (err != nil) != tc.err || d != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, error %v", tc.in, d, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a,b", []string{"a", "b"}},
		{"a;b", []string{"a", "b"}},
		{" a ; b , c ", []string{"a", "b", "c"}},
		{";;a,,", []string{"a"}},
		{"", nil},
	} {
		if got := splitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	ds, err := parseDurations("5,10,20,40,80")
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
	if err != nil || !slices.Equal(ds, want) {
		t.Errorf("parseDurations = %v, %v", ds, err)
	}
	if _, err := parseDurations("1s;-1s"); err == nil || !strings.Contains(err.Error(), "item 2") {
		t.Errorf("parseDurations negative item: %v", err)
	}
}

func TestDSNEnv(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "dsntest-a;dsntest-b")
		t.Setenv("HASQL_RECONNECT_TIMEOUT", "5,10,20,40,80")
		t.Setenv("HASQL_CONNECT_TIMEOUT", "2.5")
		for _, dsn := range []string{dsntRec + ":x", "pgx:host=h", "mysql:u@/db", "sqlmock:x-env"} {
			c := dsntMustOpen(t, dsn)
			if !slices.Equal(c.cfg.callbacks, []string{"dsntest-a", "dsntest-b"}) || len(c.reg.pkgs) != 2 {
				t.Errorf("%s: callbacks %q, %d loaded", dsn, c.cfg.callbacks, len(c.reg.pkgs))
			}
			want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
			if !slices.Equal(c.cfg.backoff.Delays, want) {
				t.Errorf("%s: delays %v", dsn, c.cfg.backoff.Delays)
			}
			if c.cfg.backoff.ConnectTimeout != 2500*time.Millisecond {
				t.Errorf("%s: connect timeout %v", dsn, c.cfg.backoff.ConnectTimeout)
			}
		}
		// NewConnector reads the environment too.
		c, err := NewConnector(dsntRecConnector("x"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if len(c.cfg.backoff.Delays) != 5 || c.cfg.backoff.ConnectTimeout != 2500*time.Millisecond || len(c.cfg.callbacks) != 2 {
			t.Errorf("NewConnector config %+v", c.cfg)
		}
	})
	t.Run("DSN wins", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "dsntest-a;dsntest-b")
		t.Setenv("HASQL_RECONNECT_TIMEOUT", "5,10")
		t.Setenv("HASQL_CONNECT_TIMEOUT", "2.5")
		c := dsntMustOpen(t, dsntRec+":x?hasql.callbacks=dsntest-c&hasql.reconnect=1s&hasql.connect_timeout=750ms")
		if !slices.Equal(c.cfg.callbacks, []string{"dsntest-c"}) || len(c.reg.pkgs) != 1 ||
			!slices.Equal(c.cfg.backoff.Delays, []time.Duration{time.Second}) ||
			c.cfg.backoff.ConnectTimeout != 750*time.Millisecond {
			t.Errorf("config %+v", c.cfg)
		}
	})
	t.Run("options win", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "dsntest-a")
		t.Setenv("HASQL_RECONNECT_TIMEOUT", "5")
		t.Setenv("HASQL_CONNECT_TIMEOUT", "2.5")
		db, err := Open(dsntRec, "x?hasql.connect_timeout=1&hasql.reconnect=2",
			WithCallbackPackages("dsntest-d", "dsntest-e"),
			WithBackoff(Backoff{Delays: []time.Duration{time.Millisecond}, ConnectTimeout: 3 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		c, _ := ConnectorOf(db)
		if !slices.Equal(c.cfg.callbacks, []string{"dsntest-d", "dsntest-e"}) ||
			!slices.Equal(c.cfg.backoff.Delays, []time.Duration{time.Millisecond}) ||
			c.cfg.backoff.ConnectTimeout != 3*time.Second {
			t.Errorf("config %+v", c.cfg)
		}
		nc, err := NewConnector(dsntRecConnector(""), WithCallbackPackages())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if len(nc.cfg.callbacks) != 0 || nc.cfg.backoff.ConnectTimeout != 2500*time.Millisecond {
			t.Errorf("NewConnector config %+v", nc.cfg)
		}
	})
	t.Run("empty is unset", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "")
		t.Setenv("HASQL_RECONNECT_TIMEOUT", "")
		t.Setenv("HASQL_CONNECT_TIMEOUT", "")
		c := dsntMustOpen(t, dsntRec+":x")
		if !reflect.DeepEqual(c.cfg, defaultConfig()) {
			t.Errorf("config %+v", c.cfg)
		}
	})
	for _, tc := range []struct{ env, value, err string }{
		{"HASQL_RECONNECT_TIMEOUT", "5,x", "HASQL_RECONNECT_TIMEOUT"},
		{"HASQL_RECONNECT_TIMEOUT", "5,-10", "HASQL_RECONNECT_TIMEOUT"},
		{"HASQL_CONNECT_TIMEOUT", "-1", "HASQL_CONNECT_TIMEOUT"},
		{"HASQL_CONNECT_TIMEOUT", "soon", "HASQL_CONNECT_TIMEOUT"},
		{"HASQL_CALLBACK_PACKAGES", "dsntest-nope", `"dsntest-nope" is not registered`},
		{"HASQL_CALLBACK_PACKAGES", strings.Join(dsntPackages, ";"), "at most 5"},
	} {
		t.Run("bad "+tc.env+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			_, err := dsntOpen(t, dsntRec+":x")
			dsntWantErr(t, "OpenConnector", err, tc.err)
			_, err = NewConnector(dsntRecConnector(""))
			dsntWantErr(t, "NewConnector", err, tc.err)
		})
	}
}

// dsntSecretCase is a DSN that fails, with a password that must not show.
type dsntSecretCase struct {
	dsn      string
	password []string // every spelling of the password
	connect  bool     // the error comes from Connect, not OpenConnector
}

var dsntSecretCases = []dsntSecretCase{
	// No driver prefix: the DSN itself must not be quoted back.
	{dsn: "host=h password=Hunter2Pgkv:x", password: []string{"Hunter2Pgkv"}},
	{dsn: "password=Hunter2Pgkv host=::1", password: []string{"Hunter2Pgkv"}},
	{dsn: "u:Hunter2My@tcp(h)/db", password: []string{"Hunter2My"}},
	{dsn: "postgres://u:Hunter2Url@h/db", password: []string{"Hunter2Url"}},
	// hasql's own errors next to a password.
	{dsn: "pgx:postgres://u:Hunter2Url@h/db?hasql.nope=1", password: []string{"Hunter2Url"}},
	{dsn: "pgx:postgres://u:Hunter2Url@h/db?hasql.stmtcache=Hunter", password: []string{"Hunter2Url"}},
	{dsn: "pgx:host=h password='Hunter 2 kv' hasql.retry=never", password: []string{"Hunter 2 kv"}},
	{dsn: "pgx:host=h password='Hunter 2 kv' hasql.retry='never", password: []string{"Hunter 2 kv"}},
	{dsn: "mysql:u:Hunter2/My?@x:@tcp(h)/db?hasql.stmtcache=-1", password: []string{"Hunter2/My?@x:"}},
	{dsn: "nosuchdriver:u:Hunter2Nd@h/db", password: []string{"Hunter2Nd"}},
	{dsn: "sqlmock:u:Hunter2Sm@x?hasql.pick=none", password: []string{"Hunter2Sm"}},
	// The inner driver's own DSN errors.
	{dsn: "mysql:u:Hunter2/My?@x:@tcp(h:3306/db", password: []string{"Hunter2/My?@x:"}},
	{dsn: "mysql:u:Hunter2My@tcp(h:3306)/db?parseTime=maybe", password: []string{"Hunter2My"}},
	{dsn: "mysql:u:Hunter2My@bogus/db", password: []string{"Hunter2My"}},
	{dsn: "pgx:postgres://u:Hunter2Url@h:abc/db", password: []string{"Hunter2Url"}, connect: true},
	{dsn: "pgx:postgres://u:Hunter%32Enc@h:abc/db", password: []string{"Hunter%32Enc", "Hunter2Enc"}, connect: true},
	{dsn: "pgx:postgres://u:Hunter2Url@h:5432/db?sslmode=bogus", password: []string{"Hunter2Url"}, connect: true},
	{dsn: "pgx:postgres://h:5432/db?password=Hunter2Qp&sslmode=bogus", password: []string{"Hunter2Qp"}, connect: true},
	{dsn: "pgx:postgres://u:Hunter2/Url@h:5432/db", password: []string{"Hunter2/Url"}, connect: true},
	{dsn: "pgx:host=h password=Hunter2Kv port=abc", password: []string{"Hunter2Kv"}, connect: true},
	{dsn: "pgx:host=h password='Hunter 2\\'Kv' port=abc", password: []string{"Hunter 2'Kv", `Hunter 2\'Kv`}, connect: true},
	{dsn: "pgx:host=h password=Hunter2Kv sslmode='bogus", password: []string{"Hunter2Kv"}, connect: true},
	{dsn: `pgx:host=h password='Hunter2Kv\`, password: []string{"Hunter2Kv"}},
	{dsn: "pgx:postgres://u:Hunter2Url@127.0.0.1:1/db", password: []string{"Hunter2Url"}, connect: true},
	{dsn: "mysql:u:Hunter2My@tcp(127.0.0.1:1)/db", password: []string{"Hunter2My"}, connect: true},
	// A driver whose errors repeat the DSN whole.
	{dsn: dsntEchoOpen + ":scheme://u:Hunter2Echo@h/db?hasql.stmtcache=1", password: []string{"Hunter2Echo"}},
	{dsn: dsntEchoOpen + ":scheme://u:Hunter%2FEcho@h/db", password: []string{"Hunter%2FEcho", "Hunter/Echo"}},
	{dsn: dsntEchoOpen + ":scheme://u:Hunter?2Echo@h/db", password: []string{"Hunter?2Echo"}},
	{dsn: dsntEchoOpen + ":scheme://u:Hunter/2Echo@h/db", password: []string{"Hunter/2Echo"}},
	{dsn: dsntEchoOpen + ":scheme://u:Hunter#2Echo@h/db", password: []string{"Hunter#2Echo"}},
	{dsn: dsntEchoOpen + ":file:x.db?_auth_pass=Hunter2Echo&_auth_user=u", password: []string{"Hunter2Echo"}},
	{dsn: dsntEchoOpen + ":host=h password='Hunter 2 Echo' hasql.stmtcache=1", password: []string{"Hunter 2 Echo"}},
	{dsn: dsntEchoOpen + `:host=h password=Hunter\ 2Echo`, password: []string{`Hunter\ 2Echo`, "Hunter 2Echo"}},
	{dsn: dsntEcho + ":scheme://u:Hunter2Echo@h/db?hasql.stmtcache=1", password: []string{"Hunter2Echo"}, connect: true},
	{dsn: dsntEcho + ":host=h password='Hunter 2 Echo'", password: []string{"Hunter 2 Echo"}, connect: true},
	{dsn: dsntPlain + ":scheme://u:Hunter2Plain@h/db", password: []string{"Hunter2Plain"}, connect: true},
}

// dsntErrors returns every error hasql gives for a DSN: from OpenConnector,
// from Connect when that succeeds, from hasql.Open, and (unless quick)
// through database/sql. A quick run connects with a context that is already
// cancelled, so that no fuzzed host name is ever looked up.
func dsntErrors(t *testing.T, dsn string, quick bool) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if quick {
		cancel()
	}
	var errs []error
	dc, err := (&Driver{}).OpenConnector(dsn)
	if err != nil {
		errs = append(errs, err)
	} else {
		if conn, err := dc.Connect(ctx); err != nil {
			errs = append(errs, err)
		} else {
			conn.Close()
		}
		dc.(*Connector).Close()
	}
	if name, inner, err := splitDSN(dsn); err == nil {
		if db, err := Open(name, inner); err != nil {
			errs = append(errs, err)
		} else {
			db.Close()
		}
	}
	if quick {
		return errs
	}
	db, err := sql.Open("hasql", dsn)
	if err != nil {
		errs = append(errs, err)
	} else {
		if err := db.PingContext(ctx); err != nil {
			errs = append(errs, err)
		}
		db.Close()
	}
	return errs
}

func TestDSNPasswordNeverInError(t *testing.T) {
	t.Setenv("HASQL_CONNECT_TIMEOUT", "2")
	for _, tc := range dsntSecretCases {
		errs := dsntErrors(t, tc.dsn, false)
		if len(errs) == 0 {
			t.Errorf("%q: no error at all", tc.dsn)
		}
		for _, err := range errs {
			for _, pw := range tc.password {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("%q: error shows the password %q: %v", tc.dsn, pw, err)
				}
			}
		}
		// The driver's own error is still reachable behind the redaction.
		if !tc.connect && strings.HasPrefix(tc.dsn, dsntEchoOpen) {
			for _, err := range errs {
				if !strings.Contains(err.Error(), "dsntest-echo: cannot parse") {
					t.Errorf("%q: driver error lost: %v", tc.dsn, err)
				}
			}
		}
	}
}

func TestDSNSecrets(t *testing.T) {
	for _, tc := range []struct {
		form  dsnForm
		inner string
		want  []string // must all be among the secrets
	}{
		{formQuery, "postgres://u:pw1@h/db", []string{"pw1"}},
		{formQuery, "postgres://u:p%40w@h/db", []string{"p%40w", "p@w"}},
		{formQuery, "postgres://u:p@w@h/db", []string{"p@w"}},
		{formQuery, "postgres://u:p?w@h/db", []string{"p?w"}},
		{formQuery, "postgres://u:p/w@h/db", []string{"p/w"}},
		{formQuery, "postgres://h/db?password=pw2&sslpassword=pw3", []string{"pw2", "pw3"}},
		{formQuery, "file:x.db?_auth_pass=p%20w", []string{"p%20w", "p w"}},
		{formKeyValue, "host=h password='a b\\'c' sslpassword=d\\ e", []string{"a b'c", `a b\'c`, "d e", `d\ e`}},
		{formKeyValue, "password = x", []string{"x"}},
		{formKeyValue, "password='unterminated", []string{"unterminated"}},
		{formMySQL, "u:p@ss/w?rd@tcp(h:3306)/db?x=1", []string{"p@ss/w?rd"}},
		{formMySQL, "u:pw:x@/db", []string{"pw:x"}},
	} {
		got := dsnSecrets(tc.form, tc.inner)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("dsnSecrets(%v, %q) = %q, missing %q", tc.form, tc.inner, got, w)
			}
		}
	}
	for _, tc := range []struct {
		form  dsnForm
		inner string
	}{
		{formQuery, "postgres://u@h:5432/db"},
		{formQuery, "postgres://h:5432/db?x=a:b"},
		{formQuery, "file:x.db?mode=ro"},
		{formKeyValue, "host=h port=5432"},
		{formMySQL, "u@tcp(h:3306)/db"},
	} {
		if got := dsnSecrets(tc.form, tc.inner); len(got) != 0 {
			t.Errorf("dsnSecrets(%v, %q) = %q, want none", tc.form, tc.inner, got)
		}
	}
}

// FuzzParseDSN: no input makes the DSN code panic, and what it returns holds
// together: errors wrap ErrDSN, stripping is idempotent and leaves DSNs
// without hasql keys alone.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"pgx:postgres://u:p@h1:5432,h2:5432/db?sslmode=disable&hasql.stmtcache=50",
		`pgx:host=h password='a \'b' hasql.cclass = 'x y' dbname=d`,
		"mysql:user:p@ss/w?rd@tcp(h:3306)/db?parseTime=true&hasql.hosts=a:1,b:2",
		"sqlmock:x?hasql.callbacks=a;b;c",
		dsntRec + ":file:x.db?_pragma=busy_timeout(5000)&hasql.pool.max=3#f",
		"hasql:pgx:x", ":", "a:?hasql.%zz=1", "pgx:hasql.x='",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := (&Driver{}).OpenConnector(s); err == nil {
			c.(*Connector).Close()
		} else if !errors.Is(err, ErrDSN) {
			t.Errorf("OpenConnector(%q): error %v does not wrap ErrDSN", s, err)
		}
		name, inner, err := splitDSN(s)
		if err == nil && name+":"+inner != s {
			t.Errorf("splitDSN(%q) = %q, %q", s, name, inner)
		}
		if err != nil {
			inner = s
		}
		for _, form := range []dsnForm{formQuery, formKeyValue, formMySQL} {
			dsnSecrets(form, inner)
			stripped, set, err := stripSettings(form, inner)
			if err != nil {
				if !errors.Is(err, ErrDSN) {
					t.Errorf("stripSettings(%v, %q): %v does not wrap ErrDSN", form, inner, err)
				}
				continue
			}
			if len(set) == 0 && stripped != inner {
				t.Errorf("stripSettings(%v, %q) found no settings but changed the DSN to %q", form, inner, stripped)
			}
			if !strings.Contains(inner, keyPrefix) && len(set) > 0 {
				t.Errorf("stripSettings(%v, %q) found settings %q without any %q", form, inner, set, keyPrefix)
			}
			if strings.Contains(stripped, "#") && form != formKeyValue {
				continue // a '?' in a fragment may start a "query" once the real one is gone
			}
			again, set2, err := stripSettings(form, stripped)
			if err != nil || again != stripped || len(set2) != 0 {
				t.Errorf("stripSettings(%v, %q) = %q; stripping that again gave %q, %q, %v", form, inner, stripped, again, set2, err)
			}
			var c config
			for _, st := range set {
				c.set(st.key, st.value)
			}
		}
		kvValue(s)
		parseDuration(s)
		parseDurations(s)
	})
}

// dsntSanitizeUser keeps a fuzzed user name to characters that cannot move
// the password slot in any form.
func dsntSanitizeUser(u string) string {
	u = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return -1
	}, u)
	if u == "" {
		u = "u"
	}
	return u
}

// FuzzDSNPasswordNeverInError builds DSNs of every form around a fuzzed
// password and checks that no error hasql returns for them shows it.
func FuzzDSNPasswordNeverInError(f *testing.F) {
	f.Add("app", "s3cr3t-Pa55", "sslmode=disable&hasql.stmtcache=50")
	f.Add("app", "p@ss/w?rd:x", "parseTime=maybe&hasql.hosts=a:1,b:2")
	f.Add("u", "it's a \\secret", "hasql.nope=1")
	f.Add("u", "Hunter2", "hasql.cclass=a*b&password=x")
	f.Fuzz(func(t *testing.T, user, password, params string) {
		if len(password) < 4 {
			t.Skip()
		}
		user = dsntSanitizeUser(user)
		kvQuote := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace
		kvParams := strings.NewReplacer("&", " ").Replace(params)
		type build struct {
			prefix, slot, suffix string
			spellings            []string // the password as written and as meant
		}
		urlPW := strings.TrimPrefix(url.UserPassword("", password).String(), ":")
		builds := []build{
			{"pgx:postgres://" + user + ":", urlPW, "@127.0.0.1:1/db?" + params, []string{urlPW, password}},
			{"pgx:postgres://" + user + "@127.0.0.1:1/db?password=", url.QueryEscape(password), "&" + params, []string{url.QueryEscape(password), password}},
			{"pgx:host=127.0.0.1 port=1 user=" + user + " password='", kvQuote(password), "' " + kvParams, []string{kvQuote(password), password}},
			{"mysql:" + user + ":", password, "@tcp(127.0.0.1:1)/db?" + params, []string{password}},
			{dsntEchoOpen + ":scheme://" + user + ":", urlPW, "@h/db?" + params, []string{urlPW, password}},
			{dsntEcho + ":scheme://" + user + ":", urlPW, "@h/db?" + params, []string{urlPW, password}},
			{dsntEchoOpen + ":host=h user=" + user + " password='", kvQuote(password), "' " + kvParams, []string{kvQuote(password), password}},
			{"sqlmock:x-" + user + "?_auth_pass=", url.QueryEscape(password), "&" + params, []string{url.QueryEscape(password), password}},
		}
		if !strings.ContainsAny(password, "@/?#%") {
			// Written raw, as people do, where the form allows it.
			builds = append(builds,
				build{"pgx:postgres://" + user + ":", password, "@127.0.0.1:1/db?" + params, []string{password}},
				build{dsntEchoOpen + ":scheme://" + user + ":", password, "@h/db?" + params, []string{password}})
		}
		if !strings.ContainsAny(password, " \t\n\r\f\v'\\") && password != "" {
			builds = append(builds,
				build{"pgx:host=127.0.0.1 port=1 password=", password, " " + kvParams, []string{password}},
				build{dsntEchoOpen + ":host=h password=", password, " " + kvParams, []string{password}})
		}
		for _, b := range builds {
			if b.prefix[:5] == "mysql" && strings.Contains(params, "/") {
				continue // the last '/' would move into the parameters, and the password slot with it
			}
			dsn := b.prefix + b.slot + b.suffix
			control := b.prefix + "Zq9Xw7Vb5" + b.suffix
			var controlText string
			for _, err := range dsntErrors(t, control, true) {
				controlText += err.Error() + "\n"
			}
			for _, err := range dsntErrors(t, dsn, true) {
				for _, pw := range b.spellings {
					if len(pw) < 4 || strings.Contains(controlText, pw) {
						continue // too short to mean anything, or in such errors whatever the password
					}
					if pw == b.slot {
						if strings.Index(dsn, pw) != len(b.prefix) || strings.LastIndex(dsn, pw) != len(b.prefix) {
							continue // also outside the password slot
						}
					} else if strings.Contains(dsn, pw) {
						continue // the decoded password is written elsewhere in the DSN
					}
					if strings.Contains(err.Error(), pw) {
						t.Errorf("DSN %q: error shows the password %q: %v", dsn, pw, err)
					}
				}
			}
		}
	})
}
