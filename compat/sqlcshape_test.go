package compat_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hasqlgo/hasql/compat/sqlcshape/mydb"
	"github.com/hasqlgo/hasql/compat/sqlcshape/pgdb"
)

// sqlcAPI drives either flavour of the sqlc-shaped code with the same scenario. Results are
// returned as the package's own types (compared hasql against raw on the same server kind).
type sqlcAPI interface {
	CreateAuthor(ctx context.Context, name string, bio sql.NullString, born sql.NullTime) (int64, error)
	GetAuthor(ctx context.Context, id int64) (any, error)
	ListAuthors(ctx context.Context) (any, error)
	UpdateAuthorBio(ctx context.Context, id int64, bio sql.NullString) error
	DeactivateAuthors(ctx context.Context, bornBefore sql.NullTime) (int64, error)
	DeleteAuthor(ctx context.Context, id int64) error
	CreateBook(ctx context.Context, authorID int64, title, price string, cover []byte) (int64, error)
	ListBooksByAuthor(ctx context.Context, authorID int64) (any, error)
	CountBooks(ctx context.Context) (int64, error)
	WithTx(tx *sql.Tx) sqlcAPI
	Close() error
}

type pgAPI struct{ q *pgdb.Queries }

func (a pgAPI) CreateAuthor(ctx context.Context, name string, bio sql.NullString, born sql.NullTime) (int64, error) {
	au, err := a.q.CreateAuthor(ctx, pgdb.CreateAuthorParams{Name: name, Bio: bio, Born: born})
	return au.ID, err
}
func (a pgAPI) GetAuthor(ctx context.Context, id int64) (any, error) { return a.q.GetAuthor(ctx, id) }
func (a pgAPI) ListAuthors(ctx context.Context) (any, error)         { return a.q.ListAuthors(ctx) }
func (a pgAPI) UpdateAuthorBio(ctx context.Context, id int64, bio sql.NullString) error {
	return a.q.UpdateAuthorBio(ctx, pgdb.UpdateAuthorBioParams{ID: id, Bio: bio})
}
func (a pgAPI) DeactivateAuthors(ctx context.Context, born sql.NullTime) (int64, error) {
	return a.q.DeactivateAuthors(ctx, born)
}
func (a pgAPI) DeleteAuthor(ctx context.Context, id int64) error { return a.q.DeleteAuthor(ctx, id) }
func (a pgAPI) CreateBook(ctx context.Context, authorID int64, title, price string, cover []byte) (int64, error) {
	return a.q.CreateBook(ctx, pgdb.CreateBookParams{AuthorID: authorID, Title: title, Price: price, Cover: cover})
}
func (a pgAPI) ListBooksByAuthor(ctx context.Context, id int64) (any, error) {
	return a.q.ListBooksByAuthor(ctx, id)
}
func (a pgAPI) CountBooks(ctx context.Context) (int64, error) { return a.q.CountBooks(ctx) }
func (a pgAPI) WithTx(tx *sql.Tx) sqlcAPI                     { return pgAPI{a.q.WithTx(tx)} }
func (a pgAPI) Close() error                                  { return a.q.Close() }

type myAPI struct{ q *mydb.Queries }

func (a myAPI) CreateAuthor(ctx context.Context, name string, bio sql.NullString, born sql.NullTime) (int64, error) {
	return a.q.CreateAuthor(ctx, mydb.CreateAuthorParams{Name: name, Bio: bio, Born: born})
}
func (a myAPI) GetAuthor(ctx context.Context, id int64) (any, error) { return a.q.GetAuthor(ctx, id) }
func (a myAPI) ListAuthors(ctx context.Context) (any, error)         { return a.q.ListAuthors(ctx) }
func (a myAPI) UpdateAuthorBio(ctx context.Context, id int64, bio sql.NullString) error {
	return a.q.UpdateAuthorBio(ctx, mydb.UpdateAuthorBioParams{ID: id, Bio: bio})
}
func (a myAPI) DeactivateAuthors(ctx context.Context, born sql.NullTime) (int64, error) {
	return a.q.DeactivateAuthors(ctx, born)
}
func (a myAPI) DeleteAuthor(ctx context.Context, id int64) error { return a.q.DeleteAuthor(ctx, id) }
func (a myAPI) CreateBook(ctx context.Context, authorID int64, title, price string, cover []byte) (int64, error) {
	return a.q.CreateBook(ctx, mydb.CreateBookParams{AuthorID: authorID, Title: title, Price: price, Cover: cover})
}
func (a myAPI) ListBooksByAuthor(ctx context.Context, id int64) (any, error) {
	return a.q.ListBooksByAuthor(ctx, id)
}
func (a myAPI) CountBooks(ctx context.Context) (int64, error) { return a.q.CountBooks(ctx) }
func (a myAPI) WithTx(tx *sql.Tx) sqlcAPI                     { return myAPI{a.q.WithTx(tx)} }
func (a myAPI) Close() error                                  { return a.q.Close() }

// sqlcDBTX is what both flavours' DBTX interfaces ask for (*sql.DB, *sql.Tx, *sql.Conn).
type sqlcDBTX interface {
	pgdb.DBTX
	mydb.DBTX
}

func sqlcNew(kind string, db sqlcDBTX) sqlcAPI {
	if kind == "postgres" {
		return pgAPI{pgdb.New(db)}
	}
	return myAPI{mydb.New(db)}
}

func sqlcPrepare(ctx context.Context, kind string, db sqlcDBTX) (sqlcAPI, error) {
	if kind == "postgres" {
		q, err := pgdb.Prepare(ctx, db)
		if err != nil {
			return nil, err
		}
		return pgAPI{q}, nil
	}
	q, err := mydb.Prepare(ctx, db)
	if err != nil {
		return nil, err
	}
	return myAPI{q}, nil
}

// TestSqlcShape runs code shaped like sqlc's output (compat/sqlcshape: pgdb with $1, mydb with ?)
// through hasql and through the raw driver on each server: New(db) with ad-hoc queries,
// WithTx (commit and rollback), Prepare(ctx, db) with prepared statements (also inside a
// transaction, which goes through Tx.StmtContext, and from concurrent goroutines), a *sql.Conn as
// DBTX, Close, and the error paths (no rows, foreign-key violation).
func TestSqlcShape(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := openTarget(t, kind, true)
			r := openTarget(t, kind, false)
			got := sqlcScenario(t, h)
			want := sqlcScenario(t, r)
			compareTranscripts(t, "hasql", got, want)
		})
	}
}

func sqlcScenario(t *testing.T, tg *target) *transcript {
	t.Helper()
	ctx := context.Background()
	tr := &transcript{}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s (%s, %s): %v", what, tg.Name, tg.Kind, err)
		}
	}
	schema := pgdb.Schema()
	if tg.Kind == "mariadb" {
		schema = mydb.Schema()
	}
	for _, stmt := range schema {
		_, err := tg.DB.ExecContext(ctx, stmt)
		must("schema", err)
	}
	date := func(y int, m time.Month, d int) sql.NullTime {
		return sql.NullTime{Time: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Valid: true}
	}
	str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

	// New(db): ad-hoc queries on the *sql.DB.
	q := sqlcNew(tg.Kind, tg.DB)
	ada, err := q.CreateAuthor(ctx, "Ada Lovelace", str("Analyst"), date(1815, 12, 10))
	must("CreateAuthor", err)
	alan, err := q.CreateAuthor(ctx, "Alan Turing", sql.NullString{}, date(1912, 6, 23))
	must("CreateAuthor", err)
	anon, err := q.CreateAuthor(ctx, "Anonymous", sql.NullString{}, sql.NullTime{})
	must("CreateAuthor", err)
	tr.add("author ids", []int64{ada, alan, anon})
	var books []int64
	for _, b := range []struct {
		author       int64
		title, price string
		cover        []byte
	}{{ada, "Notes", "12.50", []byte{0, 1, 2, 0xfe}}, {ada, "Sketch of the Engine", "30.00", nil}, {alan, "On Computable Numbers", "9.99", []byte("png")}} {
		id, err := q.CreateBook(ctx, b.author, b.title, b.price, b.cover)
		must("CreateBook", err)
		books = append(books, id)
	}
	big := make([]byte, 1<<20) // 1 MiB through parameters and results
	for i := range big {
		big[i] = byte(i * 7)
	}
	id, err := q.CreateBook(ctx, anon, "Big", "0.01", big)
	must("CreateBook 1 MiB", err)
	books = append(books, id)
	tr.add("book ids", books)
	bl, err := q.ListBooksByAuthor(ctx, anon)
	must("ListBooksByAuthor 1 MiB", err)
	rv := reflect.ValueOf(bl)
	if rv.Len() != 1 || !bytes.Equal(rv.Index(0).FieldByName("Cover").Bytes(), big) {
		t.Fatalf("%s %s: the 1 MiB cover did not come back intact", tg.Name, tg.Kind)
	}
	tr.add("1 MiB cover", bl)
	must("DeleteBook 1 MiB", func() error {
		_, err := tg.DB.ExecContext(ctx, "DELETE FROM books WHERE id = "+ph(tg.Kind, 1), id)
		return err
	}())
	a, err := q.GetAuthor(ctx, ada)
	must("GetAuthor", err)
	tr.add("GetAuthor", a)
	must("UpdateAuthorBio", q.UpdateAuthorBio(ctx, alan, str("Computer scientist")))
	n, err := q.DeactivateAuthors(ctx, date(1900, 1, 1))
	must("DeactivateAuthors", err)
	tr.add("DeactivateAuthors rows", n)
	list, err := q.ListAuthors(ctx)
	must("ListAuthors", err)
	tr.add("ListAuthors", list)
	bl, err = q.ListBooksByAuthor(ctx, ada)
	must("ListBooksByAuthor", err)
	tr.add("ListBooksByAuthor", bl)
	_, err = q.GetAuthor(ctx, 424242)
	tr.add("GetAuthor missing: ErrNoRows", errors.Is(err, sql.ErrNoRows))
	_, err = q.CreateBook(ctx, 424242, "Orphan", "1.00", nil)
	tr.add("foreign-key violation", strings.ReplaceAll(errText(err), dbNameOf(tg), "DB"))

	// WithTx: rollback, then commit.
	tx, err := tg.DB.BeginTx(ctx, nil)
	must("BeginTx", err)
	qtx := q.WithTx(tx)
	_, err = qtx.CreateAuthor(ctx, "Rolled Back", sql.NullString{}, sql.NullTime{})
	must("tx CreateAuthor", err)
	c, err := qtx.CountBooks(ctx)
	must("tx CountBooks", err)
	tr.add("tx CountBooks", c)
	must("Rollback", tx.Rollback())
	tx, err = tg.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	must("BeginTx", err)
	qtx = q.WithTx(tx)
	_, err = qtx.CreateBook(ctx, anon, "Beowulf", "5.00", nil)
	must("tx CreateBook", err)
	must("tx UpdateAuthorBio", qtx.UpdateAuthorBio(ctx, anon, str("Unknown")))
	must("Commit", tx.Commit())
	list, err = q.ListAuthors(ctx)
	must("ListAuthors", err)
	tr.add("ListAuthors after transactions", list)

	// Prepare(ctx, db): every query prepared up front.
	pq, err := sqlcPrepare(ctx, tg.Kind, tg.DB)
	must("Prepare", err)
	for _, id := range []int64{ada, alan, anon, ada} {
		a, err := pq.GetAuthor(ctx, id)
		must("prepared GetAuthor", err)
		tr.add(fmt.Sprintf("prepared GetAuthor %d", id), a)
	}
	c, err = pq.CountBooks(ctx)
	must("prepared CountBooks", err)
	tr.add("prepared CountBooks", c)
	id, err = pq.CreateBook(ctx, alan, "Intelligent Machinery", "7.25", nil)
	must("prepared CreateBook", err)
	tr.add("prepared CreateBook", id)

	// Prepared statements inside a transaction: Tx.StmtContext on statements prepared on the DB.
	tx, err = tg.DB.BeginTx(ctx, nil)
	must("BeginTx", err)
	ptx := pq.WithTx(tx)
	_, err = ptx.CreateAuthor(ctx, "Grace Hopper", str("Admiral"), date(1906, 12, 9))
	must("prepared tx CreateAuthor", err)
	must("prepared tx UpdateAuthorBio", ptx.UpdateAuthorBio(ctx, ada, str("First programmer")))
	bl, err = ptx.ListBooksByAuthor(ctx, alan)
	must("prepared tx ListBooksByAuthor", err)
	tr.add("prepared tx ListBooksByAuthor", bl)
	must("Commit", tx.Commit())
	tx, err = tg.DB.BeginTx(ctx, nil)
	must("BeginTx", err)
	must("prepared tx DeleteAuthor", pq.WithTx(tx).DeleteAuthor(ctx, alan))
	must("Rollback", tx.Rollback())
	list, err = pq.ListAuthors(ctx)
	must("prepared ListAuthors", err)
	tr.add("prepared ListAuthors", list)

	// The prepared Queries from many goroutines at once.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wantBooks, err := pq.ListBooksByAuthor(ctx, ada)
	must("prepared ListBooksByAuthor", err)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				got, err := pq.ListBooksByAuthor(ctx, ada)
				if err == nil && fmt.Sprint(got) != fmt.Sprint(wantBooks) {
					err = fmt.Errorf("concurrent ListBooksByAuthor = %v, want %v", got, wantBooks)
				}
				if err == nil {
					_, err = pq.GetAuthor(ctx, anon)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must("concurrent prepared queries", err)
	}
	tr.add("concurrent ListBooksByAuthor", wantBooks)
	must("prepared Close", pq.Close())

	// A *sql.Conn as DBTX, ad hoc and prepared.
	conn, err := tg.DB.Conn(ctx)
	must("Conn", err)
	cq := sqlcNew(tg.Kind, conn)
	c, err = cq.CountBooks(ctx)
	must("conn CountBooks", err)
	tr.add("conn CountBooks", c)
	cpq, err := sqlcPrepare(ctx, tg.Kind, conn)
	must("conn Prepare", err)
	a, err = cpq.GetAuthor(ctx, anon)
	must("conn prepared GetAuthor", err)
	tr.add("conn prepared GetAuthor", a)
	must("conn prepared Close", cpq.Close())
	must("Conn.Close", conn.Close())

	// Cascade delete.
	must("DeleteAuthor", q.DeleteAuthor(ctx, ada))
	c, err = q.CountBooks(ctx)
	must("CountBooks", err)
	tr.add("CountBooks after cascade", c)
	list, err = q.ListAuthors(ctx)
	must("ListAuthors", err)
	tr.add("final ListAuthors", list)
	return tr
}
