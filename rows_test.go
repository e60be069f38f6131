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

// closeLossDB is fakedb serving one-row queries whose Close fails as if the
// connection died after the row arrived, on the first query only; queries
// counts the queries it ran.
func closeLossDB() (db *FakeDB, queries *atomic.Int64) {
	db, queries = NoopFakeDB(), new(atomic.Int64)
	var failed atomic.Bool
	db.OnQuery = func(*FakeConn, context.Context, string, []driver.NamedValue) (driver.Rows, error) {
		queries.Add(1)
		r := &FakeSliceRows{Cols: []string{"n"}, Vals: [][]driver.Value{{int64(42)}}}
		if !failed.Swap(true) {
			r.CloseErr = io.ErrUnexpectedEOF
		}
		return r, nil
	}
	return db, queries
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
			d, queries := closeLossDB()
			name := "closeloss-" + t.Name()
			sql.Register(name, &FakeDriver{Caps: FakeQueryerContext, DB: d})
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
			if got := queries.Load(); got != tc.wantQuery {
				t.Fatalf("the driver ran %d queries, want %d", got, tc.wantQuery)
			}
			c, _ := ConnectorOf(db)
			if st := c.Stats(); st.Terminated != 1 {
				t.Fatalf("Terminated = %d, want the lost session ended", st.Terminated)
			}
		})
	}
}
