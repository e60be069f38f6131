package hasql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/hasqlgo/hasql"
)

// Tests of the virtual handle (handle.go) that need no comparison run: Unwrap reaching the inner
// connection, and the inner driver's errors keeping their chain through the handle. The
// handle's forwarding of every optional interface is compared against the raw driver in
// fidelity_test.go.

// TestUnwrapReachesInnerConn: conn.Raw hands database/sql's driver
// connection, which is hasql's handle; hasql.Unwrap and Session.Unwrap lead
// to the inner driver's connection of the bound session, and calls made on
// it reach the inner driver directly.
func TestUnwrapReachesInnerConn(t *testing.T) {
	ctx := context.Background()
	for _, m := range []fidCombo{{"all", hasql.FakeCapsAll}, {"none", 0}} {
		t.Run(m.name, func(t *testing.T) {
			name := hasql.FakeDriverName(m.caps)
			rec := hasql.NewFakeDB(t)
			db, err := sql.Open("hasql", name+":"+rec.DSN())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := rec.LastConn()
			if want == nil {
				t.Fatal("no inner connection after db.Conn")
			}
			var handle any
			if err := c.Raw(func(dc any) error {
				handle = dc
				if got := hasql.Unwrap(dc); got != any(want) {
					t.Errorf("hasql.Unwrap(handle) = %T %p, want the inner connection %T %p", got, got, want, want)
				}
				// The inner connection is usable as such: calls on it reach
				// the driver as they are.
				si, err := hasql.Unwrap(dc).(driver.Conn).Prepare("select via-unwrap")
				if err != nil {
					return err
				}
				return si.Close()
			}); err != nil {
				t.Fatal(err)
			}
			if handle == any(want) {
				t.Error("conn.Raw handed out the inner connection itself, not hasql's handle")
			}
			if ev := rec.Events(); len(ev) < 3 || ev[len(ev)-3] != `c1 Prepare "select via-unwrap"` || !strings.HasSuffix(ev[len(ev)-1], " Close") {
				t.Errorf("calls on the unwrapped connection did not reach the driver as they were: %q", ev)
			}

			s, err := hasql.SessionOf(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Unwrap(); got != want {
				t.Errorf("Session.Unwrap() = %T %p, want %T %p", got, got, want, want)
			}
			if got := hasql.Unwrap(s); got != any(want) {
				t.Errorf("hasql.Unwrap(session) = %T %p, want %T %p", got, got, want, want)
			}
			if got := hasql.Unwrap(want); got != any(want) {
				t.Errorf("hasql.Unwrap(inner) = %T, want the inner connection back", got)
			}
			other := &struct{ x int }{}
			if got := hasql.Unwrap(other); got != any(other) {
				t.Errorf("hasql.Unwrap(non-hasql value) = %v, want it back unchanged", got)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if got := s.Unwrap(); got != nil {
				t.Errorf("Session.Unwrap() after the *sql.Conn was closed = %T, want nil (not bound)", got)
			}
		})
	}

	// Without hasql, Raw hands the inner connection; Unwrap is the identity
	// and SessionOf refuses.
	name := hasql.FakeDriverName(hasql.FakeCapsAll)
	rec := hasql.NewFakeDB(t)
	db, err := sql.Open(name, rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Raw(func(dc any) error {
		if dc != any(rec.LastConn()) || hasql.Unwrap(dc) != dc {
			t.Errorf("raw driver: Raw handed %T, Unwrap gave %T", dc, hasql.Unwrap(dc))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := hasql.SessionOf(c); err == nil {
		t.Error("SessionOf accepted a *sql.Conn of another driver")
	}
}

// TestFidelityErrorChain: the inner driver's own errors reach the
// application through hasql unchanged, with errors.Is and errors.As intact,
// on every path, in both hasql configurations.
func TestFidelityErrorChain(t *testing.T) {
	ctx := context.Background()
	name := hasql.FakeDriverName(hasql.FakeCapsAll)
	for _, suffix := range []string{"", "?hasql.stmtcache=0&hasql.retry=off"} {
		rec := hasql.NewFakeDB(t)
		db, err := sql.Open("hasql", name+":"+rec.DSN()+suffix)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error, code int) {
			t.Helper()
			var fe *hasql.FakeError
			switch {
			case err == nil:
				t.Errorf("%s%s: no error", what, suffix)
			case !errors.Is(err, hasql.ErrFakeSentinel):
				t.Errorf("%s%s: errors.Is does not reach the driver's sentinel: %v", what, suffix, err)
			case !errors.As(err, &fe) || fe.Code != code:
				t.Errorf("%s%s: errors.As does not reach *hasql.FakeError %d: %v", what, suffix, code, err)
			case strings.HasPrefix(err.Error(), "hasql"):
				t.Errorf("%s%s: hasql changed the error: %v", what, suffix, err)
			}
		}
		rec.FailNext("connect", &hasql.FakeError{Code: 1, Msg: "refused"})
		check("connect", db.PingContext(ctx), 1)
		_, err = db.ExecContext(ctx, "insert fail!")
		check("exec", err, 42)
		_, err = db.QueryContext(ctx, "select fail! ?", 1)
		check("query", err, 42)
		_, err = db.PrepareContext(ctx, "select fail!")
		check("prepare", err, 42)
		_, err = db.ExecContext(ctx, "insert ?", hasql.FakeReject{"x"})
		check("checker", err, 7)
		rec.FailNext("ping", &hasql.FakeError{Code: 2, Msg: "ping"})
		check("ping", db.PingContext(ctx), 2)
		rec.FailNext("begin", &hasql.FakeError{Code: 3, Msg: "begin"})
		_, err = db.BeginTx(ctx, nil)
		check("begin", err, 3)
		rec.FailNext("commit", &hasql.FakeError{Code: 4, Msg: "commit"})
		if tx, err := db.BeginTx(ctx, nil); err == nil {
			check("commit", tx.Commit(), 4)
		}
		rec.FailNext("rollback", &hasql.FakeError{Code: 5, Msg: "rollback"})
		if tx, err := db.BeginTx(ctx, nil); err == nil {
			check("rollback", tx.Rollback(), 5)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHandleLegacyExecerQueryer: code that reaches the handle through
// Conn.Raw and asserts the deprecated driver.Execer or driver.Queryer (as
// go-sql-driver/mysql's own tests do) finds them, with the results the inner
// connection gives; driver.ErrSkip where the inner connection has no ad-hoc
// path and the statement cache is off, as the inner driver's own answer.
func TestHandleLegacyExecerQueryer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		caps     hasql.FakeCaps
		params   string
		wantSkip bool
	}{
		{"context interfaces", hasql.FakeCapsContext, "", false},
		{"legacy Execer only", hasql.FakeExecer, "", false},
		{"no optional interface, cache on", 0, "", false},
		{"no optional interface, cache off", 0, "?hasql.stmtcache=0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := hasql.NewFakeDB(t)
			db, err := sql.Open("hasql", hasql.FakeDriverName(tc.caps)+":"+rec.DSN()+tc.params)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want, err := db.ExecContext(ctx, "UPDATE t SET v = 1")
			if err != nil {
				t.Fatal(err)
			}
			wantN, _ := want.RowsAffected()
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Raw(func(dc any) error {
				ex, ok := dc.(driver.Execer) //nolint:staticcheck // the deprecated interface is the point
				if !ok {
					t.Fatalf("the handle is not a driver.Execer")
				}
				qu, ok := dc.(driver.Queryer) //nolint:staticcheck
				if !ok {
					t.Fatalf("the handle is not a driver.Queryer")
				}
				r, err := ex.Exec("UPDATE t SET v = 1", nil)
				if tc.wantSkip {
					if err != driver.ErrSkip {
						t.Errorf("Exec = %v, %v; want driver.ErrSkip, bare", r, err)
					}
				} else if err != nil {
					t.Errorf("Exec: %v", err)
				} else if n, _ := r.RowsAffected(); n != wantN {
					t.Errorf("Exec: %d rows affected, want %d as through database/sql", n, wantN)
				}
				rows, err := qu.Query("SELECT 1", nil)
				if tc.wantSkip {
					if err != driver.ErrSkip {
						t.Errorf("Query: %v, want driver.ErrSkip", err)
					}
					return nil
				}
				if err != nil {
					t.Errorf("Query: %v", err)
					return nil
				}
				if len(rows.Columns()) == 0 {
					t.Errorf("Query: no columns")
				}
				return rows.Close()
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
