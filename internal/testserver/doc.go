// Package testserver starts throwaway PostgreSQL and MariaDB servers on free loopback ports, each in
// its own temporary directory, and stops and removes them afterwards. hasql's integration tests (in
// the root module and in the compat module) and the example tools (examples/cmd/hasql-demo,
// examples/cmd/hasql-recovery) use it.
//
// It depends on the standard library only and on no Go database driver: the servers are driven with
// their own command-line tools (initdb, pg_ctl, pg_basebackup, psql, mariadb-install-db, mariadbd,
// mariadb), so that it does not depend on the code under test. The hasql package itself never
// imports it.
//
// Three ways to get a server:
//
//	StartPostgres(t) / StartMariaDB(t)    a private instance for a test that stops, kills or
//	                                      restarts it; removed when the test ends.
//	SharedPostgres(t) / SharedMariaDB(t)  one instance per process (or the external server named by
//	                                      HASQL_TEST_PG_DSN / HASQL_TEST_MYSQL_DSN), stopped by
//	                                      StopShared, which TestMain calls after m.Run; it refuses
//	                                      Stop, Start and Kill.
//	NewPostgres(ctx, opts) / NewMariaDB   outside tests (the example tools); the caller calls
//	                                      Destroy.
//
// FreshDB gives a test a new empty database on any of them and returns its DSN.
//
// As root, initdb and pg_ctl run as the system user postgres (through runuser, else su) and
// mariadbd as mysql (--user=mysql): initdb refuses root, and each instance directory is handed to
// that user.
//
// Servers live in $TMPDIR/hasql-pg-* and $TMPDIR/hasql-maria-*. A file "owner" in each records the
// owning process ("pid starttime"); directories left behind by a process that died (a test binary's
// timeout panic, SIGKILL) are removed, their server processes killed by pid, by the next process
// that starts a server.
package testserver
