-- +goose Up
CREATE TABLE books (
    id        BIGSERIAL PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    pages     INTEGER CHECK (pages > 0),
    price     NUMERIC(10,2) NOT NULL DEFAULT 0
);

-- +goose StatementBegin
CREATE FUNCTION books_title_trim() RETURNS trigger AS $$
BEGIN
    NEW.title := btrim(NEW.title);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER books_title_trim BEFORE INSERT OR UPDATE ON books
    FOR EACH ROW EXECUTE FUNCTION books_title_trim();

-- +goose Down
DROP TABLE books;
DROP FUNCTION books_title_trim();
