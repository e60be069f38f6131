package hasql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"slices"
	"testing"

	"github.com/hasqlgo/hasql"
)

// Tests of the driver and its connector (driver.go): registration, Open, OpenDB and
// NewConnector, ConnectorOf, and the inner connector's io.Closer forwarded exactly once.

// TestConnectorForwardsCloseAndConnectorOf: hasql's Connector closes an
// inner connector that is an io.Closer exactly once, when the *sql.DB
// closes (as database/sql itself does without hasql), and ConnectorOf finds
// the Connector behind a *sql.DB however it was opened.
func TestConnectorForwardsCloseAndConnectorOf(t *testing.T) {
	ctx := context.Background()
	name := hasql.FakeDriverName(hasql.FakeCapsAll)
	drv := hasql.FakeDriverFor(hasql.FakeCapsAll)

	// The reference: database/sql closes the connector once.
	rec := hasql.NewFakeDB(t)
	rawDB, err := sql.Open(name, rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hasql.ConnectorOf(rawDB); ok {
		t.Error("ConnectorOf found a hasql Connector behind a raw driver's *sql.DB")
	}
	checkClosedOnce(t, "raw driver", rawDB, rec)

	// hasql.OpenDB over an io.Closer connector.
	rec = hasql.NewFakeDB(t)
	inner, err := drv.OpenConnector(rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	db := hasql.OpenDB(inner)
	hc, ok := hasql.ConnectorOf(db)
	if !ok || hc == nil {
		t.Fatal("ConnectorOf(hasql.OpenDB(...)) found nothing")
	}
	checkClosedOnce(t, "hasql.OpenDB", db, rec)
	if err := hc.Close(); err != nil {
		t.Error(err)
	}
	if n := inner.(*hasql.FakeConnector).Closes.Load(); n != 1 {
		t.Errorf("hasql.OpenDB: inner connector closed %d times after a second Close, want 1", n)
	}

	// hasql.OpenDB over a connector that is not an io.Closer: nothing to
	// forward, and hasql's own Close still works.
	rec = hasql.NewFakeDB(t)
	inner, err = drv.OpenConnector(rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	db = hasql.OpenDB(struct{ driver.Connector }{inner})
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := inner.(*hasql.FakeConnector).Closes.Load(); n != 0 {
		t.Errorf("a connector without Close was closed %d times", n)
	}

	// hasql.NewConnector with sql.OpenDB.
	rec = hasql.NewFakeDB(t)
	inner, err = drv.OpenConnector(rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := hasql.NewConnector(inner)
	if err != nil {
		t.Fatal(err)
	}
	db = sql.OpenDB(nc)
	if got, ok := hasql.ConnectorOf(db); !ok || got != nc {
		t.Errorf("ConnectorOf(sql.OpenDB(NewConnector(...))) = %p, %v; want %p", got, ok, nc)
	}
	checkClosedOnce(t, "hasql.NewConnector", db, rec)

	// sql.Open("hasql", ...) and hasql.Open: the inner connectors hasql
	// opened for the DSN are each closed exactly once.
	rec = hasql.NewFakeDB(t)
	db, err = sql.Open("hasql", name+":"+rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hasql.ConnectorOf(db); !ok {
		t.Error(`ConnectorOf(sql.Open("hasql", ...)) found nothing`)
	}
	checkClosedOnce(t, `sql.Open("hasql")`, db, rec)

	rec = hasql.NewFakeDB(t)
	db, err = hasql.Open(name, rec.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hasql.ConnectorOf(db); !ok {
		t.Error("ConnectorOf(hasql.Open(...)) found nothing")
	}
	checkClosedOnce(t, "hasql.Open", db, rec)
}

// checkClosedOnce uses db, checks that the inner connector that served it is
// still open, closes db and checks that every inner connector opened for
// rec's DSN was closed exactly once.
func checkClosedOnce(t *testing.T, label string, db *sql.DB, rec *hasql.FakeDB) {
	t.Helper()
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if _, err := db.ExecContext(ctx, "insert x"); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	var serving *hasql.FakeConnector
	for _, c := range rec.Connectors() {
		if c.Connects.Load() > 0 {
			if serving != nil {
				t.Errorf("%s: more than one inner connector made connections", label)
			}
			serving = c
		}
	}
	if serving == nil {
		t.Fatalf("%s: no inner connector made a connection", label)
	}
	if n := serving.Closes.Load(); n != 0 {
		t.Errorf("%s: the serving inner connector was closed %d times while the DB was open", label, n)
	}
	if err := db.Close(); err != nil {
		t.Errorf("%s: db.Close: %v", label, err)
	}
	for i, c := range rec.Connectors() {
		if n := c.Closes.Load(); n != 1 {
			t.Errorf("%s: inner connector %d (%d connects) closed %d times, want exactly 1", label, i, c.Connects.Load(), n)
		}
	}
	if err := db.Close(); err != nil {
		t.Errorf("%s: second db.Close: %v", label, err)
	}
	for i, c := range rec.Connectors() {
		if n := c.Closes.Load(); n != 1 {
			t.Errorf("%s: inner connector %d closed %d times after a second db.Close, want 1", label, i, n)
		}
	}
}

// TestDriverRegisteredAndOpens: "hasql" is registered; sql.Open, hasql.Open, hasql.OpenDB and
// hasql.NewConnector all reach the inner driver, and a DSN hasql cannot use fails with ErrDSN.
func TestDriverRegisteredAndOpens(t *testing.T) {
	if !slices.Contains(sql.Drivers(), "hasql") {
		t.Fatalf("sql.Drivers() = %v lacks \"hasql\"", sql.Drivers())
	}
	inner := hasql.FakeDriverName(hasql.FakeCapsContext)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func(db *hasql.FakeDB) (*sql.DB, error)
	}{
		{"sql.Open", func(db *hasql.FakeDB) (*sql.DB, error) { return sql.Open("hasql", inner+":"+db.DSN()) }},
		{"hasql.Open", func(db *hasql.FakeDB) (*sql.DB, error) { return hasql.Open(inner, db.DSN()) }},
		{"hasql.OpenDB", func(db *hasql.FakeDB) (*sql.DB, error) {
			c, err := hasql.FakeDriverFor(hasql.FakeCapsContext).OpenConnector(db.DSN())
			if err != nil {
				return nil, err
			}
			return hasql.OpenDB(c), nil
		}},
		{"hasql.NewConnector", func(db *hasql.FakeDB) (*sql.DB, error) {
			c, err := hasql.NewConnector((&hasql.FakeDriver{Caps: hasql.FakeCapsContext, DB: db}).Connector())
			if err != nil {
				return nil, err
			}
			return sql.OpenDB(c), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb := hasql.NewFakeDB(t)
			db, err := tc.open(fdb)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, ok := hasql.ConnectorOf(db); !ok {
				t.Error("ConnectorOf found no hasql Connector")
			}
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			if n := fdb.Opens.Load(); n != 1 {
				t.Errorf("the inner driver opened %d connections for a Ping, want 1", n)
			}
		})
	}

	for _, dsn := range []string{
		"no-colon",
		":x",
		"hasql:x",
		"not-registered-driver:x",
		inner + ":x?hasql.nope=1",
	} {
		db, err := sql.Open("hasql", dsn)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if !errors.Is(err, hasql.ErrDSN) {
			t.Errorf("%q: %v, want ErrDSN", dsn, err)
		}
	}
}
