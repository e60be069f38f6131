package hasql

import (
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
)

// hasql.txguard=all wraps exactly the statements that change data and can
// run inside a transaction; everything else runs as it is.
func TestTxGuardAllWrapsOnlyDataChanges(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{"insert into t values ($1)", true},
		{"  UPDATE t SET v = 1", true},
		{"delete from t where id = ?", true},
		{"REPLACE INTO t VALUES (1)", true},
		{"merge into t using s on t.id = s.id when matched then delete", true},
		{"/* app */ insert into t values (1)", true},
		{"-- note\ninsert into t values (1)", true},
		{"(insert into t values (1))", true},
		{"insert into t values (1);", true},
		{"with x as (delete from t returning *) select count(*) from x", true},
		{"with x as (select 1) select * from x", false},
		{"with x as (select updated_at from t) select * from x", false},
		{"select * from t", false},
		{"select nextval('s')", false},
		{"insertx into t", false},
		{"create table t (id int)", false},
		{"vacuum t", false},
		{"call p()", false},
		{"set x = 1", false},
		{"insert into t values (1); insert into t values (2)", false},
		{"/* unterminated", false},
		{"", false},
	} {
		if got := writesData(tc.query); got != tc.want {
			t.Errorf("writesData(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
}

// On PostgreSQL a write query's record is written by a data-modifying CTE
// of the statement itself; statements that cannot take one are left to
// the general way.
func TestTxGuardInlineRewritesOnlyWhatTakesACTE(t *testing.T) {
	const cte = `hasql_txguard_record AS (INSERT INTO "g" (id) VALUES ($3))`
	for _, tc := range []struct {
		query, want string
	}{
		{"insert into t values ($1, $2) returning id", "WITH " + cte + " insert into t values ($1, $2) returning id"},
		{"  /* c */ UPDATE t SET v = $1 WHERE id = $2 RETURNING v", "WITH " + cte + " UPDATE t SET v = $1 WHERE id = $2 RETURNING v"},
		{"delete from t where id = $1 returning *", "WITH " + cte + " delete from t where id = $1 returning *"},
		{"with x as (delete from t returning *) select count(*) from x", "WITH " + cte + ", x as (delete from t returning *) select count(*) from x"},
		{"WITH RECURSIVE r AS (select 1) insert into t select * from r returning *", "WITH RECURSIVE " + cte + ", r AS (select 1) insert into t select * from r returning *"},
		{"(insert into t values (1) returning id)", ""},
		{"merge into t using s on true when matched then delete", ""},
		{"select 1", ""},
	} {
		got, ok := pgxDialect{}.guardInline(tc.query, []driver.NamedValue{{Ordinal: 1, Value: int64(1)}, {Ordinal: 2, Value: "x"}}, `"g"`)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("guardInline(%q) = %q, %v; want %q", tc.query, got, ok, tc.want)
		}
	}
}

// A pgx option among the arguments is not a parameter: such work is not
// rewritten (the id's parameter number would be wrong).
func TestTxGuardInlineNotWithPgxOptions(t *testing.T) {
	args := []driver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeSimpleProtocol}, {Ordinal: 2, Value: int64(1)}}
	if q, ok := (pgxDialect{}).guardInline("insert into t values ($1)", args, `"g"`); ok {
		t.Fatalf("rewritten with a pgx option among the arguments: %q", q)
	}
}
