package compat_test

import (
	"database/sql"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hasqlgo/hasql"
)

// kinds are the servers every compatibility test runs on.
var kinds = []string{"postgres", "mariadb"}

// rawDriver is the driver hasql wraps for a server kind: the name to give sql.Open for the raw
// side, the DSN prefix for hasql, and the name sqlx and GORM know.
func rawDriver(kind string) string {
	if kind == "postgres" {
		return "pgx"
	}
	return "mysql"
}

// target is one side of a comparison: a *sql.DB on its own fresh database, opened either through
// hasql or with the raw driver.
type target struct {
	Name   string // "hasql" or "raw"
	Kind   string // "postgres" or "mariadb"
	Driver string // inner driver: "pgx" or "mysql"
	RawDSN string // the raw driver's DSN for this side's database
	DSN    string // what was given to sql.Open: "pgx:"+RawDSN for hasql
	DB     *sql.DB
	Hasql  bool

	calls atomic.Int64                    // driver calls hasql's callbacks saw (hasql side only)
	conn  atomic.Pointer[hasql.Connector] // the hasql Connector last instrumented
}

// mysqlParams are what the compat tests add to every MariaDB DSN: time.Time for DATETIME/DATE.
const mysqlParams = "parseTime=true"

func withParams(dsn, params string) string {
	if params == "" {
		return dsn
	}
	if strings.Contains(dsn, "?") {
		return dsn + "&" + params
	}
	return dsn + "?" + params
}

// openTarget makes a fresh database on kind's server and opens it through hasql (viaHasql) or the
// raw driver. The *sql.DB is closed when the test ends; for hasql, the test also fails unless the
// work really went through hasql's driver.
func openTarget(t *testing.T, kind string, viaHasql bool) *target {
	t.Helper()
	raw := freshDB(t, kind)
	if kind == "mariadb" {
		raw = withParams(raw, mysqlParams)
	}
	tg := &target{Name: "raw", Kind: kind, Driver: rawDriver(kind), RawDSN: raw, DSN: raw, Hasql: viaHasql}
	driverName := tg.Driver
	if viaHasql {
		tg.Name, tg.DSN, driverName = "hasql", tg.Driver+":"+raw, "hasql"
	}
	db, err := sql.Open(driverName, tg.DSN)
	if err != nil {
		t.Fatalf("%s: sql.Open(%q, %q): %v", tg.Name, driverName, tg.DSN, err)
	}
	tg.DB = db
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("%s: closing the *sql.DB: %v", tg.Name, err)
		}
	})
	if viaHasql {
		tg.instrument(t, db)
		// Runs before the Close registered above (cleanups run last-in first-out).
		t.Cleanup(func() {
			if tg.calls.Load() == 0 {
				t.Errorf("hasql side saw no driver calls: the work did not go through hasql")
			}
			st := tg.conn.Load().Stats()
			t.Logf("hasql %s: %d driver calls; sessions created %d, stmt cache hits %d misses %d evictions %d",
				kind, tg.calls.Load(), st.Created, st.StmtCacheHits, st.StmtCacheMisses, st.StmtCacheEvictions)
		})
	}
	return tg
}

// instrument counts, into tg, the driver calls made through db, which must be hasql's.
func (tg *target) instrument(t *testing.T, db *sql.DB) *hasql.Connector {
	t.Helper()
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatalf("hasql.ConnectorOf: this *sql.DB is not hasql's")
	}
	count := func(*hasql.Call) error { tg.calls.Add(1); return hasql.Continue }
	for _, fn := range []hasql.Fn{hasql.FnPrepare, hasql.FnExec, hasql.FnQuery, hasql.FnStmtExec, hasql.FnStmtQuery, hasql.FnBegin} {
		c.Callbacks().Register(fn, hasql.Entry, count)
	}
	tg.conn.Store(c)
	return c
}

// transcript records what a scenario observed, step by step, for comparison between the sides.
type transcript struct {
	steps []step
}

type step struct {
	Label string
	Value any
}

func (tr *transcript) add(label string, v any) { tr.steps = append(tr.steps, step{label, v}) }

// compareTranscripts fails t for every step where the hasql side saw something else than the raw
// side. HASQL_COMPAT_DUMP=1 (with -v) logs the raw side's transcript too.
func compareTranscripts(t *testing.T, hasqlName string, got, want *transcript) {
	t.Helper()
	if os.Getenv("HASQL_COMPAT_DUMP") != "" {
		for i, s := range want.steps {
			t.Logf("%3d %s = %s", i, s.Label, show(s.Value))
		}
	}
	n := len(got.steps)
	if len(want.steps) > n {
		n = len(want.steps)
	}
	bad := 0
	for i := 0; i < n; i++ {
		var g, w step
		if i < len(got.steps) {
			g = got.steps[i]
		}
		if i < len(want.steps) {
			w = want.steps[i]
		}
		if g.Label != w.Label || !reflect.DeepEqual(g.Value, w.Value) {
			bad++
			t.Errorf("step %d differs:\n  %-6s %s = %s\n  %-6s %s = %s", i, hasqlName, g.Label, show(g.Value), "raw", w.Label, show(w.Value))
			if bad >= 10 {
				t.Errorf("… stopping after %d differences", bad)
				return
			}
		}
	}
	if bad == 0 {
		t.Logf("%d steps identical through %s and the raw driver", len(want.steps), hasqlName)
	}
}

func show(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// errText is how transcripts record an error: its text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ph returns the n-th (1-based) placeholder of kind's SQL dialect.
func ph(kind string, n int) string {
	if kind == "postgres" {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}
