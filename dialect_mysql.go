package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
//	not ready:   1047 with SQLSTATE 08S01, Galera's "WSREP has not yet
//	             prepared node for application use" (a node outside the
//	             primary component; SELECT 1 still works there). Despite
//	             08S01 the connection is not lost and nothing ran.
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
	case 1047:
		if string(me.SQLState[:]) == "08S01" {
			return classNotReady
		}
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

// roleReport: the driver hears no role report.
func (mysqlDialect) roleReport(driver.Conn) string { return "" }

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

// mysqlReplication: positions are MariaDB GTID lists ("0-1-8,1-2-5"). After
// a write, @@last_gtid on the same session is the GTID of that write (empty when
// it wrote nothing to the binlog). A replica's applied position is
// @@gtid_slave_pos; MASTER_GTID_WAIT waits on the server, one round trip
// (on a primary it waits on gtid_slave_pos and times out, so it is asked of
// replicas only). Durability is a replica's MASTER_GTID_WAIT too: the
// primary cannot tell what its replicas have.
var mysqlReplication = &replication{
	writePos:   "select @@last_gtid",
	primaryPos: "select @@global.gtid_binlog_pos",
	replayPos:  "select @@global.gtid_slave_pos",
	waitReplay: "select master_gtid_wait(?, ?)",
	reached: func(v driver.Value) bool {
		switch n := v.(type) {
		case int64:
			return n == 0
		case []byte:
			return string(n) == "0"
		case string:
			return n == "0"
		}
		return false
	},
	atLeast: func(have, want string) (bool, error) {
		h, err := parseGTIDs(have)
		if err != nil {
			return false, err
		}
		w, err := parseGTIDs(want)
		if err != nil {
			return false, err
		}
		for d, x := range w {
			if h[d].seq < x.seq {
				return false, nil
			}
		}
		return true, nil
	},
	merge: func(a, b string) string {
		x, errA := parseGTIDs(a)
		y, errB := parseGTIDs(b)
		switch {
		case errA != nil:
			return b
		case errB != nil:
			return a
		}
		for d, g := range y {
			if g.seq > x[d].seq {
				x[d] = g
			}
		}
		return formatGTIDs(x)
	},
}

func (mysqlDialect) replication() *replication { return mysqlReplication }

// gtid is one domain's part of a MariaDB GTID list: server id and sequence.
type gtid struct{ server, seq uint64 }

// parseGTIDs parses a MariaDB GTID list, "domain-server-seq" items separated
// by commas, into the highest sequence per domain.
func parseGTIDs(s string) (map[uint64]gtid, error) {
	out := make(map[uint64]gtid)
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		f := strings.Split(item, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("hasql: %q is not a MariaDB GTID list", s)
		}
		var n [3]uint64
		for i := range f {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("hasql: %q is not a MariaDB GTID list", s)
			}
			n[i] = v
		}
		if g := (gtid{n[1], n[2]}); g.seq >= out[n[0]].seq {
			out[n[0]] = g
		}
	}
	return out, nil
}

// formatGTIDs is parseGTIDs' inverse, domains in increasing order.
func formatGTIDs(m map[uint64]gtid) string {
	ds := make([]uint64, 0, len(m))
	for d := range m {
		ds = append(ds, d)
	}
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d-%d", d, m[d].server, m[d].seq)
	}
	return b.String()
}

// The commit-outcome guard on MySQL/MariaDB (see txguard.go). The record is
// one extra round trip before COMMIT (go-sql-driver/mysql sends one
// statement per round trip unless multiStatements is on, which hasql does
// not turn on behind the application's back).

func (mysqlDialect) quoteTable(name string) string { return quoteIdents(name, "`") }

func (mysqlDialect) guardDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (id CHAR(32) CHARACTER SET ascii NOT NULL PRIMARY KEY, tomb BOOLEAN NOT NULL DEFAULT FALSE, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
}

func (mysqlDialect) guardProbe(table string) string { return "SELECT 1 FROM " + table + " LIMIT 0" }

// guardCommit writes the record, then commits with the id in a comment, so
// that the session still running it can be found in the process list. Like
// go-sql-driver/mysql's own Commit, it does not heed the context.
func (mysqlDialect) guardCommit(ctx context.Context, inner driver.Conn, itx driver.Tx, _ bool, table, id string) (sent bool, err error) {
	ex, ok := inner.(driver.ExecerContext)
	if !ok {
		return true, itx.Commit()
	}
	ctx = context.WithoutCancel(ctx)
	if _, err := ex.ExecContext(ctx, "INSERT INTO "+table+" (id) VALUES ('"+id+"')", nil); err != nil {
		return false, err
	}
	_, err = ex.ExecContext(ctx, "COMMIT /* hasql.txguard "+id+" */", nil)
	return true, err
}

func (mysqlDialect) guardEndOld() (string, func(int64) string) {
	return "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INSTR(INFO, ?) > 0",
		func(id int64) string { return "KILL " + strconv.FormatInt(id, 10) }
}

func (mysqlDialect) guardResolve(table string) []string {
	return []string{
		"INSERT INTO " + table + " (id, tomb) VALUES (?, TRUE) ON DUPLICATE KEY UPDATE tomb = tomb",
		"SELECT tomb FROM " + table + " WHERE id = ?",
	}
}

func (mysqlDialect) guardPurge(table string) string {
	return "DELETE FROM " + table + " WHERE at < NOW(6) - INTERVAL ? SECOND LIMIT ?"
}
