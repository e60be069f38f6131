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
	"github.com/hasqlgo/hasql/hasqltest"
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

// openExampleWith is openExample with Options instead of DSN parameters,
// through hasql.Open.
func openExampleWith(opts ...hasql.Option) (*sql.DB, sqlmock.Sqlmock, func()) {
	name := fmt.Sprintf("example%d", exampleSeq.Add(1))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		panic(err)
	}
	db, err := hasql.Open("sqlmock", name, opts...)
	if err != nil {
		panic(err)
	}
	return db, mock, func() { db.Close(); mdb.Close() }
}

// The statement cache: closing a *sql.Stmt gives its statement back to the
// session's cache, and preparing the same SQL on that session again takes it
// from there. Code that prepares a statement on every request, as here, has
// it prepared on the server once per session.
func ExampleWithStmtCacheSize() {
	db, mock, done := openExampleWith(hasql.WithStmtCacheSize(50))
	defer done()

	const q = "SELECT name FROM users WHERE id = ?"
	prep := mock.ExpectPrepare(q) // one prepare for both requests
	prep.ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ada"))
	prep.ExpectQuery().WithArgs(2).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("bob"))

	lookup := func(ctx context.Context, id int) (string, error) {
		stmt, err := db.PrepareContext(ctx, q)
		if err != nil {
			return "", err
		}
		defer stmt.Close() // back to the cache, not closed on the server
		var name string
		err = stmt.QueryRowContext(ctx, id).Scan(&name)
		return name, err
	}
	for id := 1; id <= 2; id++ {
		name, err := lookup(context.Background(), id)
		fmt.Println(name, err)
	}

	c, _ := hasql.ConnectorOf(db)
	st := c.Stats()
	fmt.Println("cache hits:", st.StmtCacheHits, "misses:", st.StmtCacheMisses)
	fmt.Println("expectations:", mock.ExpectationsWereMet())
	// Output:
	// ada <nil>
	// bob <nil>
	// cache hits: 1 misses: 1
	// expectations: <nil>
}

// A tagged session: the session callback sets the state a tag stands for
// once per session and records it with SetTag; Release keeps the tag on the
// session. A later checkout that asks for the same tag gets that session
// back, state and all, and the callback does not run again.
func ExampleAcquire() {
	db, mock, done := openExampleWith(hasql.WithSessionCallback(
		func(ctx context.Context, s *hasql.Session, requested string) error {
			fmt.Printf("session callback: session has %q, %q requested\n", s.Tag(), requested)
			if err := s.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
				return err
			}
			return s.SetTag(requested)
		}))
	defer done()
	mock.ExpectExec("SET TIME ZONE 'UTC'").WillReturnResult(sqlmock.NewResult(0, 0))

	ctx := hasql.WithTag(context.Background(), "tz=utc")
	for i := 1; i <= 2; i++ {
		conn, err := hasql.Acquire(ctx, db)
		if err != nil {
			fmt.Println(err)
			return
		}
		s, _ := hasql.SessionOf(conn)
		fmt.Printf("checkout %d: tag %q, found: %v\n", i, s.Tag(), s.TagFound())
		if err := hasql.Release(conn, s.Tag()); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("expectations:", mock.ExpectationsWereMet())
	// Output:
	// session callback: session has "", "tz=utc" requested
	// checkout 1: tag "tz=utc", found: false
	// checkout 2: tag "tz=utc", found: true
	// expectations: <nil>
}

// Surviving a lost connection. A connection that dies before the work
// reached the server (the driver says driver.ErrBadConn) costs the
// application nothing: hasql ends the session and runs the work again on a
// new one. A connection that dies after the work was sent leaves its
// outcome unknown: the call fails with an error wrapping ErrConnectionLost
// and the driver's own error, and the application decides; the *sql.DB
// goes on working.
func Example_lostConnection() {
	db, mock, done := openExample("")
	defer done()

	const update = "UPDATE stock SET n = n - 1 WHERE item = ?"
	mock.ExpectExec(update).WithArgs("book").WillReturnError(driver.ErrBadConn)
	mock.ExpectExec(update).WithArgs("book").WillReturnResult(sqlmock.NewResult(0, 1))
	_, err := db.Exec(update, "book")
	fmt.Println("lost before it was sent:", err)

	const insert = "INSERT INTO orders (item) VALUES (?)"
	mock.ExpectExec(insert).WithArgs("book").WillReturnError(io.ErrUnexpectedEOF)
	_, err = db.Exec(insert, "book")
	fmt.Println("lost after it was sent:", errors.Is(err, hasql.ErrConnectionLost), errors.Is(err, io.ErrUnexpectedEOF))

	mock.ExpectQuery("SELECT count(*) FROM orders").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1))
	var n int
	err = db.QueryRow("SELECT count(*) FROM orders").Scan(&n)
	fmt.Println("next call:", n, err)

	c, _ := hasql.ConnectorOf(db)
	fmt.Println("work run again:", c.Stats().Retries)
	fmt.Println("expectations:", mock.ExpectationsWereMet())
	// Output:
	// lost before it was sent: <nil>
	// lost after it was sent: true true
	// next call: 1 <nil>
	// work run again: 1
	// expectations: <nil>
}

// The first five minutes: open a *sql.DB through hasql — here over
// go-sqlmock, normally "pgx:postgres://…" or "mysql:user@tcp(host)/db" —
// and use it as any *sql.DB.
func Example() {
	mdb, mock, err := sqlmock.NewWithDSN("example_first", sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		panic(err)
	}
	defer mdb.Close()
	db, err := sql.Open("hasql", "sqlmock:example_first?hasql.retry=idempotent")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	mock.ExpectQuery("SELECT name FROM users WHERE id = ?").WithArgs(42).
		WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ada"))
	var name string
	err = db.QueryRowContext(hasql.Idempotent(context.Background()), "SELECT name FROM users WHERE id = ?", 42).Scan(&name)
	fmt.Println(name, err)
	// Output:
	// ada <nil>
}

// Surviving a lost connection in a loop of reads. The reads are marked
// Idempotent and the connector runs with RetryIdempotent, so even a read
// whose connection died after it was sent is run again on a new session:
// the loop sees no error. hasqltest.Faults injects the loss; the failover
// callback shows what hasql did.
func Example_idempotentReads() {
	db, mock, done := openExampleWith(hasql.WithRetry(hasql.RetryIdempotent),
		hasql.WithFailoverCallback(func(ctx context.Context, s *hasql.Session, ev hasql.FailoverEvent) error {
			fmt.Println("  failover:", ev)
			return nil
		}))
	defer done()
	faults := hasqltest.NewFaults()
	if err := faults.Attach(db); err != nil {
		fmt.Println(err)
		return
	}
	faults.LoseAfterSend(`^SELECT`, 2) // the 2nd read reaches the database, then its connection dies

	const q = "SELECT name FROM users WHERE id = ?"
	for _, r := range []struct {
		id   int
		name string
	}{{1, "ada"}, {2, "bob"}, {2, "bob"} /* the re-run */, {3, "cy"}} {
		mock.ExpectQuery(q).WithArgs(r.id).WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow(r.name))
	}
	ctx := hasql.Idempotent(context.Background())
	for id := 1; id <= 3; id++ {
		var name string
		err := db.QueryRowContext(ctx, q, id).Scan(&name)
		fmt.Println("read", id, name, err)
	}
	c, _ := hasql.ConnectorOf(db)
	fmt.Println("work run again:", c.Stats().Retries)
	fmt.Println("expectations:", mock.ExpectationsWereMet())
	// Output:
	// read 1 ada <nil>
	//   failover: FoBegin
	//   failover: FoEnd
	// read 2 bob <nil>
	// read 3 cy <nil>
	// work run again: 1
	// expectations: <nil>
}
