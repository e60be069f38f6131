// Command quickstart shows hasql in use: it opens a database through the
// "hasql" driver, creates a table, inserts rows in a transaction, queries
// them with a prepared statement and ad hoc, uses a pinned *sql.Conn, and
// prints each step and, at the end, the connector's pool statistics.
//
// By default it runs against an embedded pure-Go SQLite file in a temporary
// directory, so it needs no server:
//
//	cd examples && go run ./quickstart
//
// With -dsn it talks to any server instead, in hasql form
// (<inner driver>:<inner DSN>), for example:
//
//	go run ./quickstart -dsn 'pgx:postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./quickstart -dsn 'mysql:root@tcp(127.0.0.1:3306)/test'
//
// The SQL it runs works on PostgreSQL, MariaDB/MySQL and SQLite alike.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hasqlgo/hasql"
	_ "modernc.org/sqlite"
)

func main() {
	dsn := flag.String("dsn", "", "hasql DSN `<driver>:<inner DSN>` (default: embedded SQLite in a temp dir)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *dsn); err != nil {
		log.Fatal(err)
	}
}

// run does the whole demo against dsn, or against a fresh SQLite file if dsn is empty.
func run(ctx context.Context, w io.Writer, dsn string) error {
	if dsn == "" {
		dir, err := os.MkdirTemp("", "hasql-quickstart")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "demo.db")
		dsn = "sqlite:file:" + path + "?_pragma=busy_timeout(5000)"
		fmt.Fprintf(w, "using embedded SQLite at %s\n", path)
	}
	driver, _, _ := strings.Cut(dsn, ":")

	db, err := sql.Open("hasql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "connected through hasql to %q\n", driver)

	if err := exec(ctx, db, "DROP TABLE IF EXISTS hasql_fruit",
		"CREATE TABLE hasql_fruit (id INTEGER PRIMARY KEY, name VARCHAR(32) NOT NULL, qty INTEGER NOT NULL)"); err != nil {
		return err
	}
	fmt.Fprintln(w, "created table hasql_fruit")

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	fruit := []struct {
		name string
		qty  int
	}{{"apple", 5}, {"banana", 2}, {"cherry", 12}}
	insert := bind(driver, "INSERT INTO hasql_fruit (id, name, qty) VALUES (?, ?, ?)")
	for i, f := range fruit {
		if _, err := tx.ExecContext(ctx, insert, i+1, f.name, f.qty); err != nil {
			return err
		}
		fmt.Fprintf(w, "  inserted %s (qty %d)\n", f.name, f.qty)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(w, "committed %d rows in one transaction\n", len(fruit))

	stmt, err := db.PrepareContext(ctx, bind(driver, "SELECT name, qty FROM hasql_fruit WHERE qty >= ? ORDER BY id"))
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, atLeast := range []int{3, 10} {
		rows, err := stmt.QueryContext(ctx, atLeast)
		if err != nil {
			return err
		}
		var got []string
		for rows.Next() {
			var name, qty string
			if err := rows.Scan(&name, &qty); err != nil {
				rows.Close()
				return err
			}
			got = append(got, name+"="+qty)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		fmt.Fprintf(w, "prepared query qty >= %d: %s\n", atLeast, strings.Join(got, ", "))
	}

	var count, total int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), SUM(qty) FROM hasql_fruit").Scan(&count, &total); err != nil {
		return err
	}
	fmt.Fprintf(w, "ad-hoc query: %d rows, %d items in total\n", count, total)

	if err := pinned(ctx, w, db); err != nil {
		return err
	}
	if err := exec(ctx, db, "DROP TABLE hasql_fruit"); err != nil {
		return err
	}
	fmt.Fprintln(w, "dropped table hasql_fruit")

	if c, ok := hasql.ConnectorOf(db); ok {
		st := c.Stats()
		fmt.Fprintf(w, "hasql stats: open=%d busy=%d idle=%d created=%d closed=%d\n",
			st.Open, st.Busy, st.Idle, st.Created, st.Closed)
	}
	return nil
}

// pinned uses one *sql.Conn for several statements: it keeps session state,
// such as a temporary table, from one statement to the next.
func pinned(ctx context.Context, w io.Writer, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := exec(ctx, conn, "CREATE TEMPORARY TABLE hasql_basket (name VARCHAR(32) NOT NULL)",
		"INSERT INTO hasql_basket (name) SELECT name FROM hasql_fruit WHERE qty < 10"); err != nil {
		return err
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM hasql_basket").Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(w, "pinned conn: temporary table holds %d rows\n", n)
	return exec(ctx, conn, "DROP TABLE hasql_basket")
}

// exec runs each statement in turn on a *sql.DB, *sql.Tx or *sql.Conn.
func exec(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, stmts ...string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// bind rewrites ? placeholders as $1, $2, ... for PostgreSQL drivers;
// MySQL/MariaDB and SQLite take ? as it is.
func bind(driver, query string) string {
	switch driver {
	case "pgx", "pgx/v5", "postgres":
		for n := 1; strings.Contains(query, "?"); n++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", n), 1)
		}
	}
	return query
}
