package hasql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync/atomic"
	"testing"
)

// closeLossDriver serves one-row queries whose Close fails as if the
// connection died after the row arrived, on the first query only.
type closeLossDriver struct {
	queries atomic.Int64
	failed  atomic.Bool
}

type closeLossConn struct{ d *closeLossDriver }
type closeLossRows struct {
	d    *closeLossDriver
	done bool
	fail bool
}

func (d *closeLossDriver) Open(string) (driver.Conn, error)  { return &closeLossConn{d}, nil }
func (c *closeLossConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("no prepare") }
func (c *closeLossConn) Close() error                        { return nil }
func (c *closeLossConn) Begin() (driver.Tx, error)           { return nil, errors.New("no tx") }
func (c *closeLossConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.d.queries.Add(1)
	return &closeLossRows{d: c.d, fail: !c.d.failed.Swap(true)}, nil
}
func (r *closeLossRows) Columns() []string { return []string{"n"} }
func (r *closeLossRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done, dest[0] = true, int64(42)
	return nil
}
func (r *closeLossRows) Close() error {
	if r.fail {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func TestRowsCloseLossRerunsOnlyIdempotentWork(t *testing.T) {
	cases := []struct {
		name      string
		dsn       string
		idem      bool
		wantErr   error
		wantQuery int64
	}{
		{"idempotent read is run again", "closeloss:x?hasql.retry=idempotent", true, nil, 2},
		{"unmarked read reports the loss", "closeloss:x?hasql.retry=idempotent", false, ErrConnectionLost, 1},
		{"retry=safe reports the loss", "closeloss:x", true, ErrConnectionLost, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &closeLossDriver{}
			name := "closeloss-" + t.Name()
			sql.Register(name, d)
			db, err := sql.Open("hasql", name+tc.dsn[len("closeloss"):])
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if tc.idem {
				ctx = Idempotent(ctx)
			}
			var n int
			err = db.QueryRowContext(ctx, "select 42").Scan(&n)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Scan: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Scan: %v does not wrap the driver's error", err)
			}
			if got := d.queries.Load(); got != tc.wantQuery {
				t.Fatalf("the driver ran %d queries, want %d", got, tc.wantQuery)
			}
			c, _ := ConnectorOf(db)
			if st := c.Stats(); st.Terminated != 1 {
				t.Fatalf("Terminated = %d, want the lost session ended", st.Terminated)
			}
		})
	}
}
