package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Importing the three supported drivers registers "pgx", "mysql" and
// "sqlmock", so that sql.Open("hasql", "pgx:...") works with hasql as the
// only import.
var _ = sqlmock.AnyArg

// dialect is hasql's per-driver knowledge: DSN form, error classification and
// how a driver reports a dead connection. Everything else is driver-agnostic.
type dialect uint8

const (
	dialectGeneric dialect = iota
	dialectPgx
	dialectMySQL
	dialectSQLMock
)

func (d dialect) String() string {
	return [...]string{"generic", "pgx", "mysql", "sqlmock"}[d]
}

// dialectOf recognises an inner driver by its type, or by the name it was
// registered under when its type is not exported (sqlmock).
func dialectOf(name string, d driver.Driver) dialect {
	switch d.(type) {
	case *stdlib.Driver:
		return dialectPgx
	case *mysql.MySQLDriver, mysql.MySQLDriver:
		return dialectMySQL
	}
	if d == nil {
		// Not looked up yet: go by the names the drivers register.
		switch name {
		case "pgx", "pgx/v5":
			return dialectPgx
		case "mysql":
			return dialectMySQL
		}
	}
	if name == "sqlmock" || strings.HasPrefix(fmt.Sprintf("%T", d), "*sqlmock.") {
		return dialectSQLMock
	}
	return dialectGeneric
}

// connDead reports whether err shows that the connection it came from can no
// longer be used. Context errors never do: the caller gave up, the server
// did not go away (the driver closes the connection itself where it must,
// and alive notices that).
func (d dialect) connDead(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	switch d {
	case dialectPgx:
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Severity == "FATAL" || pe.Severity == "PANIC" ||
				strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
		}
		var ce *pgconn.ConnectError
		return errors.As(err, &ce) || pgconn.SafeToRetry(err)
	case dialectMySQL:
		if errors.Is(err, mysql.ErrInvalidConn) {
			return true
		}
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			switch me.Number {
			case 1053, 1077, 1079, 1080, 1152, 1153, 1154, 1156, 1158, 1159, 1160, 1161, 1927, 4031:
				return true
			}
		}
	}
	return false
}

// alive asks the inner connection, where its driver can tell without a round
// trip, whether it is still usable. It is consulted when a session is
// released, so that a connection the driver closed itself is never pooled.
func (ph *session) alive() bool {
	if ph.pgxConn != nil {
		return !ph.pgxConn.Conn().IsClosed()
	}
	if ph.validator != nil {
		return ph.validator.IsValid()
	}
	return true
}

// remoteHost returns the host:port a new inner connection reached, where the
// driver exposes it, else fallback (the DSN's address).
func (d dialect) remoteHost(inner driver.Conn, fallback string) string {
	if c, ok := inner.(*stdlib.Conn); ok {
		if nc := c.Conn().PgConn().Conn(); nc != nil && nc.RemoteAddr() != nil {
			return nc.RemoteAddr().String()
		}
	}
	return fallback
}

// staleStmt reports whether err says a prepared statement no longer matches
// the schema or no longer exists on the server. Such an error proves the
// statement did not run, so preparing it again and running it once more is
// safe.
func (d dialect) staleStmt(err error) bool {
	switch d {
	case dialectPgx:
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code == "26000" || (pe.Code == "0A000" && strings.Contains(pe.Message, "cached plan must not change result type"))
		}
	case dialectMySQL:
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			return me.Number == 1243 || me.Number == 1615
		}
	}
	return false
}

// tooManyStmts reports whether err is the server's limit on prepared
// statements (MariaDB's max_prepared_stmt_count).
func (d dialect) tooManyStmts(err error) bool {
	var me *mysql.MySQLError
	return d == dialectMySQL && errors.As(err, &me) && me.Number == 1461
}

// withUser returns the inner DSN with its credentials replaced, for
// per-user sessions (WithUser).
func (d dialect) withUser(dsn, user, password string) (string, error) {
	switch d {
	case dialectMySQL:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", fmt.Errorf("hasql: WithUser: the inner DSN does not parse")
		}
		cfg.User, cfg.Passwd = user, password
		return cfg.FormatDSN(), nil
	case dialectPgx:
		if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
			// Query parameters override the URL's user information in pgx.
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			return dsn + sep + "user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(password), nil
		}
		// In the key=value form a later key wins.
		return dsn + " user=" + kvQuote(user) + " password=" + kvQuote(password), nil
	}
	return "", fmt.Errorf("hasql: WithUser is not supported for %v inner drivers (it needs to put credentials into the DSN)", d)
}

// kvQuote quotes a libpq key=value value.
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// notSent reports whether err proves the work never reached the server, so
// running it again cannot run it twice.
func (d dialect) notSent(err error) bool {
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	switch d {
	case dialectPgx:
		return pgconn.SafeToRetry(err)
	case dialectMySQL:
		// mysql.ErrInvalidConn means the command was sent: unknown outcome.
		return false
	}
	return false
}

// wrongRole reports whether err says the server is read-only or a standby,
// so the work did not run and belongs on another server.
func (d dialect) wrongRole(err error) bool {
	switch d {
	case dialectPgx:
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "25006"
	case dialectMySQL:
		var me *mysql.MySQLError
		return errors.As(err, &me) && (me.Number == 1290 || me.Number == 1792 || me.Number == 1836)
	}
	return false
}

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
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"), pe.Code == "3D000", pe.Code == "42501":
			return false
		}
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1049, 1698, 1227:
			return false
		}
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	return d.connDead(err)
}
