package hasql

import (
	"database/sql/driver"
	"errors"

	"github.com/go-sql-driver/mysql"
)

// mysqlDialect is MySQL and MariaDB through go-sql-driver/mysql, registered
// as "mysql". Importing it registers the name, so
// sql.Open("hasql", "mysql:...") works with hasql as the only import.
type mysqlDialect struct{}

func (mysqlDialect) name() string { return "mysql" }

func (mysqlDialect) recognises(name string, d driver.Driver) bool {
	switch d.(type) {
	case *mysql.MySQLDriver, mysql.MySQLDriver:
		return true
	}
	return d == nil && name == "mysql"
}

// form: "user:pw@tcp(h)/db?a=1", parameters after the last '/'.
func (mysqlDialect) form(string) dsnForm { return formMySQL }

func (mysqlDialect) checkDSN(string) error { return nil }

func (mysqlDialect) host(dsn string) string {
	if cfg, err := mysql.ParseDSN(dsn); err == nil {
		return cfg.Addr
	}
	return ""
}

func (mysqlDialect) hosts(string) []string { return nil }

func (mysqlDialect) pointAt(dsn, addr string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", newError(ErrDSN, "the mysql DSN does not parse, so hasql.hosts cannot be applied", nil)
	}
	cfg.Net, cfg.Addr = "tcp", addr
	return cfg.FormatDSN(), nil
}

func (mysqlDialect) withUser(dsn, user, password string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", newError(ErrDSN, "WithUser: the inner DSN does not parse", nil)
	}
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN(), nil
}

// classify reads go-sql-driver/mysql's errors. mysql.ErrInvalidConn means
// the connection broke after the command was sent: dead, outcome unknown.
// Server errors (*mysql.MySQLError) by number:
//
//	dead:        1053 server shutdown, 1077/1079/1080 shutdown in progress,
//	             1152-1154, 1156, 1158-1161 network errors, 1927 connection
//	             killed, 4031 idle session closed by the server
//	stale:       1243 unknown prepared statement handler, 1615 prepared
//	             statement needs to be re-prepared
//	wrong role:  1290 --read-only, 1792 read-only transaction, 1836
//	             read-only mode
//	conflict:    1213 deadlock (InnoDB rolls the transaction back). 1205,
//	             lock wait timeout, is not one: InnoDB rolls back only the
//	             statement unless innodb_rollback_on_timeout is set.
//	too many:    1461 max_prepared_stmt_count reached
func (mysqlDialect) classify(err error) errClass {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return classDead
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return 0
	}
	switch me.Number {
	case 1053, 1077, 1079, 1080, 1152, 1153, 1154, 1156, 1158, 1159, 1160, 1161, 1927, 4031:
		return classDead
	case 1243, 1615:
		return classStaleStmt
	case 1290, 1792, 1836:
		return classWrongRole
	case 1213:
		// A deadlock, or Galera's certification failure, which it reports
		// as one: the transaction was rolled back.
		return classTxConflict
	case 1205:
		return classLockTimeout
	case 1461:
		return classTooManyStmts
	}
	return 0
}

// connectVerdict: a server's refusal is retryable unless it is about the
// configuration: 1044 no access to the database, 1045 access denied, 1049
// unknown database, 1698 access denied (auth plugin), 1227 missing privilege.
func (mysqlDialect) connectVerdict(err error) (retry, known bool) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1049, 1698, 1227:
			return false, true
		}
		return true, true
	}
	return false, false
}

// startingUp: MariaDB and MySQL do not listen until they accept
// connections; their refusals while shutting down are no reason to hurry.
func (mysqlDialect) startingUp(error) bool { return false }

// watchAddr: for the TCP nets the connector dials cfg.Addr with wireDial,
// as net.Dialer does (see openConnector).
func (mysqlDialect) watchAddr(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return ""
	}
	switch cfg.Net {
	case "tcp", "tcp4", "tcp6":
		return cfg.Addr
	}
	return ""
}

func (mysqlDialect) roleQuery() string { return "select @@global.read_only" }

func (mysqlDialect) remoteAddr(driver.Conn) string { return "" }

func (mysqlDialect) traits(inner driver.Conn) sessionTraits {
	var t sessionTraits
	t.live, _ = inner.(driver.Validator)
	return t
}

func (mysqlDialect) stmtErrAbortsTx() bool { return false }

// openConnector opens go-sql-driver/mysql's connector from the DSN as its
// OpenConnector does, with one addition: for plain TCP and Unix sockets the
// connector dials through wireDial, which dials exactly as the driver's
// default does and records the socket, so that MarkHostDown can close a
// session's connection under a call in flight (the driver keeps its socket
// to itself). A DSN whose net has a dial function registered with
// mysql.RegisterDialContext (other than tcp and unix) keeps it, and a
// connector built by the application with its own DialFunc is not touched.
func (mysqlDialect) openConnector(dsn string) (driver.Connector, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	switch cfg.Net {
	case "tcp", "tcp4", "tcp6", "unix":
		if cfg.DialFunc == nil {
			cfg.DialFunc = wireDial
		}
	}
	return mysql.NewConnector(cfg)
}
