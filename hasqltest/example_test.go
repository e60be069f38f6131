package hasqltest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
)

// The application code under test.

// Order is an order to store. An order with an ID chosen by the client can
// be stored twice without harm (the second insert changes nothing); one
// without gets its ID from the database, and storing it twice stores two
// orders.
type Order struct {
	ID    string
	Total int
}

// SaveOrder stores o. When the connection is lost and hasql cannot tell
// whether the insert ran (hasql.ErrConnectionLost), it tries again — but
// only if the insert is idempotent; otherwise the caller must find out.
func SaveOrder(ctx context.Context, db *sql.DB, o Order) error {
	idempotent := o.ID != ""
	query, args := "INSERT INTO orders (total) VALUES (?)", []any{o.Total}
	if idempotent {
		query = "INSERT INTO orders (id, total) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
		args = []any{o.ID, o.Total}
	}
	for attempt := 1; ; attempt++ {
		_, err := db.ExecContext(ctx, query, args...)
		if errors.Is(err, hasql.ErrConnectionLost) && idempotent && attempt < 3 {
			continue
		}
		return err
	}
}

// PlaceOrder stores o and takes its items from stock, in one transaction.
// When the commit's outcome is unknown (hasql.ErrTxResolutionUnknown) it
// looks for the order: if it is there, the transaction committed. (A loss
// before the commit was sent is hasql.ErrTxNotCommitted: nothing to look
// for.)
func PlaceOrder(ctx context.Context, db *sql.DB, o Order) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, total) VALUES (?, ?)", o.ID, o.Total); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE stock SET n = n - 1 WHERE item = ?", "book"); err != nil {
		return err
	}
	err = tx.Commit()
	if errors.Is(err, hasql.ErrTxResolutionUnknown) {
		var n int
		if qerr := db.QueryRowContext(ctx, "SELECT count(*) FROM orders WHERE id = ?", o.ID).Scan(&n); qerr != nil {
			return errors.Join(err, qerr)
		}
		if n == 1 {
			return nil // committed after all
		}
	}
	return err
}

// The tests, as examples.

// A connection lost before the insert was sent is invisible to the
// application: hasql runs the insert again on a new session, once. Not even
// the non-idempotent insert is stored twice.
func ExampleFaults_LoseBeforeSend() {
	faults := hasqltest.NewFaults()
	db, mock, done, err := hasqltest.OpenMock(hasqltest.WithFaults(faults))
	if err != nil {
		panic(err)
	}
	// Calls 1 and 3 are each insert's first attempt; 2 and 4 hasql's retries.
	lose := faults.LoseBeforeSend("INSERT INTO orders", 1)
	again := faults.LoseBeforeSend("INSERT INTO orders", 3)

	mock.ExpectExec("INSERT INTO orders").WithArgs("o-1", 30).WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec("INSERT INTO orders").WithArgs(40).WillReturnResult(sqlmock.NewResult(2, 1))

	ctx := context.Background()
	fmt.Println("idempotent:", SaveOrder(ctx, db, Order{ID: "o-1", Total: 30}))
	fmt.Println("not idempotent:", SaveOrder(ctx, db, Order{Total: 40}))
	fmt.Println("connections lost:", lose.Fired()+again.Fired())
	fmt.Println("expectations:", done()) // each insert ran once
	// Output:
	// idempotent: <nil>
	// not idempotent: <nil>
	// connections lost: 2
	// expectations: <nil>
}

// A connection lost after the insert was sent leaves its outcome unknown:
// the application sees hasql.ErrConnectionLost. SaveOrder runs the
// idempotent insert again, and reports the other one.
func ExampleFaults_LoseAfterSend() {
	faults := hasqltest.NewFaults()
	db, mock, done, err := hasqltest.OpenMock(hasqltest.WithFaults(faults))
	if err != nil {
		panic(err)
	}
	faults.LoseAfterSend("INSERT INTO orders", 1)
	faults.LoseAfterSend("INSERT INTO orders", 3)

	// The first insert runs, is lost, and runs again; the second runs once.
	mock.ExpectExec("INSERT INTO orders").WithArgs("o-1", 30).WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec("INSERT INTO orders").WithArgs("o-1", 30).WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectExec("INSERT INTO orders").WithArgs(40).WillReturnResult(sqlmock.NewResult(2, 1))

	ctx := context.Background()
	fmt.Println("idempotent:", SaveOrder(ctx, db, Order{ID: "o-1", Total: 30}))
	err = SaveOrder(ctx, db, Order{Total: 40})
	fmt.Println("not idempotent, outcome unknown:", errors.Is(err, hasql.ErrConnectionLost))
	fmt.Println("expectations:", done())
	// Output:
	// idempotent: <nil>
	// not idempotent, outcome unknown: true
	// expectations: <nil>
}

// hasql can re-run idempotent work itself: with hasql.RetryIdempotent, work
// whose context is marked hasql.Idempotent runs again after a loss, and the
// application never sees it.
func ExampleFaults_LoseAfterSend_retryIdempotent() {
	faults := hasqltest.NewFaults()
	db, mock, done, err := hasqltest.OpenMock(hasqltest.WithFaults(faults),
		hasqltest.WithHasql(hasql.WithRetry(hasql.RetryIdempotent)))
	if err != nil {
		panic(err)
	}
	lose := faults.LoseAfterSend("UPDATE stock", 1)
	mock.ExpectExec("UPDATE stock").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("UPDATE stock").WillReturnResult(sqlmock.NewResult(0, 1))

	ctx := hasql.Idempotent(context.Background())
	_, err = db.ExecContext(ctx, "UPDATE stock SET n = 10 WHERE item = ?", "book")
	fmt.Println("update:", err, "- lost:", lose.Fired())
	fmt.Println("expectations:", done()) // it ran twice
	// Output:
	// update: <nil> - lost: 1
	// expectations: <nil>
}

// A connection lost at commit: the transaction committed, but the
// application cannot know — Commit returns hasql.ErrTxResolutionUnknown.
// PlaceOrder then looks for the order and finds it.
func ExampleFaults_LoseAtCommit() {
	faults := hasqltest.NewFaults()
	db, mock, done, err := hasqltest.OpenMock(hasqltest.WithFaults(faults))
	if err != nil {
		panic(err)
	}
	faults.LoseAtCommit(1)

	mock.ExpectBegin()
	mock.ExpectExec("INSERT INTO orders").WithArgs("o-7", 70).WillReturnResult(sqlmock.NewResult(7, 1))
	mock.ExpectExec("UPDATE stock").WithArgs("book").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectQuery("SELECT count").WithArgs("o-7").WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(1))

	fmt.Println("place order:", PlaceOrder(context.Background(), db, Order{ID: "o-7", Total: 70}))
	fmt.Println("expectations:", done())
	// Output:
	// place order: <nil>
	// expectations: <nil>
}

// The same, as a test: NewMock checks the expectations when the test ends.
func TestSaveOrder(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		fault  func(f *hasqltest.Faults)
		order  Order
		runs   int // how often the insert reaches the database
		wantIs error
	}{
		{"no fault", func(*hasqltest.Faults) {}, Order{Total: 40}, 1, nil},
		{"lost before send", func(f *hasqltest.Faults) { f.LoseBeforeSend("INSERT", 1) }, Order{Total: 40}, 1, nil},
		{"lost after send, idempotent", func(f *hasqltest.Faults) { f.LoseAfterSend("INSERT", 1) }, Order{ID: "o-1", Total: 30}, 2, nil},
		{"lost after send twice, idempotent", func(f *hasqltest.Faults) { f.LoseAfterSend("INSERT", 1); f.LoseAfterSend("INSERT", 2) }, Order{ID: "o-1", Total: 30}, 3, nil},
		{"lost after send, not idempotent", func(f *hasqltest.Faults) { f.LoseAfterSend("INSERT", 1) }, Order{Total: 40}, 1, hasql.ErrConnectionLost},
		{"always lost, idempotent", func(f *hasqltest.Faults) { f.LoseAfterSend("INSERT", 0) }, Order{ID: "o-1", Total: 30}, 3, hasql.ErrConnectionLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
			tc.fault(faults)
			for range tc.runs {
				mock.ExpectExec("INSERT INTO orders").WillReturnResult(sqlmock.NewResult(1, 1))
			}
			err := SaveOrder(ctx, db, tc.order)
			if tc.wantIs == nil && err != nil || tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("SaveOrder: %v, want %v", err, tc.wantIs)
			}
		})
	}
}

func TestPlaceOrder(t *testing.T) {
	ctx := context.Background()
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprint("committed ", committed), func(t *testing.T) {
			faults := hasqltest.NewFaults()
			db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
			mock.ExpectBegin()
			mock.ExpectExec("INSERT INTO orders").WillReturnResult(sqlmock.NewResult(7, 1))
			mock.ExpectExec("UPDATE stock").WillReturnResult(sqlmock.NewResult(0, 1))
			if committed {
				faults.LoseAtCommit(1)
				mock.ExpectCommit()
				mock.ExpectQuery("SELECT count").WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(1))
			} else {
				// Lost before the commit was sent: hasql knows the
				// transaction did not commit, so there is nothing to ask.
				faults.LoseBeforeSend("", 1).On(hasql.FnCommit)
			}
			err := PlaceOrder(ctx, db, Order{ID: "o-7", Total: 70})
			if committed && err != nil || !committed && !errors.Is(err, hasql.ErrTxNotCommitted) {
				t.Fatalf("PlaceOrder: %v", err)
			}
		})
	}
}
