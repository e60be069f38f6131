// Package sqlcshape holds hand-written code shaped exactly like sqlc's output for database/sql
// (sqlc.yaml here, with emit_prepared_queries: true), for one small schema in two engines:
//
//	pgdb  PostgreSQL flavour: $1 placeholders, RETURNING (sqlc engine "postgresql")
//	mydb  MySQL flavour: ? placeholders, LastInsertId (sqlc engine "mysql")
//
// Each package has what sqlc generates — db.go (DBTX, New, Prepare, Close, WithTx and the
// exec/query/queryRow helpers that pick a prepared statement when there is one), models.go and
// query.sql.go — plus schema.sql/query.sql (sqlc's inputs) and Schema (the DDL, for tests).
// compat's TestSqlcShape runs both through hasql and through the raw drivers.
package sqlcshape
