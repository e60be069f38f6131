package hasql

import (
	"database/sql/driver"
	"fmt"
	"strings"
)

// genericDialect is any other driver: hasql knows only what database/sql's
// contract says (driver.ErrBadConn, driver.Validator) and what the shared
// classification in dialect.go reads from standard errors. Such a DSN cannot
// be pointed at another host or given other credentials.
//
// With mock set it is go-sqlmock, recognised by its registered name
// "sqlmock" or its driver's type name, so that hasql need not import it: an
// application's test that uses the mock imports go-sqlmock, which registers
// the name. Its DSNs are opaque names, never key=value lists.
type genericDialect struct{ mock bool }

func (g genericDialect) name() string {
	if g.mock {
		return "sqlmock"
	}
	return "generic"
}

func (g genericDialect) recognises(name string, d driver.Driver) bool {
	return g.mock && (name == "sqlmock" || strings.HasPrefix(fmt.Sprintf("%T", d), "*sqlmock."))
}

// form: the '?' form, or a libpq-style key=value list (lib/pq's
// "host=h dbname=d") where the DSN looks like one.
func (g genericDialect) form(inner string) dsnForm {
	if !g.mock && looksKeyValue(inner) {
		return formKeyValue
	}
	return formQuery
}

func (genericDialect) checkDSN(string) error                  { return nil }
func (genericDialect) host(string) string                     { return "" }
func (genericDialect) hosts(string) []string                  { return nil }
func (genericDialect) pointAt(string, string) (string, error) { return "", errUnsupported }

func (genericDialect) withUser(string, string, string) (string, error) {
	return "", errUnsupported
}

// classify: nothing beyond the shared classes.
func (genericDialect) classify(error) errClass { return 0 }

// connectVerdict: a driver hasql does not know may still hand up pgx's or
// go-sql-driver/mysql's errors (a wrapping driver, registered under a name
// of its own); their server's refusal is judged as theirs would be.
func (genericDialect) connectVerdict(err error) (retry, known bool) {
	if retry, known = (pgxDialect{}).connectVerdict(err); known {
		return retry, known
	}
	return mysqlDialect{}.connectVerdict(err)
}

// startingUp: as connectVerdict, a wrapped pgx error is judged as pgx's.
func (genericDialect) startingUp(err error) bool { return (pgxDialect{}).startingUp(err) }

// watchAddr: hasql does not know how an unknown driver dials.
func (genericDialect) watchAddr(string) string { return "" }

func (genericDialect) roleQuery() string { return "" }

func (genericDialect) remoteAddr(driver.Conn) string { return "" }

// roleReport: the driver hears no role report.
func (genericDialect) roleReport(driver.Conn) string { return "" }

func (genericDialect) traits(inner driver.Conn) sessionTraits {
	var t sessionTraits
	t.live, _ = inner.(driver.Validator)
	return t
}

func (genericDialect) stmtErrAbortsTx() bool { return false }

func (genericDialect) replication() *replication { return nil }
