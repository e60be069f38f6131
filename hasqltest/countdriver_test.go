package hasqltest_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"strings"
	"sync"
)

// countDriver is a minimal driver that is not go-sqlmock, to show that
// Faults works over any inner driver: each DSN is a database that counts
// the statements it ran, by text. "SELECT n" returns the count of the
// statement named after it ("SELECT n UPDATE x" → runs of "UPDATE x").
type countDriver struct {
	mu  sync.Mutex
	dbs map[string]map[string]int
}

var counting = &countDriver{dbs: map[string]map[string]int{}}

func init() { sql.Register("hasqltest-count", counting) }

func (d *countDriver) runs(dsn, query string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dbs[dsn][query]
}

func (d *countDriver) Open(dsn string) (driver.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dbs[dsn] == nil {
		d.dbs[dsn] = map[string]int{}
	}
	return &countConn{d: d, dsn: dsn}, nil
}

type countConn struct {
	d   *countDriver
	dsn string
}

var (
	_ driver.ExecerContext  = (*countConn)(nil)
	_ driver.QueryerContext = (*countConn)(nil)
	_ driver.ConnBeginTx    = (*countConn)(nil)
)

func (c *countConn) run(query string) int {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if name, ok := strings.CutPrefix(query, "SELECT n "); ok {
		return c.d.dbs[c.dsn][name]
	}
	c.d.dbs[c.dsn][query]++
	return 0
}

func (c *countConn) ExecContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	c.run(query)
	return driver.RowsAffected(1), nil
}

func (c *countConn) QueryContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	return &countRows{n: int64(c.run(query))}, nil
}

func (c *countConn) Prepare(query string) (driver.Stmt, error) { return &countStmt{c, query}, nil }
func (c *countConn) Close() error                              { return nil }
func (c *countConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *countConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	c.run("BEGIN")
	return countTx{c}, nil
}

type countTx struct{ c *countConn }

func (t countTx) Commit() error   { t.c.run("COMMIT"); return nil }
func (t countTx) Rollback() error { t.c.run("ROLLBACK"); return nil }

type countStmt struct {
	c     *countConn
	query string
}

func (s *countStmt) Close() error  { return nil }
func (s *countStmt) NumInput() int { return -1 }
func (s *countStmt) Exec([]driver.Value) (driver.Result, error) {
	s.c.run(s.query)
	return driver.RowsAffected(1), nil
}
func (s *countStmt) Query([]driver.Value) (driver.Rows, error) {
	return &countRows{n: int64(s.c.run(s.query))}, nil
}

type countRows struct {
	n    int64
	done bool
}

func (r *countRows) Columns() []string { return []string{"n"} }
func (r *countRows) Close() error      { return nil }
func (r *countRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = r.n
	return nil
}
