-- +goose Up
CREATE TABLE books (
    id        BIGINT AUTO_INCREMENT PRIMARY KEY,
    author_id BIGINT NOT NULL,
    title     VARCHAR(200) NOT NULL,
    pages     INT CHECK (pages > 0),
    price     DECIMAL(10,2) NOT NULL DEFAULT 0,
    CONSTRAINT books_author_fk FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE CASCADE
);

-- +goose StatementBegin
CREATE TRIGGER books_title_trim BEFORE INSERT ON books
FOR EACH ROW
BEGIN
    SET NEW.title = TRIM(NEW.title);
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE books;
