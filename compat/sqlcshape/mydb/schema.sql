CREATE TABLE authors (
    id     BIGINT AUTO_INCREMENT PRIMARY KEY,
    name   VARCHAR(100) NOT NULL,
    bio    TEXT,
    born   DATE,
    active BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE books (
    id        BIGINT AUTO_INCREMENT PRIMARY KEY,
    author_id BIGINT NOT NULL,
    title     VARCHAR(200) NOT NULL,
    price     DECIMAL(10,2) NOT NULL,
    cover     MEDIUMBLOB,
    CONSTRAINT books_author_fk FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE CASCADE
);
