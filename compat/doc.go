// Package compat holds hasql's client-compatibility tests (sqlx, GORM, goose, sqlc-shaped code);
// see README.md. It has no API of its own.
package compat
