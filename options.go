package hasql

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Purity says whether a checkout may reuse a pooled session (DRCP purity).
type Purity uint8

const (
	// PurityDefault is the connector's default purity, which is PuritySelf
	// unless changed with WithDefaultPurity or hasql.purity.
	PurityDefault Purity = iota
	// PurityNew always gets a freshly opened physical session.
	PurityNew
	// PuritySelf reuses a pooled session when one fits.
	PuritySelf
)

// String returns the purity as hasql.purity spells it: "default", "new" or
// "self".
func (p Purity) String() string {
	switch p {
	case PurityNew:
		return "new"
	case PuritySelf:
		return "self"
	}
	return "default"
}

// GetMode says what a checkout does when the pool is at its maximum and every
// session is busy.
type GetMode uint8

const (
	// GetWait waits until a session frees or the context ends.
	GetWait GetMode = iota
	// GetNoWait fails at once with ErrPoolExhausted.
	GetNoWait
	// GetForce opens an extra session beyond the maximum; it is closed on
	// release while the pool is above its maximum.
	GetForce
	// GetTimedWait waits up to PoolConfig.WaitTimeout, then fails with
	// ErrPoolExhausted.
	GetTimedWait
)

// String returns the get mode as hasql.getmode spells it: "wait", "nowait",
// "forceget" or "timedwait".
func (m GetMode) String() string {
	switch m {
	case GetNoWait:
		return "nowait"
	case GetForce:
		return "forceget"
	case GetTimedWait:
		return "timedwait"
	}
	return "wait"
}

// PoolConfig sizes the pool of physical sessions and says how checkouts wait.
type PoolConfig struct {
	Min, Max, Incr int // sessions kept / allowed (0 = no limit) / opened per growth step
	GetMode        GetMode
	WaitTimeout    time.Duration // for GetTimedWait
	IdleTimeout    time.Duration // close sessions idle longer than this (never below Min), checked every quarter of it (at most 30s); 0 = never
	MaxLifetime    time.Duration // retire sessions older than this, with jitter; 0 = never
}

// Picker chooses among several hosts.
type Picker uint8

const (
	PickRoundRobin Picker = iota // each new session on the next host
	PickRandom                   // a random healthy host
	PickOrdered                  // the first healthy host in the list
	PickLatency                  // the healthy host with the lowest measured latency
)

// String returns the picker as hasql.pick spells it, such as "roundrobin".
func (p Picker) String() string {
	return enumName(p, "Picker", "roundrobin", "random", "ordered", "latency")
}

// Target says which server role new sessions must have.
type Target uint8

const (
	TargetAny           Target = iota // any server
	TargetPrimary                     // a writable primary only
	TargetStandby                     // a read-only standby only
	TargetPreferStandby               // a standby if one is up, else the primary
	TargetPreferPrimary               // the primary if it is up, else a standby
)

// String returns the target as hasql.target spells it, such as
// "prefer-standby".
func (t Target) String() string {
	return enumName(t, "Target", "any", "primary", "standby", "prefer-standby", "prefer-primary")
}

// RetryMode says which failed work hasql may run again on a new session.
type RetryMode uint8

const (
	// RetryOff never re-runs work.
	RetryOff RetryMode = iota
	// RetrySafe re-runs only work that certainly never reached the server.
	RetrySafe
	// RetryIdempotent also re-runs work whose context is marked Idempotent.
	RetryIdempotent
)

// String returns the retry mode as hasql.retry spells it: "off", "safe" or
// "idempotent".
func (r RetryMode) String() string {
	return enumName(r, "RetryMode", "off", "safe", "idempotent")
}

// enumName is the name of v among names, or "Type(n)" for a value out of
// range (which validate rejects, and which must not panic on the way there).
func enumName[T ~uint8](v T, typ string, names ...string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(v))
}

// Backoff is the reconnect schedule. When Delays is set, attempt i waits
// Delays[i] and the last delay repeats (PCP's 5,10,20,40,80 form); otherwise
// the delay is Initial for the first Hold of an outage — one prober
// reconnecting every 50ms costs the server nothing and finds it back within
// 50ms of a short restart — then doubles per attempt up to Max, with jitter.
type Backoff struct {
	Delays         []time.Duration
	Initial, Max   time.Duration
	Hold           time.Duration // how long Initial is kept before doubling
	ConnectTimeout time.Duration // bound on one connect attempt
	OutageWait     time.Duration // how long a call waits for the database to come back
}

// HostConfig tunes host health handling.
type HostConfig struct {
	Blacklist      time.Duration // how long a failing host is skipped; doubles on repeated failure
	HealthInterval time.Duration // background host checks; 0 = off
}

// SessionCallback runs when a checkout gets a session that is new or whose tag
// differs from the requested one. It sets session state with s.Exec and records
// it with s.SetTag.
type SessionCallback func(ctx context.Context, s *Session, requestedTag string) error

// An Option configures a Connector. Options win over DSN keys and the
// environment.
type Option func(*config)

// config is every setting of a connector. DSN keys, environment variables and
// Options all land here; validate checks the result in one place.
type config struct {
	stmtCacheSize int
	pool          PoolConfig
	defaultClass  string
	defaultPurity Purity
	callbacks     []string
	hosts         []string
	picker        Picker
	target        Target
	host          HostConfig
	backoff       Backoff
	retry         RetryMode
	sessionCB     SessionCallback
	events        func(Event)
	recovery      Recovery
	failoverCB    FailoverCallback
	txRetries     int // RunTx's re-runs (hasql.tx_retries)
}

func defaultConfig() config {
	return config{
		stmtCacheSize: 20,
		pool: PoolConfig{
			Incr:        1,
			WaitTimeout: 5 * time.Second,
			IdleTimeout: 10 * time.Minute,
			MaxLifetime: 30 * time.Minute,
		},
		host: HostConfig{Blacklist: 10 * time.Second},
		backoff: Backoff{
			Initial:        50 * time.Millisecond,
			Max:            5 * time.Second,
			Hold:           time.Second,
			ConnectTimeout: 5 * time.Second,
			OutageWait:     30 * time.Second,
		},
		retry:     RetrySafe,
		txRetries: defaultTxRetries,
	}
}

// WithStmtCacheSize sets how many prepared statements each physical session
// caches; 0 disables the cache.
func WithStmtCacheSize(n int) Option { return func(c *config) { c.stmtCacheSize = n } }

// WithPool sets the pool's sizing, get mode and timeouts.
func WithPool(p PoolConfig) Option { return func(c *config) { c.pool = p } }

// WithDefaultClass sets the connection class of checkouts that name none.
func WithDefaultClass(class string) Option { return func(c *config) { c.defaultClass = class } }

// WithDefaultPurity sets the purity of checkouts that name none.
func WithDefaultPurity(p Purity) Option { return func(c *config) { c.defaultPurity = p } }

// WithHosts replaces the DSN's own address with these host:port addresses.
func WithHosts(hosts ...string) Option {
	return func(c *config) { c.hosts = append([]string(nil), hosts...) }
}

// WithPicker sets how a host is chosen for a new session.
func WithPicker(p Picker) Option { return func(c *config) { c.picker = p } }

// WithTarget sets which server role new sessions must have.
func WithTarget(t Target) Option { return func(c *config) { c.target = t } }

// WithHostConfig sets host blacklisting and health checks.
func WithHostConfig(h HostConfig) Option { return func(c *config) { c.host = h } }

// WithBackoff sets the reconnect schedule and timeouts.
func WithBackoff(b Backoff) Option {
	b.Delays = append([]time.Duration(nil), b.Delays...) // the caller may reuse its slice
	return func(c *config) { c.backoff = b }
}

// WithRetry sets which failed work hasql may run again.
func WithRetry(r RetryMode) Option { return func(c *config) { c.retry = r } }

// WithCallbackPackages loads these registered callback packages, in this order
// (at most five), replacing any list from the DSN or the environment.
func WithCallbackPackages(names ...string) Option {
	return func(c *config) { c.callbacks = append([]string(nil), names...) }
}

// WithSessionCallback sets the function that brings a session's state in line
// with the requested tag.
func WithSessionCallback(cb SessionCallback) Option { return func(c *config) { c.sessionCB = cb } }

// dsnKeys lists every hasql.* key, for error messages and the fuzz corpus.
var dsnKeys = []string{
	"stmtcache", "pool.min", "pool.max", "pool.incr", "getmode", "wait_timeout",
	"idle_timeout", "max_lifetime", "cclass", "purity", "callbacks", "hosts", "pick",
	"target", "blacklist", "health_interval", "reconnect", "connect_timeout",
	"outage_wait", "retry", "tx_retries",
}

// set applies one hasql.* key (without the prefix) given as text, as it comes
// from a DSN. It rejects unknown keys and values that do not parse or are bad
// on their own, naming the key; validate checks combinations (and Options).
func (c *config) set(key, value string) error {
	var err error
	switch key {
	case "stmtcache":
		c.stmtCacheSize, err = parseInt(value)
	case "pool.min":
		c.pool.Min, err = parseInt(value)
	case "pool.max":
		c.pool.Max, err = parseInt(value)
	case "pool.incr":
		c.pool.Incr, err = parseInt(value)
	case "getmode":
		c.pool.GetMode, err = parseEnum(value, GetWait, GetNoWait, GetForce, GetTimedWait)
	case "wait_timeout":
		c.pool.WaitTimeout, err = parseDuration(value)
	case "idle_timeout":
		c.pool.IdleTimeout, err = parseDuration(value)
	case "max_lifetime":
		c.pool.MaxLifetime, err = parseDuration(value)
	case "cclass":
		c.defaultClass, err = value, validateClass(value)
	case "purity":
		c.defaultPurity, err = parseEnum(value, PurityDefault, PurityNew, PuritySelf)
	case "callbacks":
		c.callbacks = splitList(value)
		if len(c.callbacks) > maxPackages {
			err = fmt.Errorf("%d callback packages listed; at most %d may be loaded", len(c.callbacks), maxPackages)
		}
	case "hosts":
		c.hosts = splitList(value)
		if len(c.hosts) == 0 {
			err = fmt.Errorf("empty host list")
		}
		for _, h := range c.hosts {
			if err == nil {
				err = validateHost(h)
			}
		}
	case "pick":
		c.picker, err = parseEnum(value, PickRoundRobin, PickRandom, PickOrdered, PickLatency)
	case "target":
		c.target, err = parseEnum(value, TargetAny, TargetPrimary, TargetStandby, TargetPreferStandby, TargetPreferPrimary)
	case "blacklist":
		c.host.Blacklist, err = parseDuration(value)
	case "health_interval":
		c.host.HealthInterval, err = parseDuration(value)
	case "reconnect":
		c.backoff.Delays, err = parseDurations(value)
	case "connect_timeout":
		c.backoff.ConnectTimeout, err = parseDuration(value)
	case "outage_wait":
		c.backoff.OutageWait, err = parseDuration(value)
	case "retry":
		c.retry, err = parseEnum(value, RetryOff, RetrySafe, RetryIdempotent)
	case "tx_retries":
		c.txRetries, err = parseInt(value)
	default:
		return newError(ErrDSN, fmt.Sprintf("unknown DSN key hasql.%s (known: hasql.%s)", printable(key), strings.Join(dsnKeys, ", hasql.")), nil)
	}
	if err != nil {
		// err is the cause, so that errors.Is also finds ErrInvalidClass.
		return newError(ErrDSN, fmt.Sprintf("DSN key hasql.%s: value %s", key, quoteValue(value)), err)
	}
	return nil
}

// applyEnv reads the HASQL_* environment variables.
func (c *config) applyEnv() error {
	if v, ok := os.LookupEnv("HASQL_CALLBACK_PACKAGES"); ok && v != "" {
		c.callbacks = splitList(v)
	}
	if v, ok := os.LookupEnv("HASQL_RECONNECT_TIMEOUT"); ok && v != "" {
		d, err := parseDurations(v)
		if err != nil {
			return newError(ErrDSN, fmt.Sprintf("environment HASQL_RECONNECT_TIMEOUT: value %s: %v", quoteValue(v), err), nil)
		}
		c.backoff.Delays = d
	}
	if v, ok := os.LookupEnv("HASQL_CONNECT_TIMEOUT"); ok && v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return newError(ErrDSN, fmt.Sprintf("environment HASQL_CONNECT_TIMEOUT: value %s: %v", quoteValue(v), err), nil)
		}
		c.backoff.ConnectTimeout = d
	}
	return nil
}

// validate checks ranges and combinations, whichever way the settings came.
func (c *config) validate() error {
	bad := func(what string, args ...any) error {
		return newError(ErrDSN, fmt.Sprintf(what, args...), nil)
	}
	switch {
	case c.stmtCacheSize < 0:
		return bad("statement cache size %d is negative", c.stmtCacheSize)
	case c.pool.Min < 0, c.pool.Max < 0, c.pool.Incr < 0:
		return bad("pool sizes must not be negative (min %d, max %d, incr %d)", c.pool.Min, c.pool.Max, c.pool.Incr)
	case c.pool.Max > 0 && c.pool.Min > c.pool.Max:
		return bad("pool min %d is above pool max %d", c.pool.Min, c.pool.Max)
	case c.pool.GetMode > GetTimedWait:
		return bad("unknown get mode %d", c.pool.GetMode)
	case c.pool.WaitTimeout < 0, c.pool.IdleTimeout < 0, c.pool.MaxLifetime < 0:
		return bad("pool timeouts must not be negative")
	case c.pool.GetMode == GetTimedWait && c.pool.WaitTimeout == 0:
		return bad("get mode timedwait needs a wait timeout above zero")
	case c.defaultPurity > PuritySelf:
		return bad("unknown purity %d", c.defaultPurity)
	case c.picker > PickLatency:
		return bad("unknown picker %d", c.picker)
	case c.target > TargetPreferPrimary:
		return bad("unknown target %d", c.target)
	case c.retry > RetryIdempotent:
		return bad("unknown retry mode %d", c.retry)
	case c.host.Blacklist < 0, c.host.HealthInterval < 0:
		return bad("host durations must not be negative")
	case c.backoff.Initial < 0, c.backoff.Max < 0, c.backoff.Hold < 0, c.backoff.ConnectTimeout < 0, c.backoff.OutageWait < 0:
		return bad("back-off durations must not be negative")
	case len(c.backoff.Delays) == 0 && c.backoff.Initial > c.backoff.Max && c.backoff.Max > 0:
		return bad("back-off initial delay %v is above its maximum %v", c.backoff.Initial, c.backoff.Max)
	case len(c.callbacks) > maxPackages:
		return bad("%d callback packages listed; at most %d may be loaded", len(c.callbacks), maxPackages)
	}
	for _, d := range c.backoff.Delays {
		switch {
		case d < 0:
			return bad("back-off delay %v is negative", d)
		case d == 0:
			return bad("back-off delay %v is not above zero: it would reconnect in a busy loop", d)
		}
	}
	if len(c.backoff.Delays) == 0 && (c.backoff.Initial <= 0 || c.backoff.Max <= 0) {
		return bad("back-off initial delay %v and maximum %v must be above zero: a zero delay would reconnect in a busy loop", c.backoff.Initial, c.backoff.Max)
	}
	if err := validateClass(c.defaultClass); err != nil {
		return err
	}
	for _, h := range c.hosts {
		if err := validateHost(h); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(c.callbacks))
	for _, name := range c.callbacks {
		if seen[name] {
			return bad("callback package %q is listed twice", name)
		}
		seen[name] = true
	}
	return nil
}

// validateHost checks one host:port address from hasql.hosts or WithHosts.
func validateHost(h string) error {
	i := strings.LastIndexByte(h, ':')
	if i <= 0 || i == len(h)-1 {
		return newError(ErrDSN, fmt.Sprintf("host %s is not of the form host:port", quoteValue(h)), nil)
	}
	host, port := h[:i], h[i+1:]
	if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
		return newError(ErrDSN, fmt.Sprintf("host %s has an unbalanced IPv6 bracket", quoteValue(h)), nil)
	}
	if strings.ContainsAny(host, " /?@,;") {
		return newError(ErrDSN, fmt.Sprintf("host %s contains a character not allowed in a host name", quoteValue(h)), nil)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return newError(ErrDSN, fmt.Sprintf("host %s has a port that is not a number from 1 to 65535", quoteValue(h)), nil)
	}
	return nil
}

// parseInt parses a count: a non-negative integer.
func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not an integer")
	}
	if n < 0 {
		return 0, fmt.Errorf("negative")
	}
	return n, nil
}

// parseDuration takes Go syntax ("500ms", "5s") or plain seconds ("5", "0.5").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > float64(1<<62)/float64(time.Second) || f != f {
			return 0, fmt.Errorf("seconds out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration (use 500ms, 5s or plain seconds)")
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return d, nil
}

// parseDurations takes a list of durations separated by ',' or ';'.
func parseDurations(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty list")
	}
	// Unlike splitList, an empty item is an error: "5,,10" is a typo, not
	// a list of two.
	parts := strings.Split(strings.ReplaceAll(s, ";", ","), ",")
	out := make([]time.Duration, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("item %d is empty", i+1)
		}
		d, err := parseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("item %d: %v", i+1, err)
		}
		if d <= 0 {
			// PCP ignores values <= 0; a zero delay would reconnect in a
			// busy loop against a server that is down.
			return nil, fmt.Errorf("item %d: %v is not above zero", i+1, d)
		}
		out[i] = d
	}
	return out, nil
}

// splitList splits on ',' and ';', trimming blanks and dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseEnum matches s against the String() of each choice.
func parseEnum[T fmt.Stringer](s string, choices ...T) (T, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	names := make([]string, len(choices))
	for i, c := range choices {
		if c.String() == s {
			return c, nil
		}
		names[i] = c.String()
	}
	var zero T
	return zero, fmt.Errorf("not one of %s", strings.Join(names, ", "))
}

// quoteValue quotes a setting's value for an error message, shortened so that
// a mangled DSN cannot spill much of itself into logs.
func quoteValue(v string) string {
	const max = 64
	if len(v) > max {
		return strconv.Quote(v[:max]) + "…"
	}
	return strconv.Quote(v)
}

// printable shortens and quotes-escapes a key for an error message.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
