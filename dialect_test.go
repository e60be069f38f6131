package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Tests of the per-driver knowledge (dialect.go): which dialect a driver gets, and how each
// classifies errors constructed here. The classification of errors provoked on real servers is
// in failover_integration_test.go (through RecoverTestClassify in export_test.go).

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

// TestDialectOf: the inner driver's type decides, else the name it registers under; anything
// else is generic.
func TestDialectOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		drv  driver.Driver
		want dialect
	}{
		{"pgx", &stdlib.Driver{}, dialectPgx},
		{"anything", &stdlib.Driver{}, dialectPgx},
		{"mysql", &mysql.MySQLDriver{}, dialectMySQL},
		{"anything", mysql.MySQLDriver{}, dialectMySQL},
		{"pgx", nil, dialectPgx},
		{"pgx/v5", nil, dialectPgx},
		{"mysql", nil, dialectMySQL},
		{"sqlmock", nil, dialectSQLMock},
		{"sqlmock", &FakeDriver{}, dialectSQLMock},
		{"postgres", nil, dialectGeneric},
		{"mysql", &FakeDriver{}, dialectGeneric}, // a driver registered as "mysql" that is not go-sql-driver's
		{"fakedb", &FakeDriver{}, dialectGeneric},
	} {
		if got := dialectOf(tc.name, tc.drv); got != tc.want {
			t.Errorf("dialectOf(%q, %T) = %v, want %v", tc.name, tc.drv, got, tc.want)
		}
	}
}
