package hasql

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// Tests of the selectors a context carries (selector.go): the tag grammar and its normal form,
// and what each With* function records.

func TestTagInvalid(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 0, 1), nil)
	ctx := context.Background()
	bad := []string{"a", "a=", "=1", "a=1=2", "a=1;a=2", "a*=1", "a=1;", ";", "a=\x00", "a=*"}
	for _, tag := range bad {
		if _, err := Acquire(WithTag(ctx, tag), db); !errors.Is(err, ErrInvalidTag) {
			t.Errorf("Acquire with tag %q: %v, want ErrInvalidTag", tag, err)
		}
		var id int64
		if err := db.QueryRowContext(WithTag(ctx, tag), "SELECT id").Scan(&id); !errors.Is(err, ErrInvalidTag) {
			t.Errorf("query with tag %q: %v, want ErrInvalidTag", tag, err)
		}
	}
	cn, _ := tpAcquire(t, ctx, db)
	s := tpSession(t, cn)
	for _, tag := range bad {
		if err := s.SetTag(tag); !errors.Is(err, ErrInvalidTag) {
			t.Errorf("SetTag(%q): %v, want ErrInvalidTag", tag, err)
		}
		if err := Release(cn, tag); !errors.Is(err, ErrInvalidTag) {
			t.Errorf("Release(%q): %v, want ErrInvalidTag", tag, err)
		}
	}
	if s.Tag() != "" {
		t.Errorf("an invalid tag changed the session's tag to %q", s.Tag())
	}
	for _, tag := range []string{"a=1", "k1=v1;k2=v2", " a = b ", "x.y=1;z=a b"} {
		if err := s.SetTag(tag); err != nil {
			t.Errorf("SetTag(%q): %v", tag, err)
		}
	}
	if err := Release(cn, ""); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Busy != 0 || s.Open != 1 {
		t.Errorf("after the invalid tags: %+v", s)
	}
}

// tpRefNormalize is normalizeTag without its fast path, as a reference.
func tpRefNormalize(tag string) (string, bool) {
	if tag == "" {
		return "", true
	}
	props := strings.Split(tag, ";")
	seen := map[string]bool{}
	for i, p := range props {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" || strings.Contains(v, "=") || strings.ContainsAny(k+v, "*\x00") || seen[k] {
			return "", false
		}
		seen[k] = true
		props[i] = k + "=" + v
	}
	sort.Strings(props)
	return strings.Join(props, ";"), true
}

func TestTagNormalizeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "a.b", "k", "=", ";", " ", "*", "\x00", "1", "2", "\t", "é"}
	check := func(tag string) {
		got, err := normalizeTag(tag)
		want, ok := tpRefNormalize(tag)
		if ok != (err == nil) || got != want {
			t.Fatalf("normalizeTag(%q) = %q, %v; reference %q, valid %v", tag, got, err, want, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTag) {
			t.Fatalf("normalizeTag(%q): %v, want ErrInvalidTag", tag, err)
		}
		if ok && !tagIsNormal(want) && want != "" {
			t.Fatalf("the normal form %q of %q is not recognised as normal", want, tag)
		}
	}
	for _, tag := range []string{"a=1", "a=1;b=2", "b=2;a=1", "a=1;a=2", "a=1;a=1", "a.b=1;a=2", "a=2;a.b=1",
		"a=1;", ";a=1", " a=1", "a=1 ", "a =1", "a= 1", "a==1", "a=1=2", "*=1", "a=*", "=", "a=", "=1"} {
		check(tag)
	}
	for i := 0; i < 50000; i++ {
		var b strings.Builder
		for n := rng.IntN(9); n >= 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		check(b.String())
	}
	if n := testing.AllocsPerRun(100, func() { normalizeTag("k1=v1;k2=v2") }); n != 0 {
		t.Errorf("normalizeTag of a normal tag allocates %v times", n)
	}
}

// TestSelectorWithFunctions: each With* records its own field in a copy and keeps what the
// context already asked for; the context it was given is not changed.
func TestSelectorWithFunctions(t *testing.T) {
	base := WithTag(context.Background(), "a=1")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want selector
	}{
		{"none", context.Background(), selector{}},
		{"tag", base, selector{tag: "a=1"}},
		{"tag then match any", WithMatchAnyTag(base), selector{tag: "a=1", matchAny: true}},
		{"tag then purity", WithPurity(base, PurityNew), selector{tag: "a=1", purity: PurityNew}},
		{"tag then class", WithClass(base, "batch"), selector{tag: "a=1", class: "batch"}},
		{"tag then user", WithUser(base, "u", "pw"), selector{tag: "a=1", user: "u", password: "pw"}},
		{"later tag wins", WithTag(base, "b=2"), selector{tag: "b=2"}},
		{"idempotent carries no selector", Idempotent(base), selector{tag: "a=1"}},
	} {
		if got := selectorFrom(tc.ctx); got != tc.want {
			t.Errorf("%s: selector %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := selectorFrom(base); got != (selector{tag: "a=1"}) {
		t.Errorf("the base context changed: %+v", got)
	}
	if selectorIn(context.Background()) != nil {
		t.Error("selectorIn of a bare context is not nil")
	}
}

func TestIdempotentMarksOnlyItsContext(t *testing.T) {
	ctx := context.Background()
	if isIdempotent(ctx) || !isIdempotent(Idempotent(ctx)) || !isIdempotent(WithTag(Idempotent(ctx), "a=1")) {
		t.Error("Idempotent marks the wrong contexts")
	}
}

func TestValidateClass(t *testing.T) {
	for _, tc := range []struct {
		class string
		ok    bool
	}{
		{"", true},
		{"batch", true},
		{strings.Repeat("c", maxClassLen), true},
		{strings.Repeat("c", maxClassLen+1), false},
		{"a*b", false},
		{"a\x00b", false},
	} {
		err := validateClass(tc.class)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidClass)) {
			t.Errorf("validateClass(%.20q) = %v, want ok=%v (ErrInvalidClass otherwise)", tc.class, err, tc.ok)
		}
	}
}
