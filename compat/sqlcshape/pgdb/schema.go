package pgdb

import (
	_ "embed"
	"strings"
)

//go:embed schema.sql
var schema string

// Schema is the DDL of schema.sql, one statement per element (not part of sqlc's output).
func Schema() []string {
	var stmts []string
	for _, s := range strings.Split(schema, ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}
