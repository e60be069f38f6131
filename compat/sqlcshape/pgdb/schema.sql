CREATE TABLE authors (
    id     BIGSERIAL PRIMARY KEY,
    name   TEXT NOT NULL,
    bio    TEXT,
    born   DATE,
    active BOOLEAN NOT NULL DEFAULT true
);

CREATE TABLE books (
    id        BIGSERIAL PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    price     NUMERIC(10,2) NOT NULL,
    cover     BYTEA
);
