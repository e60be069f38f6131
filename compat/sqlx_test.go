package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

type sqlxPerson struct {
	ID        int64          `db:"id"`
	FirstName string         `db:"first_name"`
	LastName  string         `db:"last_name"`
	Email     sql.NullString `db:"email"`
	Age       int            `db:"age"`
	Score     sql.NullString `db:"score"` // NUMERIC / DECIMAL
	Born      sql.NullTime   `db:"born"`
	Active    bool           `db:"active"`
	Photo     []byte         `db:"photo"`
}

var sqlxSchema = map[string]string{
	"postgres": `CREATE TABLE person (
		id         BIGSERIAL PRIMARY KEY,
		first_name VARCHAR(60) NOT NULL,
		last_name  VARCHAR(60) NOT NULL,
		email      VARCHAR(120) UNIQUE,
		age        INTEGER NOT NULL,
		score      NUMERIC(8,2),
		born       DATE,
		active     BOOLEAN NOT NULL,
		photo      BYTEA)`,
	"mariadb": `CREATE TABLE person (
		id         BIGINT AUTO_INCREMENT PRIMARY KEY,
		first_name VARCHAR(60) NOT NULL,
		last_name  VARCHAR(60) NOT NULL,
		email      VARCHAR(120) UNIQUE,
		age        INT NOT NULL,
		score      DECIMAL(8,2),
		born       DATE NULL,
		active     BOOLEAN NOT NULL,
		photo      BLOB)`,
}

// TestSqlx runs sqlx's ordinary usage — NamedExec (struct, slice, map), Get, Select, In + Rebind,
// NamedQuery, Queryx + MapScan, Beginx/MustExec/Commit and Rollback, Preparex, PrepareNamed,
// Tx.Stmtx, Connx, and error paths — through hasql (sqlx.NewDb over sql.Open("hasql", …)) and
// through the raw driver (sqlx.Open(driver, dsn)), and compares everything observed.
func TestSqlx(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := openTarget(t, kind, true)
			r := openTarget(t, kind, false)
			// The recommended way: sqlx.NewDb over hasql's *sql.DB, named after the inner driver.
			hdb := sqlx.NewDb(h.DB, h.Driver)
			// The raw side as sqlx users write it: sqlx.Open(driver, dsn). (Its own *sql.DB; r.DB
			// is left unused apart from the fresh database it was opened on.)
			rdb, err := sqlx.Open(r.Driver, r.RawDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			got := sqlxScenario(t, kind, hdb)
			want := sqlxScenario(t, kind, rdb)
			compareTranscripts(t, "hasql", got, want)
		})
	}
}

func sqlxScenario(t *testing.T, kind string, db *sqlx.DB) *transcript {
	t.Helper()
	ctx := context.Background()
	tr := &transcript{}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s (%s over %s): %v", what, db.DriverName(), kind, err)
		}
	}
	tr.add("DriverName", db.DriverName())
	tr.add("BindType", sqlx.BindType(db.DriverName()))

	db.MustExec(sqlxSchema[kind])

	born := func(y int, m time.Month, d int) sql.NullTime {
		return sql.NullTime{Time: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Valid: true}
	}
	str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	const insert = `INSERT INTO person (first_name, last_name, email, age, score, born, active, photo)
		VALUES (:first_name, :last_name, :email, :age, :score, :born, :active, :photo)`

	// NamedExec with one struct.
	res, err := db.NamedExec(insert, sqlxPerson{FirstName: "Ada", LastName: "Lovelace", Email: str("ada@example.org"),
		Age: 36, Score: str("99.50"), Born: born(1815, 12, 10), Active: true, Photo: []byte{0, 1, 2, 0xff}})
	must("NamedExec struct", err)
	n, err := res.RowsAffected()
	must("RowsAffected", err)
	tr.add("NamedExec struct rows", n)

	// NamedExec with a slice: one multi-row INSERT.
	res, err = db.NamedExec(insert, []sqlxPerson{
		{FirstName: "Alan", LastName: "Turing", Email: str("alan@example.org"), Age: 41, Score: str("97.25"), Born: born(1912, 6, 23), Active: true},
		{FirstName: "Grace", LastName: "Hopper", Age: 85, Born: born(1906, 12, 9)},
		{FirstName: "John", LastName: "Smith", Email: str("js@example.org"), Age: 25, Active: true, Photo: []byte("jpeg")},
	})
	must("NamedExec slice", err)
	n, err = res.RowsAffected()
	must("RowsAffected", err)
	tr.add("NamedExec slice rows", n)

	// NamedExec with a map.
	_, err = db.NamedExec(insert, map[string]any{"first_name": "Jane", "last_name": "Smith", "email": "jane@example.org",
		"age": 31, "score": "12.00", "born": nil, "active": false, "photo": nil})
	must("NamedExec map", err)

	// Get and Select into structs.
	var p sqlxPerson
	must("Get", db.Get(&p, db.Rebind("SELECT * FROM person WHERE id = ?"), 1))
	tr.add("Get id=1", p)
	var people []sqlxPerson
	must("Select", db.Select(&people, "SELECT * FROM person ORDER BY id"))
	tr.add("Select all", people)
	var names []string
	must("Select scalars", db.Select(&names, "SELECT first_name FROM person ORDER BY first_name"))
	tr.add("Select names", names)

	// In + Rebind.
	q, args, err := sqlx.In("SELECT * FROM person WHERE id IN (?) AND age > ? ORDER BY id", []int64{1, 3, 4, 5}, 30)
	must("In", err)
	q = db.Rebind(q)
	tr.add("In query", q)
	people = nil
	must("Select In", db.Select(&people, q, args...))
	tr.add("Select In", people)

	// NamedQuery + StructScan; Queryx + MapScan; QueryRowx.
	rows, err := db.NamedQuery("SELECT id, first_name, age FROM person WHERE age >= :min ORDER BY id", map[string]any{"min": 31})
	must("NamedQuery", err)
	type idName struct {
		ID        int64  `db:"id"`
		FirstName string `db:"first_name"`
		Age       int    `db:"age"`
	}
	var scanned []idName
	for rows.Next() {
		var v idName
		must("StructScan", rows.StructScan(&v))
		scanned = append(scanned, v)
	}
	must("NamedQuery rows", rows.Err())
	rows.Close()
	tr.add("NamedQuery", scanned)

	rows, err = db.Queryx("SELECT id, last_name, score, born, photo FROM person ORDER BY id")
	must("Queryx", err)
	var maps []map[string]any
	for rows.Next() {
		m := map[string]any{}
		must("MapScan", rows.MapScan(m))
		maps = append(maps, m)
	}
	must("Queryx rows", rows.Err())
	rows.Close()
	tr.add("Queryx MapScan", maps)
	cols, err := func() ([]string, error) {
		rows, err := db.Queryx("SELECT * FROM person WHERE 1 = 0")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		return rows.Columns()
	}()
	must("Columns", err)
	tr.add("Columns", cols)

	var count int
	must("QueryRowx", db.QueryRowx("SELECT COUNT(*) FROM person").Scan(&count))
	tr.add("count", count)

	// Transactions: Beginx/MustExec/Commit, and a rollback.
	tx := db.MustBegin()
	tx.MustExec(tx.Rebind("UPDATE person SET age = age + 1 WHERE last_name = ?"), "Smith")
	_, err = tx.NamedExec(insert, sqlxPerson{FirstName: "Tx", LastName: "Committed", Age: 1, Active: true})
	must("tx NamedExec", err)
	var inTx int
	must("tx Get", tx.Get(&inTx, "SELECT COUNT(*) FROM person"))
	tr.add("count in tx", inTx)
	must("Commit", tx.Commit())

	tx, err = db.Beginx()
	must("Beginx", err)
	tx.MustExec(tx.Rebind("DELETE FROM person WHERE id = ?"), 1)
	must("Rollback", tx.Rollback())
	must("count after rollback", db.Get(&count, "SELECT COUNT(*) FROM person"))
	tr.add("count after commit+rollback", count)
	var ages []int
	must("Select ages", db.Select(&ages, db.Rebind("SELECT age FROM person WHERE last_name = ? ORDER BY id"), "Smith"))
	tr.add("Smith ages after commit", ages)

	// Transaction options reach the server: a read-only transaction refuses writes.
	rtx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	must("BeginTxx read-only", err)
	_, err = rtx.Exec(rtx.Rebind("UPDATE person SET age = ? WHERE id = ?"), 0, 1)
	tr.add("write in read-only tx", errText(err))
	must("Rollback", rtx.Rollback())

	// Preparex: reused prepared statements.
	getName, err := db.Preparex(db.Rebind("SELECT first_name FROM person WHERE id = ?"))
	must("Preparex", err)
	var got []string
	for _, id := range []int{1, 2, 3, 4, 5, 1, 2} {
		var name string
		must("stmt Get", getName.Get(&name, id))
		got = append(got, name)
	}
	tr.add("Preparex Get", got)
	olderThan, err := db.Preparex(db.Rebind("SELECT * FROM person WHERE age > ? ORDER BY id"))
	must("Preparex", err)
	people = nil
	must("stmt Select", olderThan.Select(&people, 30))
	tr.add("Preparex Select", people)

	// The same statement inside a transaction (Tx.Stmtx), and Tx.Preparex.
	tx = db.MustBegin()
	var nameInTx string
	must("Stmtx Get", tx.Stmtx(getName).Get(&nameInTx, 2))
	tr.add("Stmtx Get", nameInTx)
	setAge, err := tx.Preparex(tx.Rebind("UPDATE person SET age = ? WHERE id = ?"))
	must("tx Preparex", err)
	for id := 1; id <= 3; id++ {
		_, err := setAge.Exec(50+id, id)
		must("tx stmt Exec", err)
	}
	must("Commit", tx.Commit())
	must("getName.Close", getName.Close())
	must("olderThan.Close", olderThan.Close())
	ages = nil
	must("Select ages", db.Select(&ages, "SELECT age FROM person ORDER BY id"))
	tr.add("ages after tx stmt", ages)

	// PrepareNamed.
	ns, err := db.PrepareNamed("SELECT * FROM person WHERE last_name = :last_name ORDER BY id")
	must("PrepareNamed", err)
	people = nil
	must("named stmt Select", ns.Select(&people, map[string]any{"last_name": "Smith"}))
	tr.add("PrepareNamed Select", people)
	must("ns.Close", ns.Close())

	// A dedicated connection.
	conn, err := db.Connx(ctx)
	must("Connx", err)
	var maxID int64
	must("Conn Get", conn.GetContext(ctx, &maxID, "SELECT MAX(id) FROM person"))
	tr.add("Conn max id", maxID)
	must("Conn.Close", conn.Close())

	// A query that outlives its context; the pool stays usable.
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	sleep := map[string]string{"postgres": "SELECT pg_sleep(3)", "mariadb": "SELECT SLEEP(3)"}[kind]
	var sink any
	err = db.GetContext(tctx, &sink, sleep)
	cancel()
	tr.add("timeout: DeadlineExceeded", errors.Is(err, context.DeadlineExceeded))
	must("count after timeout", db.GetContext(ctx, &count, "SELECT COUNT(*) FROM person"))
	tr.add("count after timeout", count)

	// Error paths: no rows, a unique violation, a syntax error.
	err = db.Get(&p, db.Rebind("SELECT * FROM person WHERE id = ?"), 999)
	tr.add("Get missing: ErrNoRows", errors.Is(err, sql.ErrNoRows))
	_, err = db.NamedExec(insert, sqlxPerson{FirstName: "Dup", LastName: "Dup", Email: str("ada@example.org")})
	tr.add("unique violation", errText(err))
	_, err = db.Exec("SELEKT 1")
	tr.add("syntax error", errText(err))
	tr.add("error type", fmt.Sprintf("%T", err))
	return tr
}

// TestSqlxOpenHasqlBindType pins down why sqlx.Open("hasql", …) is not enough: sqlx picks its bind
// type by driver name, and "hasql" wraps drivers with different placeholders.
func TestSqlxOpenHasqlBindType(t *testing.T) {
	if bt := sqlx.BindType("hasql"); bt != sqlx.UNKNOWN {
		t.Fatalf("sqlx.BindType(\"hasql\") = %d, want UNKNOWN (%d): update compat/README.md", bt, sqlx.UNKNOWN)
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := openTarget(t, kind, true)
			// UNKNOWN: Rebind and named queries leave '?' in place.
			// What sqlx.Open("hasql", dsn) gives: the same *sql.DB, named "hasql".
			naive := sqlx.NewDb(h.DB, "hasql")
			if got := naive.Rebind("SELECT ?"); got != "SELECT ?" {
				t.Errorf("sqlx.Open(\"hasql\").Rebind = %q", got)
			}
			var one int
			const q = "SELECT x FROM (SELECT 1 AS x) s WHERE x = ?"
			err := naive.Get(&one, naive.Rebind(q), 1)
			if kind == "postgres" {
				if err == nil {
					t.Errorf("'?' placeholders worked on PostgreSQL through sqlx.Open(\"hasql\"): unexpected")
				} else {
					t.Logf("as expected, sqlx.Open(\"hasql\", pgx DSN) + Rebind fails on PostgreSQL: %v", err)
				}
			} else if err != nil {
				t.Errorf("'?' on MariaDB: %v", err)
			}
			// The fix: name the inner driver.
			fixed := sqlx.NewDb(naive.DB, h.Driver)
			if err := fixed.Get(&one, fixed.Rebind(q), 1); err != nil || one != 1 {
				t.Errorf("sqlx.NewDb(db, %q): got %d, %v", h.Driver, one, err)
			}
			want := map[string]int{"postgres": sqlx.DOLLAR, "mariadb": sqlx.QUESTION}[kind]
			if sqlx.BindType(fixed.DriverName()) != want {
				t.Errorf("sqlx.NewDb(db, %q).BindType() = %d, want %d", h.Driver, sqlx.BindType(fixed.DriverName()), want)
			}
		})
	}
}
