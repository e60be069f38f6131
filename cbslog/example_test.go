package cbslog_test

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/cbslog"
)

// Logging a connector's queries and execs. (The handler drops the time and
// duration attributes only to keep this example's output fixed.)
func ExamplePackage() {
	mdb, mock, _ := sqlmock.NewWithDSN("cbslog_example", sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	defer mdb.Close()
	db, err := sql.Open("hasql", "sqlmock:cbslog_example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))
	c, _ := hasql.ConnectorOf(db)
	cbslog.Package(logger, cbslog.Options{Fns: []hasql.Fn{hasql.FnExec, hasql.FnQuery}})(c.Callbacks())

	mock.ExpectExec("UPDATE users SET email = ? WHERE id = ?").WithArgs("ada@example.com", 1).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectQuery("SELECT * FROM nothing").WillReturnError(errors.New("no such table: nothing"))
	db.Exec("UPDATE users SET email = ? WHERE id = ?", "ada@example.com", 1)
	db.Query("SELECT * FROM nothing")
	// Output:
	// level=INFO msg="hasql call" fn=FnExec query="UPDATE users SET email = ? WHERE id = ?" args="[2 redacted]" rows_affected=1
	// level=ERROR msg="hasql call" fn=FnQuery query="SELECT * FROM nothing" error="no such table: nothing"
}
