package hasql

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgxDialect is PostgreSQL through pgx v5's database/sql driver (stdlib),
// registered as "pgx" and "pgx/v5". Importing stdlib registers both, so
// sql.Open("hasql", "pgx:...") works with hasql as the only import.
type pgxDialect struct{}

func (pgxDialect) name() string { return "pgx" }

func (pgxDialect) recognises(name string, d driver.Driver) bool {
	if _, ok := d.(*stdlib.Driver); ok {
		return true
	}
	return d == nil && (name == "pgx" || name == "pgx/v5")
}

// form: pgx takes a URL ("postgres://h/db?a=1") or libpq's key=value list.
func (pgxDialect) form(inner string) dsnForm {
	if isPgURL(inner) {
		return formQuery
	}
	return formKeyValue
}

func isPgURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// checkDSN: pgx parses its DSN on every connect; one its parser panics on
// must fail once, when the connector is made, not crash the program later.
func (pgxDialect) checkDSN(dsn string) error {
	if _, err := pgxParseConfig(dsn); errors.Is(err, errPgxPanic) {
		return err
	}
	return nil
}

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

func (pgxDialect) host(dsn string) string {
	if cfg, err := pgxParseConfig(dsn); err == nil {
		return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	}
	return ""
}

func (pgxDialect) hosts(dsn string) []string { return pgxHosts(dsn) }

// pgxHosts lists the hosts of a pgx multi-host DSN ("host=a,b" or
// "postgres://a:5432,b:5433/db"), in order; nil for a Unix socket.
func pgxHosts(dsn string) []string {
	cfg, err := pgxParseConfig(dsn)
	if err != nil || strings.HasPrefix(cfg.Host, "/") {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(h string, p uint16) {
		a := net.JoinHostPort(h, strconv.Itoa(int(p)))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	add(cfg.Host, cfg.Port)
	for _, f := range cfg.Fallbacks {
		add(f.Host, f.Port)
	}
	return out
}

// pointAt replaces a URL's host list, keeping its user information, or
// appends host and port to a key=value list, where a later key wins.
func (pgxDialect) pointAt(dsn, addr string) (string, error) {
	if isPgURL(dsn) {
		i := strings.Index(dsn, "://") + 3
		rest := dsn[i:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		auth := rest[:end]
		userinfo := ""
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			userinfo = auth[:at+1]
		}
		return dsn[:i] + userinfo + addr + rest[end:], nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", newError(ErrDSN, fmt.Sprintf("host %s is not host:port", quoteValue(addr)), nil)
	}
	return dsn + " host=" + kvQuote(host) + " port=" + port, nil
}

// withUser appends the credentials: in a URL, query parameters override
// the user information; in a key=value list a later key wins.
func (pgxDialect) withUser(dsn, user, password string) (string, error) {
	if isPgURL(dsn) {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(password), nil
	}
	return dsn + " user=" + kvQuote(user) + " password=" + kvQuote(password), nil
}

// kvQuote quotes a libpq key=value value.
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// classify reads pgx's errors. A server error (*pgconn.PgError) is judged by
// its SQLSTATE and severity: FATAL and PANIC end the session, class 08 is a
// connection exception and class 57P an operator intervention (shutdown,
// terminated backend, server starting up). Any other error pgconn marks as
// safe to retry was never sent, and a connection that reports it is closed.
func (pgxDialect) classify(err error) errClass {
	var c errClass
	if pgconn.SafeToRetry(err) {
		c |= classNotSent
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" ||
			strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") {
			c |= classDead
		}
		switch pe.Code {
		case "26000": // invalid_sql_statement_name: the prepared statement is gone
			c |= classStaleStmt
		case "0A000": // feature_not_supported, raised for a plan whose result type a DDL changed
			if strings.Contains(pe.Message, "cached plan must not change result type") {
				c |= classStaleStmt
			}
		case "25006": // read_only_sql_transaction: a standby, or a primary set read-only
			c |= classWrongRole
		case "40001", "40P01": // serialization_failure, deadlock_detected
			c |= classTxConflict
		}
		return c
	}
	var ce *pgconn.ConnectError
	if c&classNotSent != 0 || errors.As(err, &ce) {
		c |= classDead
	}
	return c
}

// connectVerdict: a server's refusal is retryable unless it is about the
// configuration: class 28 (authentication), 3D000 (no such database), 42501
// (no privilege to connect). A connect error without a server's answer is.
func (pgxDialect) connectVerdict(err error) (retry, known bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"), pe.Code == "3D000", pe.Code == "42501":
			return false, true
		}
		return true, true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true, true
	}
	return false, false
}

// startingUp: SQLSTATE 57P03 (cannot_connect_now) is the postmaster
// refusing while it starts up, recovers or is not yet consistent; it also
// says "shutting down", which is no reason to hurry.
func (pgxDialect) startingUp(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57P03" && !strings.Contains(pe.Message, "shutting down")
}

// watchAddr: pgx dials host:port over TCP unless the host is a Unix socket
// directory; a DSN whose fallbacks name other hosts is pgx's own host list.
func (pgxDialect) watchAddr(dsn string) string {
	cfg, err := pgxParseConfig(dsn)
	if err != nil || cfg.Host == "" || strings.HasPrefix(cfg.Host, "/") {
		return ""
	}
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host || f.Port != cfg.Port {
			return ""
		}
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// roleQuery: read-only by default counts as a standby, as libpq's
// target_session_attrs=read-write sees it: a primary switched to read-only
// (a switchover under way) takes no writes either.
func (pgxDialect) roleQuery() string {
	return "select pg_is_in_recovery() or current_setting('transaction_read_only') = 'on'"
}

func (pgxDialect) remoteAddr(inner driver.Conn) string {
	if c, ok := inner.(*stdlib.Conn); ok {
		if nc := c.Conn().PgConn().Conn(); nc != nil && nc.RemoteAddr() != nil {
			return nc.RemoteAddr().String()
		}
	}
	return ""
}

// traits: pgx's connection says itself whether it closed, names prepared
// statements by their SQL text, and frees them on the server when it closes.
func (pgxDialect) traits(inner driver.Conn) sessionTraits {
	t := sessionTraits{keepStmtsAtClose: true}
	if c, ok := inner.(*stdlib.Conn); ok {
		t.live, t.namesBySQL = pgxLive{c}, true
		if nc := c.Conn().PgConn().Conn(); nc != nil {
			t.wire = nc
		}
	} else {
		t.live, _ = inner.(driver.Validator)
	}
	return t
}

// stmtErrAbortsTx: PostgreSQL aborts a transaction at its first error.
func (pgxDialect) stmtErrAbortsTx() bool { return true }

// pgxLive is pgx's closed flag as a driver.Validator. One pointer wide, so
// storing it in an interface does not allocate.
type pgxLive struct{ c *stdlib.Conn }

func (l pgxLive) IsValid() bool { return !l.c.Conn().IsClosed() }
