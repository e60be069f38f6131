package hasql

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// selector is what a checkout asks of a physical session. It travels in the
// context; the zero value asks for the connector's defaults.
type selector struct {
	tag            string // as the caller wrote it; normalised at checkout
	matchAny       bool
	purity         Purity
	class          string
	user, password string

	read    bool   // ReadOnly: the work may run on a standby (reads.go)
	after   string // ReadAfter's position
	standby bool   // bindRead's checkout of a session on a standby
}

type selectorKey struct{}
type idempotentKey struct{}

// selectorFrom returns the selector in ctx, or the zero selector.
func selectorFrom(ctx context.Context) selector {
	if s := selectorIn(ctx); s != nil {
		return *s
	}
	return selector{}
}

// selectorIn returns the selector in ctx, or nil: a checkout compares it
// with its last one without copying it.
func selectorIn(ctx context.Context) *selector {
	s, _ := ctx.Value(selectorKey{}).(*selector)
	return s
}

// withSelector returns ctx carrying a copy of its selector changed by edit.
func withSelector(ctx context.Context, edit func(*selector)) context.Context {
	s := selectorFrom(ctx)
	edit(&s)
	return context.WithValue(ctx, selectorKey{}, &s)
}

// WithTag asks for a session carrying tag, "k=v" or "k1=v1;k2=v2". The tag is
// validated at checkout (ErrInvalidTag).
func WithTag(ctx context.Context, tag string) context.Context {
	return withSelector(ctx, func(s *selector) { s.tag = tag })
}

// WithMatchAnyTag lets a checkout that finds no session with the exact tag
// take the session sharing the most tag properties, else any session, rather
// than an untagged or new one.
func WithMatchAnyTag(ctx context.Context) context.Context {
	return withSelector(ctx, func(s *selector) { s.matchAny = true })
}

// WithPurity sets the purity of checkouts made with ctx.
func WithPurity(ctx context.Context, p Purity) context.Context {
	return withSelector(ctx, func(s *selector) { s.purity = p })
}

// WithClass sets the connection class of checkouts made with ctx. Sessions
// are never shared across classes.
func WithClass(ctx context.Context, class string) context.Context {
	return withSelector(ctx, func(s *selector) { s.class = class })
}

// WithUser asks for a session authenticated as user (a heterogeneous pool).
// Sessions are never shared across users.
func WithUser(ctx context.Context, user, password string) context.Context {
	return withSelector(ctx, func(s *selector) { s.user, s.password = user, password })
}

// Idempotent marks the work done with ctx as safe to run again after a lost
// connection: running it twice leaves the database as running it once does
// (a read, an upsert by key, a SET). With hasql.retry=idempotent
// (RetryIdempotent), such work whose session dies after it may have reached
// the server is run again on a new session, as is a query whose connection
// is lost at Rows.Close; under the other retry modes the mark has no effect.
// Work inside a transaction is never run again.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

func isIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

// normalizeTag validates a tag and returns it with its properties sorted, so
// that "b=2;a=1" and "a=1;b=2" are the same tag. The empty tag is no tag.
func normalizeTag(tag string) (string, error) {
	if tag == "" || tagIsNormal(tag) {
		return tag, nil // every checkout and release with a tag comes here: no allocation
	}
	props := strings.Split(tag, ";")
	seen := make(map[string]bool, len(props))
	for i, p := range props {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || k == "" || v == "":
			return "", newError(ErrInvalidTag, fmt.Sprintf("tag %s: property %s is not of the form key=value", quoteValue(tag), quoteValue(p)), nil)
		case strings.ContainsAny(v, "="), strings.ContainsAny(k+v, "*\x00"):
			return "", newError(ErrInvalidTag, fmt.Sprintf("tag %s: property %s contains '=', '*' or NUL", quoteValue(tag), quoteValue(p)), nil)
		case seen[k]:
			return "", newError(ErrInvalidTag, fmt.Sprintf("tag %s: key %s appears twice", quoteValue(tag), quoteValue(k)), nil)
		}
		seen[k] = true
		props[i] = k + "=" + v
	}
	sort.Strings(props)
	return strings.Join(props, ";"), nil
}

// tagIsNormal reports whether tag is valid and already what normalizeTag
// would make of it: key=value properties without surrounding spaces, in
// strictly increasing order (so no key twice: properties with one key sort
// next to each other), without '*', NUL or a second '='. One pass, no
// allocation.
func tagIsNormal(tag string) bool {
	var prev, prevKey string
	start, eq := 0, -1 // the current property's start and its '='
	for i := 0; i <= len(tag); i++ {
		if i < len(tag) {
			switch tag[i] {
			case '*', 0:
				return false
			case '=':
				if eq >= 0 {
					return false
				}
				eq = i
				continue
			case ';':
			default:
				continue
			}
		}
		if eq < 0 {
			return false
		}
		p, k, v := tag[start:i], tag[start:eq], tag[eq+1:i]
		if k == "" || v == "" || strings.TrimSpace(k) != k || strings.TrimSpace(v) != v ||
			(start > 0 && (p <= prev || k == prevKey)) {
			return false
		}
		prev, prevKey, start, eq = p, k, i+1, -1
	}
	return true
}

// maxClassLen is OCI's limit on a connection class name.
const maxClassLen = 1024

// validateClass checks a connection class name.
func validateClass(class string) error {
	switch {
	case len(class) > maxClassLen:
		return newError(ErrInvalidClass, fmt.Sprintf("connection class is %d bytes long; at most %d are allowed", len(class), maxClassLen), nil)
	case strings.ContainsAny(class, "*\x00"):
		return newError(ErrInvalidClass, fmt.Sprintf("connection class %s contains '*' or NUL", quoteValue(class)), nil)
	}
	return nil
}
