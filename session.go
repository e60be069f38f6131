package hasql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// Session is a view of a session. Obtained with SessionOf or Acquire, or from
// Call.Session, it follows a virtual handle: it stays valid across reconnects
// and always shows the physical session the handle is bound to now. Its
// methods are for the goroutine that holds the *sql.Conn (or runs the
// callback); they are not safe for concurrent use.
type Session struct {
	v *handle  // the virtual handle, or nil for a bare physical session
	p *session // for bare physical sessions (FnConnect and FnClose callbacks)
}

// errNotBound is returned by Session methods that need a connection when the
// session's handle is between checkouts.
var errNotBound = errors.New("hasql: session is not bound to a connection (use it while its *sql.Conn is open)")

func (s *Session) phys() *session {
	if s == nil {
		return nil
	}
	if s.v != nil {
		return s.v.ph
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
	return s != nil && s.v != nil && s.v.tagFound
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
	named, err := convertArgs(ph.checker, args)
	if err != nil {
		return err
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
			return nil, fmt.Errorf("hasql: argument %d: %w", i+1, err)
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
			return fmt.Errorf("hasql: the *sql.Conn is not a hasql connection (its driver connection is %T)", dc)
		}
		v = h
		if ctx != nil {
			return h.ensure(ctx)
		}
		return nil
	})
	return v, err
}

// SessionOf returns the session view behind a hasql *sql.Conn. The view stays
// valid across reconnects.
func SessionOf(c *sql.Conn) (*Session, error) {
	v, err := handleOf(c, nil)
	if err != nil {
		return nil, err
	}
	return &v.view, nil
}

// Acquire checks out a *sql.Conn bound now to a session chosen by the
// selectors in ctx (WithTag, WithMatchAnyTag, WithPurity, WithClass,
// WithUser): OCISessionGet. Close it, or call Release, to give it back.
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

// Release keeps tag on the session ("" clears it) and closes c, returning
// the session to the pool: OCISessionRelease.
func Release(c *sql.Conn, tag string) error {
	s, err := SessionOf(c)
	if err != nil {
		return err
	}
	if err := s.SetTag(tag); err != nil {
		return err
	}
	return c.Close()
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
