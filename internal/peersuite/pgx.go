package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// pgxHelper is added to the rewritten copy of pgx's stdlib/sql_test.go: the functions the rewrite
// calls instead of sql.Open, stdlib.OpenDB and stdlib.OpenDBFromPool. PEERSUITE_HASQL_PARAMS holds
// hasql settings ("hasql.stmtcache=0") added to the DSN; for stdlib.OpenDB, which has no DSN, the
// same settings are given as options.
const pgxHelper = `package stdlib_test

import (
	"database/sql"
	"os"
	"strconv"
	"strings"

	"github.com/hasqlgo/hasql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

func peerParams() []string { return strings.Fields(os.Getenv("PEERSUITE_HASQL_PARAMS")) }

// peerDSN adds the hasql settings to a pgx DSN (a URL or a key=value list).
func peerDSN(dsn string) string {
	for _, p := range peerParams() {
		switch {
		case strings.Contains(dsn, "://") && strings.Contains(dsn, "?"):
			dsn += "&" + p
		case strings.Contains(dsn, "://"):
			dsn += "?" + p
		case strings.Contains(dsn, "="):
			dsn += " " + p
		default:
			// A name from stdlib.RegisterConnConfig: no place for parameters.
		}
	}
	return dsn
}

func peerOptions() []hasql.Option {
	var opts []hasql.Option
	for _, p := range peerParams() {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "hasql.stmtcache":
			n, err := strconv.Atoi(v)
			if err != nil {
				panic(err)
			}
			opts = append(opts, hasql.WithStmtCacheSize(n))
		case "hasql.pooler":
			switch v {
			case "transaction":
				opts = append(opts, hasql.WithPooler(hasql.PoolerTransaction))
			case "none":
				opts = append(opts, hasql.WithPooler(hasql.PoolerNone))
			default:
				panic("peersuite: bad hasql.pooler " + v)
			}
		case "peersuite.raw":
			// Not a hasql setting: the configuration runs the raw driver (see peerRaw).
		default:
			panic("peersuite: no option for " + p)
		}
	}
	return opts
}

// peerRaw: PEERSUITE_HASQL_PARAMS=peersuite.raw runs the rewritten tests on the raw driver (for a
// raw run where the unmodified binary's database would not do, e.g. through PgBouncer).
func peerRaw() bool {
	for _, p := range peerParams() {
		if p == "peersuite.raw" {
			return true
		}
	}
	return false
}

func peerSQLOpen(driverName, dsn string) (*sql.DB, error) {
	if peerRaw() {
		return sql.Open(driverName, dsn)
	}
	return sql.Open("hasql", driverName+":"+peerDSN(dsn))
}

func peerOpenDB(config pgx.ConnConfig, opts ...stdlib.OptionOpenDB) *sql.DB {
	if peerRaw() {
		return stdlib.OpenDB(config, opts...)
	}
	return hasql.OpenDB(stdlib.GetConnector(config, opts...), peerOptions()...)
}

func peerOpenDBFromPool(pool *pgxpool.Pool, opts ...stdlib.OptionOpenDB) *sql.DB {
	if peerRaw() {
		return stdlib.OpenDBFromPool(pool, opts...)
	}
	return hasql.OpenDB(stdlib.GetPoolConnector(pool, opts...), peerOptions()...)
}
`

// rewritePgx makes pgx's sql_test.go open every database through hasql, and reach pgx's
// connection behind hasql's in Conn.Raw with hasql.Unwrap.
func rewritePgx(s string) (string, error) {
	var err error
	if s, err = replaceAll(s, "\n\t\"github.com/jackc/pgx/v5\"\n", "\n\t\"github.com/hasqlgo/hasql\"\n\t\"github.com/jackc/pgx/v5\"\n"); err != nil {
		return "", err
	}
	for _, r := range [][2]string{
		{"stdlib.OpenDB(", "peerOpenDB("},
		{"stdlib.OpenDBFromPool(", "peerOpenDBFromPool("},
		{"sql.Open(", "peerSQLOpen("},
		// Conn.Raw hands over hasql's connection; the test wants pgx's behind it.
		{"driverConn.(*stdlib.Conn)", "hasql.Unwrap(driverConn).(*stdlib.Conn)"},
	} {
		if s, err = replaceAll(s, r[0], r[1]); err != nil {
			return "", err
		}
	}
	return s, nil
}

// preparePgx builds pgx's stdlib tests raw and rewritten in dir and starts a PostgreSQL server.
func preparePgx(ctx context.Context, repo, dir string) (*suite, error) {
	version, pgxDir, err := moduleDir(ctx, repo, "github.com/jackc/pgx/v5")
	if err != nil {
		return nil, err
	}
	src := filepath.Join(pgxDir, "stdlib", "sql_test.go")
	if err := copyFile(src, filepath.Join(dir, "raw", "sql_test.go"), nil); err != nil {
		return nil, err
	}
	if err := copyFile(src, filepath.Join(dir, "hasql", "sql_test.go"), rewritePgx); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "hasql", "peer_test.go"), []byte(pgxHelper), 0o644); err != nil {
		return nil, err
	}
	gomod := fmt.Sprintf("module peersuite.example/pgx\n\ngo 1.24.0\n\nrequire (\n\tgithub.com/hasqlgo/hasql v0.0.0\n\tgithub.com/jackc/pgx/v5 %s\n)\n\nreplace github.com/hasqlgo/hasql => %s\n", version, repo)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return nil, err
	}
	if err := build(ctx, repo, dir); err != nil {
		return nil, err
	}
	raw := filepath.Join(dir, "raw.test")
	tests, err := listTests(ctx, raw, dir)
	if err != nil {
		return nil, err
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pg, err := testserver.NewPostgres(sctx, testserver.PostgresOptions{})
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL: %w", err)
	}
	// PgBouncer 1.18 in transaction mode in front of the same server, one for each configuration
	// that goes through it (a crash caused by one does not spoil the other's results). Its pool
	// (4 server connections per database) is small enough that consecutive transactions of one
	// client change server connections, and large enough for the tests that hold a few
	// transactions open at once.
	bouncers := map[string]*testserver.PgBouncer{}
	for _, name := range []string{"pgbouncer-raw", "pgbouncer"} {
		b, err := testserver.NewPgBouncer(sctx, pg, testserver.PgBouncerOptions{DefaultPoolSize: 4})
		if err != nil {
			for _, b := range bouncers {
				b.Destroy()
			}
			pg.Destroy()
			return nil, fmt.Errorf("starting PgBouncer: %w", err)
		}
		bouncers[name] = b
	}
	hasqlBin := filepath.Join(dir, "hasql.test")
	s := &suite{
		name:  fmt.Sprintf("pgx %s stdlib", version),
		tests: tests,
		configs: []config{
			{name: "raw", bin: raw},
			{name: "hasql", bin: hasqlBin, hasql: true},
			{name: "stmtcache=0", bin: hasqlBin, env: []string{"PEERSUITE_HASQL_PARAMS=hasql.stmtcache=0"}, hasql: true},
			// Through PgBouncer: raw pgx (not compared: it shows what the pooler breaks), and
			// hasql with hasql.pooler=transaction, compared with raw pgx directly on PostgreSQL.
			{name: "pgbouncer-raw", bin: hasqlBin, env: []string{"PEERSUITE_HASQL_PARAMS=peersuite.raw"}},
			{name: "pgbouncer", bin: hasqlBin, env: []string{"PEERSUITE_HASQL_PARAMS=hasql.pooler=transaction"}, hasql: true},
		},
		dir: dir,
		cleanup: func() {
			for _, b := range bouncers {
				b.Destroy()
			}
			pg.Destroy()
		},
	}
	// A database per configuration, so that the configurations can run side by side.
	for i := range s.configs {
		db := configDB(s.configs[i].name)
		if err := pg.Exec("CREATE DATABASE " + db); err != nil {
			s.cleanup()
			return nil, err
		}
		dsn := pg.DSN(db)
		if b := bouncers[s.configs[i].name]; b != nil {
			dsn = b.DSN(db)
		}
		s.configs[i].env = append(s.configs[i].env, "PGX_TEST_DATABASE="+dsn)
	}
	// Each test process is a new client. Directly on PostgreSQL its connections are new
	// backends, and what an earlier test left in its sessions (temporary tables, prepared
	// statements made through Conn.Raw) is gone; PgBouncer would hand the next test the same
	// server connections. Dropping them between tests (KILL, RESUME on the admin console) gives
	// each test the fresh server sessions it has directly.
	s.reset = func(c config) error {
		bouncer := bouncers[c.name]
		if bouncer == nil {
			return nil
		}
		// PgBouncer 1.18 aborts now and then on a cancel request whose client went away (see
		// testserver.PgBouncer.Running), also just after a restart or during the admin
		// commands: start it again, say so, and try the reset again, a bounded number of times.
		db := configDB(c.name)
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			if attempt > 1 {
				time.Sleep(200 * time.Millisecond)
			}
			if restarted, rerr := bouncer.Restart(ctx); restarted {
				fmt.Fprintf(os.Stderr, "peersuite: %s: PgBouncer had exited; started it again (%v). Its log:\n%s\n", c.name, rerr, bouncer.LogTail())
				if rerr != nil {
					err = rerr
					continue
				}
			}
			_, err = bouncer.Admin("KILL " + db)
			if err == nil || strings.Contains(err.Error(), "no such database") {
				_, err = bouncer.Admin("RESUME " + db)
			}
			if err == nil {
				return nil
			}
		}
		return err
	}
	return s, nil
}

// configDB names the database of a configuration.
func configDB(config string) string {
	return "peer_" + strings.NewReplacer("=", "", "-", "").Replace(config)
}

// build resolves the temporary module's requirements (starting from hasql's go.sum) and compiles
// its raw and hasql test packages into raw.test and hasql.test.
func build(ctx context.Context, repo, dir string) error {
	if sum, err := os.ReadFile(filepath.Join(repo, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
			return err
		}
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	if _, err := goCmd(ctx, dir, env, "mod", "tidy"); err != nil {
		return err
	}
	for _, p := range []string{"raw", "hasql"} {
		if _, err := goCmd(ctx, dir, env, "test", "-c", "-o", p+".test", "./"+p); err != nil {
			return err
		}
	}
	return nil
}

// buildIn resolves the requirements of the module in dir (starting from hasql's go.sum when it
// has none) and compiles its package's tests into bin.
func buildIn(ctx context.Context, repo, dir, bin string) error {
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
			return err
		}
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	if _, err := goCmd(ctx, dir, env, "mod", "tidy"); err != nil {
		return err
	}
	_, err := goCmd(ctx, dir, env, "test", "-c", "-o", bin, ".")
	return err
}
