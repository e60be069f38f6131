package compat_test

// Test harness: one throwaway PostgreSQL and one throwaway MariaDB per package run, from the root
// module's internal/testserver (started on first use, stopped by TestMain). HASQL_TEST_PG_DSN /
// HASQL_TEST_MYSQL_DSN point the tests at servers of your own instead.

import (
	"fmt"
	"os"
	"testing"

	_ "github.com/go-sql-driver/mysql" // raw "mysql"
	"github.com/hasqlgo/hasql/internal/testserver"
	_ "github.com/jackc/pgx/v5/stdlib" // raw "pgx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testserver.StopShared()
	if code == 0 {
		// Every test closes its *sql.DB (and so its hasql Connector): nothing may outlive them.
		// Except GORM's own: PrepareStmt's statement LRU starts a janitor goroutine that nothing
		// stops (gorm v1.31, internal/lru).
		if err := goleak.Find(goleak.IgnoreAnyFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// freshDB creates an empty database for this test on the shared server of kind ("postgres" or
// "mariadb") and returns its raw-driver DSN (pgx URL or go-sql-driver/mysql DSN); the database is
// dropped when the test ends.
func freshDB(t testing.TB, kind string) string {
	t.Helper()
	switch kind {
	case "postgres":
		return testserver.SharedPostgres(t).FreshDB(t)
	case "mariadb":
		return testserver.SharedMariaDB(t).FreshDB(t)
	}
	t.Fatalf("harness: unknown server kind %q", kind)
	return ""
}
