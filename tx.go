package hasql

import (
	"context"
	"database/sql/driver"
)

// tx is the handle's transaction.
type tx struct {
	v     *handle
	inner driver.Tx
	ctx   context.Context // BeginTx's: database/sql rolls back when it ends
}

// Commit commits on the bound session.
func (t *tx) Commit() error {
	err := t.v.endTx(t, FnCommit)
	t.end()
	return err
}

// Rollback rolls back on the bound session. The session is kept or ended
// exactly when database/sql would keep or discard the inner connection: it
// ends when the connection died, or when database/sql rolls back because the
// transaction's context ended and the inner connection lacks SessionResetter
// or Validator (hasql's handle has both, so database/sql keeps the handle).
func (t *tx) Rollback() error {
	v := t.v
	ctx := t.ctx
	// On a dead session decide reports success and lets the session go:
	// the server rolls back what it loses.
	err := v.endTx(t, FnRollback)
	t.end()
	if ctx != nil && ctx.Err() != nil && v.ph != nil && !keepsConnOnRollback(v.ph.inner) {
		// database/sql's own rollback when the transaction's context
		// ends: without hasql it would discard a connection that lacks
		// SessionResetter or Validator, failed or not. It keeps hasql's
		// handle, which has both, so the session goes instead.
		v.ph.bad.Store(true)
	}
	// Otherwise the session stays, as database/sql would keep the inner
	// connection after a failed rollback: its IsValid decides at release.
	return err
}

// keepsConnOnRollback tells whether database/sql keeps the connection after
// rolling back on a context's end (it implements SessionResetter and
// Validator).
func keepsConnOnRollback(inner driver.Conn) bool {
	_, r := inner.(driver.SessionResetter)
	_, v := inner.(driver.Validator)
	return r && v
}

// endTx commits or rolls back t through the pipeline. Neither is ever run
// again: after a lost COMMIT the outcome is unknown (unless resolved), and a
// lost ROLLBACK has happened. A Commit of a transaction whose session was
// lost before it is not sent at all: the transaction is gone, and the
// caller learns that it did not commit.
func (v *handle) endTx(t *tx, fn Fn) error {
	if lost := v.lostTx; lost != nil && fn == FnCommit {
		v.lostTx = nil
		again := *lost
		again.Sent = false // this COMMIT went nowhere
		return &again
	}
	ctx := context.Background()
	if t.ctx != nil && v.c.reg.chain(fn) != nil {
		// For callbacks, the transaction's context for its values (trace
		// spans, say), not its cancellation: database/sql rolls back
		// after it ended.
		ctx = context.WithoutCancel(t.ctx)
	}
	v.curTx = t
	_, _, err := v.run(fn, ctx, "", nil, nil)
	v.curTx = nil
	return err
}

func (t *tx) end() {
	t.inner, t.ctx = nil, nil
	t.v.inTx, t.v.lostTx = false, nil
}

// txLost records that the open transaction's session died before its
// COMMIT was sent (lost wraps ErrTxNotCommitted): the transaction is
// counted once as not committed, and its Commit reports the loss again.
func (v *handle) txLost(lost *LostError) {
	if v.lostTx == nil {
		v.c.txNotCommitted.Add(1)
		v.lostTx = lost
	}
}
