package hasql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
)

// openExample opens a hasql *sql.DB over a fresh go-sqlmock database (exact
// query matching), with params appended to the DSN, and returns it with the
// mock and a function that closes both.
func openExample(params string) (*sql.DB, sqlmock.Sqlmock, func()) {
	name := fmt.Sprintf("example%d", exampleSeq.Add(1))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		panic(err)
	}
	db, err := sql.Open("hasql", "sqlmock:"+name+params)
	if err != nil {
		panic(err)
	}
	return db, mock, func() { db.Close(); mdb.Close() }
}

var exampleSeq atomic.Int64

// Timing every query: the entry callback stamps the start time into the
// call's context and the exit callback reads it back.
func ExampleCallbacks_Register_timing() {
	db, mock, done := openExample("")
	defer done()

	c, _ := hasql.ConnectorOf(db)
	type startKey struct{}
	c.Callbacks().Register(hasql.FnQuery, hasql.Entry, func(call *hasql.Call) error {
		call.Ctx = context.WithValue(call.Ctx, startKey{}, time.Now())
		return hasql.Continue
	})
	c.Callbacks().Register(hasql.FnQuery, hasql.Exit, func(call *hasql.Call) error {
		took := time.Since(call.Ctx.Value(startKey{}).(time.Time))
		fmt.Printf("%v %q err=%v, under a minute: %v\n", call.Fn, call.Query, call.Err, took < time.Minute)
		return hasql.Continue // leave the outcome alone
	})

	mock.ExpectQuery("SELECT name FROM users WHERE id = ?").WithArgs(1).
		WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ada"))
	var name string
	if err := db.QueryRow("SELECT name FROM users WHERE id = ?", 1).Scan(&name); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(name)
	// Output:
	// FnQuery "SELECT name FROM users WHERE id = ?" err=<nil>, under a minute: true
	// ada
}

// Translating an error: an exit callback that returns something other than
// Continue replaces the outcome. Here a driver's duplicate-key error becomes
// the application's own sentinel, still wrapping the original.
func ExampleCallbacks_Register_translateError() {
	db, mock, done := openExample("")
	defer done()

	errAlreadyExists := errors.New("already exists")
	c, _ := hasql.ConnectorOf(db)
	c.Callbacks().Register(hasql.FnExec, hasql.Exit, func(call *hasql.Call) error {
		if call.Err != nil && strings.Contains(call.Err.Error(), "duplicate key") {
			return fmt.Errorf("%w (%w)", errAlreadyExists, call.Err)
		}
		return hasql.Continue
	})

	mock.ExpectExec("INSERT INTO users (name) VALUES (?)").WithArgs("ada").
		WillReturnError(errors.New(`duplicate key value violates unique constraint "users_name_key"`))
	_, err := db.Exec("INSERT INTO users (name) VALUES (?)", "ada")
	fmt.Println(errors.Is(err, errAlreadyExists))
	fmt.Println(err)
	// Output:
	// true
	// already exists (duplicate key value violates unique constraint "users_name_key")
}

// exampleRows is a driver.Rows over one column of strings.
type exampleRows struct {
	col  string
	vals []string
}

func (r *exampleRows) Columns() []string { return []string{r.col} }
func (r *exampleRows) Close() error      { return nil }
func (r *exampleRows) Next(dest []driver.Value) error {
	if len(r.vals) == 0 {
		return io.EOF
	}
	dest[0], r.vals = r.vals[0], r.vals[1:]
	return nil
}

// Answering a query from a cache: a replacement callback that returns nil
// supplies the outcome itself (here Call.Rows), and the database is not
// asked. Queries it does not know go on to the driver (Continue).
func ExampleCallbacks_Register_cache() {
	db, mock, done := openExample("")
	defer done()

	cache := map[string]string{"SELECT value FROM settings WHERE key = 'theme'": "dark"}
	c, _ := hasql.ConnectorOf(db)
	c.Callbacks().Register(hasql.FnQuery, hasql.Replace, func(call *hasql.Call) error {
		if v, ok := cache[call.Query]; ok {
			call.Rows = &exampleRows{col: "value", vals: []string{v}}
			return nil
		}
		return hasql.Continue
	})

	var theme, lang string
	db.QueryRow("SELECT value FROM settings WHERE key = 'theme'").Scan(&theme) // from the cache

	mock.ExpectQuery("SELECT value FROM settings WHERE key = 'lang'").
		WillReturnRows(sqlmock.NewRows([]string{"value"}).AddRow("en"))
	db.QueryRow("SELECT value FROM settings WHERE key = 'lang'").Scan(&lang) // from the database

	fmt.Println(theme, lang)
	fmt.Println("unmet expectations:", mock.ExpectationsWereMet())
	// Output:
	// dark en
	// unmet expectations: <nil>
}

// Chaining (OCIUserCallbackGet): a new callback takes over a (Fn, When) slot
// and calls the callback it replaced, so both run.
func ExampleCallbacks_Get() {
	db, mock, done := openExample("")
	defer done()

	c, _ := hasql.ConnectorOf(db)
	r := c.Callbacks()
	r.Register(hasql.FnExec, hasql.Entry, func(call *hasql.Call) error {
		fmt.Println("first:", call.Query)
		return hasql.Continue
	})

	prev := r.Get(hasql.FnExec, hasql.Entry)
	r.Register(hasql.FnExec, hasql.Entry, func(call *hasql.Call) error {
		fmt.Println("second, then the one it replaced")
		if prev != nil {
			return prev(call)
		}
		return hasql.Continue
	})

	mock.ExpectExec("DELETE FROM sessions").WillReturnResult(sqlmock.NewResult(0, 2))
	res, err := db.Exec("DELETE FROM sessions")
	if err != nil {
		fmt.Println(err)
		return
	}
	n, _ := res.RowsAffected()
	fmt.Println("deleted", n)
	// Output:
	// second, then the one it replaced
	// first: DELETE FROM sessions
	// deleted 2
}

var registerAuditOnce sync.Once

// A callback package: registered once under a name (normally in an init
// function), then loaded by any connector that lists it in hasql.callbacks,
// HASQL_CALLBACK_PACKAGES or WithCallbackPackages. Its exit callbacks run
// before the connector's own.
func ExampleRegisterPackage() {
	registerAuditOnce.Do(func() { // the Once only keeps the example repeatable
		hasql.RegisterPackage("example_audit", func(r *hasql.Callbacks) error {
			r.Register(hasql.FnExec, hasql.Exit, func(call *hasql.Call) error {
				fmt.Printf("audit: %s (err=%v)\n", call.Query, call.Err)
				return hasql.Continue
			})
			return nil
		})
	})

	db, mock, done := openExample("?hasql.callbacks=example_audit")
	defer done()
	c, _ := hasql.ConnectorOf(db)
	c.Callbacks().Register(hasql.FnExec, hasql.Exit, func(call *hasql.Call) error {
		fmt.Println("connector's own exit")
		return hasql.Continue
	})

	mock.ExpectExec("UPDATE accounts SET locked = true").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE accounts SET locked = true"); err != nil {
		fmt.Println(err)
	}

	_, err := sql.Open("hasql", "sqlmock:whatever?hasql.callbacks=example_audit;no_such_package")
	fmt.Println(errors.Is(err, hasql.ErrDSN))
	// Output:
	// audit: UPDATE accounts SET locked = true (err=<nil>)
	// connector's own exit
	// true
}
