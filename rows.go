package hasql

import (
	"context"
	"database/sql/driver"
	"io"
	"reflect"
)

//go:generate go run ./internal/rowsgen

// rows wraps the inner driver's rows so that a connection lost while rows
// stream reaches the caller as ErrConnectionLost (and its host is purged),
// and so that the rows of ad-hoc work hasql ran on a cached statement hand
// the statement back on Close. The wrapper types in rows_gen.go embed rows
// plus exactly the optional interfaces the inner rows have; they are
// recycled through pools, so wrapping allocates nothing.
type rows struct {
	inner driver.Rows
	v     *handle
	ph    *session
	cs    *cachedStmt // nil unless the rows came from a cached statement
	endTx driver.Tx   // the query's own transaction behind a pooler (see handle.inOwnTx): ended at Close
	// guarded: endTx is the own transaction of a write query under
	// hasql.txguard=all, committed with a guard record when the rows end
	// (endGuarded); innerDone, the inner rows are closed already.
	guarded   bool
	innerDone bool
	// inlineGuard: the guard record id the query's own statement wrote
	// (hasql.txguard=all, guardInline); a loss is resolved (inlineLost).
	inlineGuard string
	mask        uint8       // which wrapper type and pool this is
	self        driver.Rows // the wrapper around this rows, set once by its pool

	// The work that produced the rows, to run it again if the connection
	// is lost at Close and the work is marked Idempotent.
	ctx   context.Context
	query string
	args  []driver.NamedValue
	s     *stmt // nil for ad-hoc work

	// Replay (replay.go), with hasql.replay=on: the rows delivered so far
	// (n) and their running digest, whether the application saw their end,
	// the recorded call they belong to (rc, 1-based; 0: none), how often
	// they continued on a new session, and whether the application moved
	// to another result set (which replay does not follow).
	track bool
	eof   bool
	multi bool
	n     int64
	dig   uint64
	rc    int
	conts int
}

// rowsBase is implemented by every wrapper type (through the embedded rows).
type rowsBase interface{ base() *rows }

func (r *rows) base() *rows { return r }

// wrapRows wraps inner rows of the bound session; rows already wrapped are
// returned as they are. ctx, query, args and s say what produced them.
func (v *handle) wrapRows(inner driver.Rows, cs *cachedStmt, ctx context.Context, query string, args []driver.NamedValue, s *stmt) driver.Rows {
	// A driver's rows are of one type or few: the mask of the last type
	// seen saves six interface assertions. (Rows of hasql's own never get
	// cached, so a type that matches is the inner driver's.)
	if t := reflect.TypeOf(inner); t != v.rowsType {
		if w, ok := inner.(rowsBase); ok {
			r := w.base()
			r.ctx, r.query, r.args, r.s = ctx, query, args, s
			if v.autoTx != nil {
				r.endTx, v.autoTx = v.autoTx, nil
				r.guarded, v.autoGuarded = v.autoGuarded, false
			}
			if v.autoInline != "" {
				r.inlineGuard, v.autoInline = v.autoInline, ""
			}
			return inner
		}
		v.rowsType, v.rowsMask = t, rowsMask(inner)
	}
	m := v.rowsMask
	var r *rows
	if sp := v.spareRows; sp != nil && sp.mask == m {
		v.spareRows, r = nil, sp
	} else {
		r = rowsPools[m].Get().(rowsBase).base()
	}
	r.inner, r.v, r.ph, r.cs, r.mask = inner, v, v.ph, cs, m
	if v.autoTx != nil {
		r.endTx, v.autoTx = v.autoTx, nil
		r.guarded, v.autoGuarded = v.autoGuarded, false
	}
	if v.autoInline != "" {
		r.inlineGuard, v.autoInline = v.autoInline, ""
	}
	r.ctx, r.query, r.args, r.s = ctx, query, args, s
	return r.self
}

func (r *rows) Columns() []string { return r.inner.Columns() }

// Next reads the next row; a lost connection becomes a *LostError
// (ErrConnectionLost, or ErrTxNotCommitted inside a transaction).
func (r *rows) Next(dest []driver.Value) error {
	err := r.inner.Next(dest)
	if err != nil && r.guarded {
		// The end of a guarded write query's rows commits its own
		// transaction: the application learns the outcome from Next.
		if gerr := r.endGuarded(err); gerr != nil {
			return gerr
		}
	}
	if err != nil && err != io.EOF && r.inlineGuard != "" {
		return r.inlineLost(err)
	}
	if r.track {
		switch {
		case err == nil:
			r.digest(dest)
		case err == io.EOF:
			r.eof = true
		default:
			return r.v.continueRows(r, dest, err)
		}
		return err
	}
	if err != nil && err != io.EOF {
		return r.v.streamErr(r.ctx, r.ph, err)
	}
	return err
}

// Close closes the inner rows, hands a cached statement back to its session
// and recycles the wrapper: database/sql never touches rows after closing
// them.
func (r *rows) Close() error {
	if r.track {
		r.untrack()
	}
	var err error
	if !r.innerDone {
		err = r.inner.Close()
		r.innerDone = true
	}
	switch {
	case r.guarded:
		// Final errors: the loss is already handled.
		err = r.endGuarded(err)
	case r.inlineGuard != "" && err != nil:
		err = r.inlineLost(err)
	case r.endTx != nil:
		err = r.endOwnTx(r.endTx, err)
		fallthrough
	default:
		if err != nil {
			err = r.closeErr(err)
		}
	}
	if cs := r.cs; cs != nil {
		if r.v.ph == r.ph {
			r.ph.releaseStmt(cs)
		} else {
			r.ph.deferRelease(cs)
		}
	}
	v, self, m := r.v, r.self, r.mask
	*r = rows{self: self, mask: m} // drops the references to ctx, args and the rest
	// database/sql closes rows holding the handle's lock, as it does when
	// it asks for them: the handle keeps one wrapper for its next query,
	// which saves the pool's cost.
	if v.spareRows == nil {
		v.spareRows = r
	} else {
		rowsPools[m].Put(self)
	}
	return err
}

// closeErr handles an error from closing the inner rows. A connection lost
// there (the rows were read, but the end of the command never arrived —
// database/sql's QueryRow reports it from Scan) leaves the outcome of the
// work unknown. Work marked Idempotent, with hasql.retry=idempotent and
// outside a transaction, is then run again on a new session, its rows
// discarded, so that it has surely taken effect.
func (r *rows) closeErr(err error) error {
	v := r.v
	lost := v.streamErr(r.ctx, r.ph, err)
	// The work ran (its rows were read), so only mayRerun's Idempotent rule
	// can allow running it again.
	if lost == err || v.inTx || r.ctx == nil || v.ph != r.ph || !v.c.mayRerun(r.ctx, false) {
		return lost
	}
	v.release()
	var again driver.Rows
	var aerr error
	if r.s != nil {
		again, aerr = r.s.QueryContext(r.ctx, r.args) // through the call pipeline
	} else {
		again, aerr = v.QueryContext(r.ctx, r.query, r.args)
	}
	if aerr != nil {
		return lost
	}
	if aerr = again.Close(); aerr != nil {
		return aerr
	}
	v.c.retries.Add(1)
	return nil
}

// streamErr handles an error from rows of session ph, produced by work
// whose context was ctx: a lost connection is reported like a lost call —
// the host purged, the failover callback told (FoBegin, FoAbort: no new
// session is bound under open rows), the recovery function run — but the work
// that produced the rows ran, so nothing is re-run here (see closeErr).
func (v *handle) streamErr(ctx context.Context, ph *session, err error) error {
	if ph == nil || ph != v.ph || !v.c.dialect.connDead(err) {
		return err
	}
	if !ph.bad.Swap(true) {
		v.c.sessionLost(ph, err, false)
	}
	lost := newLostError(ph, err, true, v.inTx)
	if v.inTx {
		v.txLost(lost)
	}
	return joinLoss(v.lossWithoutRebind(ctx, err, true), lost)
}

// The pieces below each implement one optional interface for the wrapper
// types in rows_gen.go, which embed exactly the pieces the inner rows have.

type rowsNextResultSet struct{ r *rows }

func (p rowsNextResultSet) HasNextResultSet() bool {
	return p.r.inner.(driver.RowsNextResultSet).HasNextResultSet()
}
func (p rowsNextResultSet) NextResultSet() error {
	p.r.multi = true
	err := p.r.inner.(driver.RowsNextResultSet).NextResultSet()
	if err != nil && err != io.EOF {
		return p.r.v.streamErr(p.r.ctx, p.r.ph, err)
	}
	return err
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
