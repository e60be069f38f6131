-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY books_title_idx ON books (title);

-- +goose Down
DROP INDEX CONCURRENTLY books_title_idx;
