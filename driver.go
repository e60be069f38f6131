package hasql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// Open opens a *sql.DB over the driver registered as driverName, as
// sql.Open("hasql", driverName+":"+dsn) does, with opts on top: dsn is that
// driver's own DSN, which may carry hasql.* settings in its parameter section
// (see the package documentation), and opts win over those settings and over
// the environment.
//
// Open parses dsn and validates every setting before it returns; an error
// wraps ErrDSN, names the key or the problem, and contains no password from
// dsn. Like sql.Open, it connects to no database unless PoolConfig.Min asks
// for sessions kept open (those are opened in the background); use
// db.PingContext to check that the database can be reached. It starts the
// goroutines NewConnector lists, which run until the *sql.DB is closed.
func Open(driverName, dsn string, opts ...Option) (*sql.DB, error) {
	c, err := openInner(driverName, dsn, opts)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// OpenDB returns a *sql.DB over NewConnector(inner, opts...). Like
// sql.OpenDB it returns no error: if NewConnector fails, no goroutine is
// started and every attempt to connect through the *sql.DB fails with that
// error (db.PingContext shows it). Use NewConnector to see the error at once.
func OpenDB(inner driver.Connector, opts ...Option) *sql.DB {
	c, err := NewConnector(inner, opts...)
	if err != nil {
		c = &Connector{err: err}
		c.drv.c = c
		c.reg.init(c)
	}
	return sql.OpenDB(c)
}

// NewConnector returns a Connector that wraps inner, the connector of the
// driver hasql is to wrap (pgx's stdlib.GetConnector, mysql.NewConnector,
// or any driver.Connector), configured by opts; sql.OpenDB makes a *sql.DB
// of it. The driver's dialect (pgx, go-sql-driver/mysql, go-sqlmock, or
// generic) is recognised by the type of inner.Driver().
//
// NewConnector reads the environment variables HASQL_CALLBACK_PACKAGES,
// HASQL_RECONNECT_TIMEOUT and HASQL_CONNECT_TIMEOUT once, now; opts win over
// them. It loads the callback packages listed, running their setups. It
// fails, with an error wrapping ErrDSN, when a setting is invalid, a
// package is not registered or its setup fails, or opts name hosts
// (WithHosts): pointing a connector at a host, like WithUser, needs a DSN,
// so use Open for those. A nil inner is an error too.
//
// NewConnector opens no connection itself: checkouts open sessions as they
// need them, and PoolConfig.Min and PoolConfig.Incr have more opened in the
// background. The Connector runs these goroutines of its own:
//
//   - the pool's maintainer, always: it wakes every quarter of IdleTimeout or
//     MaxLifetime, whichever is shorter (at most 30s, at least 100ms apart),
//     closes idle sessions past them, and keeps Min sessions open;
//   - one per session opened in the background, until it is open;
//   - the host checker, when HostConfig.HealthInterval is above zero: it
//     connects to every host once per interval;
//   - the event sender, from the first event on, when WithEvents is set;
//   - the outage prober, while an outage lasts.
//
// Close stops them all and waits for them; sql.DB.Close calls it. A
// Connector that is never closed keeps its goroutines and its idle sessions
// for the life of the process.
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
	dl := dialectOf(name, d)
	if err := dl.checkDSN(stripped); err != nil {
		return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s cannot parse its DSN", quoteValue(name)), err)
	}
	ic, err := dl.openConnector(d, stripped)
	if err != nil {
		return nil, newError(ErrDSN, fmt.Sprintf("inner driver %s rejected its DSN", quoteValue(name)), &redactedError{err, secrets})
	}
	return newConnector(ic, d, dl, cfg, stripped, secrets)
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
	disc   *discovery  // hasql.discover; nil when off
	rw     *readRouter // reads on standbys, durability (reads.go); nil when not configured
	events *eventQueue

	everConnected                  atomic.Bool // a session was opened once: later failures are outages
	reconnects, failovers, retries atomic.Int64
	replays, replaysDiverged       atomic.Int64 // transparent replay (replay.go)

	// Outcomes of transactions whose session died (Stats.TxCommittedAfterLoss,
	// TxNotCommitted, TxUnknown).
	txCommittedAfterLoss, txNotCommitted, txUnknown atomic.Int64

	// lastFailure is when the connector last met a failure (Unix nanos;
	// role_recheck.go).
	lastFailure    atomic.Int64
	callbackPanics atomic.Int64 // see userPanic
	reg            registry
	pool           *pool
	guard          *txGuard // nil: hasql.txguard=off
	err            error    // OpenDB with bad options: every Connect fails with it

	stmtHits, stmtMisses, stmtEvictions atomic.Int64

	poolers poolerSeen // per host: a pooler found by the first session there

	// stmtCacheSize is the pool's statement cache size (hasql.stmtcache,
	// then SetStmtCacheSize); untagged sessions take it at each checkout.
	stmtCacheSize atomic.Int64

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
	c.reg.init(c)
	c.outage.c = c
	c.outage.wake = make(chan struct{}, 1)
	c.stmtCacheSize.Store(int64(cfg.stmtCacheSize))
	if cfg.discovery.Source != DiscoverOff && innerDrv == nil {
		return nil, newError(ErrDSN, "hasql.discover needs a connector opened from a DSN (sql.Open or hasql.Open), not NewConnector/OpenDB", nil)
	}
	hs, err := newHostSet(c)
	if err != nil {
		return nil, err
	}
	c.hosts = hs
	if c.rw, err = newReadRouter(c); err != nil {
		return nil, err
	}
	c.pool = newPool(c, cfg.pool)
	if err := c.reg.load(cfg.callbacks); err != nil {
		return nil, err
	}
	if c.guard, err = newTxGuard(c); err != nil {
		return nil, err
	}
	c.events = newEventQueue(cfg.events, c)
	c.pool.start()
	if c.guard != nil {
		c.guard.start()
	}
	c.startHealth()
	c.startLagChecks()
	c.startDiscovery()
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
	v.fresh = true
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

// Close closes the connector. Idle sessions are closed at once and busy ones
// as their handles release them; checkouts waiting for a session, and every
// later checkout, fail with ErrClosed. The background goroutines (see
// NewConnector) are stopped and waited for, and events queued before Close
// are delivered before it returns. Last, the inner connector is closed if it
// is an io.Closer, and its error is what Close returns. sql.DB.Close calls
// Close; it is safe to call more than once, and from several goroutines,
// and returns the same error each time.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.pool != nil {
			c.stopHealth()
			if c.guard != nil {
				c.guard.close()
			}
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
	return poolKey{user: sel.user, pass: sel.password, class: class, standby: sel.standby}, tag, purity == PurityNew, nil
}

// openSession opens a physical session on the first host, in the picker's
// order, that accepts a connection and has the wanted role. A host that
// fails to connect is blacklisted and the next one tried.
//
// hasql.connect_timeout bounds each host's attempt on its own (see openOn):
// a host that swallows the connect (a black hole) costs one timeout, and the
// next host is tried; only the caller's own context ends the search.
func (c *Connector) openSession(ctx context.Context, sel selector, key poolKey) (*session, error) {
	order := c.hosts.order(c.pool.now())
	if len(order) == 0 {
		// Every host is drained: the work waits at the outage gate
		// (connectRetryable) until Undrain.
		return nil, fmt.Errorf("%w: every host is drained (Connector.Drain)", errWrongRole)
	}
	target := c.cfg.target
	if key.standby {
		// A session for read-only work (reads.go): standbys known as such
		// are tried first.
		target = TargetStandby
		order = c.hosts.preferRole(order, roleStandby)
	}
	strict := target == TargetPreferPrimary || target == TargetPreferStandby
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for _, h := range order {
			ph, err := c.openOn(ctx, h, key, target, pass == 0 && strict)
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
	return nil, newError(ErrNoHosts, fmt.Sprintf("none of %d hosts accepted a session with role %v", len(order), target), lastErr)
}

// errWrongRole is the cause recorded when a host's server has another role
// than the target wants: for the caller, no host with that role answered.
var errWrongRole = newError(ErrNoHosts, "server does not have the wanted role", nil)

// openOn opens a session on one host, running FnConnect callbacks, and
// checks its role when a target is set. The attempt is bounded by
// hasql.connect_timeout; one that runs out of it counts as a failure of the
// host, one whose caller gave up (ctx) does not.
func (c *Connector) openOn(ctx context.Context, h *host, key poolKey, target Target, strict bool) (*session, error) {
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
	if err = c.setPooler(ctx, ph); err != nil {
		ph.inner.Close()
		c.hostFailed(h, err)
		return nil, err
	}
	r := roleUnknown
	if target != TargetAny {
		if r, err = c.dialect.roleOf(ctx, ph); err != nil {
			ph.inner.Close()
			c.hostFailed(h, err)
			return nil, err
		}
		// A promotion under way is waited for on this session; the wait
		// is not the host's connect time.
		waited := time.Now()
		r = c.awaitPromotion(caller, h, ph, r, target, strict)
		start = start.Add(time.Since(waited))
		if !wants(target, r, strict) {
			ph.inner.Close()
			c.hosts.setRole(h.addr, r)
			c.kickDiscovery()
			return nil, fmt.Errorf("%w: %s is a %s", errWrongRole, h.addr, map[role]string{rolePrimary: "primary", roleStandby: "standby"}[r])
		}
	}
	if err := c.discoveryVeto(ctx, h, ph, r); err != nil {
		ph.inner.Close()
		c.kickDiscovery()
		if !errors.Is(err, errWrongRole) && caller.Err() == nil && c.dialect.connectRetryable(err) {
			c.hostFailed(h, err)
		}
		return nil, err
	}
	if target != TargetAny {
		ph.roleAt, ph.roleReport = time.Now().UnixNano(), c.dialect.roleReport(ph.inner)
	}
	if c.hosts.connected(h, time.Since(start), r) && c.everConnected.Load() {
		c.events.emit(Event{Kind: HostUp, Host: ph.host})
	}
	c.everConnected.Store(true)
	return ph, nil
}

// hostFailed blacklists a host after a failed connect and reports it down.
func (c *Connector) hostFailed(h *host, err error) {
	c.kickDiscovery()
	c.noteFailure()
	if c.hosts.failed(h, err, time.Now()) {
		c.events.emit(Event{Kind: HostDown, Host: h.addr, Err: err})
		// A host found down by a connect or a health check: its idle
		// sessions go (OCI FAN); the ones in use report their own loss
		// when their calls fail.
		n := c.pool.purgeIdleOfHost(h.addr)
		c.events.emit(Event{Kind: SessionsPurged, Host: h.addr, Sessions: n, Err: err})
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
	var slot wireSlot
	inner, err := ci.ic.Connect(withWireSlot(ctx, &slot))
	if err != nil {
		if len(ci.c.secrets) > 0 {
			return &redactedError{err, ci.c.secrets}
		}
		return err
	}
	ph := newSession(ci.c.pool, inner, ci.key)
	if ph.wire == nil && slot.conn != nil {
		ph.wire = slot.conn // the socket the driver dialled (wireDial)
	}
	ph.hostRef, ph.hostGen = ci.h, gen
	ph.host = ci.h.addr
	if ph.host == "" {
		ph.host = ci.c.dialect.remoteHost(inner, ci.c.host)
	}
	ph.stmtCacheSize = int(ci.c.stmtCacheSize.Load())
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

// closeSession closes a session's inner connection, running FnClose
// callbacks around it.
func (c *Connector) closeSession(ph *session) {
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

// HostState is a host's health as hasql sees it.
type HostState uint8

const (
	HostStateUp          HostState = iota // in use
	HostStateDown                         // failed its last check or connection
	HostStateBlacklisted                  // skipped until its blacklist time passes
)

// String returns the state's name: "up", "down" or "blacklisted".
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
