package compat_test

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations per server kind: tables, an index, a plpgsql function (StatementBegin/End), a trigger,
// a NO TRANSACTION migration (CREATE INDEX CONCURRENTLY on PostgreSQL), seed data, ALTER TABLE.
//
//go:embed testdata/goose
var gooseMigrations embed.FS

// A migration that fails half-way (unique violation), added after the good ones for the error path.
// PostgreSQL rolls the whole migration back; on MariaDB the ALTER TABLE has committed itself.
const gooseBroken = `-- +goose Up
ALTER TABLE authors ADD COLUMN broken INTEGER;
INSERT INTO authors (name) VALUES ('Ada');

-- +goose Down
ALTER TABLE authors DROP COLUMN broken;
`

var gooseDialect = map[string]string{"postgres": "postgres", "mariadb": "mysql"}

// TestGoose runs pressly/goose's ordinary (global) API — SetBaseFS with embedded migrations,
// SetDialect, Up, Down, DownTo, UpTo, GetDBVersion, and a migration that fails half-way — on a
// *sql.DB from sql.Open("hasql", …) and on one from the raw driver, and compares after each step
// the schema (information_schema and catalog views, read with the raw driver), goose's version
// table, the seeded data and what goose returned. Not parallel: goose's API is global state.
func TestGoose(t *testing.T) {
	goose.SetLogger(goose.NopLogger())
	t.Cleanup(func() { goose.SetBaseFS(nil) })
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			if err := goose.SetDialect(gooseDialect[kind]); err != nil {
				t.Fatal(err)
			}
			fsys := gooseFS(t, kind)
			h := openTarget(t, kind, true)
			r := openTarget(t, kind, false)
			got := gooseScenario(t, h, fsys)
			want := gooseScenario(t, r, fsys)
			compareTranscripts(t, "hasql", got, want)
		})
	}
}

// gooseFS is the kind's embedded migrations plus the broken one, as version 6.
func gooseFS(t *testing.T, kind string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(gooseMigrations, "testdata/goose/"+kind)
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, path)
		m["migrations/"+path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m["migrations/00006_broken.sql"] = &fstest.MapFile{Data: []byte(gooseBroken)}
	return m
}

func gooseScenario(t *testing.T, tg *target, fsys fs.FS) *transcript {
	t.Helper()
	tr := &transcript{}
	goose.SetBaseFS(fsys)
	const dir = "migrations"
	db := tg.DB
	// The observer: the raw driver on the same database, whichever side is migrating.
	obs, err := sql.Open(rawDriver(tg.Kind), tg.RawDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()

	stepDone := func(what string, err error) {
		t.Helper()
		tr.add(what+" error", strings.ReplaceAll(errText(err), dbNameOf(tg), "DB"))
		v, verr := goose.GetDBVersion(db)
		if verr != nil {
			t.Fatalf("%s: goose.GetDBVersion after %s: %v", tg.Name, what, verr)
		}
		tr.add(what+" version", v)
		for _, s := range gooseSnapshot(t, tg.Kind, obs) {
			tr.add(what+" "+s.Label, s.Value)
		}
	}

	stepDone("UpTo 5", goose.UpTo(db, dir, 5))
	stepDone("Up (broken 6)", goose.Up(db, dir))
	if tg.Kind == "postgres" { // on MariaDB the ALTER TABLE committed itself: leave it
		stepDone("Down 5", goose.Down(db, dir))
	}
	stepDone("Down 4", goose.Down(db, dir))
	stepDone("DownTo 1", goose.DownTo(db, dir, 1))
	stepDone("DownTo 0", goose.DownTo(db, dir, 0))
	stepDone("UpTo 5 again", goose.UpTo(db, dir, 5))
	return tr
}

// gooseSnapshot reads the schema, goose's version table and the data, as text.
func gooseSnapshot(t *testing.T, kind string, db *sql.DB) []step {
	t.Helper()
	queries := map[string][]step{
		"postgres": {
			{"columns", `SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default,
				character_maximum_length, numeric_precision, numeric_scale
				FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 3`},
			{"indexes", `SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2`},
			{"constraints", `SELECT table_name, constraint_name, constraint_type FROM information_schema.table_constraints
				WHERE table_schema = current_schema() AND constraint_name NOT LIKE '%\_not\_null' ORDER BY 1, 2`},
			{"triggers", `SELECT trigger_name, event_manipulation, event_object_table, action_statement
				FROM information_schema.triggers WHERE trigger_schema = current_schema() ORDER BY 1, 2`},
			{"functions", `SELECT routine_name, routine_type FROM information_schema.routines
				WHERE routine_schema = current_schema() ORDER BY 1`},
		},
		"mariadb": {
			{"columns", `SELECT table_name, column_name, ordinal_position, column_type, is_nullable, column_default, extra
				FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY 1, 3`},
			{"indexes", `SELECT table_name, index_name, seq_in_index, column_name, non_unique
				FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY 1, 2, 3`},
			{"constraints", `SELECT table_name, constraint_name, constraint_type FROM information_schema.table_constraints
				WHERE constraint_schema = DATABASE() ORDER BY 1, 2`},
			{"triggers", `SELECT trigger_name, event_manipulation, event_object_table, action_statement
				FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY 1`},
		},
	}[kind]
	tables := textRows(t, db, map[string]string{
		"postgres": `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`,
		"mariadb":  `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`,
	}[kind])
	has := map[string]bool{}
	for _, row := range tables {
		has[row[0]] = true
	}
	queries = append(queries, step{"version table", `SELECT version_id, is_applied FROM goose_db_version ORDER BY id`})
	if has["books"] {
		queries = append(queries, step{"books", `SELECT a.name, b.title, b.pages, b.price FROM books b JOIN authors a ON a.id = b.author_id ORDER BY b.id`})
	}
	var out []step
	for _, q := range queries {
		out = append(out, step{q.Label, textRows(t, db, q.Value.(string))})
	}
	return out
}

// textRows runs q and returns every value as text ("NULL" for NULL).
func textRows(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// TestGooseProvider runs goose's non-global API: a Provider with a Go migration (in a transaction,
// with arguments) after the SQL ones and, on PostgreSQL, the session locker — an advisory lock
// taken and released on one *sql.Conn, which must stay on one server session — with two
// providers migrating the same database at once. Compared through hasql and raw as above, plus
// the migration results, goose's status and the advisory locks left behind (none).
func TestGooseProvider(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			sub, err := fs.Sub(gooseMigrations, "testdata/goose/"+kind)
			if err != nil {
				t.Fatal(err)
			}
			h := openTarget(t, kind, true)
			r := openTarget(t, kind, false)
			got := gooseProviderScenario(t, h, sub)
			want := gooseProviderScenario(t, r, sub)
			compareTranscripts(t, "hasql", got, want)
		})
	}
}

func gooseProviderScenario(t *testing.T, tg *target, fsys fs.FS) *transcript {
	t.Helper()
	ctx := context.Background()
	tr := &transcript{}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s (%s, %s): %v", what, tg.Name, tg.Kind, err)
		}
	}
	insert := "INSERT INTO authors (name) VALUES (" + ph(tg.Kind, 1) + ")"
	del := "DELETE FROM authors WHERE name = " + ph(tg.Kind, 1)
	goMig := goose.NewGoMigration(6,
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, insert, "Grace")
			return err
		}},
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, del, "Grace")
			return err
		}})
	newProvider := func() *goose.Provider {
		opts := []goose.ProviderOption{goose.WithGoMigrations(goMig), goose.WithDisableGlobalRegistry(true)}
		if tg.Kind == "postgres" {
			locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 60), lock.WithUnlockTimeout(1, 10))
			must("NewPostgresSessionLocker", err)
			opts = append(opts, goose.WithSessionLocker(locker))
		}
		p, err := goose.NewProvider(goose.Dialect(gooseDialect[tg.Kind]), tg.DB, fsys, opts...)
		must("NewProvider", err)
		return p
	}
	results := func(rs []*goose.MigrationResult) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%d %s %s empty=%v err=%q", r.Source.Version, r.Source.Path, r.Direction, r.Empty, errText(r.Error)))
		}
		return out
	}
	p1, p2 := newProvider(), newProvider()
	defer p1.Close()
	defer p2.Close()

	// Two providers at once: on PostgreSQL the session lock serializes them (MariaDB has no
	// session locker in goose: one after the other).
	var r1, r2 []*goose.MigrationResult
	var e1, e2 error
	if tg.Kind == "postgres" {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); r1, e1 = p1.Up(ctx) }()
		go func() { defer wg.Done(); r2, e2 = p2.Up(ctx) }()
		wg.Wait()
	} else {
		r1, e1 = p1.Up(ctx)
		r2, e2 = p2.Up(ctx)
	}
	must("Up", e1)
	must("Up", e2)
	applied := append(results(r1), results(r2)...)
	sort.Strings(applied)
	tr.add("Up by both providers", applied)
	v, err := p2.GetDBVersion(ctx)
	must("GetDBVersion", err)
	tr.add("version", v)
	status, err := p1.Status(ctx)
	must("Status", err)
	var st []string
	for _, s := range status {
		st = append(st, fmt.Sprintf("%d %s", s.Source.Version, s.State))
	}
	tr.add("status", st)

	obs, err := sql.Open(rawDriver(tg.Kind), tg.RawDSN)
	must("observer", err)
	defer obs.Close()
	locks := func() [][]string {
		if tg.Kind != "postgres" {
			return nil
		}
		return textRows(t, obs, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	}
	tr.add("advisory locks after Up", locks())
	tr.add("authors", textRows(t, obs, "SELECT name FROM authors ORDER BY id"))

	down, err := p1.DownTo(ctx, 3)
	must("DownTo", err)
	tr.add("DownTo 3", results(down))
	one, err := p2.UpByOne(ctx)
	must("UpByOne", err)
	tr.add("UpByOne", results([]*goose.MigrationResult{one}))
	up, err := p1.Up(ctx)
	must("Up", err)
	tr.add("Up again", results(up))
	tr.add("advisory locks at the end", locks())
	for _, s := range gooseSnapshot(t, tg.Kind, obs) {
		tr.add(s.Label, s.Value)
	}
	return tr
}
