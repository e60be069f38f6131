package hasql

import (
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPgxSafeMode pins which pgx mode each mode becomes behind a transaction pooler: none that
// keeps a server-side statement beyond one round trip survives.
func TestPgxSafeMode(t *testing.T) {
	for _, tc := range []struct {
		in        pgx.QueryExecMode
		descCache bool
		want      pgx.QueryExecMode
	}{
		{pgx.QueryExecModeCacheStatement, true, pgx.QueryExecModeCacheDescribe},
		{pgx.QueryExecModeCacheDescribe, true, pgx.QueryExecModeCacheDescribe},
		{pgx.QueryExecModeDescribeExec, true, pgx.QueryExecModeCacheDescribe},
		{pgx.QueryExecModeExec, true, pgx.QueryExecModeExec},
		{pgx.QueryExecModeSimpleProtocol, true, pgx.QueryExecModeSimpleProtocol},
		{pgx.QueryExecModeCacheStatement, false, pgx.QueryExecModeExec},
		{pgx.QueryExecModeCacheDescribe, false, pgx.QueryExecModeExec},
		{pgx.QueryExecModeDescribeExec, false, pgx.QueryExecModeExec},
		{pgx.QueryExecModeSimpleProtocol, false, pgx.QueryExecModeSimpleProtocol},
	} {
		if got := pgxSafeMode(tc.in, tc.descCache); got != tc.want {
			t.Errorf("pgxSafeMode(%v, %v) = %v, want %v", tc.in, tc.descCache, got, tc.want)
		}
	}
}

// TestPgxPoolerArgs: the safe mode goes first, a mode the caller passed is mapped, the other
// arguments keep their values and order.
func TestPgxPoolerArgs(t *testing.T) {
	args := []driver.NamedValue{
		{Ordinal: 1, Value: pgx.QueryExecModeCacheStatement},
		{Ordinal: 2, Value: int64(7)},
		{Ordinal: 3, Name: "n", Value: "x"},
	}
	got := pgxDialect{}.poolerArgs(pgx.QueryExecModeCacheDescribe, args)
	want := []any{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeCacheDescribe, int64(7), "x"}
	if len(got) != len(want) {
		t.Fatalf("got %d arguments, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Value != want[i] {
			t.Errorf("argument %d = %v, want %v", i, got[i].Value, want[i])
		}
	}
	if got[3].Name != "n" {
		t.Errorf("the name of a named argument was lost: %+v", got[3])
	}
	if args[0].Value != pgx.QueryExecModeCacheStatement {
		t.Error("poolerArgs changed the caller's slice")
	}
	if got := (pgxDialect{}).poolerArgs(nil, args); len(got) != len(args) {
		t.Errorf("without a mode the arguments must stay as they are: %v", got)
	}
}

// TestPgxLocalState pins which statements are kept as session state behind a pooler, their
// transaction-local form and their key.
func TestPgxLocalState(t *testing.T) {
	for _, tc := range []struct {
		in, local, key string
		ok             bool
	}{
		{"SET timezone = 'UTC'", "SET LOCAL timezone = 'UTC'", "timezone", true},
		{"  set search_path TO a, b ;", "SET LOCAL search_path TO a, b", "search_path", true},
		{"SET SESSION statement_timeout = 5000", "SET LOCAL statement_timeout = 5000", "statement_timeout", true},
		{"SET TIME ZONE 'Asia/Tokyo'", "SET LOCAL TIME ZONE 'Asia/Tokyo'", "time", true},
		{"SET work_mem='64MB'", "SET LOCAL work_mem='64MB'", "work_mem", true},
		{"SET ROLE app", "SET LOCAL ROLE app", "role", true},
		{"SET SESSION AUTHORIZATION app", "SET LOCAL SESSION AUTHORIZATION app", "session authorization", true},
		{"SET LOCAL timezone = 'UTC'", "", "", false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "", "", false},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "", "", false},
		{"SET CONSTRAINTS ALL DEFERRED", "", "", false},
		{"SET a = 1; DROP TABLE t", "", "", false},
		{"select set_config('a.b', 'c', false)", "", "", false},
		{"SET", "", "", false},
		{"CREATE TEMP TABLE t(a int)", "", "", false},
	} {
		local, key, ok := pgxDialect{}.localState(tc.in)
		if local != tc.local || key != tc.key || ok != tc.ok {
			t.Errorf("localState(%q) = %q, %q, %v; want %q, %q, %v", tc.in, local, key, ok, tc.local, tc.key, tc.ok)
		}
	}
}

// TestPoolerOnlyForPgx: the dialects without pooler knowledge keep their statements as they are.
func TestPoolerOnlyForPgx(t *testing.T) {
	for d, want := range map[dialect]bool{dialectPgx: true, dialectMySQL: false, dialectGeneric: false, dialectSQLMock: false} {
		if got := d.pooler() != nil; got != want {
			t.Errorf("%v knows poolers: %v, want %v", d, got, want)
		}
	}
	if PoolerTransaction.String() != "transaction" || PoolerNone.String() != "none" || Pooler(9).String() != "Pooler(9)" {
		t.Error("Pooler.String")
	}
}
