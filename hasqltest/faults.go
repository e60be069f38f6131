package hasqltest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hasqlgo/hasql"
)

// ErrInjected is wrapped by the errors LoseAfterSend and LoseAtCommit
// inject, so a test can tell an injected loss from a real one.
// (LoseBeforeSend returns driver.ErrBadConn itself, as a driver would, and
// Fail returns the error it was given.)
var ErrInjected = errors.New("hasqltest: injected fault")

// LostError is the error LoseAfterSend and LoseAtCommit make a call fail
// with: the work reached the driver and then the connection was reported
// lost. It wraps ErrInjected and io.ErrUnexpectedEOF — what a driver
// reports when the server goes away in the middle of a reply — and not
// driver.ErrBadConn, which would tell hasql the work never ran. hasql
// therefore classifies it as a lost connection with an unknown outcome: the
// application gets hasql.ErrConnectionLost (hasql.ErrTxResolutionUnknown in
// a transaction or at commit) wrapping it, unless the work may be re-run
// (hasql.RetryIdempotent and a context marked hasql.Idempotent).
type LostError struct {
	Fn    hasql.Fn
	Query string
}

func (e *LostError) Error() string {
	what := e.Fn.String()
	if e.Query != "" {
		what += " " + fmt.Sprintf("%q", e.Query)
	}
	return "hasqltest: connection lost after " + what + " was sent (injected): " + io.ErrUnexpectedEOF.Error()
}

// Unwrap returns ErrInjected and io.ErrUnexpectedEOF.
func (e *LostError) Unwrap() []error { return []error{ErrInjected, io.ErrUnexpectedEOF} }

// Faults is a set of fault-injection rules applied by hasql callbacks, over
// any inner driver: go-sqlmock, pgx, mysql. Install it on a DB with Attach
// (or NewMock's WithFaults), or make it a callback package with Register.
// Rules may be added, and Reset, while calls run; a Faults is safe for
// concurrent use.
//
// Each rule has a pattern, a regular expression matched against
// hasql.Call.Query ("" matches any query), and applies to a set of hasql
// Fns: by default the calls that run work — FnExec, FnQuery, FnStmtExec and
// FnStmtQuery — and for LoseAtCommit, FnCommit; Rule.On changes the set
// (FnPrepare, FnBegin, FnPing, FnConnect, ...). Every rule counts the
// calls it matches; one with nth > 0 fires on the nth of them (counting from
// 1) and never again, one with nth 0 on each of them.
//
// Rules act at two points of a call. Before the driver call (a hasql
// replacement callback): each Latency rule due adds its delay, then the
// outcome is decided by the first LoseBeforeSend or Fail rule, in the order
// the rules were added, that is due; the driver is not called. After the
// driver call (an exit callback): LoseAfterSend and LoseAtCommit count the
// calls that reached the driver (not those a rule kept from it), and the
// first that is due makes the call fail with a *LostError, whatever the
// driver returned. A rule due on a call that an earlier rule decided has
// had its turn: it does not fire on it (an nth rule then never fires).
//
// A retry that hasql makes is a new call: LoseBeforeSend(p, 1) loses the
// first attempt and lets hasql's retry (the second matching call) through.
type Faults struct {
	mu       sync.Mutex
	rules    []*Rule
	attached map[*hasql.Connector]bool
}

// NewFaults returns a Faults with no rules.
func NewFaults() *Faults {
	return &Faults{attached: map[*hasql.Connector]bool{}}
}

type faultKind uint8

const (
	kindLatency faultKind = iota
	kindLoseBefore
	kindFail
	kindLoseAfter
)

func (k faultKind) String() string {
	return [...]string{"Latency", "LoseBeforeSend", "Fail", "LoseAfterSend"}[k]
}

// Rule is one fault-injection rule of a Faults.
type Rule struct {
	f        *Faults
	kind     faultKind
	pattern  string
	re       *regexp.Regexp // nil: any query
	nth      int
	delay    time.Duration
	err      error
	fns      uint32 // bit per hasql.Fn
	atCommit bool   // made by LoseAtCommit

	seen, fired int // guarded by f.mu
}

var workFns = fnBits(hasql.FnExec, hasql.FnQuery, hasql.FnStmtExec, hasql.FnStmtQuery)

func fnBits(fns ...hasql.Fn) uint32 {
	var b uint32
	for _, fn := range fns {
		if fn < 32 {
			b |= 1 << fn
		}
	}
	return b
}

// On makes the rule apply to calls of these Fns instead of its default set,
// and returns it. Its count of matching calls starts again from zero.
func (r *Rule) On(fns ...hasql.Fn) *Rule {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.fns = fnBits(fns...)
	r.seen = 0
	return r
}

// Fired returns how many times the rule has fired.
func (r *Rule) Fired() int {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return r.fired
}

// Seen returns how many matching calls the rule has counted.
func (r *Rule) Seen() int {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return r.seen
}

// String describes the rule, e.g. `LoseAfterSend("INSERT", 1)`.
func (r *Rule) String() string {
	switch r.kind {
	case kindLatency:
		return fmt.Sprintf("Latency(%q, %v)", r.pattern, r.delay)
	case kindFail:
		return fmt.Sprintf("Fail(%q, %d, %v)", r.pattern, r.nth, r.err)
	}
	if r.atCommit {
		return fmt.Sprintf("LoseAtCommit(%d)", r.nth)
	}
	return fmt.Sprintf("%v(%q, %d)", r.kind, r.pattern, r.nth)
}

func (f *Faults) add(kind faultKind, pattern string, nth int, fns uint32) *Rule {
	if nth < 0 {
		panic(fmt.Sprintf("hasqltest: %v: nth must be 0 (every call) or more, not %d", kind, nth))
	}
	r := &Rule{f: f, kind: kind, pattern: pattern, nth: nth, fns: fns}
	if pattern != "" {
		re, err := regexp.Compile(pattern)
		if err != nil {
			panic(fmt.Sprintf("hasqltest: %v: bad pattern: %v", kind, err))
		}
		r.re = re
	}
	f.mu.Lock()
	f.rules = append(f.rules, r)
	f.mu.Unlock()
	return r
}

// LoseBeforeSend makes the nth call whose query matches pattern (every one
// for nth 0) fail as if the connection had died before the work was sent:
// the driver is not called and the call returns driver.ErrBadConn, as a
// driver does when it knows nothing was written. hasql then ends the
// session and, unless retries are off (hasql.RetryOff) or a transaction is
// open, runs the work again on a new session: the application does not
// notice. A pattern that does not compile panics.
func (f *Faults) LoseBeforeSend(pattern string, nth int) *Rule {
	return f.add(kindLoseBefore, pattern, nth, workFns)
}

// LoseAfterSend lets the nth call whose query matches pattern (every one for
// nth 0) reach the driver — the work runs — and then reports the connection
// lost: the call fails with a *LostError. hasql ends the session and, since
// the work may have run, returns hasql.ErrConnectionLost to the application
// (hasql.ErrTxResolutionUnknown inside a transaction), unless the context
// is marked hasql.Idempotent and the retry mode is hasql.RetryIdempotent, in
// which case it runs the work again on a new session. A pattern that does
// not compile panics.
func (f *Faults) LoseAfterSend(pattern string, nth int) *Rule {
	return f.add(kindLoseAfter, pattern, nth, workFns)
}

// LoseAtCommit lets the nth commit (every one for nth 0) reach the driver —
// the transaction commits — and then reports the connection lost: Tx.Commit
// returns hasql.ErrTxResolutionUnknown, the worst case an application has to
// handle (the data is there, and the application cannot know it). For a
// loss before the commit was sent (the server rolls back), use
// LoseBeforeSend("", nth).On(hasql.FnCommit); Commit then also returns
// hasql.ErrTxResolutionUnknown.
func (f *Faults) LoseAtCommit(nth int) *Rule {
	r := f.add(kindLoseAfter, "", nth, fnBits(hasql.FnCommit))
	r.atCommit = true
	return r
}

// Latency delays every call whose query matches pattern by d before the
// driver call. A call whose context ends while it waits fails with the
// context's error, as a driver call would. A pattern that does not compile
// panics.
func (f *Faults) Latency(pattern string, d time.Duration) *Rule {
	r := f.add(kindLatency, pattern, 0, workFns)
	r.delay = d
	return r
}

// Fail makes the nth call whose query matches pattern (every one for nth 0)
// fail with err instead of reaching the driver. err is returned as it is, so
// hasql classifies it as it would the driver's own error: a server error
// such as *pgconn.PgError or *mysql.MySQLError reaches the application
// unchanged, while mysql.ErrInvalidConn or io.ErrUnexpectedEOF count as a
// lost connection. A pattern that does not compile panics; a nil err
// panics.
func (f *Faults) Fail(pattern string, nth int, err error) *Rule {
	if err == nil {
		panic("hasqltest: Fail needs an error")
	}
	r := f.add(kindFail, pattern, nth, workFns)
	r.err = err
	return r
}

// Reset removes every rule. Rules already returned stop firing; their
// counts stay readable.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Register makes the Faults available as the hasql callback package name,
// for connectors that load it (hasql.callbacks=name in the DSN, or
// hasql.WithCallbackPackages). Every connector that loads it shares the
// rules. Like hasql.RegisterPackage, it panics if name is taken.
func (f *Faults) Register(name string) {
	hasql.RegisterPackage(name, f.Setup)
}

// Attach installs the Faults on db's own hasql callbacks, chaining to any
// callbacks registered there before. It fails if db is not a hasql DB or
// the Faults is already attached to it.
func (f *Faults) Attach(db *sql.DB) error {
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		return fmt.Errorf("hasqltest: Attach: the *sql.DB is not a hasql DB (its driver is %T)", db.Driver())
	}
	f.mu.Lock()
	if f.attached[c] {
		f.mu.Unlock()
		return errors.New("hasqltest: Attach: this Faults is already attached to the DB")
	}
	f.attached[c] = true
	f.mu.Unlock()
	return f.Setup(c.Callbacks())
}

// Setup registers the Faults' callbacks on r — a replacement and an exit
// callback for every Fn — chaining to those already registered there: use it
// with hasql.RegisterPackage or on a connector's own Callbacks.
func (f *Faults) Setup(r *hasql.Callbacks) error {
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		prevReplace, prevExit := r.Get(fn, hasql.Replace), r.Get(fn, hasql.Exit)
		r.Register(fn, hasql.Replace, func(c *hasql.Call) error {
			if err := f.before(c); err != hasql.Continue {
				return err
			}
			if prevReplace != nil {
				return prevReplace(c)
			}
			return hasql.Continue
		})
		r.Register(fn, hasql.Exit, func(c *hasql.Call) error {
			ret := hasql.Continue
			if prevExit != nil {
				ret = prevExit(c)
			}
			if err := f.after(c); err != hasql.Continue {
				return err
			}
			return ret
		})
	}
	return nil
}

// replacedKey marks, in Call.Ctx, a call a Faults kept from the driver.
type replacedKey struct{ f *Faults }

func (r *Rule) matches(c *hasql.Call) bool {
	return r.fns&(1<<c.Fn) != 0 && (r.re == nil || r.re.MatchString(c.Query))
}

// due counts a matching call; f.mu is held. It reports whether it is the
// rule's turn to fire.
func (r *Rule) due() bool {
	r.seen++
	return r.nth == 0 || r.seen == r.nth
}

// before runs the rules that act before the driver call.
func (f *Faults) before(c *hasql.Call) error {
	var delay time.Duration
	var fail error = hasql.Continue
	f.mu.Lock()
	for _, r := range f.rules {
		if r.kind == kindLoseAfter || !r.matches(c) {
			continue
		}
		if !r.due() {
			continue
		}
		switch r.kind {
		case kindLatency:
			r.fired++
			delay += r.delay
		case kindLoseBefore, kindFail:
			if fail != hasql.Continue {
				continue // an earlier rule decides this call
			}
			r.fired++
			if r.kind == kindFail {
				fail = r.err
			} else {
				fail = driver.ErrBadConn
			}
		}
	}
	f.mu.Unlock()
	if delay > 0 {
		ctx := c.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			fail = ctx.Err()
		}
	}
	if fail != hasql.Continue {
		c.Ctx = context.WithValue(orBackground(c.Ctx), replacedKey{f}, true)
	}
	return fail
}

// after runs the rules that act after the driver call.
func (f *Faults) after(c *hasql.Call) error {
	if c.Ctx != nil && c.Ctx.Value(replacedKey{f}) != nil {
		return hasql.Continue
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var lost error = hasql.Continue
	for _, r := range f.rules {
		if r.kind == kindLoseAfter && r.matches(c) && r.due() && lost == hasql.Continue {
			r.fired++
			lost = &LostError{Fn: c.Fn, Query: c.Query}
		}
	}
	return lost
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// String lists the rules, one a line.
func (f *Faults) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, r := range f.rules {
		fmt.Fprintf(&b, "%v fired %d of %d\n", r, r.fired, r.seen)
	}
	return b.String()
}
