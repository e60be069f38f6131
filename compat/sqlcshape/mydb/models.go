// Shaped like sqlc's models.go; see ../doc.go.

package mydb

import (
	"database/sql"
)

type Author struct {
	ID     int64
	Name   string
	Bio    sql.NullString
	Born   sql.NullTime
	Active bool
}

type Book struct {
	ID       int64
	AuthorID int64
	Title    string
	Price    string
	Cover    []byte
}
