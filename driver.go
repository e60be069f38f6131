// Package hasql is a database/sql driver, registered as "hasql", that wraps
// another driver (pgx v5, go-sql-driver/mysql, go-sqlmock, or any registered
// one) and adds interceptor chains on every driver call, a per-session
// statement cache, a session pool with tags, purity and connection classes,
// and connections that survive database restarts and failovers.
//
// Swap
//
//	sql.Open("mysql", dsn)
//
// for
//
//	sql.Open("hasql", "mysql:"+dsn)
//
// and nothing else an application can observe changes.
//
// # Virtual handles over physical sessions
//
// database/sql pools driver connections and cannot be told which one to hand
// out. hasql therefore gives database/sql virtual handles, which own no
// socket, and keeps the real connections — physical sessions — in its own
// pool. A handle is bound to a session when database/sql checks it out
// (Connect, ResetSession, or the first call that carries a context) and
// unbound when database/sql releases it (IsValid). Everything database/sql
// does on one checkout — a Tx, a *sql.Conn, a Rows stream — runs on one
// physical session.
package hasql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func init() {
	sql.Register("hasql", &Driver{})
}

// Driver is the "hasql" driver. The registered value opens a new Connector
// for each DSN; the Driver a Connector returns from its Driver method leads
// back to that Connector (see ConnectorOf).
type Driver struct {
	c *Connector
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// Open opens a connection with its own Connector, closed when the connection
// is. database/sql does not call it (it uses OpenConnector); it is there for
// code that drives a driver.Driver by hand.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	hc := c.(*Connector)
	dc, err := hc.Connect(context.Background())
	if err != nil {
		hc.Close()
		return nil, err
	}
	dc.(*handle).owns = true
	return dc, nil
}

// OpenConnector parses a hasql DSN, "<inner driver>:<inner DSN>", and returns
// a Connector. Errors wrap ErrDSN, name the key or the problem, and never
// contain a password.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	name, inner, err := splitDSN(dsn)
	if err != nil {
		return nil, err
	}
	c, err := openInner(name, inner, nil)
	if err != nil {
		return nil, err // a nil interface, not a nil *Connector in one
	}
	return c, nil
}

// Open wraps the registered driver driverName: the DSN is that driver's own,
// optionally carrying hasql.* settings in its parameter section.
func Open(driverName, dsn string, opts ...Option) (*sql.DB, error) {
	c, err := openInner(driverName, dsn, opts)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// OpenDB wraps an inner connector. Like sql.OpenDB it returns no error: a bad
// option makes every connection attempt fail with that error.
func OpenDB(inner driver.Connector, opts ...Option) *sql.DB {
	c, err := NewConnector(inner, opts...)
	if err != nil {
		c = &Connector{err: err}
		c.drv.c = c
		c.reg.init()
	}
	return sql.OpenDB(c)
}

// NewConnector wraps an inner connector, configured by opts and the HASQL_*
// environment variables.
func NewConnector(inner driver.Connector, opts ...Option) (*Connector, error) {
	if inner == nil {
		return nil, newError(ErrDSN, "NewConnector needs an inner connector", nil)
	}
	cfg := defaultConfig()
	if err := cfg.applyEnv(); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&cfg)
	}
	d := inner.Driver()
	return newConnector(inner, nil, dialectOf(fmt.Sprintf("%T", d), d), cfg, "", nil)
}

// driverCache remembers the driver.Driver registered under each name:
// database/sql offers no lookup, so hasql asks sql.Open once per name.
var driverCache sync.Map // name → driver.Driver

func lookupDriver(name, dsn string, secrets []string) (driver.Driver, error) {
	if d, ok := driverCache.Load(name); ok {
		return d.(driver.Driver), nil
	}
	names := sql.Drivers()
	if i := sort.SearchStrings(names, name); i == len(names) || names[i] != name {
		return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s is not registered (registered: %s); import it, e.g. _ \"modernc.org/sqlite\"",
			quoteValue(name), strings.Join(names, ", ")), nil)
	}
	if name == "hasql" {
		return nil, newError(ErrDSN, "hasql cannot wrap itself; name the inner driver, e.g. \"pgx:postgres://host/db\"", nil)
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s rejected its DSN", quoteValue(name)), &redactedError{err, secrets})
	}
	d := db.Driver()
	db.Close()
	driverCache.Store(name, d)
	return d, nil
}

// openInner builds a Connector for the registered driver name and its DSN.
func openInner(name, dsn string, opts []Option) (*Connector, error) {
	probe := dialectOf(name, nil)
	if d, ok := driverCache.Load(name); ok {
		probe = dialectOf(name, d.(driver.Driver))
	}
	form := formOf(probe, dsn)
	secrets := dsnSecrets(form, dsn)
	stripped, settings, err := stripSettings(form, dsn)
	if err != nil {
		return nil, err
	}
	d, err := lookupDriver(name, stripped, secrets)
	if err != nil {
		return nil, err
	}
	if dl := dialectOf(name, d); dl != probe {
		// First use of this driver name: parse again with the right form.
		form = formOf(dl, dsn)
		secrets = dsnSecrets(form, dsn)
		if stripped, settings, err = stripSettings(form, dsn); err != nil {
			return nil, err
		}
	}
	cfg := defaultConfig()
	if err := cfg.applyEnv(); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(settings))
	for _, s := range settings {
		if seen[s.key] {
			return nil, newError(ErrDSN, fmt.Sprintf("DSN key hasql.%s is given more than once", printable(s.key)), nil)
		}
		seen[s.key] = true
		if err := cfg.set(s.key, s.value); err != nil {
			return nil, err
		}
	}
	for _, o := range opts {
		o(&cfg)
	}
	if dialectOf(name, d) == dialectPgx {
		// pgx parses its DSN on every connect; one its parser panics on
		// must fail here, once, with an error (not crash the program later).
		if _, err := pgxParseConfig(stripped); errors.Is(err, errPgxPanic) {
			return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s cannot parse its DSN", quoteValue(name)), err)
		}
	}
	var ic driver.Connector
	if dc, ok := d.(driver.DriverContext); ok {
		if ic, err = dc.OpenConnector(stripped); err != nil {
			return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s rejected its DSN", quoteValue(name)), &redactedError{err, secrets})
		}
	} else {
		ic = dsnConnector{d: d, dsn: stripped}
	}
	return newConnector(ic, d, dialectOf(name, d), cfg, stripped, secrets)
}

// dsnConnector is database/sql's own adapter for drivers without
// DriverContext.
type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (t dsnConnector) Connect(context.Context) (driver.Conn, error) { return t.d.Open(t.dsn) }
func (t dsnConnector) Driver() driver.Driver                        { return t.d }

// Connector is hasql's driver.Connector: it owns the physical session pool,
// the callback registry and the configuration of one database. It is safe
// for concurrent use. Close it (or the *sql.DB made from it) to close every
// physical session and stop every background goroutine.
type Connector struct {
	inner    driver.Connector
	drv      Driver
	dialect  dialect
	cfg      config
	secrets  []string
	host     string        // host:port from the DSN, for Session.Host
	dsn      string        // the inner DSN, when opened from one
	innerDrv driver.Driver // the inner driver, when opened from a DSN

	hosts  *hostSet
	outage outage
	events *eventQueue

	everConnected                  atomic.Bool // a session was opened once: later failures are outages
	reconnects, failovers, retries atomic.Int64
	reg                            registry
	pool                           *pool
	err                            error // OpenDB with bad options: every Connect fails with it

	stmtHits, stmtMisses, stmtEvictions atomic.Int64

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// newConnector builds a connector; innerDrv and dsn are known when it was
// opened from a DSN, which lets it point sessions at other hosts and users.
func newConnector(inner driver.Connector, innerDrv driver.Driver, dl dialect, cfg config, dsn string, secrets []string) (*Connector, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Connector{inner: inner, innerDrv: innerDrv, dialect: dl, cfg: cfg, secrets: secrets, host: dsnHost(dl, dsn), dsn: dsn}
	c.drv.c = c
	c.reg.init()
	c.outage.c = c
	hs, err := newHostSet(c)
	if err != nil {
		return nil, err
	}
	c.hosts = hs
	c.pool = newPool(c, cfg.pool)
	if err := c.reg.load(cfg.callbacks); err != nil {
		return nil, err
	}
	c.events = newEventQueue(cfg.events)
	c.pool.start()
	c.startHealth()
	return c, nil
}

// Connect returns a new virtual handle, bound to a session chosen by the
// selectors in ctx. database/sql calls it; applications use sql.OpenDB.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	v := newHandle(c)
	if err := v.bind(ctx, false); err != nil {
		return nil, err
	}
	return v, nil
}

// Driver returns a Driver that leads back to this Connector.
func (c *Connector) Driver() driver.Driver { return &c.drv }

// InnerDriver returns the driver hasql wraps (for instance *stdlib.Driver
// for pgx), so that instrumentation can tell which database it talks to.
func (c *Connector) InnerDriver() driver.Driver {
	if c.innerDrv != nil {
		return c.innerDrv
	}
	if c.inner != nil {
		return c.inner.Driver()
	}
	return nil
}

// Callbacks returns the connector's own callback registry.
func (c *Connector) Callbacks() *Callbacks { return &c.reg.own }

// Close closes every idle physical session at once and every busy one when
// it is released, stops the connector's background goroutines, and closes
// the inner connector if it is an io.Closer. It is safe to call more than
// once; sql.DB.Close calls it.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.pool != nil {
			c.stopHealth()
			c.pool.close()
		}
		c.events.close()
		if cl, ok := c.inner.(io.Closer); ok {
			c.closeErr = cl.Close()
		}
	})
	return c.closeErr
}

// ConnectorOf returns the hasql Connector behind db, if db was opened through
// hasql.
func ConnectorOf(db *sql.DB) (*Connector, bool) {
	if d, ok := db.Driver().(*Driver); ok && d.c != nil {
		return d.c, true
	}
	return nil, false
}

// resolve applies the connector's defaults to a selector and validates it.
func (c *Connector) resolve(sel selector) (key poolKey, tag string, purityNew bool, err error) {
	tag, err = normalizeTag(sel.tag)
	if err != nil {
		return key, "", false, err
	}
	class := sel.class
	if class == "" {
		class = c.cfg.defaultClass
	} else if err = validateClass(class); err != nil {
		return key, "", false, err
	}
	purity := sel.purity
	if purity == PurityDefault {
		purity = c.cfg.defaultPurity
	}
	return poolKey{user: sel.user, pass: sel.password, class: class}, tag, purity == PurityNew, nil
}

// openPhysical opens a physical session on the first host, in the picker's
// order, that accepts a connection and has the wanted role. A host that
// fails to connect is blacklisted and the next one tried.
//
// hasql.connect_timeout bounds each host's attempt on its own (see openOn):
// a host that swallows the connect (a black hole) costs one timeout, and the
// next host is tried; only the caller's own context ends the search.
func (c *Connector) openPhysical(ctx context.Context, sel selector, key poolKey) (*session, error) {
	order := c.hosts.order(c.pool.now())
	strict := c.cfg.target == TargetPreferPrimary || c.cfg.target == TargetPreferStandby
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for _, h := range order {
			ph, err := c.openOn(ctx, h, key, pass == 0 && strict)
			if err == nil {
				return ph, nil
			}
			if ctx.Err() != nil || !c.dialect.connectRetryable(err) {
				return nil, err
			}
			lastErr = err
		}
		if !strict {
			break
		}
	}
	if len(order) == 1 {
		return nil, lastErr
	}
	return nil, newError(ErrNoHosts, fmt.Sprintf("none of %d hosts accepted a session with role %v", len(order), c.cfg.target), lastErr)
}

// errWrongRole is the cause recorded when a host's server has another role
// than the target wants.
var errWrongRole = errors.New("hasql: server does not have the wanted role")

// openOn opens a session on one host, running FnConnect callbacks, and
// checks its role when a target is set. The attempt is bounded by
// hasql.connect_timeout; one that runs out of it counts as a failure of the
// host, one whose caller gave up (ctx) does not.
func (c *Connector) openOn(ctx context.Context, h *host, key poolKey, strict bool) (*session, error) {
	ic, err := c.hosts.connectorFor(h, key)
	if err != nil {
		return nil, err
	}
	caller := ctx
	if t := c.cfg.backoff.ConnectTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	start := time.Now()
	inv := connectInvoker{c: c, ic: ic, key: key, h: h}
	if ch := c.reg.chain(FnConnect); ch != nil {
		call := &Call{Fn: FnConnect, Ctx: ctx}
		err = ch.run(call, &inv)
		if err != nil && inv.ph != nil {
			inv.ph.inner.Close()
			inv.ph = nil
		}
		if err == nil && inv.ph == nil {
			err = newError(ErrCallbackOutcome, "FnConnect callbacks succeeded without opening a connection", nil)
		}
	} else {
		err = inv.connect(ctx)
	}
	if err != nil {
		if caller.Err() == nil && c.dialect.connectRetryable(err) {
			c.hostFailed(h, err)
		}
		return nil, err
	}
	ph := inv.ph
	r := roleUnknown
	if c.cfg.target != TargetAny {
		if r, err = c.dialect.roleOf(ctx, ph); err != nil {
			ph.inner.Close()
			c.hostFailed(h, err)
			return nil, err
		}
		if !wants(c.cfg.target, r, strict) {
			ph.inner.Close()
			c.hosts.setRole(h.addr, r)
			return nil, fmt.Errorf("%w: %s is a %s", errWrongRole, h.addr, map[role]string{rolePrimary: "primary", roleStandby: "standby"}[r])
		}
	}
	if c.hosts.connected(h, time.Since(start), r) && c.everConnected.Load() {
		c.events.emit(Event{Kind: HostUp, Host: ph.host})
	}
	c.everConnected.Store(true)
	return ph, nil
}

// hostFailed blacklists a host after a failed connect and reports it down.
func (c *Connector) hostFailed(h *host, err error) {
	if c.hosts.failed(h, err, time.Now()) {
		c.events.emit(Event{Kind: HostDown, Host: h.addr, Err: err})
	}
}

type connectInvoker struct {
	c   *Connector
	ic  driver.Connector
	key poolKey
	h   *host
	ph  *session
}

func (ci *connectInvoker) connect(ctx context.Context) error {
	// The generation before connecting: a purge while the connect is under
	// way may concern this session too.
	gen := ci.c.hosts.genOf(ci.h)
	inner, err := ci.ic.Connect(ctx)
	if err != nil {
		if len(ci.c.secrets) > 0 {
			return &redactedError{err, ci.c.secrets}
		}
		return err
	}
	ph := newSession(ci.c.pool, inner, ci.key)
	ph.hostRef, ph.hostGen = ci.h, gen
	ph.host = ci.h.addr
	if ph.host == "" {
		ph.host = ci.c.dialect.remoteHost(inner, ci.c.host)
	}
	ph.stmtCacheSize = ci.c.cfg.stmtCacheSize
	ci.ph = ph
	return nil
}

func (ci *connectInvoker) invoke(call *Call) error {
	err := ci.connect(call.Ctx)
	if ci.ph != nil {
		call.Session = &ci.ph.view
	}
	return err
}

// closePhysical closes a session's inner connection, running FnClose
// callbacks around it.
func (c *Connector) closePhysical(ph *session) {
	c.hosts.closedOne(ph.hostRef)
	if ch := c.reg.chain(FnClose); ch != nil {
		ci := &closeInvoker{ph: ph}
		ch.run(&Call{Fn: FnClose, Ctx: context.Background(), Session: &ph.view}, ci)
		if !ci.ran {
			// A replacement or a panic kept the driver's Close from
			// running; nothing else will ever close the connection.
			ph.inner.Close()
		}
		return
	}
	ph.inner.Close()
}

type closeInvoker struct {
	ph  *session
	ran bool
}

func (ci *closeInvoker) invoke(*Call) error { ci.ran = true; return ci.ph.inner.Close() }

// errPgxPanic is the error pgxParseConfig reports for a DSN that makes pgx's
// parser panic.
var errPgxPanic = errors.New("pgx's DSN parser panics on it (check the quoting of key=value pairs, e.g. a quoted value ending in a backslash)")

// pgxParseConfig is pgconn.ParseConfig, with a panic (pgx v5.8 panics on a
// key=value DSN whose quoted value ends in a backslash: a='\ ) turned into
// errPgxPanic.
func pgxParseConfig(dsn string) (cfg *pgconn.Config, err error) {
	defer func() {
		if recover() != nil {
			cfg, err = nil, errPgxPanic
		}
	}()
	return pgconn.ParseConfig(dsn)
}

// dsnHost returns the host:port an inner DSN points at, or "".
func dsnHost(dl dialect, dsn string) string {
	switch dl {
	case dialectMySQL:
		if cfg, err := mysql.ParseDSN(dsn); err == nil {
			return cfg.Addr
		}
	case dialectPgx:
		if cfg, err := pgxParseConfig(dsn); err == nil {
			return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		}
	}
	return ""
}

// HostState is a host's health as hasql sees it.
type HostState uint8

const (
	HostStateUp          HostState = iota // in use
	HostStateDown                         // failed its last check or connection
	HostStateBlacklisted                  // skipped until its blacklist time passes
)

func (s HostState) String() string {
	switch s {
	case HostStateUp:
		return "up"
	case HostStateDown:
		return "down"
	case HostStateBlacklisted:
		return "blacklisted"
	}
	return fmt.Sprintf("HostState(%d)", uint8(s))
}
