package cbmetrics_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/cbmetrics"
)

var seq atomic.Int64

func openMock(t *testing.T, params string) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	name := fmt.Sprintf("cbmetrics%d", seq.Add(1))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mdb.Close() })
	db, err := sql.Open("hasql", "sqlmock:"+name+params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, mock
}

func sum(b [cbmetrics.NumBuckets]int64) (n int64) {
	for _, v := range b {
		n += v
	}
	return n
}

func TestCallbackMetricsCountsCalls(t *testing.T) {
	name := fmt.Sprintf("cbmetrics_pkg%d", seq.Add(1))
	m := cbmetrics.Register(name)
	db, mock := openMock(t, "?hasql.callbacks="+name)
	ctx := context.Background()

	errDriver := errors.New("boom")
	mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec("INSERT INTO t VALUES (2)").WillReturnError(errDriver)
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (2)"); !errors.Is(err, errDriver) {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Fatal(err)
	}

	s := m.Snapshot()
	want := map[hasql.Fn][2]int64{ // count, errors
		hasql.FnConnect: {1, 0},
		hasql.FnReset:   {3, 0},
		hasql.FnExec:    {2, 1},
		hasql.FnQuery:   {1, 0},
	}
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		f := s.Fns[fn]
		if w := want[fn]; f.Count != w[0] || f.Errors != w[1] {
			t.Errorf("%v: count %d errors %d, want %d %d", fn, f.Count, f.Errors, w[0], w[1])
		}
		if sum(f.Buckets) != f.Count {
			t.Errorf("%v: histogram holds %d calls, count is %d", fn, sum(f.Buckets), f.Count)
		}
		if f.Total < 0 {
			t.Errorf("%v: negative total %v", fn, f.Total)
		}
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

// Installed on a connector's own callbacks, Setup chains to the exit already
// there and counts the outcome it produced.
func TestCallbackMetricsChainsAndCountsFinalOutcome(t *testing.T) {
	db, mock := openMock(t, "")
	c, _ := hasql.ConnectorOf(db)
	own := c.Callbacks()
	errApp := errors.New("translated")
	own.Register(hasql.FnExec, hasql.Exit, func(*hasql.Call) error { return errApp })
	m := cbmetrics.New()
	if err := m.Setup(own); err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("DELETE FROM t").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.ExecContext(context.Background(), "DELETE FROM t"); err != errApp {
		t.Fatalf("err %v, want the earlier exit's", err)
	}
	if f := m.Snapshot().Fns[hasql.FnExec]; f.Count != 1 || f.Errors != 1 {
		t.Fatalf("FnExec %+v", f)
	}
}

func TestCallbackMetricsConcurrent(t *testing.T) {
	db, mock := openMock(t, "")
	mock.MatchExpectationsInOrder(false)
	c, _ := hasql.ConnectorOf(db)
	m := cbmetrics.New()
	m.Setup(c.Callbacks())
	// Queries are answered by a replacement callback: sqlmock is not meant
	// for concurrent use, and the metrics are what is under test.
	c.Callbacks().Register(hasql.FnQuery, hasql.Replace, func(call *hasql.Call) error {
		call.Rows = &oneRow{}
		return nil
	})
	const workers, each = 8, 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var v int64
				if err := db.QueryRowContext(context.Background(), "SELECT 1").Scan(&v); err != nil {
					failed.Add(1)
				}
				_ = m.Snapshot()
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d queries failed", failed.Load())
	}
	if f := m.Snapshot().Fns[hasql.FnQuery]; f.Count != workers*each || sum(f.Buckets) != f.Count || f.Errors != 0 {
		t.Fatalf("FnQuery %+v", f)
	}
}

// oneRow is a driver.Rows with one row holding 1.
type oneRow struct{ done bool }

func (r *oneRow) Columns() []string { return []string{"v"} }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}
