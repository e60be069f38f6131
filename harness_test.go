package hasql_test

// Integration-test harness: throwaway and shared PostgreSQL and MariaDB servers on loopback, from
// package internal/testserver (see its documentation). The names below keep the tests' call sites
// short:
//
//   startPostgres(t) / startMariaDB(t)  a private instance for tests that stop, kill or restart it;
//                                       removed at the end of the test.
//   sharedPG(t) / sharedMaria(t)         one instance per test binary (or the external server named
//                                       by HASQL_TEST_PG_DSN / HASQL_TEST_MYSQL_DSN), stopped by
//                                       TestMain; it refuses Stop/Start/Kill.
//   srv.FreshDB(t)                       a new empty database for this test, returns its DSN.

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// pgServer is a PostgreSQL server of the harness.
type pgServer = testserver.Postgres

// mariaServer is a MariaDB server of the harness.
type mariaServer = testserver.MariaDB

// startPostgres is testserver.StartPostgres: a throwaway instance for this test.
func startPostgres(t testing.TB) *pgServer {
	t.Helper()
	return testserver.StartPostgres(t)
}

// startMariaDB is testserver.StartMariaDB: a throwaway instance for this test.
func startMariaDB(t testing.TB) *mariaServer {
	t.Helper()
	return testserver.StartMariaDB(t)
}

// sharedPG is testserver.SharedPostgres: the test binary's shared server.
func sharedPG(t testing.TB) *pgServer {
	t.Helper()
	return testserver.SharedPostgres(t)
}

// sharedMaria is testserver.SharedMariaDB: the test binary's shared server.
func sharedMaria(t testing.TB) *mariaServer {
	t.Helper()
	return testserver.SharedMariaDB(t)
}

// stopSharedServers stops the shared servers; TestMain calls it after m.Run.
func stopSharedServers() { testserver.StopShared() }

// harnessRandHex returns n random bytes in hex, for unique names.
func harnessRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
