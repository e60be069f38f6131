package testserver

// One server of each kind per process, shared by all tests of a test binary.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

var shared struct {
	pgOnce, mariaOnce sync.Once
	pg                *Postgres
	pgErr             error
	maria             *MariaDB
	mariaErr          error
}

// SharedPostgres returns the process's shared PostgreSQL server (started on first use, stopped by
// StopShared), or the external server named by HASQL_TEST_PG_DSN; it fails the test if there is
// none. Tests must not stop it (it refuses Stop, Start and Kill9Postmaster): they use FreshDB for a
// database of their own.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	shared.pgOnce.Do(func() {
		if dsn := os.Getenv("HASQL_TEST_PG_DSN"); dsn != "" {
			shared.pg = &Postgres{external: dsn}
			return
		}
		p, err := NewPostgres(context.Background(), PostgresOptions{})
		if err != nil {
			shared.pgErr = err
			return
		}
		p.shared = true
		shared.pg = p
	})
	if shared.pgErr != nil {
		t.Fatalf("testserver: cannot start the shared PostgreSQL server: %v\nTo get one: %s", shared.pgErr, pgHint)
	}
	return shared.pg
}

// SharedMariaDB returns the process's shared MariaDB server (started on first use, stopped by
// StopShared), or the external server named by HASQL_TEST_MYSQL_DSN; it fails the test if there is
// none. Tests must not stop it (it refuses Stop, Start and Kill9): they use FreshDB for a database
// of their own.
func SharedMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	shared.mariaOnce.Do(func() {
		if dsn := os.Getenv("HASQL_TEST_MYSQL_DSN"); dsn != "" {
			shared.maria = &MariaDB{external: dsn}
			return
		}
		m, err := NewMariaDB(context.Background(), MariaDBOptions{})
		if err != nil {
			shared.mariaErr = err
			return
		}
		m.shared = true
		shared.maria = m
	})
	if shared.mariaErr != nil {
		t.Fatalf("testserver: cannot start the shared MariaDB server: %v\nTo get one: %s", shared.mariaErr, mariaHint)
	}
	return shared.maria
}

// StopShared stops and removes the shared servers, if started; TestMain calls it after m.Run.
// Nothing of the package runs afterwards (no goroutine, no process).
func StopShared() {
	if p := shared.pg; p != nil {
		p.destroy()
	}
	if m := shared.maria; m != nil {
		m.destroy()
	}
	if c := sharedPatroni.c; c != nil {
		c.destroy()
	}
	if g := sharedGalera.c; g != nil {
		g.destroy()
	}
	stopSharedBouncer()
}

// refuseControl is the error for stopping, starting or killing a server that is external or
// shared, nil for one's own.
func refuseControl(external, isShared bool, server, env, sharedFunc, startFunc string) error {
	switch {
	case external:
		return fmt.Errorf("testserver: the %s server from %s is external: it cannot be stopped, started or killed; use testserver.%s(t) in tests that need that", server, env, startFunc)
	case isShared:
		return fmt.Errorf("testserver: the %s server of testserver.%s is shared by all tests: it cannot be stopped, started or killed; use testserver.%s(t) in tests that need that", server, sharedFunc, startFunc)
	}
	return nil
}
