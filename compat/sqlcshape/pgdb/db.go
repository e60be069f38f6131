// Shaped like sqlc's db.go (database/sql, emit_prepared_queries: true); see ../doc.go.

package pgdb

import (
	"context"
	"database/sql"
	"fmt"
)

type DBTX interface {
	ExecContext(context.Context, string, ...interface{}) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...interface{}) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...interface{}) *sql.Row
}

func New(db DBTX) *Queries {
	return &Queries{db: db}
}

func Prepare(ctx context.Context, db DBTX) (*Queries, error) {
	q := Queries{db: db}
	var err error
	if q.countBooksStmt, err = db.PrepareContext(ctx, countBooks); err != nil {
		return nil, fmt.Errorf("error preparing query CountBooks: %w", err)
	}
	if q.createAuthorStmt, err = db.PrepareContext(ctx, createAuthor); err != nil {
		return nil, fmt.Errorf("error preparing query CreateAuthor: %w", err)
	}
	if q.createBookStmt, err = db.PrepareContext(ctx, createBook); err != nil {
		return nil, fmt.Errorf("error preparing query CreateBook: %w", err)
	}
	if q.deactivateAuthorsStmt, err = db.PrepareContext(ctx, deactivateAuthors); err != nil {
		return nil, fmt.Errorf("error preparing query DeactivateAuthors: %w", err)
	}
	if q.deleteAuthorStmt, err = db.PrepareContext(ctx, deleteAuthor); err != nil {
		return nil, fmt.Errorf("error preparing query DeleteAuthor: %w", err)
	}
	if q.getAuthorStmt, err = db.PrepareContext(ctx, getAuthor); err != nil {
		return nil, fmt.Errorf("error preparing query GetAuthor: %w", err)
	}
	if q.listAuthorsStmt, err = db.PrepareContext(ctx, listAuthors); err != nil {
		return nil, fmt.Errorf("error preparing query ListAuthors: %w", err)
	}
	if q.listBooksByAuthorStmt, err = db.PrepareContext(ctx, listBooksByAuthor); err != nil {
		return nil, fmt.Errorf("error preparing query ListBooksByAuthor: %w", err)
	}
	if q.updateAuthorBioStmt, err = db.PrepareContext(ctx, updateAuthorBio); err != nil {
		return nil, fmt.Errorf("error preparing query UpdateAuthorBio: %w", err)
	}
	return &q, nil
}

func (q *Queries) Close() error {
	var err error
	if q.countBooksStmt != nil {
		if cerr := q.countBooksStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing countBooksStmt: %w", cerr)
		}
	}
	if q.createAuthorStmt != nil {
		if cerr := q.createAuthorStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing createAuthorStmt: %w", cerr)
		}
	}
	if q.createBookStmt != nil {
		if cerr := q.createBookStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing createBookStmt: %w", cerr)
		}
	}
	if q.deactivateAuthorsStmt != nil {
		if cerr := q.deactivateAuthorsStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing deactivateAuthorsStmt: %w", cerr)
		}
	}
	if q.deleteAuthorStmt != nil {
		if cerr := q.deleteAuthorStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing deleteAuthorStmt: %w", cerr)
		}
	}
	if q.getAuthorStmt != nil {
		if cerr := q.getAuthorStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing getAuthorStmt: %w", cerr)
		}
	}
	if q.listAuthorsStmt != nil {
		if cerr := q.listAuthorsStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing listAuthorsStmt: %w", cerr)
		}
	}
	if q.listBooksByAuthorStmt != nil {
		if cerr := q.listBooksByAuthorStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing listBooksByAuthorStmt: %w", cerr)
		}
	}
	if q.updateAuthorBioStmt != nil {
		if cerr := q.updateAuthorBioStmt.Close(); cerr != nil {
			err = fmt.Errorf("error closing updateAuthorBioStmt: %w", cerr)
		}
	}
	return err
}

func (q *Queries) exec(ctx context.Context, stmt *sql.Stmt, query string, args ...interface{}) (sql.Result, error) {
	switch {
	case stmt != nil && q.tx != nil:
		return q.tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
	case stmt != nil:
		return stmt.ExecContext(ctx, args...)
	default:
		return q.db.ExecContext(ctx, query, args...)
	}
}

func (q *Queries) query(ctx context.Context, stmt *sql.Stmt, query string, args ...interface{}) (*sql.Rows, error) {
	switch {
	case stmt != nil && q.tx != nil:
		return q.tx.StmtContext(ctx, stmt).QueryContext(ctx, args...)
	case stmt != nil:
		return stmt.QueryContext(ctx, args...)
	default:
		return q.db.QueryContext(ctx, query, args...)
	}
}

func (q *Queries) queryRow(ctx context.Context, stmt *sql.Stmt, query string, args ...interface{}) *sql.Row {
	switch {
	case stmt != nil && q.tx != nil:
		return q.tx.StmtContext(ctx, stmt).QueryRowContext(ctx, args...)
	case stmt != nil:
		return stmt.QueryRowContext(ctx, args...)
	default:
		return q.db.QueryRowContext(ctx, query, args...)
	}
}

type Queries struct {
	db                    DBTX
	tx                    *sql.Tx
	countBooksStmt        *sql.Stmt
	createAuthorStmt      *sql.Stmt
	createBookStmt        *sql.Stmt
	deactivateAuthorsStmt *sql.Stmt
	deleteAuthorStmt      *sql.Stmt
	getAuthorStmt         *sql.Stmt
	listAuthorsStmt       *sql.Stmt
	listBooksByAuthorStmt *sql.Stmt
	updateAuthorBioStmt   *sql.Stmt
}

func (q *Queries) WithTx(tx *sql.Tx) *Queries {
	return &Queries{
		db:                    tx,
		tx:                    tx,
		countBooksStmt:        q.countBooksStmt,
		createAuthorStmt:      q.createAuthorStmt,
		createBookStmt:        q.createBookStmt,
		deactivateAuthorsStmt: q.deactivateAuthorsStmt,
		deleteAuthorStmt:      q.deleteAuthorStmt,
		getAuthorStmt:         q.getAuthorStmt,
		listAuthorsStmt:       q.listAuthorsStmt,
		listBooksByAuthorStmt: q.listBooksByAuthorStmt,
		updateAuthorBioStmt:   q.updateAuthorBioStmt,
	}
}
