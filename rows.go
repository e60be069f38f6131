package hasql

import (
	"database/sql/driver"
	"reflect"
)

//go:generate go run ./internal/rowsgen

// rows wraps inner rows only where hasql must act when they close: rows of
// ad-hoc work that hasql ran on a cached statement, which goes back to the
// cache on Close. wrapRows gives the wrapper exactly the optional interfaces
// of the inner rows (see rows_gen.go).
type rows struct {
	inner driver.Rows
	v     *conn
	ph    *physical
	cs    *cachedStmt
}

func (r *rows) Columns() []string              { return r.inner.Columns() }
func (r *rows) Next(dest []driver.Value) error { return r.inner.Next(dest) }

// Close closes the inner rows and hands the statement back to its session.
func (r *rows) Close() error {
	err := r.inner.Close()
	if cs := r.cs; cs != nil {
		r.cs = nil
		if r.v.ph == r.ph {
			r.ph.releaseStmt(cs)
		} else {
			r.ph.deferRelease(cs)
		}
	}
	return err
}

// The pieces below each implement one optional interface for the wrapper
// types in rows_gen.go, which embed exactly the pieces the inner rows have.

type rowsNextResultSet struct{ r *rows }

func (p rowsNextResultSet) HasNextResultSet() bool {
	return p.r.inner.(driver.RowsNextResultSet).HasNextResultSet()
}
func (p rowsNextResultSet) NextResultSet() error {
	return p.r.inner.(driver.RowsNextResultSet).NextResultSet()
}

type rowsScanType struct{ r *rows }

func (p rowsScanType) ColumnTypeScanType(i int) reflect.Type {
	return p.r.inner.(driver.RowsColumnTypeScanType).ColumnTypeScanType(i)
}

type rowsDatabaseTypeName struct{ r *rows }

func (p rowsDatabaseTypeName) ColumnTypeDatabaseTypeName(i int) string {
	return p.r.inner.(driver.RowsColumnTypeDatabaseTypeName).ColumnTypeDatabaseTypeName(i)
}

type rowsLength struct{ r *rows }

func (p rowsLength) ColumnTypeLength(i int) (int64, bool) {
	return p.r.inner.(driver.RowsColumnTypeLength).ColumnTypeLength(i)
}

type rowsNullable struct{ r *rows }

func (p rowsNullable) ColumnTypeNullable(i int) (nullable, ok bool) {
	return p.r.inner.(driver.RowsColumnTypeNullable).ColumnTypeNullable(i)
}

type rowsPrecisionScale struct{ r *rows }

func (p rowsPrecisionScale) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	return p.r.inner.(driver.RowsColumnTypePrecisionScale).ColumnTypePrecisionScale(i)
}
