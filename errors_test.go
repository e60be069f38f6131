package hasql

// Tests of the errors hasql makes (errors.go): each wraps its sentinel and keeps its cause, its
// text starts with "hasql: ", and a redacted error hides secrets from its text only.

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestNewErrorWrapsSentinelAndCause(t *testing.T) {
	cause := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}
	for _, tc := range []struct {
		name     string
		kind     error
		msg      string
		cause    error
		wantText string
	}{
		{"sentinel only", ErrPoolExhausted, "", nil, "hasql: session pool exhausted"},
		{"sentinel and cause", ErrConnectionLost, "", io.ErrUnexpectedEOF,
			"hasql: connection lost; the work may or may not have run: unexpected EOF"},
		{"message replaces the sentinel's text", ErrInvalidTag, `tag "a": bad`, nil, `hasql: tag "a": bad`},
		{"message and a driver error", ErrDSN, "inner driver rejected its DSN", cause,
			"hasql: inner driver rejected its DSN: Error 1062: Duplicate entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newError(tc.kind, tc.msg, tc.cause)
			if got := err.Error(); got != tc.wantText {
				t.Errorf("Error() = %q, want %q", got, tc.wantText)
			}
			if !strings.HasPrefix(err.Error(), "hasql: ") {
				t.Errorf("%q does not start with \"hasql: \"", err)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(%v, its sentinel) = false", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("errors.Is(%v, its cause) = false", err)
			}
			var me *mysql.MySQLError
			if got := errors.As(err, &me); got != (tc.cause == cause) {
				t.Errorf("errors.As(*mysql.MySQLError) = %v, want %v", got, tc.cause == cause)
			}
			for _, other := range []error{ErrClosed, ErrNoHosts} {
				if errors.Is(err, other) {
					t.Errorf("errors.Is(%v, %v) = true", err, other)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		s       string
		secrets []string
		want    string
	}{
		{"user:pw@host", []string{"pw"}, "user:xxxxx@host"},
		{"pw pw", []string{"pw"}, "xxxxx xxxxx"},
		{"a:b@c", []string{"", "b"}, "a:xxxxx@c"},
		{"no secret here", nil, "no secret here"},
		{"two s1 and s2", []string{"s1", "s2"}, "two xxxxx and xxxxx"},
	} {
		if got := redact(tc.s, tc.secrets); got != tc.want {
			t.Errorf("redact(%q, %q) = %q, want %q", tc.s, tc.secrets, got, tc.want)
		}
	}
}

func TestRedactedErrorKeepsChain(t *testing.T) {
	cause := &mysql.MySQLError{Number: 1045, Message: "Access denied for secret"}
	err := error(&redactedError{cause: cause, secrets: []string{"secret"}})
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("%q shows the secret", err)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me != cause || !errors.Is(err, cause) {
		t.Errorf("the driver's error is not reachable through %v", err)
	}
}
