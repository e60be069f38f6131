package hasql

import (
	"context"
	"database/sql/driver"
	"sync"
)

// stmt is a virtual prepared statement. It remembers the session it was
// prepared on; run on a handle bound to another session, it is prepared there
// (through that session's statement cache).
type stmt struct {
	v     *handle
	query string
	tag   string      // statement tag (WithStmtTag) at prepare time
	ph    *session    // where cs was acquired
	cs    *cachedStmt // nil until prepared (lazily, after a replacement callback)
}

// stmtCC is a stmt whose inner statement implements driver.ColumnConverter:
// database/sql's behaviour depends on that interface's presence, so hasql
// shows it exactly when the inner statement has it.
type stmtCC struct{ stmt }

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
	_ driver.ColumnConverter   = (*stmtCC)(nil) //nolint:staticcheck // fidelity
)

var stmtPool = sync.Pool{New: func() any { return new(stmt) }}
var stmtCCPool = sync.Pool{New: func() any { return new(stmtCC) }}

// newStmt wraps cs. Wrappers are recycled on Close, so a prepare adds no
// allocation to the inner driver's.
func newStmt(v *handle, query, tag string, cs *cachedStmt) driver.Stmt {
	var ph *session
	if cs != nil {
		ph = v.ph
		if _, ok := cs.si.(driver.ColumnConverter); ok { //nolint:staticcheck
			s := stmtCCPool.Get().(*stmtCC)
			s.stmt = stmt{v: v, query: query, tag: tag, ph: ph, cs: cs}
			return s
		}
	}
	s := stmtPool.Get().(*stmt)
	*s = stmt{v: v, query: query, tag: tag, ph: ph, cs: cs}
	return s
}

// ColumnConverter forwards to the inner statement.
func (s *stmtCC) ColumnConverter(idx int) driver.ValueConverter {
	return s.cs.si.(driver.ColumnConverter).ColumnConverter(idx) //nolint:staticcheck
}

// NumInput forwards to the inner statement; -1 (unknown) before it exists.
//
// database/sql asks it first whenever it runs the statement, before
// CheckNamedValue and ColumnConverter. If the handle is bound to another
// session than the one the statement was prepared on, the statement is
// prepared on the bound session now, as database/sql itself prepares a
// statement again on a new connection, so that none of these calls reaches
// the other session's statement: that session may be closed, or in another
// handle's hands.
func (s *stmt) NumInput() int {
	if ph := s.v.ph; ph != nil && s.cs != nil && s.ph != ph {
		s.release()
		if cs, err := s.v.acquireExplicit(context.Background(), s.query, s.tag); err == nil {
			s.ph, s.cs = ph, cs
		} else {
			s.v.markIfDead(err) // ready prepares again and reports it
		}
	}
	if s.cs == nil {
		return -1
	}
	return s.cs.si.NumInput()
}

// ready binds the handle and makes sure the statement exists on the bound
// session, preparing it there if it was prepared elsewhere.
func (s *stmt) ready(ctx context.Context) error {
	v := s.v
	if err := v.ensure(ctx); err != nil {
		return err
	}
	if s.ph == v.ph && s.cs != nil {
		return nil
	}
	s.release()
	cs, err := v.acquireExplicit(ctx, s.query, s.tag)
	if err != nil {
		v.markIfDead(err)
		return err
	}
	s.ph, s.cs = v.ph, cs
	return nil
}

// release lets go of the inner statement: handed back to its session's
// cache now if that session is the bound one, else queued for the
// session's next owner.
func (s *stmt) release() error {
	cs, ph := s.cs, s.ph
	s.cs, s.ph = nil, nil
	if cs == nil {
		return nil
	}
	if ph == s.v.ph {
		err := ph.releaseStmt(cs)
		if err != nil {
			s.v.markIfDead(err)
		}
		return err
	}
	if ph.bad.Load() {
		return nil
	}
	if ph.pool.borrowIdle(ph) {
		ph.drainPending()
		err := ph.releaseStmt(cs)
		if ph.pool.c.dialect.connDead(err) {
			ph.bad.Store(true)
		}
		ph.pool.put(ph)
		return err
	}
	ph.deferRelease(cs)
	return nil
}

// ExecContext executes the statement on the bound session.
func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	v := s.v
	r, _, err := v.run(FnStmtExec, ctx, s.query, args, s)
	return r, err
}

// QueryContext runs the statement on the bound session and returns the inner
// driver's rows as they are.
func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	v := s.v
	_, r, err := v.run(FnStmtQuery, ctx, s.query, args, s)
	if err != nil {
		v.dropAutoTx()
		return nil, err
	}
	w := v.wrapRows(r, nil, ctx, s.query, args, s)
	if v.c.cfg.replay.Enabled {
		v.trackRows(w)
	}
	return w, nil
}

// Exec is the legacy entry point; database/sql uses ExecContext.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

// Query is the legacy entry point; database/sql uses QueryContext.
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

// CheckNamedValue tries the inner statement's checker, then the inner
// connection's, then returns driver.ErrSkip, as database/sql would.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if s.cs != nil {
		if ck, ok := s.cs.si.(driver.NamedValueChecker); ok {
			return ck.CheckNamedValue(nv)
		}
	}
	return s.v.checkInner(nv)
}

// Close gives the statement back to its session's cache (or closes it when
// the cache is off). The wrapper is recycled afterwards: database/sql never
// touches a driver.Stmt after closing it.
func (s *stmt) Close() error {
	err := s.close()
	*s = stmt{}
	stmtPool.Put(s)
	return err
}

// Close is stmt.Close for a statement with a ColumnConverter.
func (s *stmtCC) Close() error {
	err := s.close()
	s.stmt = stmt{}
	stmtCCPool.Put(s)
	return err
}

func (s *stmt) close() error {
	v := s.v
	if ch := v.c.reg.chain(FnStmtClose); ch != nil {
		err := v.call(ch, &Call{Fn: FnStmtClose, Ctx: context.Background(), Query: s.query, Session: &v.view}, s)
		if s.cs != nil {
			// A replacement or a panic kept the driver call from running,
			// and the wrapper is recycled next: release now or never.
			s.release()
		}
		return err
	}
	return s.release()
}

// invoke performs a statement's driver call for its callback chain.
func (s *stmt) invoke(c *Call) error {
	if c.Fn == FnStmtClose {
		return s.release()
	}
	var err error
	c.Result, c.Rows, err = s.v.perform(c.Fn, c.Ctx, c.Query, c.Args, s)
	return err
}
