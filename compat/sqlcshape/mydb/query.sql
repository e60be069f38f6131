-- name: CreateAuthor :execlastid
INSERT INTO authors (name, bio, born) VALUES (?, ?, ?);

-- name: GetAuthor :one
SELECT id, name, bio, born, active FROM authors
WHERE id = ? LIMIT 1;

-- name: ListAuthors :many
SELECT id, name, bio, born, active FROM authors
ORDER BY name;

-- name: UpdateAuthorBio :exec
UPDATE authors SET bio = ?
WHERE id = ?;

-- name: DeactivateAuthors :execrows
UPDATE authors SET active = false
WHERE born < ?;

-- name: DeleteAuthor :exec
DELETE FROM authors
WHERE id = ?;

-- name: CreateBook :execlastid
INSERT INTO books (author_id, title, price, cover) VALUES (?, ?, ?, ?);

-- name: ListBooksByAuthor :many
SELECT b.id, b.title, b.price, b.cover, a.name AS author_name
FROM books b JOIN authors a ON a.id = b.author_id
WHERE b.author_id = ?
ORDER BY b.id;

-- name: CountBooks :one
SELECT count(*) FROM books;
