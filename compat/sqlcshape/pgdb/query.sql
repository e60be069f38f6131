-- name: CreateAuthor :one
INSERT INTO authors (name, bio, born) VALUES ($1, $2, $3)
RETURNING id, name, bio, born, active;

-- name: GetAuthor :one
SELECT id, name, bio, born, active FROM authors
WHERE id = $1 LIMIT 1;

-- name: ListAuthors :many
SELECT id, name, bio, born, active FROM authors
ORDER BY name;

-- name: UpdateAuthorBio :exec
UPDATE authors SET bio = $2
WHERE id = $1;

-- name: DeactivateAuthors :execrows
UPDATE authors SET active = false
WHERE born < $1;

-- name: DeleteAuthor :exec
DELETE FROM authors
WHERE id = $1;

-- name: CreateBook :one
INSERT INTO books (author_id, title, price, cover) VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: ListBooksByAuthor :many
SELECT b.id, b.title, b.price, b.cover, a.name AS author_name
FROM books b JOIN authors a ON a.id = b.author_id
WHERE b.author_id = $1
ORDER BY b.id;

-- name: CountBooks :one
SELECT count(*) FROM books;
