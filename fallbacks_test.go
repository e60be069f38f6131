package hasql

// Tests of the database/sql fallbacks a session uses when its inner driver lacks a
// context-aware interface (fallbacks.go): they behave as database/sql's own ctxDriverStmtExec and
// ctxDriverStmtQuery do.

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestStmtFallbacksMatchDatabaseSQL: a statement with StmtExecContext/StmtQueryContext gets the
// call with its context; one without gets Exec/Query with plain values, only if the context is
// still live, and never with named arguments.
func TestStmtFallbacksMatchDatabaseSQL(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	one := []driver.NamedValue{{Ordinal: 1, Value: int64(7)}}
	named := []driver.NamedValue{{Name: "id", Ordinal: 1, Value: int64(7)}}
	for _, tc := range []struct {
		name    string
		caps    FakeCaps
		ctx     context.Context
		args    []driver.NamedValue
		wantErr error  // nil: the call succeeds
		wantLog string // the statement call the driver saw ("" for none)
	}{
		{"ctx interfaces get the call", FakeStmtExecContext | FakeStmtQueryContext, live, one, nil, "Context [1=int64(7)]"},
		{"ctx interfaces get named args", FakeStmtExecContext | FakeStmtQueryContext, live, named, nil, "Context [1:id=int64(7)]"},
		{"ctx interfaces see a dead context", FakeStmtExecContext | FakeStmtQueryContext, done, one, nil, "Context [1=int64(7)]"},
		{"legacy gets plain values", 0, live, one, nil, " [int64(7)]"},
		{"legacy refuses named args", 0, live, named, errNamedParams, ""},
		{"legacy is not called on a dead context", 0, done, one, context.Canceled, ""},
	} {
		for _, kind := range []string{"Exec", "Query"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				db := NewFakeDB(t)
				conn, err := (&FakeDriver{Caps: tc.caps, DB: db}).Open("")
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				si, err := conn.Prepare("select ? rows=0")
				if err != nil {
					t.Fatal(err)
				}
				from := db.Mark()
				if kind == "Exec" {
					_, err = stmtExec(tc.ctx, si, tc.args)
				} else {
					var rows driver.Rows
					if rows, err = stmtQuery(tc.ctx, si, tc.args); rows != nil {
						rows.Close()
					}
				}
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("%s: %v, want %v", kind, err, tc.wantErr)
				}
				var calls []string
				for _, ev := range db.Events()[from:] {
					if f := strings.SplitN(ev, " ", 2); len(f) == 2 && strings.HasPrefix(f[1], kind) {
						calls = append(calls, strings.TrimPrefix(f[1], kind))
					}
				}
				var want []string
				if tc.wantLog != "" {
					want = []string{tc.wantLog}
				}
				if !reflect.DeepEqual(calls, want) {
					t.Fatalf("driver saw %q, want %q (log %q)", calls, want, db.Events()[from:])
				}
			})
		}
	}
}

// TestValuesNamedRoundTrip: ordinals are 1-based and values kept, both ways.
func TestValuesNamedRoundTrip(t *testing.T) {
	for _, vals := range [][]driver.Value{nil, {int64(1)}, {"a", nil, 2.5, []byte("b")}} {
		named := valuesToNamed(vals)
		if len(named) != len(vals) {
			t.Fatalf("valuesToNamed(%v): %d values", vals, len(named))
		}
		for i, nv := range named {
			if nv.Ordinal != i+1 || nv.Name != "" || !reflect.DeepEqual(nv.Value, vals[i]) {
				t.Errorf("valuesToNamed(%v)[%d] = %+v", vals, i, nv)
			}
		}
		back, err := namedValueToValue(named)
		if err != nil || len(back) != len(vals) || (len(vals) > 0 && !reflect.DeepEqual(back, vals)) {
			t.Errorf("namedValueToValue(valuesToNamed(%v)) = %v, %v", vals, back, err)
		}
	}
}

// TestConvertAdhocArgs: the connection's checker first, the default conversion on ErrSkip or
// without a checker, ErrRemoveArgument drops the argument and renumbers the rest.
func TestConvertAdhocArgs(t *testing.T) {
	db := NewFakeDB(t)
	conn, err := (&FakeDriver{Caps: FakeConnChecker, DB: db}).Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ck := conn.(driver.NamedValueChecker)
	type myInt int
	for _, tc := range []struct {
		name    string
		ck      driver.NamedValueChecker
		in      []any
		want    []driver.Value
		wantErr bool
	}{
		{"default conversion", nil, []any{myInt(3), "s"}, []driver.Value{int64(3), "s"}, false},
		{"checker converts", ck, []any{FakeChecked{"x"}}, []driver.Value{"checked:x"}, false},
		{"checker skips to the default", ck, []any{myInt(4)}, []driver.Value{int64(4)}, false},
		{"checker removes", ck, []any{int64(1), FakeRemove{}, int64(2)}, []driver.Value{int64(1), int64(2)}, false},
		{"checker rejects", ck, []any{FakeReject{"no"}}, nil, true},
		{"default rejects", nil, []any{struct{}{}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := make([]driver.NamedValue, len(tc.in))
			for i, v := range tc.in {
				args[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
			}
			out, err := convertAdhocArgs(tc.ck, args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(tc.want) {
				t.Fatalf("got %+v, want values %v", out, tc.want)
			}
			for i, nv := range out {
				if nv.Ordinal != i+1 || !reflect.DeepEqual(nv.Value, tc.want[i]) {
					t.Errorf("arg %d = %+v, want ordinal %d value %v", i, nv, i+1, tc.want[i])
				}
			}
		})
	}
}
