package hasql

import (
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
)

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
