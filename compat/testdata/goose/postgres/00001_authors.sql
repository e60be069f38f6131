-- +goose Up
CREATE TABLE authors (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX authors_created_at_idx ON authors (created_at);

-- +goose Down
DROP TABLE authors;
