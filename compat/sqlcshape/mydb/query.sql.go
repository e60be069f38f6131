// Shaped like sqlc's query.sql.go for query.sql (engine mysql); see ../doc.go.
// source: query.sql

package mydb

import (
	"context"
	"database/sql"
)

const countBooks = `-- name: CountBooks :one
SELECT count(*) FROM books
`

func (q *Queries) CountBooks(ctx context.Context) (int64, error) {
	row := q.queryRow(ctx, q.countBooksStmt, countBooks)
	var count int64
	err := row.Scan(&count)
	return count, err
}

const createAuthor = `-- name: CreateAuthor :execlastid
INSERT INTO authors (name, bio, born) VALUES (?, ?, ?)
`

type CreateAuthorParams struct {
	Name string
	Bio  sql.NullString
	Born sql.NullTime
}

func (q *Queries) CreateAuthor(ctx context.Context, arg CreateAuthorParams) (int64, error) {
	result, err := q.exec(ctx, q.createAuthorStmt, createAuthor, arg.Name, arg.Bio, arg.Born)
	if err != nil {
		return 0, err
	}
	return result.LastInsertId()
}

const createBook = `-- name: CreateBook :execlastid
INSERT INTO books (author_id, title, price, cover) VALUES (?, ?, ?, ?)
`

type CreateBookParams struct {
	AuthorID int64
	Title    string
	Price    string
	Cover    []byte
}

func (q *Queries) CreateBook(ctx context.Context, arg CreateBookParams) (int64, error) {
	result, err := q.exec(ctx, q.createBookStmt, createBook,
		arg.AuthorID,
		arg.Title,
		arg.Price,
		arg.Cover,
	)
	if err != nil {
		return 0, err
	}
	return result.LastInsertId()
}

const deactivateAuthors = `-- name: DeactivateAuthors :execrows
UPDATE authors SET active = false
WHERE born < ?
`

func (q *Queries) DeactivateAuthors(ctx context.Context, born sql.NullTime) (int64, error) {
	result, err := q.exec(ctx, q.deactivateAuthorsStmt, deactivateAuthors, born)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected()
}

const deleteAuthor = `-- name: DeleteAuthor :exec
DELETE FROM authors
WHERE id = ?
`

func (q *Queries) DeleteAuthor(ctx context.Context, id int64) error {
	_, err := q.exec(ctx, q.deleteAuthorStmt, deleteAuthor, id)
	return err
}

const getAuthor = `-- name: GetAuthor :one
SELECT id, name, bio, born, active FROM authors
WHERE id = ? LIMIT 1
`

func (q *Queries) GetAuthor(ctx context.Context, id int64) (Author, error) {
	row := q.queryRow(ctx, q.getAuthorStmt, getAuthor, id)
	var i Author
	err := row.Scan(
		&i.ID,
		&i.Name,
		&i.Bio,
		&i.Born,
		&i.Active,
	)
	return i, err
}

const listAuthors = `-- name: ListAuthors :many
SELECT id, name, bio, born, active FROM authors
ORDER BY name
`

func (q *Queries) ListAuthors(ctx context.Context) ([]Author, error) {
	rows, err := q.query(ctx, q.listAuthorsStmt, listAuthors)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []Author
	for rows.Next() {
		var i Author
		if err := rows.Scan(
			&i.ID,
			&i.Name,
			&i.Bio,
			&i.Born,
			&i.Active,
		); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

const listBooksByAuthor = `-- name: ListBooksByAuthor :many
SELECT b.id, b.title, b.price, b.cover, a.name AS author_name
FROM books b JOIN authors a ON a.id = b.author_id
WHERE b.author_id = ?
ORDER BY b.id
`

type ListBooksByAuthorRow struct {
	ID         int64
	Title      string
	Price      string
	Cover      []byte
	AuthorName string
}

func (q *Queries) ListBooksByAuthor(ctx context.Context, authorID int64) ([]ListBooksByAuthorRow, error) {
	rows, err := q.query(ctx, q.listBooksByAuthorStmt, listBooksByAuthor, authorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []ListBooksByAuthorRow
	for rows.Next() {
		var i ListBooksByAuthorRow
		if err := rows.Scan(
			&i.ID,
			&i.Title,
			&i.Price,
			&i.Cover,
			&i.AuthorName,
		); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

const updateAuthorBio = `-- name: UpdateAuthorBio :exec
UPDATE authors SET bio = ?
WHERE id = ?
`

type UpdateAuthorBioParams struct {
	Bio sql.NullString
	ID  int64
}

func (q *Queries) UpdateAuthorBio(ctx context.Context, arg UpdateAuthorBioParams) error {
	_, err := q.exec(ctx, q.updateAuthorBioStmt, updateAuthorBio, arg.Bio, arg.ID)
	return err
}
