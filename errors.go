package hasql

import (
	"database/sql/driver"
	"errors"
	"strings"
)

// Sentinel errors. Every error hasql returns wraps one of these or the inner
// driver's own error (often both), so callers test with errors.Is and reach
// driver-specific values (*pgconn.PgError, *mysql.MySQLError) with errors.As.
var (
	// ErrConnectionLost means the connection died while work was in flight:
	// whether the work ran on the server is unknown.
	ErrConnectionLost = errors.New("hasql: connection lost; the work may or may not have run")

	// ErrTxResolutionUnknown means the connection died during a transaction or
	// its commit: whether the transaction committed is unknown.
	ErrTxResolutionUnknown = errors.New("hasql: connection lost during a transaction; its outcome is unknown")

	// ErrTxNotCommitted means the session died and the transaction certainly
	// did not commit: running it again is safe.
	ErrTxNotCommitted = errors.New("hasql: connection lost; the transaction did not commit")

	// ErrResultUnknown means the work took effect but its session died
	// before its result arrived (hasql.txguard=all resolved an autocommit
	// write as applied): the Result's RowsAffected and LastInsertId, or the
	// rows of a query, are lost. Running the work again would run it twice.
	ErrResultUnknown = errors.New("hasql: the statement took effect but its session died before the result arrived")

	// ErrReplayDiverged means a transparent replay of a transaction saw a
	// result different from what the application already had; the replayed
	// transaction was rolled back.
	ErrReplayDiverged = errors.New("hasql: transaction replay diverged")

	// ErrSessionClosed is returned by the methods of a *Session used after
	// the *sql.Conn it came from was closed or released, or before its
	// handle was bound to a physical session.
	ErrSessionClosed = errors.New("hasql: session is closed")

	// ErrNoHosts means every host failed or is blacklisted and retrying found none.
	ErrNoHosts = errors.New("hasql: no database host is reachable")

	// ErrPoolExhausted is returned by the nowait and timedwait get modes when
	// no physical session can be had.
	ErrPoolExhausted = errors.New("hasql: session pool exhausted")

	// ErrRetryTooSoon is returned by Session.Reconnect when it is called again
	// before the back-off interval has elapsed (PCP's -ETIMEDOUT).
	ErrRetryTooSoon = errors.New("hasql: reconnect attempted before the back-off interval elapsed")

	// ErrAlreadyAttached is returned by Session.Attach without ReplaceRecovery
	// on a session that already has a recovery function (EEXIST).
	ErrAlreadyAttached = errors.New("hasql: session already has a recovery function")

	// ErrNotAttached is returned by Session.Attach with ReplaceRecovery on a
	// session that has no recovery function (EBADF).
	ErrNotAttached = errors.New("hasql: session has no recovery function to replace")

	// ErrInvalidTag reports a malformed session tag.
	ErrInvalidTag = errors.New("hasql: invalid session tag")

	// ErrInvalidClass reports a malformed connection class.
	ErrInvalidClass = errors.New("hasql: invalid connection class")

	// ErrDSN reports a malformed DSN, an unknown or repeated hasql.* key, a bad
	// value, or an unregistered inner driver.
	ErrDSN = errors.New("hasql: invalid DSN")

	// ErrClosed is returned by calls on a closed Connector.
	ErrClosed = errors.New("hasql: connector is closed")

	// ErrCallbackPanic is wrapped by the error a call fails with when one of
	// its callbacks panics.
	ErrCallbackPanic = errors.New("hasql: callback panicked")

	// ErrCallbackOutcome is returned when a replacement or exit callback
	// reports success for a query or exec but supplies no Rows or Result.
	ErrCallbackOutcome = errors.New("hasql: callbacks left the call without an outcome")

	// ErrHostDown is wrapped by the error that MarkHostDown reports with the
	// HostDown event and the purge of the host's sessions.
	ErrHostDown = errors.New("hasql: host marked down")

	// ErrInTransaction is returned by Session methods that would end the
	// transaction open on the session (Reconnect inside a transaction).
	ErrInTransaction = errors.New("hasql: not allowed inside a transaction")

	// ErrInvalidArgument reports an argument hasql cannot pass to the
	// driver (Session.Exec's conversion, for one); it wraps the cause.
	ErrInvalidArgument = errors.New("hasql: invalid argument")

	// ErrNotHasql is returned by SessionOf, Acquire's helpers and Release
	// for a *sql.Conn whose driver connection is not hasql's.
	ErrNotHasql = errors.New("hasql: not a hasql connection")
)

// ErrFoRetry is returned by a failover callback on FoError to have hasql try
// again (after sleeping as long as the callback likes), at most 64 times per
// loss and while the call's context lasts. It is never returned to the
// application.
var ErrFoRetry = errors.New("hasql: retry failover")

// Continue is what a callback returns to leave the outcome of a call alone
// (OCI_CONTINUE). It is never returned to the application.
var Continue = errors.New("hasql: continue")

// wrapError carries a hasql sentinel and the cause that produced it, so that
// errors.Is matches both and errors.As reaches the driver's own error types.
type wrapError struct {
	kind  error  // a sentinel from this file
	msg   string // the message, without the "hasql: " prefix; may be empty
	cause error  // may be nil
}

func (e *wrapError) Error() string {
	var b strings.Builder
	if e.msg != "" {
		b.WriteString("hasql: ")
		b.WriteString(e.msg)
	} else {
		b.WriteString(e.kind.Error())
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause.
func (e *wrapError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// newError builds an error of the given kind with an optional message and cause.
func newError(kind error, msg string, cause error) error {
	return &wrapError{kind: kind, msg: msg, cause: cause}
}

// redactedError hides secrets from the text of an error that is not ours (the
// inner driver's DSN error may quote the DSN) while keeping it reachable with
// errors.Is and errors.As.
type redactedError struct {
	cause   error
	secrets []string
}

func (e *redactedError) Error() string { return redact(e.cause.Error(), e.secrets) }
func (e *redactedError) Unwrap() error { return e.cause }

// redact replaces every occurrence of each non-empty secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "xxxxx")
		}
	}
	return s
}

// LostError is the error a call gets when its physical session died under
// it. It wraps the sentinel that says what the caller may conclude
// (ErrConnectionLost outside a transaction; ErrTxNotCommitted inside one
// whose COMMIT was not sent; ErrTxResolutionUnknown when the session died at
// COMMIT and the commit-outcome guard could not tell; with
// hasql.txguard=all, ErrTxNotCommitted or ErrResultUnknown for an autocommit
// write the guard resolved as not applied or applied) and the driver's own
// error: errors.Is and errors.As reach both, and
// errors.As(err, &lost) gives the details. It never matches
// driver.ErrBadConn, so database/sql does not run the work again on its own.
type LostError struct {
	Host string // host:port of the session that died
	Sent bool   // the work may have reached the server (false: it certainly did not run)
	InTx bool   // the loss happened inside a transaction or at its commit
	Err  error  // the driver's error

	kind error // the sentinel: ErrConnectionLost, ErrTxResolutionUnknown, ErrTxNotCommitted or ErrResultUnknown
}

// newLostError is the error for work lost with session ph. The driver's error
// is kept with its secrets (a DSN's password) redacted from its text. Inside
// a transaction the kind is ErrTxNotCommitted: a server rolls back the
// transaction of a connection it loses, so before COMMIT was sent nothing of
// it committed. A loss at COMMIT (sent) is made ErrTxResolutionUnknown by its
// caller (decide), unless the guard resolves it.
func newLostError(ph *session, cause error, sent, inTx bool) *LostError {
	kind := ErrConnectionLost
	if inTx {
		kind = ErrTxNotCommitted
	}
	if secrets := ph.pool.c.secrets; len(secrets) > 0 && redact(cause.Error(), secrets) != cause.Error() {
		cause = &redactedError{cause, secrets}
	}
	return &LostError{Host: ph.host, Sent: sent, InTx: inTx, Err: cause, kind: kind}
}

// Error says what was lost, where, and what the caller may conclude; it
// starts with "hasql: " and never contains a password.
func (e *LostError) Error() string {
	var b strings.Builder
	b.WriteString("hasql: connection")
	if e.Host != "" {
		b.WriteString(" to ")
		b.WriteString(e.Host)
	}
	switch {
	case e.kind == ErrTxNotCommitted && !e.InTx:
		b.WriteString(" lost; the work did not take effect")
	case e.kind == ErrTxNotCommitted:
		b.WriteString(" lost; the transaction did not commit")
	case e.kind == ErrResultUnknown:
		b.WriteString(" lost after the work took effect; its result is unknown")
	case e.kind == ErrTxResolutionUnknown && !e.InTx:
		b.WriteString(" lost; whether the work took effect could not be found out")
	case e.InTx:
		b.WriteString(" lost during a transaction; its outcome is unknown")
	case !e.Sent:
		b.WriteString(" lost before the work was sent; it did not run")
	default:
		b.WriteString(" lost; the work may or may not have run")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the driver's error (with driver.ErrBadConn
// hidden: see the type's comment).
func (e *LostError) Unwrap() []error {
	kind := e.kind
	if kind == nil {
		kind = ErrConnectionLost
		if e.InTx {
			kind = ErrTxResolutionUnknown
		}
	}
	if e.Err == nil {
		return []error{kind}
	}
	return []error{kind, hideBadConn(e.Err)}
}

// SafeToRetry reports whether the work certainly did not run, so that running
// it again cannot run it twice (pgconn.SafeToRetry's meaning). Inside a
// transaction that covers the failed statement only, never the transaction.
func (e *LostError) SafeToRetry() bool { return !e.Sent }

// hideBadConn keeps driver.ErrBadConn out of the chain of an error hasql
// returns after handling a lost connection itself: database/sql retries on
// ErrBadConn, and would run again, up to three times over, work hasql has
// already retried or reported.
func hideBadConn(err error) error {
	if !errors.Is(err, driver.ErrBadConn) {
		return err
	}
	return &badConnHidden{err}
}

type badConnHidden struct{ err error }

func (e *badConnHidden) Error() string { return e.err.Error() }

// Is matches what the wrapped error matches, except driver.ErrBadConn.
func (e *badConnHidden) Is(target error) bool {
	return target != driver.ErrBadConn && errors.Is(e.err, target)
}

// As reaches the driver's own error types in the wrapped error.
func (e *badConnHidden) As(target any) bool { return errors.As(e.err, target) }
