package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// connectorFor returns the registered driver's connector for dsn, for
// connections of our own that bypass database/sql's pool.
func connectorFor(driverName, dsn string) (driver.Connector, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	dc, ok := db.Driver().(driver.DriverContext)
	if !ok {
		return nil, fmt.Errorf("driver %s has no OpenConnector", driverName)
	}
	return dc.OpenConnector(dsn)
}

// probeOnce opens a fresh connection, pings it and closes it: the protocol
// level check that the server accepts connections.
func probeOnce(ctx context.Context, c driver.Connector, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if p, ok := conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
