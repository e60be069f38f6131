package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync/atomic"

	_ "modernc.org/sqlite"
)

// countingDriver is the SQLite driver, registered again as "sqlite-counted",
// counting the statements prepared on its connections: part 2 shows how
// many prepares reach the driver, raw and through hasql. It is no part of
// using hasql, which wraps it as it would pgx or go-sql-driver/mysql.
type countingDriver struct {
	driver.Driver
	prepares atomic.Int64
}

var counting = func() *countingDriver {
	db, _ := sql.Open("sqlite", "") // connects to nothing: only to reach the registered driver
	defer db.Close()
	d := &countingDriver{Driver: db.Driver()}
	sql.Register("sqlite-counted", d)
	return d
}()

// sqliteConn is what the SQLite driver's connections implement and
// database/sql and hasql use.
type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type countingConn struct {
	sqliteConn
	d *countingDriver
}

func (d *countingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	return countingConn{c.(sqliteConn), d}, nil
}

// PrepareContext counts a prepare. database/sql and hasql prepare only
// through PrepareContext when the driver has it, as SQLite's does.
func (c countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.d.prepares.Add(1)
	return c.sqliteConn.PrepareContext(ctx, query)
}
