package benchcmp

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
)

// NoopDriver is an in-process driver that does nothing, registered as
// "benchcmp-noop". It has every optional interface hasql forwards and
// allocates only what a driver must: a Stmt per prepare and a Rows per query.
// It is a copy of the one in the root module's bench_test.go, which a
// separate module cannot import.
type NoopDriver struct{}

func init() {
	sql.Register("benchcmp-noop", NoopDriver{})
}

func (NoopDriver) Open(string) (driver.Conn, error) { return &noopConn{}, nil }

type noopConn struct {
	closed bool
}

var (
	_ driver.Conn               = (*noopConn)(nil)
	_ driver.ExecerContext      = (*noopConn)(nil)
	_ driver.QueryerContext     = (*noopConn)(nil)
	_ driver.ConnPrepareContext = (*noopConn)(nil)
	_ driver.ConnBeginTx        = (*noopConn)(nil)
	_ driver.Pinger             = (*noopConn)(nil)
	_ driver.SessionResetter    = (*noopConn)(nil)
	_ driver.Validator          = (*noopConn)(nil)
	_ driver.NamedValueChecker  = (*noopConn)(nil)
	_ driver.Tx                 = (*noopConn)(nil)
	_ driver.StmtExecContext    = (*noopStmt)(nil)
	_ driver.StmtQueryContext   = (*noopStmt)(nil)
)

// noopResult is shared: a Result has no state worth allocating for.
var noopResult driver.Result = driver.RowsAffected(1)

func (c *noopConn) Prepare(query string) (driver.Stmt, error) {
	return &noopStmt{query: query}, nil
}
func (c *noopConn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &noopStmt{query: query}, nil
}
func (c *noopConn) Close() error                       { c.closed = true; return nil }
func (c *noopConn) Begin() (driver.Tx, error)          { return c, nil } //nolint:staticcheck
func (c *noopConn) Commit() error                      { return nil }
func (c *noopConn) Rollback() error                    { return nil }
func (c *noopConn) Ping(context.Context) error         { return nil }
func (c *noopConn) IsValid() bool                      { return !c.closed }
func (c *noopConn) ResetSession(context.Context) error { return nil }
func (c *noopConn) CheckNamedValue(*driver.NamedValue) error {
	return driver.ErrSkip
}
func (c *noopConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return c, nil
}
func (c *noopConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return noopResult, nil
}
func (c *noopConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return &noopRows{}, nil
}

type noopStmt struct{ query string }

func (s *noopStmt) Close() error  { return nil }
func (s *noopStmt) NumInput() int { return -1 }
func (s *noopStmt) Exec([]driver.Value) (driver.Result, error) { //nolint:staticcheck
	return noopResult, nil
}
func (s *noopStmt) Query([]driver.Value) (driver.Rows, error) { //nolint:staticcheck
	return &noopRows{}, nil
}
func (s *noopStmt) ExecContext(context.Context, []driver.NamedValue) (driver.Result, error) {
	return noopResult, nil
}
func (s *noopStmt) QueryContext(context.Context, []driver.NamedValue) (driver.Rows, error) {
	return &noopRows{}, nil
}

// noopRows is one row of two int64 columns.
type noopRows struct{ done bool }

var noopColumns = []string{"id", "v"}

func (r *noopRows) Columns() []string { return noopColumns }
func (r *noopRows) Close() error      { return nil }
func (r *noopRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0], dest[1] = int64(1), int64(2)
	return nil
}
