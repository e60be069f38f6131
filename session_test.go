package hasql

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

// Tests of the public Session (session.go): Acquire, Release and SessionOf, and the session's
// statement cache size.

func TestTagStmtCacheSizeRule(t *testing.T) {
	ctx := context.Background()
	d := newTPDriver()
	db, _ := tpOpen(t, d, tpPC(0, 0, 1), nil, WithStmtCacheSize(7))

	cn, id := tpAcquire(t, ctx, db)
	s := tpSession(t, cn)
	if s.StmtCacheSize() != 7 {
		t.Fatalf("new session cache size %d, want 7", s.StmtCacheSize())
	}
	s.SetStmtCacheSize(3)
	cn.Close()
	// Untagged: the pool's default applies when it is handed out again.
	cn, got := tpAcquire(t, ctx, db)
	if got != id || tpSession(t, cn).StmtCacheSize() != 7 {
		t.Errorf("untagged reuse: session %d cache size %d, want %d and 7", got, tpSession(t, cn).StmtCacheSize(), id)
	}
	tpSession(t, cn).SetStmtCacheSize(3)
	if err := Release(cn, "a=1"); err != nil {
		t.Fatal(err)
	}
	// Tagged: keeps its own.
	cn, got = tpAcquire(t, WithTag(ctx, "a=1"), db)
	if got != id || tpSession(t, cn).StmtCacheSize() != 3 {
		t.Errorf("tagged reuse: session %d cache size %d, want %d and 3", got, tpSession(t, cn).StmtCacheSize(), id)
	}
	tpSession(t, cn).SetStmtCacheSize(0)
	if err := Release(cn, "a=1"); err != nil {
		t.Fatal(err)
	}
	cn, _ = tpAcquire(t, WithTag(ctx, "a=1"), db)
	if n := tpSession(t, cn).StmtCacheSize(); n != 0 {
		t.Errorf("tagged session with its cache off: size %d after reuse", n)
	}
	if err := Release(cn, ""); err != nil {
		t.Fatal(err)
	}
	cn, _ = tpAcquire(t, ctx, db)
	if n := tpSession(t, cn).StmtCacheSize(); n != 7 {
		t.Errorf("untagged again: size %d, want the default 7", n)
	}
	cn.Close()
}

func TestAcquireReleaseSessionOf(t *testing.T) {
	ctx := context.Background()
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)

	// Acquire binds now.
	cn, err := Acquire(WithTag(ctx, "a=1"), db)
	if err != nil {
		t.Fatal(err)
	}
	if d.Opens.Load() != 1 || c.Stats().Busy != 1 {
		t.Errorf("Acquire did not bind a session: opens %d busy %d", d.Opens.Load(), c.Stats().Busy)
	}
	s, err := SessionOf(cn)
	if err != nil {
		t.Fatal(err)
	}
	if s.TagFound() || s.Tag() != "" || s.Unwrap() == nil {
		t.Errorf("new session: found %v tag %q unwrap %v", s.TagFound(), s.Tag(), s.Unwrap())
	}
	if err := Release(cn, "a=1"); err != nil {
		t.Fatal(err)
	}
	if err := cn.PingContext(ctx); !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("Release did not close the *sql.Conn: %v", err)
	}
	if err := Release(cn, "a=1"); err == nil {
		t.Errorf("a second Release succeeded")
	}
	cn, _ = tpAcquire(t, WithTag(ctx, "a=1"), db)
	if s2 := tpSession(t, cn); !s2.TagFound() || s2.Tag() != "a=1" {
		t.Errorf("reacquired: found %v tag %q", s2.TagFound(), s2.Tag())
	}
	cn.Close()

	// Not a hasql connection.
	raw := sql.OpenDB(tpConnector(d))
	defer raw.Close()
	rc, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := SessionOf(rc); err == nil {
		t.Errorf("SessionOf on a plain driver's conn succeeded")
	}
	if err := Release(rc, ""); err == nil {
		t.Errorf("Release on a plain driver's conn succeeded")
	}
	if _, err := Acquire(ctx, raw); err == nil {
		t.Errorf("Acquire on a plain driver's DB succeeded")
	}
	// Acquire on a closed DB.
	db.Close()
	if _, err := Acquire(ctx, db); err == nil {
		t.Errorf("Acquire on a closed DB succeeded")
	}
}

// TestSessionMethods: what a Session reports and does for the handle it came from.
func TestSessionMethods(t *testing.T) {
	ctx := context.Background()
	d := newTPDriver()
	db, _ := tpOpen(t, d, tpPC(0, 4, 1), nil)

	conn, id := tpAcquire(t, ctx, db)
	s := tpSession(t, conn)
	if s.Tag() != "" || s.TagFound() {
		t.Errorf("untagged checkout: Tag %q TagFound %v", s.Tag(), s.TagFound())
	}
	if inner := FakeConnOf(s.Unwrap()); inner == nil || inner.ID != id {
		t.Errorf("Unwrap() = %T, want the inner connection %d", s.Unwrap(), id)
	}
	if err := s.Exec(ctx, "SET tz = utc"); err != nil {
		t.Fatalf("Session.Exec: %v", err)
	}
	if got := tpShow(t, ctx, conn, "tz"); got != "utc" {
		t.Errorf("SHOW tz after Session.Exec = %q, want utc", got)
	}
	for _, tc := range []struct {
		tag, want string
		err       error
	}{
		{"b=2; a=1", "a=1;b=2", nil},
		{"a=1;b=2", "a=1;b=2", nil},
		{"a", "a=1;b=2", ErrInvalidTag}, // refused: the tag stays
		{"", "", nil},
		{"tz=utc", "tz=utc", nil},
	} {
		if err := s.SetTag(tc.tag); !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("SetTag(%q): %v, want %v", tc.tag, err, tc.err)
		}
		if got := s.Tag(); got != tc.want {
			t.Errorf("after SetTag(%q): Tag() = %q, want %q", tc.tag, got, tc.want)
		}
	}
	conn.Close()

	// The tag set on the session is what a later checkout asking for it finds.
	conn, id2 := tpAcquire(t, WithTag(ctx, "tz=utc"), db)
	defer conn.Close()
	if s := tpSession(t, conn); id2 != id || !s.TagFound() || s.Tag() != "tz=utc" {
		t.Errorf("tagged checkout: session %d (want %d), TagFound %v, Tag %q", id2, id, s.TagFound(), s.Tag())
	}
}
