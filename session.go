package hasql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// Session is the application's view of a physical session: its tag, host
// and statement cache, and the calls that act on it directly. It is obtained
// with SessionOf (after Acquire), or handed to a callback (Call.Session), the
// session callback, a recovery function or the failover callback. A Session
// follows a virtual handle, not one connection: it stays valid across
// reconnects and always shows the physical session the handle is bound to
// now.
//
// A Session is valid only while the checkout it came from lasts (QNX's
// ha_attach answers EBADF, PCP PM_ERR_NOCONTEXT): once its *sql.Conn is
// closed or released — database/sql then hands the connection to other
// callers — every method that returns an error returns one wrapping
// ErrSessionClosed, the others their zero value, and nothing attached to it
// (Attach) survives. Its methods are for the goroutine that holds the
// *sql.Conn (or runs the callback); they are not safe for concurrent use.
type Session struct {
	v        *handle  // the virtual handle, or nil for a bare physical session
	p        *session // for bare physical sessions (FnConnect and FnClose callbacks)
	checkout uint64   // v.checkout when this view was made; the view is valid while they match
}

// errNotBound is returned by Session methods that need a connection when the
// session's checkout has ended or its handle has no session bound.
var errNotBound = newError(ErrSessionClosed, "session is not bound to a connection (use it while its *sql.Conn is open)", nil)

// handle returns the virtual handle of a Session whose checkout still lasts,
// else nil.
func (s *Session) handle() *handle {
	if s == nil || s.v == nil || s.v.checkout != s.checkout {
		return nil
	}
	return s.v
}

func (s *Session) phys() *session {
	if s == nil {
		return nil
	}
	if s.v != nil {
		if v := s.handle(); v != nil {
			return v.ph
		}
		return nil
	}
	return s.p
}

// Tag returns the tag the session has now ("" when untagged).
func (s *Session) Tag() string {
	if ph := s.phys(); ph != nil {
		return ph.tag
	}
	return ""
}

// TagFound reports whether the checkout found a session with exactly the
// requested tag.
func (s *Session) TagFound() bool {
	v := s.handle()
	return v != nil && v.tagFound
}

// SetTag sets the tag the session keeps when it is released ("" clears it).
// The tag changes at once; it is validated (ErrInvalidTag).
func (s *Session) SetTag(tag string) error {
	t, err := normalizeTag(tag)
	if err != nil {
		return err
	}
	ph := s.phys()
	if ph == nil {
		return errNotBound
	}
	if ph.tag == t {
		return nil
	}
	ph.pool.retag(ph, t)
	return nil
}

// Host returns the host:port of the physical session bound now, or "" when
// it is not known.
func (s *Session) Host() string {
	if ph := s.phys(); ph != nil {
		return ph.host
	}
	return ""
}

// StmtCacheSize returns how many statements the session caches.
func (s *Session) StmtCacheSize() int {
	if ph := s.phys(); ph != nil {
		return ph.stmtCacheSize
	}
	return 0
}

// SetStmtCacheSize sets how many statements the session caches; 0 disables
// its cache (OCI_ATTR_STMTCACHESIZE). Negative values count as 0.
func (s *Session) SetStmtCacheSize(n int) {
	if n < 0 {
		n = 0
	}
	if ph := s.phys(); ph != nil {
		ph.setStmtCacheSize(n)
	}
}

// StmtCacheStats returns the session's statement-cache hits, misses and
// evictions since it was opened.
func (s *Session) StmtCacheStats() (hits, misses, evictions int64) {
	if ph := s.phys(); ph != nil {
		return ph.cache.hits, ph.cache.misses, ph.cache.evictions
	}
	return 0, 0, 0
}

// Unwrap returns the inner driver's connection; calls made on it run no
// callbacks. It returns nil when the session is not bound.
func (s *Session) Unwrap() driver.Conn {
	if v := s.handle(); v != nil {
		v.markUnreplayable("Session.Unwrap")
	}
	if ph := s.phys(); ph != nil {
		return ph.inner
	}
	return nil
}

// Exec runs query on this session directly, with no callbacks (so a callback
// or session callback can set session state without recursion). Arguments are
// converted as database/sql would convert them.
func (s *Session) Exec(ctx context.Context, query string, args ...any) error {
	ph := s.phys()
	if ph == nil {
		return errNotBound
	}
	if v := s.handle(); v != nil {
		v.markUnreplayable("Session.Exec")
	}
	named, err := convertArgs(ph.checker, args)
	if err != nil {
		return err
	}
	if ph.pooled {
		// Behind a transaction pooler, SET becomes state applied to each
		// transaction (see Pooler).
		v := s.handle()
		if done, err := ph.keepState(ctx, query, named, v != nil && v.inTx); done {
			return err
		}
	}
	_, err = ph.exec(ctx, query, named)
	if err == driver.ErrSkip {
		var si driver.Stmt
		if si, err = ph.prepare(ctx, query); err == nil {
			_, err = stmtExec(ctx, si, named)
			if cerr := si.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil && ph.pool.c.dialect.connDead(err) {
		ph.bad.Store(true)
	}
	return err
}

// convertArgs turns Go values into driver values the way database/sql does:
// the connection's checker first, then the default converter (which honours
// driver.Valuer).
func convertArgs(ck driver.NamedValueChecker, args []any) ([]driver.NamedValue, error) {
	out := make([]driver.NamedValue, 0, len(args))
	for i, a := range args {
		nv := driver.NamedValue{Ordinal: i + 1, Value: a}
		if na, ok := a.(sql.NamedArg); ok {
			nv.Name, nv.Value = na.Name, na.Value
		}
		err := driver.ErrSkip
		if ck != nil {
			err = ck.CheckNamedValue(&nv)
		}
		if err == driver.ErrSkip {
			nv.Value, err = driver.DefaultParameterConverter.ConvertValue(nv.Value)
		}
		switch {
		case err == driver.ErrRemoveArgument:
			continue
		case err != nil:
			return nil, newError(ErrInvalidArgument, fmt.Sprintf("argument %d", i+1), err)
		}
		out = append(out, nv)
	}
	return out, nil
}

// handleOf returns the hasql virtual handle behind a *sql.Conn.
func handleOf(c *sql.Conn, ctx context.Context) (*handle, error) {
	var v *handle
	err := c.Raw(func(dc any) error {
		h, ok := dc.(*handle)
		if !ok {
			return newError(ErrNotHasql, fmt.Sprintf("the *sql.Conn is not a hasql connection (its driver connection is %T)", dc), nil)
		}
		v = h
		if ctx != nil {
			return h.ensure(ctx)
		}
		return nil
	})
	return v, err
}

// SessionOf returns the view of the session behind c, a *sql.Conn of a
// hasql database. The view follows c, not one physical session: after a
// reconnect or a lost connection it shows the session c is bound to then.
// SessionOf binds nothing itself; while c has no session bound (its session
// was lost and no call has bound another yet), the view's methods that need
// one return an error (ErrSessionClosed).
//
// Like c, the view is for one goroutine at a time. It is valid until c is
// closed or released: database/sql then hands the connection behind it to
// other callers, and the view's methods return ErrSessionClosed. SessionOf
// fails if c is closed (sql.ErrConnDone) or is not a hasql connection. It
// costs one c.Raw call (and one small allocation for the first view of a
// checkout), and takes no lock of hasql's.
func SessionOf(c *sql.Conn) (*Session, error) {
	v, err := handleOf(c, nil)
	if err != nil {
		return nil, err
	}
	return v.session(), nil
}

// Acquire checks out a connection of db and binds it at once to a session
// chosen by the selectors in ctx — WithTag, WithMatchAnyTag, WithPurity,
// WithClass, WithUser — as OCISessionGet does. The *sql.Conn keeps that
// session until it is closed: calls on it run there whatever selectors their
// own contexts carry, and if the session is lost the next call gets a new one
// with the same user, class and tag. Use SessionOf to see whether the tag was
// found, and Release or Close to give the session back.
//
// ctx bounds the checkout: database/sql's wait for a connection, the pool's
// get mode, the outage gate and the session callback. Acquire fails when db
// is not a hasql database, when a selector is invalid (ErrInvalidTag,
// ErrInvalidClass), when the pool has no session to give (ErrPoolExhausted,
// or ctx's error) or no session can be opened; it then leaves nothing
// checked out. A checkout costs what db.Conn costs plus, when the handle
// database/sql hands out still has its last session parked and the selectors
// match, one atomic swap to take it back; otherwise one search of the pool's
// idle list under its lock, or a new connection.
func Acquire(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := handleOf(c, ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Release gives back a connection from Acquire, as OCISessionRelease does:
// it sets the session's tag to tag ("" clears it; see Session.SetTag) and
// closes c, which returns the session to the pool carrying that tag, for a
// later checkout that asks for it. It returns c.Close's error.
//
// A malformed tag (ErrInvalidTag) is refused before anything happens: c
// stays open, so the caller can release it with a good tag. When c has no
// session bound (its session was lost and no call bound another), the state
// the tag would name is gone: c is closed all the same, and the error wraps
// ErrSessionClosed (with tag "" there is nothing to clear and no error). If
// c is closed already or is not a hasql connection, Release returns that
// error.
func Release(c *sql.Conn, tag string) error {
	s, err := SessionOf(c)
	if err != nil {
		return err
	}
	err = s.SetTag(tag)
	switch {
	case errors.Is(err, ErrInvalidTag):
		return err
	case tag == "" && errors.Is(err, ErrSessionClosed):
		err = nil // nothing to clear
	}
	return errors.Join(err, c.Close())
}

// Unwrap returns the inner driver's connection behind x, a hasql driver
// connection as Conn.Raw passes it, or a *Session; anything else is returned
// as it is. Use it to reach driver specifics such as pgx's CopyFrom:
//
//	conn.Raw(func(dc any) error {
//		pc := hasql.Unwrap(dc).(*stdlib.Conn).Conn()
//		_, err := pc.CopyFrom(ctx, table, cols, src)
//		return err
//	})
func Unwrap(x any) any {
	switch h := x.(type) {
	case *handle:
		if inner := h.Unwrap(); inner != nil {
			return inner
		}
	case *Session:
		if inner := h.Unwrap(); inner != nil {
			return inner
		}
	}
	return x
}
