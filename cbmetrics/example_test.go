package cbmetrics_test

import (
	"database/sql"
	"fmt"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/cbmetrics"
)

// Counting a connector's calls.
func ExampleMetrics_Snapshot() {
	mdb, mock, _ := sqlmock.NewWithDSN("cbmetrics_example")
	defer mdb.Close()
	db, err := sql.Open("hasql", "sqlmock:cbmetrics_example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	m := cbmetrics.New()
	c, _ := hasql.ConnectorOf(db)
	m.Setup(c.Callbacks())

	mock.ExpectExec("DELETE FROM sessions").WillReturnResult(sqlmock.NewResult(0, 3))
	db.Exec("DELETE FROM sessions")
	db.Exec("DELETE FROM sessions") // not expected: fails

	s := m.Snapshot().Fns[hasql.FnExec]
	fmt.Println("calls:", s.Count, "errors:", s.Errors)
	// Output:
	// calls: 2 errors: 1
}
