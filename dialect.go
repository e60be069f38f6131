package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
)

// dialect is hasql's knowledge of the inner driver and its server: the forms
// of its DSN and how to point one at a host or give it credentials, what its
// errors mean, how to ask a server its role, and what a new connection of
// it can tell without a round trip. It is the only place that knows which
// driver hasql wraps; everything else asks the dialect.
//
// A dialect is a small comparable value, chosen once per Connector by
// dialectOf. Its methods hold the logic every driver shares (context errors,
// driver.ErrBadConn, io.EOF, net.Error) and defer to the driverDialect for the
// rest. The zero dialect is the generic one.
//
// Later knowledge about the server belongs here too, as methods of
// driverDialect beside roleQuery: replication lag and the write and replay
// positions used for read-your-writes routing (PostgreSQL LSNs, MariaDB
// GTIDs), the statements the commit-outcome guard runs, and server states
// such as a Galera node that is not ready, as further errClass bits; so do
// quirks of a pooler between hasql and the server.
//
// Code outside the dialect files asks a dialect's methods and never compares
// dialects; the dialect values below are for dialectOf and tests.
type dialect struct{ impl driverDialect }

// The dialects hasql has. sqlmock is the generic dialect under its own name:
// it is recognised by its registered name and type name, so that the root
// package does not import go-sqlmock (an application that uses the mock
// imports it, which registers "sqlmock").
var (
	dialectGeneric = dialect{genericDialect{}}
	dialectSQLMock = dialect{genericDialect{mock: true}}
	dialectPgx     = dialect{pgxDialect{}}
	dialectMySQL   = dialect{mysqlDialect{}}
)

// knownDialects are asked in order which of them an inner driver is;
// dialectGeneric takes any driver none of them recognises.
var knownDialects = [...]driverDialect{pgxDialect{}, mysqlDialect{}, genericDialect{mock: true}}

// driverDialect is what one inner driver knows. Its methods see only errors
// and DSNs of their own driver's making where they can tell (an error of
// another driver's type yields no class); dialect adds the shared knowledge.
type driverDialect interface {
	// name names the dialect in messages.
	name() string

	// recognises reports whether the inner driver registered as name is this
	// dialect's. d is nil before the driver has been looked up: the name
	// alone decides then.
	recognises(name string, d driver.Driver) bool

	// form tells where the parameters of an inner DSN are.
	form(inner string) dsnForm

	// checkDSN reports a DSN the driver cannot use and would fail on later
	// in a worse way than an error (pgx's parser panics on some); nil where
	// the driver's own connect will report any problem.
	checkDSN(dsn string) error

	// host returns the host:port a DSN points at, or "".
	host(dsn string) string

	// hosts lists the hosts of a DSN that names several (pgx's "host=a,b"),
	// in order, or nil.
	hosts(dsn string) []string

	// pointAt returns the DSN with its address replaced by addr, a valid
	// host:port. errUnsupported: the driver's DSN cannot be pointed
	// elsewhere.
	pointAt(dsn, addr string) (string, error)

	// withUser returns the DSN with its credentials replaced.
	// errUnsupported: the driver's DSN cannot carry them.
	withUser(dsn, user, password string) (string, error)

	// classify returns the classes of the driver's own error values found
	// in err's chain (see errClass); dialect.classify adds the shared ones.
	classify(err error) errClass

	// connectVerdict judges a failed connect by the driver's own error
	// values: retry reports whether it may succeed later or on another
	// host; known is false when err holds none of them.
	connectVerdict(err error) (retry, known bool)

	// startingUp reports whether a failed connect is the server saying it
	// is starting up (it answers, and will accept soon): the outage prober
	// then retries sooner (see connectPhase).
	startingUp(err error) bool

	// watchAddr returns the TCP host:port a connect with dsn dials, exactly
	// as the driver dials it, for the outage prober's port watch; "" when
	// the driver would dial something else (a Unix socket, several hosts of
	// its own) or the dialect cannot tell.
	watchAddr(dsn string) string

	// roleQuery is a query whose one row and column says whether the server
	// is a standby or read-only (true, non-zero, "t") or takes writes; ""
	// when the dialect knows none.
	roleQuery() string

	// roleReport returns what the inner connection last heard the server
	// report of its role on its own, with no round trip (PostgreSQL 14+:
	// the in_hot_standby parameter, sent when a standby is promoted with
	// the next statement's answer); "" when the driver hears nothing of
	// the kind. A change of it makes the role worth asking again.
	roleReport(inner driver.Conn) string

	// remoteAddr returns the host:port a new inner connection reached, or
	// "" when the driver does not say.
	remoteAddr(inner driver.Conn) string

	// traits works out once, when a session opens, what its inner
	// connection can tell or needs.
	traits(inner driver.Conn) sessionTraits

	// stmtErrAbortsTx reports whether a failed statement inside a
	// transaction aborts the transaction on the server (PostgreSQL: every
	// later statement fails until ROLLBACK).
	stmtErrAbortsTx() bool

	// replication is what the dialect knows of replication positions, for
	// reads on standbys, lag and durability (see replication); nil when it
	// knows none.
	replication() *replication
}

// errUnsupported is what a driverDialect's pointAt and withUser return for a
// DSN form they cannot change; dialect turns it into a message that names the
// dialect.
var errUnsupported = errors.New("not supported by this dialect")

// errClass is what a dialect concludes from a driver error; the bits combine.
// They are facts the error proves, not decisions: what becomes of the call
// (run again, rebind, fail with a LostError) is the call pipeline's to decide
// from them. A context error never carries classDead.
type errClass uint8

const (
	classDead         errClass = 1 << iota // the connection can no longer be used
	classNotSent                           // the work certainly did not reach the server (safe to run again)
	classStaleStmt                         // a prepared statement is stale or gone; proves the work did not run
	classWrongRole                         // the server refused because of its role (read-only/standby): nothing ran
	classTxConflict                        // serialization failure or deadlock: the server rolled the transaction back (PG 40001, 40P01; MySQL/MariaDB 1213, incl. Galera certification failures)
	classTooManyStmts                      // the server's prepared-statement limit (MariaDB 1461)
	classNotReady                          // the server is up but serves no work now (a Galera node outside the primary component: 1047/08S01): nothing ran, the connection is fine, the host is not usable
	classLockTimeout                       // a lock wait timed out (MySQL/MariaDB 1205): only the statement was rolled back (unless innodb_rollback_on_timeout); the transaction may succeed if run again
)

// sessionTraits is what a dialect knows about one inner connection. It is
// worked out when the session opens, so that the paths every call takes read
// fields instead of asking the dialect.
type sessionTraits struct {
	// live tells without a round trip whether the inner connection is still
	// usable (pgx's own closed flag, else the driver's driver.Validator);
	// nil when the driver cannot tell.
	live driver.Validator

	// wire is the connection's socket: pgx shows it; for
	// go-sql-driver/mysql hasql dials it itself (wireDial). Closing it from
	// any goroutine ends a call in flight on it at once, as a server gone
	// down would (MarkHostDown). nil when hasql cannot reach it.
	wire io.Closer

	// namesBySQL: the inner connection names prepared statements by their
	// SQL text and runs ad-hoc work with that text on such a statement
	// (pgx's stdlib connection).
	namesBySQL bool

	// keepStmtsAtClose: closing the connection frees its statements on the
	// server, so hasql does not close them one by one first (for pgx each
	// close would be a round trip for nothing). Otherwise statements are
	// closed before their connection, as database/sql does (a driver may
	// hold resources per statement; go-sqlmock checks WillBeClosed).
	keepStmtsAtClose bool
}

func (d dialect) get() driverDialect {
	if d.impl == nil {
		return genericDialect{}
	}
	return d.impl
}

func (d dialect) String() string { return d.get().name() }

// dialectOf recognises an inner driver by its type, or by the name it was
// registered under when d is nil (not looked up yet) or its type is not
// exported (go-sqlmock).
func dialectOf(name string, d driver.Driver) dialect {
	for _, k := range knownDialects {
		if k.recognises(name, d) {
			return dialect{k}
		}
	}
	return dialectGeneric
}

// classify returns what err says about the connection it came from and the
// work that failed. Context errors never make a connection dead: the caller
// gave up, the server did not go away (the driver closes the connection
// itself where it must, and the session's liveness check notices that).
func (d dialect) classify(err error) errClass {
	if err == nil {
		return 0
	}
	c := d.get().classify(err)
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql's contract: a driver returns ErrBadConn only when
		// nothing was sent.
		c |= classDead | classNotSent
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c |= classDead
	} else if ne := net.Error(nil); errors.As(err, &ne) {
		c |= classDead
	}
	if c&classDead != 0 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		c &^= classDead
	}
	return c
}

// connDead reports whether err shows that the connection it came from can no
// longer be used.
func (d dialect) connDead(err error) bool { return d.classify(err)&classDead != 0 }

// notSent reports whether err proves the work never reached the server, so
// running it again cannot run it twice.
func (d dialect) notSent(err error) bool { return d.classify(err)&classNotSent != 0 }

// staleStmt reports whether err says a prepared statement no longer matches
// the schema or no longer exists on the server. Such an error proves the
// statement did not run, so preparing it again and running it once more is
// safe.
func (d dialect) staleStmt(err error) bool { return d.classify(err)&classStaleStmt != 0 }

// wrongRole reports whether err says the server is read-only or a standby,
// so the work did not run and belongs on another server.
func (d dialect) wrongRole(err error) bool { return d.classify(err)&classWrongRole != 0 }

// tooManyStmts reports whether err is the server's limit on prepared
// statements (MariaDB's max_prepared_stmt_count).
func (d dialect) tooManyStmts(err error) bool { return d.classify(err)&classTooManyStmts != 0 }

// stmtErrAbortsTx reports whether an error inside a transaction aborts the
// transaction on the server, so that nothing may be run again in it
// (PostgreSQL).
func (d dialect) stmtErrAbortsTx() bool { return d.get().stmtErrAbortsTx() }

// connectRetryable reports whether a failed connect may succeed later or on
// another host (the server is down, starting or overloaded), as opposed to a
// mistake in the configuration (bad password, unknown database) that no
// amount of retrying mends.
func (d dialect) connectRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, errWrongRole) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if retry, known := d.get().connectVerdict(err); known {
		return retry
	}
	return d.connDead(err)
}

// formOf tells where the parameters of an inner DSN are, from the dialect and
// the DSN's shape.
func formOf(d dialect, inner string) dsnForm { return d.get().form(inner) }

// dsnHost returns the host:port an inner DSN points at, or "".
func dsnHost(d dialect, dsn string) string { return d.get().host(dsn) }

// checkDSN reports an inner DSN the driver cannot use, where the driver
// would otherwise fail on it badly later (see driverDialect.checkDSN).
func (d dialect) checkDSN(dsn string) error { return d.get().checkDSN(dsn) }

// hosts lists the hosts of an inner DSN that names several, in order, or nil.
func (d dialect) hosts(dsn string) []string { return d.get().hosts(dsn) }

// pointAt returns the inner DSN with its address replaced by addr (host:port).
func (d dialect) pointAt(dsn, addr string) (string, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", newError(ErrDSN, fmt.Sprintf("host %s is not host:port", quoteValue(addr)), nil)
	}
	out, err := d.get().pointAt(dsn, addr)
	if errors.Is(err, errUnsupported) {
		return "", newError(ErrDSN, fmt.Sprintf("hasql.hosts is not supported for %v inner drivers (hasql cannot point their DSN at a host)", d), nil)
	}
	return out, err
}

// withUser returns the inner DSN with its credentials replaced, for
// per-user sessions (WithUser).
func (d dialect) withUser(dsn, user, password string) (string, error) {
	out, err := d.get().withUser(dsn, user, password)
	if errors.Is(err, errUnsupported) {
		return "", newError(ErrDSN, fmt.Sprintf("WithUser is not supported for %v inner drivers (it needs to put credentials into the DSN)", d), nil)
	}
	return out, err
}

// roleQuery is the query roleOf asks a new session's server its role with,
// or "" when the dialect knows none (see driverDialect.roleQuery).
func (d dialect) roleQuery() string { return d.get().roleQuery() }

// roleReport is the server's own report of its role on inner (see
// driverDialect.roleReport).
func (d dialect) roleReport(inner driver.Conn) string { return d.get().roleReport(inner) }

// replication returns the dialect's replication queries, or nil.
func (d dialect) replication() *replication { return d.get().replication() }

// remoteHost returns the host:port a new inner connection reached, where the
// driver exposes it, else fallback (the DSN's address).
func (d dialect) remoteHost(inner driver.Conn, fallback string) string {
	if a := d.get().remoteAddr(inner); a != "" {
		return a
	}
	return fallback
}

// sessionTraits works out what a new inner connection can tell or needs.
func (d dialect) sessionTraits(inner driver.Conn) sessionTraits { return d.get().traits(inner) }

// alive asks the inner connection, where its driver can tell without a round
// trip, whether it is still usable. It is consulted when a session is
// released, so that a connection the driver closed itself is never pooled.
func (ph *session) alive() bool {
	return ph.live == nil || ph.live.IsValid()
}

// connectorOpener is implemented by a driverDialect that opens its driver's
// connectors itself rather than through driver.DriverContext, to see more
// of each connection than the driver shows (its socket, see wireDial).
type connectorOpener interface {
	openConnector(dsn string) (driver.Connector, error)
}

// openConnector returns the inner driver's connector for dsn: the dialect's
// own way if it has one, else the driver's OpenConnector, else
// database/sql's adapter for drivers without driver.DriverContext.
func (d dialect) openConnector(drv driver.Driver, dsn string) (driver.Connector, error) {
	if o, ok := d.get().(connectorOpener); ok {
		return o.openConnector(dsn)
	}
	if dc, ok := drv.(driver.DriverContext); ok {
		return dc.OpenConnector(dsn)
	}
	return dsnConnector{d: drv, dsn: dsn}, nil
}

// wireSlot receives the socket a connect dialled (wireDial), for a driver
// that does not show it on the connection it returns.
type wireSlot struct{ conn io.Closer }

type wireSlotKey struct{}

// withWireSlot returns ctx carrying slot, for the connect made with it.
func withWireSlot(ctx context.Context, slot *wireSlot) context.Context {
	return context.WithValue(ctx, wireSlotKey{}, slot)
}

// wireDial dials as net.Dialer does and records the connection in the
// connect's wireSlot, if its context carries one.
func wireDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		if slot, ok := ctx.Value(wireSlotKey{}).(*wireSlot); ok {
			slot.conn = c
		}
	}
	return c, err
}
