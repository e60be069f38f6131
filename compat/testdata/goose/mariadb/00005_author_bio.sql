-- +goose Up
ALTER TABLE authors ADD COLUMN bio VARCHAR(500);
UPDATE authors SET bio = 'Mathematician' WHERE name = 'Ada';

-- +goose Down
ALTER TABLE authors DROP COLUMN bio;
