package hasql

// Tests of the dialect seam without a server: which dialect an inner driver
// gets (dialectOf), the DSN knowledge of each dialect (formOf, dsnHost,
// hosts, pointAt, withUser, checkDSN), the error classes classify finds in
// real driver error values and the predicates over them, connectRetryable,
// and the session traits. The classification of errors provoked on real
// servers is in failover_integration_test.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	// The root package does not import go-sqlmock; its tests that open
	// "sqlmock:..." import it, as applications do.
	_ "github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// dtSafeToRetry is an error of the kind pgconn marks as never sent (pgconn's
// own such errors are unexported).
type dtSafeToRetry struct{}

func (dtSafeToRetry) Error() string     { return "dt: not sent" }
func (dtSafeToRetry) SafeToRetry() bool { return true }

// dtDriver is an inner driver hasql does not know.
type dtDriver struct{}

func (dtDriver) Open(string) (driver.Conn, error) { return nil, errors.New("dtDriver") }

func TestDialectOf(t *testing.T) {
	mockDB, err := sql.Open("sqlmock", "dialect_test")
	if err != nil {
		t.Fatal(err)
	}
	mockDrv := mockDB.Driver()
	mockDB.Close()
	for _, tc := range []struct {
		name string
		d    driver.Driver
		want dialect
	}{
		{"pgx", nil, dialectPgx},
		{"pgx/v5", nil, dialectPgx},
		{"mysql", nil, dialectMySQL},
		{"sqlmock", nil, dialectSQLMock},
		{"sqlite", nil, dialectGeneric},
		{"custom", &stdlib.Driver{}, dialectPgx},
		{"custom", &mysql.MySQLDriver{}, dialectMySQL},
		{"custom", mysql.MySQLDriver{}, dialectMySQL},
		{"custom", mockDrv, dialectSQLMock},
		{"sqlmock", dtDriver{}, dialectSQLMock},
		// Once the driver is known its type decides, not the name.
		{"pgx", dtDriver{}, dialectGeneric},
		{"mysql", dtDriver{}, dialectGeneric},
		{"custom", dtDriver{}, dialectGeneric},
	} {
		if got := dialectOf(tc.name, tc.d); got != tc.want {
			t.Errorf("dialectOf(%q, %T) = %v, want %v", tc.name, tc.d, got, tc.want)
		}
	}
	for d, want := range map[dialect]string{dialectPgx: "pgx", dialectMySQL: "mysql", dialectGeneric: "generic", dialectSQLMock: "sqlmock", {}: "generic"} {
		if got := d.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestDialectClassify pins each class bit classify reports, one row per
// error value and dialect.
func TestDialectClassify(t *testing.T) {
	pg := func(sev, code, msg string) error { return &pgconn.PgError{Severity: sev, Code: code, Message: msg} }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "m"} }
	wrap := func(err error) error { return fmt.Errorf("layer: %w", err) }
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	dnsErr := &net.DNSError{Err: "no such host", Name: "db.invalid"}
	_, connErr := pgconn.Connect(context.Background(), "host=127.0.0.1 port=1 user=u dbname=d connect_timeout=5 sslmode=disable")
	var ce *pgconn.ConnectError
	if !errors.As(connErr, &ce) {
		t.Fatalf("connect to port 1: %v, want a *pgconn.ConnectError", connErr)
	}
	const (
		dead     = classDead
		notSent  = classNotSent
		stale    = classStaleStmt
		role     = classWrongRole
		conflict = classTxConflict
		tooMany  = classTooManyStmts
	)
	all := []dialect{dialectPgx, dialectMySQL, dialectGeneric, dialectSQLMock}
	type row struct {
		name string
		ds   []dialect
		err  error
		want errClass
	}
	rows := []row{
		// Shared: what every driver's errors mean.
		{"nil", all, nil, 0},
		{"plain error", all, errors.New("boom"), 0},
		{"bad conn", all, driver.ErrBadConn, dead | notSent},
		{"wrapped bad conn", all, wrap(driver.ErrBadConn), dead | notSent},
		{"EOF", all, io.EOF, dead},
		{"unexpected EOF", all, wrap(io.ErrUnexpectedEOF), dead},
		{"net.OpError", all, opErr, dead},
		{"net.DNSError", all, dnsErr, dead},
		{"ctx canceled", all, context.Canceled, 0},
		{"ctx deadline", all, context.DeadlineExceeded, 0},
		{"ctx canceled + EOF", all, errors.Join(context.Canceled, io.ErrUnexpectedEOF), 0},
		{"ctx deadline + net", all, errors.Join(context.DeadlineExceeded, opErr), 0},
		// The caller gave up, but ErrBadConn still proves nothing was sent.
		{"ctx canceled + bad conn", all, errors.Join(context.Canceled, driver.ErrBadConn), notSent},

		// pgx: SQLSTATE and severity.
		{"pg 57P01 FATAL admin_shutdown", []dialect{dialectPgx}, pg("FATAL", "57P01", "m"), dead},
		{"pg 57P02 crash_shutdown", []dialect{dialectPgx}, pg("FATAL", "57P02", "m"), dead},
		{"pg 57P03 cannot_connect_now", []dialect{dialectPgx}, pg("FATAL", "57P03", "m"), dead},
		{"pg 08006 connection_failure", []dialect{dialectPgx}, pg("ERROR", "08006", "m"), dead},
		{"pg 08P01 protocol_violation", []dialect{dialectPgx}, pg("ERROR", "08P01", "m"), dead},
		{"pg PANIC", []dialect{dialectPgx}, pg("PANIC", "XX000", "m"), dead},
		{"pg FATAL 28P01 bad password", []dialect{dialectPgx}, pg("FATAL", "28P01", "m"), dead},
		{"pg 57014 query_canceled", []dialect{dialectPgx}, pg("ERROR", "57014", "m"), 0},
		{"pg 26000 no prepared statement", []dialect{dialectPgx}, pg("ERROR", "26000", "m"), stale},
		{"pg 0A000 cached plan", []dialect{dialectPgx}, pg("ERROR", "0A000", "cached plan must not change result type"), stale},
		{"pg 0A000 other", []dialect{dialectPgx}, pg("ERROR", "0A000", "not supported"), 0},
		{"pg 25006 read-only", []dialect{dialectPgx}, wrap(pg("ERROR", "25006", "m")), role},
		{"pg 40001 serialization", []dialect{dialectPgx}, pg("ERROR", "40001", "m"), conflict},
		{"pg 40P01 deadlock", []dialect{dialectPgx}, pg("ERROR", "40P01", "m"), conflict},
		{"pg 23505 unique", []dialect{dialectPgx}, pg("ERROR", "23505", "m"), 0},
		{"pg connect error", []dialect{dialectPgx}, connErr, dead},
		{"pg safe to retry", []dialect{dialectPgx}, wrap(dtSafeToRetry{}), dead | notSent},
		{"pg safe to retry + PgError", []dialect{dialectPgx}, errors.Join(dtSafeToRetry{}, pg("ERROR", "23505", "m")), notSent},
		// Other dialects do not read pgx's errors.
		{"pg 57P01 elsewhere", []dialect{dialectMySQL, dialectGeneric, dialectSQLMock}, pg("FATAL", "57P01", "m"), 0},
		{"pg 26000 elsewhere", []dialect{dialectMySQL, dialectGeneric}, pg("ERROR", "26000", "m"), 0},
		{"pg 40001 elsewhere", []dialect{dialectMySQL, dialectGeneric}, pg("ERROR", "40001", "m"), 0},
		{"safe to retry elsewhere", []dialect{dialectMySQL, dialectGeneric}, dtSafeToRetry{}, 0},

		// mysql: error numbers.
		{"my invalid conn", []dialect{dialectMySQL}, mysql.ErrInvalidConn, dead},
		{"my 1053 shutdown", []dialect{dialectMySQL}, my(1053), dead},
		{"my 1077 shutdown", []dialect{dialectMySQL}, my(1077), dead},
		{"my 1079 shutdown complete", []dialect{dialectMySQL}, my(1079), dead},
		{"my 1080 forcing close", []dialect{dialectMySQL}, my(1080), dead},
		{"my 1152 aborted", []dialect{dialectMySQL}, my(1152), dead},
		{"my 1153 packet too large", []dialect{dialectMySQL}, my(1153), dead},
		{"my 1154 read error", []dialect{dialectMySQL}, my(1154), dead},
		{"my 1156 out of order", []dialect{dialectMySQL}, my(1156), dead},
		{"my 1158 net read", []dialect{dialectMySQL}, my(1158), dead},
		{"my 1159 net read timeout", []dialect{dialectMySQL}, my(1159), dead},
		{"my 1160 net write", []dialect{dialectMySQL}, my(1160), dead},
		{"my 1161 net write timeout", []dialect{dialectMySQL}, my(1161), dead},
		{"my 1927 killed", []dialect{dialectMySQL}, wrap(my(1927)), dead},
		{"my 4031 idle timeout", []dialect{dialectMySQL}, my(4031), dead},
		{"my 1243 unknown stmt", []dialect{dialectMySQL}, my(1243), stale},
		{"my 1615 re-prepare", []dialect{dialectMySQL}, my(1615), stale},
		{"my 1290 read-only", []dialect{dialectMySQL}, my(1290), role},
		{"my 1792 ro tx", []dialect{dialectMySQL}, my(1792), role},
		{"my 1836 read-only mode", []dialect{dialectMySQL}, my(1836), role},
		{"my 1213 deadlock", []dialect{dialectMySQL}, my(1213), conflict},
		// InnoDB rolls back only the statement on a lock wait timeout.
		{"my 1205 lock wait timeout", []dialect{dialectMySQL}, my(1205), classLockTimeout},
		{"my 1461 too many stmts", []dialect{dialectMySQL}, my(1461), tooMany},
		{"my 1062 dup", []dialect{dialectMySQL}, my(1062), 0},
		{"my 1045 denied", []dialect{dialectMySQL}, my(1045), 0},
		// Other dialects do not read mysql's errors.
		{"my invalid conn elsewhere", []dialect{dialectPgx, dialectGeneric, dialectSQLMock}, mysql.ErrInvalidConn, 0},
		{"my 1927 elsewhere", []dialect{dialectPgx, dialectGeneric}, my(1927), 0},
		{"my 1461 elsewhere", []dialect{dialectPgx, dialectGeneric}, my(1461), 0},
		{"my 1213 elsewhere", []dialect{dialectPgx, dialectGeneric}, my(1213), 0},
	}
	for _, r := range rows {
		for _, d := range r.ds {
			got := d.classify(r.err)
			if got != r.want {
				t.Errorf("%s: %v.classify = %s, want %s", r.name, d, dtClass(got), dtClass(r.want))
			}
			// The predicates are the bits, one each.
			for _, p := range []struct {
				name string
				f    func(error) bool
				bit  errClass
			}{
				{"connDead", d.connDead, dead}, {"notSent", d.notSent, notSent}, {"staleStmt", d.staleStmt, stale},
				{"wrongRole", d.wrongRole, role}, {"tooManyStmts", d.tooManyStmts, tooMany},
			} {
				if p.f(r.err) != (r.want&p.bit != 0) {
					t.Errorf("%s: %v.%s = %v", r.name, d, p.name, p.f(r.err))
				}
			}
		}
	}
}

// dtClass names the bits of c.
func dtClass(c errClass) string {
	var s []string
	for i, n := range []string{"dead", "notSent", "staleStmt", "wrongRole", "txConflict", "tooManyStmts"} {
		if c&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if c>>6 != 0 {
		s = append(s, fmt.Sprintf("%#x", uint8(c>>6<<6)))
	}
	return "{" + strings.Join(s, "|") + "}"
}

func TestDialectConnectRetryable(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code, Message: "m"} }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "m"} }
	for _, tc := range []struct {
		name string
		d    dialect
		err  error
		want bool
	}{
		{"nil", dialectPgx, nil, false},
		{"canceled", dialectGeneric, context.Canceled, false},
		{"deadline", dialectGeneric, context.DeadlineExceeded, true},
		{"wrong role", dialectGeneric, fmt.Errorf("x: %w", errWrongRole), true},
		{"plain", dialectGeneric, errors.New("x"), false},
		{"bad conn", dialectGeneric, driver.ErrBadConn, true},
		{"pg 28000", dialectPgx, pg("28000"), false},
		{"pg 28P01", dialectPgx, pg("28P01"), false},
		{"pg 3D000", dialectPgx, pg("3D000"), false},
		{"pg 42501", dialectPgx, pg("42501"), false},
		{"pg 53300 too many connections", dialectPgx, pg("53300"), true},
		{"pg 57P03 starting", dialectPgx, pg("57P03"), true},
		{"my 1044", dialectMySQL, my(1044), false},
		{"my 1045", dialectMySQL, my(1045), false},
		{"my 1049", dialectMySQL, my(1049), false},
		{"my 1698", dialectMySQL, my(1698), false},
		{"my 1227", dialectMySQL, my(1227), false},
		{"my 1040 too many connections", dialectMySQL, my(1040), true},
		// A driver hasql does not know may wrap pgx or mysql: their
		// servers' refusals are judged as theirs.
		{"generic pg 28P01", dialectGeneric, pg("28P01"), false},
		{"generic pg 53300", dialectGeneric, pg("53300"), true},
		{"generic my 1045", dialectGeneric, my(1045), false},
		{"generic my 1040", dialectGeneric, my(1040), true},
	} {
		if got := tc.d.connectRetryable(tc.err); got != tc.want {
			t.Errorf("%s: %v.connectRetryable = %v, want %v", tc.name, tc.d, got, tc.want)
		}
	}
}

func TestDialectDSNHost(t *testing.T) {
	for _, tc := range []struct {
		d         dialect
		dsn, want string
	}{
		{dialectPgx, "postgres://u:pw@db1:5433/shop", "db1:5433"},
		{dialectPgx, "host=db2 port=6000 dbname=x", "db2:6000"},
		{dialectPgx, "host=::1 dbname=x", "[::1]:5432"},
		{dialectPgx, `host=h password='x\`, ""}, // pgx's parser panics on it
		{dialectMySQL, "root@tcp(127.0.0.1:3307)/test", "127.0.0.1:3307"},
		{dialectMySQL, "not a dsn", ""},
		{dialectGeneric, "host=h port=1", ""},
		{dialectSQLMock, "mock", ""},
	} {
		if got := dsnHost(tc.d, tc.dsn); got != tc.want {
			t.Errorf("dsnHost(%v, %q) = %q, want %q", tc.d, tc.dsn, got, tc.want)
		}
	}
	if got := dialectMySQL.hosts("root@tcp(a:1)/test"); got != nil {
		t.Errorf("mysql hosts = %q, want nil", got)
	}
	if got := dialectPgx.hosts("host=/tmp dbname=x"); got != nil {
		t.Errorf("pgx hosts of a Unix socket = %q, want nil", got)
	}
}

func TestDialectPointAtErrors(t *testing.T) {
	for _, tc := range []struct {
		d         dialect
		dsn, addr string
		want      string
	}{
		{dialectPgx, "host=a", "no-port", `hasql: host "no-port" is not host:port`},
		{dialectMySQL, "root@tcp(a:1)/test", "no-port", `hasql: host "no-port" is not host:port`},
		{dialectMySQL, "(((", "h:1", "hasql: the mysql DSN does not parse, so hasql.hosts cannot be applied"},
		{dialectGeneric, "x.db", "h:1", "hasql: hasql.hosts is not supported for generic inner drivers (hasql cannot point their DSN at a host)"},
		{dialectSQLMock, "m", "h:1", "hasql: hasql.hosts is not supported for sqlmock inner drivers (hasql cannot point their DSN at a host)"},
	} {
		_, err := tc.d.pointAt(tc.dsn, tc.addr)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrDSN) {
			t.Errorf("%v.pointAt(%q, %q) = %v, want %q wrapping ErrDSN", tc.d, tc.dsn, tc.addr, err, tc.want)
		}
	}
}

func TestDialectWithUser(t *testing.T) {
	for _, tc := range []struct {
		d             dialect
		dsn, user, pw string
		want, wantErr string
	}{
		{dialectPgx, "postgres://h/db", "al ice", "p&w", "postgres://h/db?user=al+ice&password=p%26w", ""},
		{dialectPgx, "postgres://h/db?sslmode=disable", "u", "p", "postgres://h/db?sslmode=disable&user=u&password=p", ""},
		{dialectPgx, "host=h dbname=d", "o'k", `b\s`, `host=h dbname=d user='o\'k' password='b\\s'`, ""},
		{dialectMySQL, "root:x@tcp(h:3306)/test", "u", "p", "u:p@tcp(h:3306)/test", ""},
		{dialectMySQL, "(((", "u", "p", "", "hasql: WithUser: the inner DSN does not parse"},
		{dialectGeneric, "x.db", "u", "p", "", "hasql: WithUser is not supported for generic inner drivers (it needs to put credentials into the DSN)"},
		{dialectSQLMock, "m", "u", "p", "", "hasql: WithUser is not supported for sqlmock inner drivers (it needs to put credentials into the DSN)"},
	} {
		got, err := tc.d.withUser(tc.dsn, tc.user, tc.pw)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrDSN) {
				t.Errorf("%v.withUser(%q) = %q, %v; want %q wrapping ErrDSN", tc.d, tc.dsn, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v.withUser(%q) = %q, %v; want %q", tc.d, tc.dsn, got, err, tc.want)
		}
	}
}

func TestDialectCheckDSN(t *testing.T) {
	if err := dialectPgx.checkDSN(`host=h password='x\`); !errors.Is(err, errPgxPanic) {
		t.Errorf("pgx checkDSN of a DSN its parser panics on = %v, want errPgxPanic", err)
	}
	for _, tc := range []struct {
		d   dialect
		dsn string
	}{
		{dialectPgx, "host=h dbname=d"},
		{dialectPgx, "postgres://h/db"},
		{dialectPgx, "host='unterminated"}, // an ordinary parse error is pgx's to report on connect
		{dialectMySQL, `host=h password='x\`},
		{dialectGeneric, `host=h password='x\`},
	} {
		if err := tc.d.checkDSN(tc.dsn); err != nil {
			t.Errorf("%v.checkDSN(%q) = %v, want nil", tc.d, tc.dsn, err)
		}
	}
}

// dtConn is an inner connection with or without driver.Validator.
type dtConn struct{ driver.Conn }

type dtValidConn struct {
	dtConn
	valid bool
}

func (c dtValidConn) IsValid() bool { return c.valid }

func TestDialectSessionTraits(t *testing.T) {
	for _, d := range []dialect{dialectPgx, dialectMySQL, dialectGeneric, dialectSQLMock} {
		t.Run(d.String(), func(t *testing.T) {
			pgx := d == dialectPgx
			if got := d.stmtErrAbortsTx(); got != pgx {
				t.Errorf("stmtErrAbortsTx = %v", got)
			}
			tr := d.sessionTraits(dtConn{})
			if tr.live != nil || tr.namesBySQL || tr.keepStmtsAtClose != pgx {
				t.Errorf("traits of a plain conn = %+v", tr)
			}
			for _, valid := range []bool{true, false} {
				ph := &session{sessionTraits: d.sessionTraits(dtValidConn{valid: valid})}
				if ph.alive() != valid {
					t.Errorf("alive over IsValid()=%v = %v", valid, ph.alive())
				}
			}
			if ph := (&session{sessionTraits: d.sessionTraits(dtConn{})}); !ph.alive() {
				t.Error("a conn that cannot tell is not alive")
			}
			if got := d.remoteHost(dtConn{}, "fallback:1"); got != "fallback:1" {
				t.Errorf("remoteHost = %q", got)
			}
		})
	}
	// The zero dialect is the generic one.
	var zero dialect
	if zero.classify(driver.ErrBadConn) != classDead|classNotSent || zero.stmtErrAbortsTx() || formOf(zero, "a=b c=d") != formKeyValue {
		t.Error("the zero dialect does not behave as the generic one")
	}
}

// TestDialectRoleQuery: pgx and mysql ask the server; other dialects cannot
// tell and roleOf reports roleUnknown without a query.
func TestDialectRoleQuery(t *testing.T) {
	for d, want := range map[dialect]bool{dialectPgx: true, dialectMySQL: true, dialectGeneric: false, dialectSQLMock: false} {
		if got := d.roleQuery() != ""; got != want {
			t.Errorf("%v has a role query: %v", d, got)
		}
	}
	if r, err := dialectGeneric.roleOf(context.Background(), nil); r != roleUnknown || err != nil {
		t.Errorf("generic roleOf = %v, %v", r, err)
	}
}

func TestDSNFormOf(t *testing.T) {
	for _, tc := range []struct {
		d     dialect
		inner string
		want  dsnForm
	}{
		{dialectPgx, "postgres://h/db", formQuery},
		{dialectPgx, "postgresql://h/db", formQuery},
		{dialectPgx, "host=h dbname=d", formKeyValue},
		{dialectPgx, "", formKeyValue},
		{dialectMySQL, "u:p@tcp(h)/db?x=1", formMySQL},
		{dialectSQLMock, "x-1?hasql.stmtcache=1", formQuery},
		{dialectGeneric, "file:x.db?_pragma=busy_timeout(5000)", formQuery},
		{dialectGeneric, "postgres://h/db", formQuery},
		{dialectGeneric, "host=h dbname=d", formKeyValue}, // lib/pq's key=value form
		{dialectGeneric, "  sslmode = disable", formKeyValue},
		{dialectGeneric, "x.db", formQuery},
		{dialectGeneric, "name=x?hasql.stmtcache=1", formQuery},
		{dialectGeneric, "host=h password=a?b", formKeyValue},
	} {
		if got := formOf(tc.d, tc.inner); got != tc.want {
			t.Errorf("formOf(%v, %q) = %v, want %v", tc.d, tc.inner, got, tc.want)
		}
	}
	// Before the driver is looked up, the names the drivers register under
	// already select their form.
	if d := dialectOf("pgx", nil); d != dialectPgx {
		t.Errorf("dialectOf(pgx, nil) = %v", d)
	}
	if d := dialectOf("mysql", nil); d != dialectMySQL {
		t.Errorf("dialectOf(mysql, nil) = %v", d)
	}
}

func TestHostPointAt(t *testing.T) {
	cases := []struct {
		d         dialect
		dsn, addr string
		want      string
	}{
		{dialectPgx, "postgres://u:pw@db1:5432,db2:5433/shop?sslmode=disable", "db3:7", "postgres://u:pw@db3:7/shop?sslmode=disable"},
		{dialectPgx, "postgresql://db1/shop", "10.0.0.1:5432", "postgresql://10.0.0.1:5432/shop"},
		{dialectPgx, "host=a,b port=1,2 dbname=x", "h:9", "host=a,b port=1,2 dbname=x host='h' port=9"},
		{dialectMySQL, "root@tcp(127.0.0.1:3306)/test", "db2:3307", "root@tcp(db2:3307)/test"},
	}
	for _, c := range cases {
		got, err := c.d.pointAt(c.dsn, c.addr)
		if err != nil || got != c.want {
			t.Errorf("pointAt(%q, %q) = %q, %v; want %q", c.dsn, c.addr, got, err, c.want)
		}
	}
	for _, dsn := range []string{"host=a,b port=1,2 dbname=x", "postgres://u@a:1,b:2/db"} {
		if got := strings.Join(pgxHosts(dsn), ","); got != "a:1,b:2" {
			t.Errorf("pgxHosts(%q) = %s, want a:1,b:2", dsn, got)
		}
	}
}

func TestClassifyConstructed(t *testing.T) {
	pg := func(sev, code string) error { return &pgconn.PgError{Severity: sev, Code: code, Message: "m"} }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "m"} }
	wrapped := func(err error) error { return fmt.Errorf("layer: %w", err) }
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	type row struct {
		name                                      string
		d                                         dialect
		err                                       error
		dead, notSent, wrongRole, connectRetrying bool
	}
	rows := []row{
		{"ctx canceled", dialectPgx, context.Canceled, false, false, false, false},
		{"ctx deadline", dialectPgx, context.DeadlineExceeded, false, false, false, true},
		{"ctx canceled + EOF", dialectPgx, errors.Join(context.Canceled, io.ErrUnexpectedEOF), false, false, false, false},
		{"wrapped canceled (mysql)", dialectMySQL, wrapped(context.Canceled), false, false, false, false},
		{"bad conn", dialectMySQL, driver.ErrBadConn, true, true, false, true},
		{"invalid conn", dialectMySQL, mysql.ErrInvalidConn, true, false, false, true},
		{"unexpected EOF", dialectPgx, io.ErrUnexpectedEOF, true, false, false, true},
		{"net.OpError", dialectPgx, opErr, true, false, false, true},
		{"pg 57P01 FATAL", dialectPgx, pg("FATAL", "57P01"), true, false, false, true},
		{"pg 57P03 FATAL", dialectPgx, pg("FATAL", "57P03"), true, false, false, true},
		{"pg 08006", dialectPgx, pg("ERROR", "08006"), true, false, false, true},
		{"pg 25006", dialectPgx, pg("ERROR", "25006"), false, false, true, true},
		{"pg 23505", dialectPgx, pg("ERROR", "23505"), false, false, false, true},
		{"pg 28P01", dialectPgx, pg("FATAL", "28P01"), true, false, false, false},
		{"pg 3D000", dialectPgx, pg("FATAL", "3D000"), true, false, false, false},
		{"my 1927 killed", dialectMySQL, my(1927), true, false, false, true},
		{"my 1053 shutdown", dialectMySQL, my(1053), true, false, false, true},
		{"my 1290 read-only", dialectMySQL, my(1290), false, false, true, true},
		{"my 1792 ro tx", dialectMySQL, my(1792), false, false, true, true},
		{"my 1062 dup", dialectMySQL, my(1062), false, false, false, true},
		{"my 1045 denied", dialectMySQL, my(1045), false, false, false, false},
		{"my 1049 unknown db", dialectMySQL, my(1049), false, false, false, false},
		{"wrong role", dialectPgx, errWrongRole, false, false, false, true},
	}
	for _, r := range rows {
		dead, ns, wr, cr := r.d.connDead(r.err), r.d.notSent(r.err), r.d.wrongRole(r.err), r.d.connectRetryable(r.err)
		if dead != r.dead || ns != r.notSent || wr != r.wrongRole || cr != r.connectRetrying {
			t.Errorf("%s: connDead=%v notSent=%v wrongRole=%v connectRetryable=%v; want %v %v %v %v",
				r.name, dead, ns, wr, cr, r.dead, r.notSent, r.wrongRole, r.connectRetrying)
		}
	}
}

// TestDialectImports keeps the seam whole: of the root package's files only
// the dialect files import an inner driver, and none imports go-sqlmock, so
// that a production binary does not link the mock (go list -deps . must not
// list it).
func TestDialectImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.Contains(path, "go-sqlmock"):
				t.Errorf("%s imports %s: the root package must not link go-sqlmock", name, path)
			case strings.HasPrefix(path, "github.com/jackc/pgx/") || strings.HasPrefix(path, "github.com/go-sql-driver/mysql"):
				if !strings.HasPrefix(name, "dialect_") {
					t.Errorf("%s imports %s: driver knowledge belongs in a dialect file", name, path)
				}
			}
		}
	}
}

// TestDialectConnectPhase: what a failed connect says about when the outage
// prober tries again (outage_watch.go), and the address its port watch dials.
func TestDialectConnectPhase(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	starting := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}
	notYet := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is not yet accepting connections"}
	shutting := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is shutting down"}
	auth := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"}
	cases := []struct {
		name string
		d    dialect
		err  error
		want connPhase
	}{
		{"nil", dialectPgx, nil, phaseOther},
		{"refused, wrapped", dialectPgx, fmt.Errorf("failed to connect: %w", refused), phaseRefused},
		{"refused, mysql", dialectMySQL, refused, phaseRefused},
		{"refused, generic", dialectGeneric, refused, phaseRefused},
		{"starting up", dialectPgx, starting, phaseStarting},
		{"not yet accepting", dialectPgx, notYet, phaseStarting},
		{"starting up through a wrapping driver", dialectGeneric, starting, phaseStarting},
		{"shutting down", dialectPgx, shutting, phaseOther},
		{"authentication", dialectPgx, auth, phaseOther},
		{"timeout", dialectPgx, context.DeadlineExceeded, phaseOther},
		{"reset", dialectMySQL, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, phaseOther},
	}
	for _, c := range cases {
		if got := c.d.connectPhase(c.err); got != c.want {
			t.Errorf("%s: connectPhase(%v) = %d, want %d", c.name, c.err, got, c.want)
		}
	}

	addrs := []struct {
		d    dialect
		dsn  string
		want string
	}{
		{dialectPgx, "postgres://u@127.0.0.1:5433/db", "127.0.0.1:5433"},
		{dialectPgx, "host=db.example port=6000 user=u", "db.example:6000"},
		{dialectPgx, "host=/var/run/postgresql user=u", ""},
		{dialectPgx, "postgres://u@a:5432,b:5432/db", ""},
		{dialectMySQL, "u:p@tcp(127.0.0.1:3307)/db", "127.0.0.1:3307"},
		{dialectMySQL, "u:p@unix(/tmp/mysql.sock)/db", ""},
		{dialectGeneric, "whatever", ""},
	}
	for _, a := range addrs {
		if got := a.d.get().watchAddr(a.dsn); got != a.want {
			t.Errorf("%s watchAddr(%q) = %q, want %q", a.d, a.dsn, got, a.want)
		}
	}
}
