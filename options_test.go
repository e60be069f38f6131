package hasql

// Tests of the Options: each sets what it says, validate rejects what is out
// of range, and Open / OpenDB / NewConnector report bad options the way the
// API says (OpenDB only on first use, like sql.OpenDB).

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// optNew opens a connector over pgx (hosts need a DSN-opened connector of a
// driver hasql can point at a host) with opts, and closes it when the test
// ends. Nothing connects.
func optNew(t *testing.T, opts ...Option) (*Connector, error) {
	t.Helper()
	db, err := Open("pgx", "postgres://u@127.0.0.1:1/db?sslmode=disable", opts...)
	if err != nil {
		if db != nil {
			t.Errorf("Open returned a DB with error %v", err)
		}
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	c, ok := ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a hasql DB")
	}
	return c, nil
}

func optClearEnv(t *testing.T) {
	t.Setenv("HASQL_CALLBACK_PACKAGES", "")
	t.Setenv("HASQL_RECONNECT_TIMEOUT", "")
	t.Setenv("HASQL_CONNECT_TIMEOUT", "")
}

func TestOptionsSet(t *testing.T) {
	optClearEnv(t)
	var cbCalls int
	cb := SessionCallback(func(context.Context, *Session, string) error { cbCalls++; return nil })
	pool := PoolConfig{Min: 1, Max: 8, Incr: 2, GetMode: GetTimedWait, WaitTimeout: time.Second, IdleTimeout: time.Minute, MaxLifetime: time.Hour}
	hc := HostConfig{Blacklist: 3 * time.Second, HealthInterval: 500 * time.Millisecond}
	bo := Backoff{Delays: []time.Duration{5 * time.Second, 10 * time.Second}, Initial: time.Millisecond, Max: time.Second,
		ConnectTimeout: 2 * time.Second, OutageWait: time.Minute}
	for _, tc := range []struct {
		name  string
		opt   Option
		check func(c config) bool
	}{
		{"WithStmtCacheSize", WithStmtCacheSize(64), func(c config) bool { return c.stmtCacheSize == 64 }},
		{"WithStmtCacheSize(0)", WithStmtCacheSize(0), func(c config) bool { return c.stmtCacheSize == 0 }},
		{"WithPool", WithPool(pool), func(c config) bool { return c.pool == pool }},
		{"WithPool zero", WithPool(PoolConfig{}), func(c config) bool { return c.pool == PoolConfig{} }},
		{"WithDefaultClass", WithDefaultClass("reports"), func(c config) bool { return c.defaultClass == "reports" }},
		{"WithDefaultPurity", WithDefaultPurity(PurityNew), func(c config) bool { return c.defaultPurity == PurityNew }},
		{"WithDefaultPurity self", WithDefaultPurity(PuritySelf), func(c config) bool { return c.defaultPurity == PuritySelf }},
		{"WithHosts", WithHosts("db1:5432", "db2:5433", "[::1]:5432"),
			func(c config) bool { return slices.Equal(c.hosts, []string{"db1:5432", "db2:5433", "[::1]:5432"}) }},
		{"WithPicker", WithPicker(PickLatency), func(c config) bool { return c.picker == PickLatency }},
		{"WithTarget", WithTarget(TargetPreferStandby), func(c config) bool { return c.target == TargetPreferStandby }},
		{"WithHostConfig", WithHostConfig(hc), func(c config) bool { return c.host == hc }},
		{"WithBackoff", WithBackoff(bo), func(c config) bool { return reflect.DeepEqual(c.backoff, bo) }},
		{"WithRetry", WithRetry(RetryIdempotent), func(c config) bool { return c.retry == RetryIdempotent }},
		{"WithRetry off", WithRetry(RetryOff), func(c config) bool { return c.retry == RetryOff }},
		{"WithCallbackPackages", WithCallbackPackages("dsntest-b", "dsntest-a"),
			func(c config) bool { return slices.Equal(c.callbacks, []string{"dsntest-b", "dsntest-a"}) }},
		{"WithSessionCallback", WithSessionCallback(cb), func(c config) bool {
			return c.sessionCB != nil && reflect.ValueOf(c.sessionCB).Pointer() == reflect.ValueOf(cb).Pointer()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := optNew(t, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c.cfg) {
				t.Errorf("config %+v", c.cfg)
			}
			// Nothing else moved from the defaults.
			def := defaultConfig()
			tc.opt(&def)
			if !reflect.DeepEqual(c.cfg, def) && tc.name != "WithSessionCallback" {
				t.Errorf("config %+v, want %+v", c.cfg, def)
			}
		})
	}
	c, _ := optNew(t, WithCallbackPackages("dsntest-b", "dsntest-a"))
	if c == nil || len(c.reg.pkgs) != 2 {
		t.Errorf("callback packages not loaded")
	}
	c, _ = optNew(t, WithSessionCallback(cb))
	if c != nil {
		c.cfg.sessionCB(context.Background(), nil, "")
		if cbCalls != 1 {
			t.Errorf("session callback is not the one given")
		}
	}
}

func TestOptionsCopyTheirSlices(t *testing.T) {
	optClearEnv(t)
	hosts := []string{"a:1", "b:2"}
	pkgs := []string{"dsntest-a"}
	delays := []time.Duration{time.Second, 2 * time.Second}
	c, err := optNew(t, WithHosts(hosts...), WithCallbackPackages(pkgs...), WithBackoff(Backoff{Delays: delays}))
	if err != nil {
		t.Fatal(err)
	}
	hosts[0], pkgs[0], delays[0] = "z:9", "dsntest-z", -time.Second
	if c.cfg.hosts[0] != "a:1" || c.cfg.callbacks[0] != "dsntest-a" || c.cfg.backoff.Delays[0] != time.Second {
		t.Errorf("the connector shares the caller's slices: %q %q %v", c.cfg.hosts, c.cfg.callbacks, c.cfg.backoff.Delays)
	}
}

func TestOptionsLaterWins(t *testing.T) {
	optClearEnv(t)
	c, err := optNew(t, WithStmtCacheSize(1), WithRetry(RetryOff), WithStmtCacheSize(2), WithHosts("a:1"), WithHosts("b:2"))
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.stmtCacheSize != 2 || c.cfg.retry != RetryOff || !slices.Equal(c.cfg.hosts, []string{"b:2"}) {
		t.Errorf("config %+v", c.cfg)
	}
}

// TestOptionsOverDSN: options win over the DSN's hasql.* keys.
func TestOptionsOverDSN(t *testing.T) {
	optClearEnv(t)
	db, err := Open("pgx", "postgres://u@h/db?hasql.stmtcache=5&hasql.pick=random&hasql.hosts=a:1&hasql.retry=off",
		WithStmtCacheSize(7), WithHosts("b:2", "c:3"), WithRetry(RetryIdempotent))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, ok := ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a hasql DB")
	}
	if c.cfg.stmtCacheSize != 7 || c.cfg.picker != PickRandom || !slices.Equal(c.cfg.hosts, []string{"b:2", "c:3"}) || c.cfg.retry != RetryIdempotent {
		t.Errorf("config %+v", c.cfg)
	}
	// Combinations are checked after the options, which may mend the DSN's.
	db2, err := Open(dsntRec, "x?hasql.pool.min=5&hasql.pool.max=2", WithPool(PoolConfig{Min: 1, Max: 2, Incr: 1}))
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
}

// optBad is an option validate must refuse, with fragments of its error.
type optBad struct {
	name string
	opts []Option
	want []string
	kind error // ErrDSN unless set
}

var optBadCases = []optBad{
	{"negative stmt cache", []Option{WithStmtCacheSize(-1)}, []string{"statement cache size -1 is negative"}, nil},
	{"negative pool min", []Option{WithPool(PoolConfig{Min: -1, Incr: 1})}, []string{"pool sizes must not be negative", "min -1"}, nil},
	{"negative pool max", []Option{WithPool(PoolConfig{Max: -1, Incr: 1})}, []string{"pool sizes must not be negative", "max -1"}, nil},
	{"negative pool incr", []Option{WithPool(PoolConfig{Incr: -3})}, []string{"pool sizes must not be negative", "incr -3"}, nil},
	{"pool min above max", []Option{WithPool(PoolConfig{Min: 5, Max: 2, Incr: 1})}, []string{"pool min 5 is above pool max 2"}, nil},
	{"unknown get mode", []Option{WithPool(PoolConfig{GetMode: GetMode(9), Incr: 1})}, []string{"unknown get mode 9"}, nil},
	{"negative wait timeout", []Option{WithPool(PoolConfig{WaitTimeout: -1, Incr: 1})}, []string{"pool timeouts must not be negative"}, nil},
	{"negative idle timeout", []Option{WithPool(PoolConfig{IdleTimeout: -time.Second, Incr: 1})}, []string{"pool timeouts must not be negative"}, nil},
	{"negative max lifetime", []Option{WithPool(PoolConfig{MaxLifetime: -time.Second, Incr: 1})}, []string{"pool timeouts must not be negative"}, nil},
	{"timedwait without timeout", []Option{WithPool(PoolConfig{GetMode: GetTimedWait, Incr: 1})}, []string{"timedwait needs a wait timeout"}, nil},
	{"class with *", []Option{WithDefaultClass("a*b")}, []string{`connection class "a*b"`, "'*'"}, ErrInvalidClass},
	{"class with NUL", []Option{WithDefaultClass("a\x00b")}, []string{"connection class", "NUL"}, ErrInvalidClass},
	{"class too long", []Option{WithDefaultClass(strings.Repeat("x", maxClassLen+1))}, []string{"connection class is 1025 bytes long"}, ErrInvalidClass},
	{"unknown purity", []Option{WithDefaultPurity(Purity(7))}, []string{"unknown purity 7"}, nil},
	{"host without port", []Option{WithHosts("db1")}, []string{`host "db1" is not of the form host:port`}, nil},
	{"host with port 0", []Option{WithHosts("db1:0")}, []string{`host "db1:0"`, "port"}, nil},
	{"host with big port", []Option{WithHosts("db1:1", "db2:70000")}, []string{`host "db2:70000"`, "port"}, nil},
	{"host with bad bracket", []Option{WithHosts("[::1:5432")}, []string{"unbalanced IPv6 bracket"}, nil},
	{"host with blank", []Option{WithHosts("db 1:5432")}, []string{`host "db 1:5432"`, "not allowed"}, nil},
	{"empty host", []Option{WithHosts("")}, []string{`host ""`}, nil},
	{"unknown picker", []Option{WithPicker(Picker(9))}, []string{"unknown picker 9"}, nil},
	{"unknown target", []Option{WithTarget(Target(9))}, []string{"unknown target 9"}, nil},
	{"negative blacklist", []Option{WithHostConfig(HostConfig{Blacklist: -1})}, []string{"host durations must not be negative"}, nil},
	{"negative health interval", []Option{WithHostConfig(HostConfig{HealthInterval: -1})}, []string{"host durations must not be negative"}, nil},
	{"negative back-off initial", []Option{WithBackoff(Backoff{Initial: -1})}, []string{"back-off durations must not be negative"}, nil},
	{"negative connect timeout", []Option{WithBackoff(Backoff{ConnectTimeout: -time.Second})}, []string{"back-off durations must not be negative"}, nil},
	{"negative outage wait", []Option{WithBackoff(Backoff{OutageWait: -time.Second})}, []string{"back-off durations must not be negative"}, nil},
	{"back-off initial above max", []Option{WithBackoff(Backoff{Initial: 2 * time.Second, Max: time.Second})}, []string{"initial delay 2s is above its maximum 1s"}, nil},
	{"negative delay", []Option{WithBackoff(Backoff{Delays: []time.Duration{time.Second, -time.Second}})}, []string{"back-off delay -1s is negative"}, nil},
	{"unknown retry mode", []Option{WithRetry(RetryMode(9))}, []string{"unknown retry mode 9"}, nil},
	{"six callback packages", []Option{WithCallbackPackages(dsntPackages...)}, []string{"6 callback packages listed; at most 5"}, nil},
	{"callback package twice", []Option{WithCallbackPackages("dsntest-a", "dsntest-a")}, []string{`"dsntest-a" is listed twice`}, nil},
	{"unregistered callback package", []Option{WithCallbackPackages("dsntest-nope")}, []string{`"dsntest-nope" is not registered`}, nil},
}

func TestOptionsValidate(t *testing.T) {
	optClearEnv(t)
	for _, tc := range optBadCases {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == nil {
				kind = ErrDSN
			}
			check := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s: no error", how)
					return
				}
				if !errors.Is(err, kind) {
					t.Errorf("%s: %v does not wrap %v", how, err, kind)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not mention %q", how, err, w)
					}
				}
			}
			c, err := NewConnector(dsntRecConnector("x"), tc.opts...)
			if c != nil {
				t.Errorf("NewConnector returned a connector with error %v", err)
				c.Close()
			}
			check("NewConnector", err)

			db, err := Open(dsntRec, "x", tc.opts...)
			if db != nil {
				t.Errorf("Open returned a DB with error %v", err)
				db.Close()
			}
			check("Open", err)

			// OpenDB cannot fail: the error comes with the first use, every time.
			db = OpenDB(dsntRecConnector("x"), tc.opts...)
			defer db.Close()
			check("OpenDB Ping", db.Ping())
			_, err = db.Exec("SELECT 1")
			check("OpenDB Exec", err)
			_, err = db.Conn(context.Background())
			check("OpenDB Conn", err)
			if c, ok := ConnectorOf(db); !ok || c.err == nil {
				t.Errorf("ConnectorOf(OpenDB with a bad option) = %v, %v", c, ok)
			}
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	// Out-of-range enum values print without panicking on the way to the error.
	for _, s := range []string{Picker(9).String(), Target(9).String(), RetryMode(9).String(), Purity(9).String(), GetMode(9).String()} {
		if s == "" {
			t.Errorf("empty name for an out-of-range value")
		}
	}
}

func TestOptionsNilInner(t *testing.T) {
	c, err := NewConnector(nil)
	if c != nil || !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "inner connector") {
		t.Errorf("NewConnector(nil) = %v, %v", c, err)
	}
	db := OpenDB(nil)
	defer db.Close()
	if err := db.Ping(); !errors.Is(err, ErrDSN) {
		t.Errorf("OpenDB(nil).Ping() = %v", err)
	}
}

func TestOptionsGoodOpenDB(t *testing.T) {
	optClearEnv(t)
	db := OpenDB(dsntRecConnector("x"), WithStmtCacheSize(3), WithPool(PoolConfig{Max: 4, Incr: 1}))
	defer db.Close()
	c, ok := ConnectorOf(db)
	if !ok || c.err != nil || c.cfg.stmtCacheSize != 3 || c.cfg.pool.Max != 4 {
		t.Fatalf("ConnectorOf = %+v, %v", c, ok)
	}
	// The inner connector's own failure comes through, not an option error.
	if err := db.Ping(); err == nil || errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "dsntest-rec: no connections") {
		t.Errorf("Ping = %v", err)
	}
}

func TestOptionsEnumNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{PickRoundRobin.String(), "roundrobin"}, {PickRandom.String(), "random"}, {PickOrdered.String(), "ordered"}, {PickLatency.String(), "latency"},
		{TargetAny.String(), "any"}, {TargetPrimary.String(), "primary"}, {TargetStandby.String(), "standby"},
		{TargetPreferStandby.String(), "prefer-standby"}, {TargetPreferPrimary.String(), "prefer-primary"},
		{RetryOff.String(), "off"}, {RetrySafe.String(), "safe"}, {RetryIdempotent.String(), "idempotent"},
		{PurityDefault.String(), "default"}, {PurityNew.String(), "new"}, {PuritySelf.String(), "self"},
		{GetWait.String(), "wait"}, {GetNoWait.String(), "nowait"}, {GetForce.String(), "forceget"}, {GetTimedWait.String(), "timedwait"},
		{Picker(9).String(), "Picker(9)"}, {Target(9).String(), "Target(9)"}, {RetryMode(9).String(), "RetryMode(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

// TestBackoffValuesMustBeAboveZero: PCP ignores back-off values <= 0; hasql
// refuses them, naming the key, the variable or the option, because a zero
// delay made one prober reconnect in a busy loop against a server that is
// down (about 30,000 attempts in a one-second outage).
func TestBackoffValuesMustBeAboveZero(t *testing.T) {
	optClearEnv(t)
	for _, tc := range []struct{ dsn, want string }{
		{"hasql.reconnect=0", "hasql.reconnect"},
		{"hasql.reconnect=5,0", "item 2: 0s is not above zero"},
		{"hasql.reconnect=5,,10", "item 2 is empty"},
		{"hasql.reconnect=-1", "hasql.reconnect"},
		{"hasql.reconnect=", "hasql.reconnect"},
	} {
		t.Run("DSN "+tc.dsn, func(t *testing.T) {
			_, err := Open("pgx", "postgres://u@127.0.0.1:1/db?sslmode=disable&"+tc.dsn)
			if !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want ErrDSN mentioning %q", err, tc.want)
			}
		})
	}
	for _, v := range []string{"0", "5,0", "5,,10", "-5"} {
		t.Run("HASQL_RECONNECT_TIMEOUT="+v, func(t *testing.T) {
			t.Setenv("HASQL_RECONNECT_TIMEOUT", v)
			_, err := optNew(t)
			if !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "HASQL_RECONNECT_TIMEOUT") {
				t.Fatalf("Open: %v, want ErrDSN naming HASQL_RECONNECT_TIMEOUT", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		b    Backoff
	}{
		{"zero delay in the list", Backoff{Delays: []time.Duration{time.Second, 0}, Initial: time.Millisecond, Max: time.Second}},
		{"zero initial", Backoff{Max: time.Second}},
		{"zero max", Backoff{Initial: time.Millisecond}},
	} {
		t.Run("WithBackoff "+tc.name, func(t *testing.T) {
			_, err := optNew(t, WithBackoff(tc.b))
			if !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "not above zero") && !strings.Contains(err.Error(), "must be above zero") {
				t.Fatalf("WithBackoff(%+v): %v, want an error saying the values must be above zero", tc.b, err)
			}
		})
	}
}
