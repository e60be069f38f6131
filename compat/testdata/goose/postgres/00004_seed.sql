-- +goose Up
INSERT INTO authors (name) VALUES ('Ada'), ('Alan');
INSERT INTO books (author_id, title, pages, price)
    SELECT id, '  Notes on the Analytical Engine  ', 65, 12.50 FROM authors WHERE name = 'Ada';
INSERT INTO books (author_id, title, pages, price)
    SELECT id, 'On Computable Numbers', 36, 9.99 FROM authors WHERE name = 'Alan';

-- +goose Down
DELETE FROM books;
DELETE FROM authors;
