-- +goose NO TRANSACTION
-- +goose Up
ALTER TABLE books ADD INDEX books_title_idx (title), ALGORITHM=INPLACE, LOCK=NONE;

-- +goose Down
ALTER TABLE books DROP INDEX books_title_idx;
