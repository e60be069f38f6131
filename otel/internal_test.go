package hasqlotel

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
)

func TestKeyword(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1":                             "SELECT",
		"select * from t":                      "SELECT",
		"  \n\tInsert into t values (1)":       "INSERT",
		"/* hint */ update t set a = 1":        "UPDATE",
		"-- comment\nDELETE FROM t":            "DELETE",
		"((SELECT 1) UNION (SELECT 2))":        "SELECT",
		"WITH x AS (SELECT 1) SELECT * FROM x": "WITH",
		"":                                     "",
		"   ":                                  "",
		"/* never closed":                      "",
		"-- only a comment":                    "",
		"123":                                  "",
		"; SELECT 1":                           "",
		"CALL my_proc()":                       "CALL",
		"set_config":                           "SET_CONFIG",
	} {
		if got := Keyword(q); got != want {
			t.Errorf("Keyword(%q) = %q, want %q", q, got, want)
		}
	}
	long := "a"
	for len(long) < 100 {
		long += "a"
	}
	if got := Keyword(long); len(got) != maxKeyword {
		t.Errorf("Keyword of a 100-letter word has %d letters, want %d", len(got), maxKeyword)
	}
}

func TestOperation(t *testing.T) {
	for _, tc := range []struct {
		fn       hasql.Fn
		query    string
		op, name string
	}{
		{hasql.FnQuery, "select 1", "SELECT", "SELECT"},
		{hasql.FnStmtExec, "insert into t", "INSERT", "INSERT"},
		{hasql.FnExec, "", "exec", "hasql.exec"},
		{hasql.FnStmtQuery, "42", "stmt.query", "hasql.stmt.query"},
		{hasql.FnPrepare, "SELECT 1", "prepare", "hasql.prepare"},
		{hasql.FnCommit, "", "commit", "hasql.commit"},
		{hasql.FnReset, "fresh", "reset", "hasql.reset"},
		{hasql.FnConnect, "", "connect", "hasql.connect"},
		{hasql.FnClose + 1, "", "Fn(13)", "hasql.Fn(13)"},
	} {
		if op, name := operation(tc.fn, tc.query); op != tc.op || name != tc.name {
			t.Errorf("operation(%v, %q) = %q, %q; want %q, %q", tc.fn, tc.query, op, name, tc.op, tc.name)
		}
	}
}

func TestHostAttrs(t *testing.T) {
	for host, want := range map[string]string{
		"db1:5432":       "[server.address=db1 server.port=5432]",
		"[::1]:3306":     "[server.address=::1 server.port=3306]",
		"10.0.0.7:65000": "[server.address=10.0.0.7 server.port=65000]",
		"db1":            "[server.address=db1]",
		"":               "[]",
	} {
		var got []string
		for _, kv := range hostAttrs(host) {
			got = append(got, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
		}
		if s := fmt.Sprint(got); s != want {
			t.Errorf("hostAttrs(%q) = %s, want %s", host, s, want)
		}
	}
}

func TestSystemOf(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{&stdlib.Conn{}, "postgresql"},
		{&stdlib.Driver{}, "postgresql"},
		{&mysql.MySQLDriver{}, "mysql"},
		{mysql.MySQLDriver{}, "mysql"},
		{sqlmock.AnyArg(), "other_sql"},
		{nil, "other_sql"},
		{42, "other_sql"},
	} {
		if got := SystemOf(tc.v); got != tc.want {
			t.Errorf("SystemOf(%T) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestErrorAttrs(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", hasql.ErrConnectionLost), "error.type=hasql.ErrConnectionLost"},
		{fmt.Errorf("x: %w", errors.Join(hasql.ErrTxResolutionUnknown, hasql.ErrConnectionLost)), "error.type=hasql.ErrTxResolutionUnknown"},
		{context.DeadlineExceeded, "error.type=context.DeadlineExceeded"},
		{driver.ErrBadConn, "error.type=driver.ErrBadConn"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "error.type=io.ErrUnexpectedEOF"},
		{&mysql.MySQLError{Number: 1213}, "db.response.status_code=1213 error.type=1213"},
		{errors.New("x"), "error.type=*errors.errorString"},
	} {
		if got := kvString(errorAttrs(tc.err)); got != tc.want {
			t.Errorf("errorAttrs(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func kvString(kvs []attribute.KeyValue) string {
	s := ""
	for i, kv := range kvs {
		if i > 0 {
			s += " "
		}
		s += string(kv.Key) + "=" + kv.Value.Emit()
	}
	return s
}
