package hasql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
	"sync/atomic"
)

// Fn names a driver call that callbacks can intercept.
type Fn uint8

const (
	FnConnect   Fn = iota // a physical session is opened
	FnPing                // Conn.Ping
	FnPrepare             // Conn.PrepareContext
	FnExec                // ad-hoc Conn.ExecContext
	FnQuery               // ad-hoc Conn.QueryContext
	FnStmtExec            // Stmt.ExecContext
	FnStmtQuery           // Stmt.QueryContext
	FnStmtClose           // Stmt.Close
	FnBegin               // Conn.BeginTx
	FnCommit              // Tx.Commit
	FnRollback            // Tx.Rollback
	FnReset               // a checkout: a session is bound to a virtual handle
	FnClose               // a physical session is closed

	numFn = iota
)

var fnNames = [numFn]string{
	"FnConnect", "FnPing", "FnPrepare", "FnExec", "FnQuery", "FnStmtExec", "FnStmtQuery",
	"FnStmtClose", "FnBegin", "FnCommit", "FnRollback", "FnReset", "FnClose",
}

// String returns the Fn's name, such as "FnQuery".
func (f Fn) String() string {
	if int(f) < len(fnNames) {
		return fnNames[f]
	}
	return fmt.Sprintf("Fn(%d)", uint8(f))
}

// When says at which point of a call a callback runs.
type When uint8

const (
	Entry   When = iota // before the driver call; may inspect or rewrite Query and Args
	Replace             // instead of the driver call, unless it returns Continue
	Exit                // after the driver call; may replace the outcome

	numWhen = iota
)

// String returns "Entry", "Replace" or "Exit".
func (w When) String() string {
	switch w {
	case Entry:
		return "Entry"
	case Replace:
		return "Replace"
	case Exit:
		return "Exit"
	}
	return fmt.Sprintf("When(%d)", uint8(w))
}

// Call is one intercepted driver call as callbacks see it. Entry callbacks may
// change Ctx, Query and Args before the driver sees them. A Call is valid only
// while its callbacks run.
//
// Per Fn: FnBegin carries the driver.TxOptions as Args[0].Value. FnReset's
// Query is "fresh" for a session opened for this checkout (nothing to reset)
// and empty for a reused one. FnCommit and FnRollback get the transaction's
// context without its cancellation. FnStmtClose and FnClose always release
// the statement or close the connection in the end, whatever a replacement
// returns, so a callback cannot leak them. When the inner driver answers
// driver.ErrSkip (database/sql then prepares the statement itself, which
// shows as FnPrepare, FnStmtExec and FnStmtClose), no exit callback runs for
// that attempt: an entry callback must not count on its exit.
type Call struct {
	Fn      Fn
	Ctx     context.Context
	Query   string
	Args    []driver.NamedValue
	Session *Session      // nil for FnConnect's entry
	Result  driver.Result // set by the driver call or by a replacement callback
	Rows    driver.Rows   // likewise, for FnQuery and FnStmtQuery
	Err     error         // the outcome so far
}

// Callback intercepts a Call. It returns Continue to leave the outcome alone;
// what anything else means depends on When (see Callbacks).
type Callback func(c *Call) error

// maxPackages is OCI's limit on dynamically loaded callback packages.
const maxPackages = 5

// Callbacks is a set of callbacks, one per (Fn, When): the connector's own
// (Connector.Callbacks), or one loaded package's on that connector (handed to
// the package's setup). A zero Callbacks is not usable. It is safe for concurrent use;
// a call in flight keeps the chain it started with.
//
// For one call, callbacks run in OCI's order: the connector's entry callback,
// then each loaded package's entry callback in load order; the same for
// replacement callbacks; then the driver call, unless a replacement returned
// something other than Continue; then exit callbacks in reverse order (the
// last-loaded package first, the connector's own last).
//
// An entry callback's non-Continue return is recorded in Call.Err for later
// callbacks and dropped if the driver call runs. A replacement that returns
// nil supplies the outcome itself (Call.Result or Call.Rows); one that returns
// an error makes it the outcome. An exit callback that returns anything but
// Continue replaces the outcome (nil clears an error). A callback that panics
// fails that call with an error wrapping ErrCallbackPanic.
type Callbacks struct {
	reg *registry
	fns [numFn][numWhen]Callback // guarded by reg.mu
}

// Register sets the callback for (fn, when), replacing any earlier one; a nil
// cb removes it. Calls that start afterwards see the change.
func (r *Callbacks) Register(fn Fn, when When, cb Callback) {
	if fn >= numFn || when >= numWhen {
		return
	}
	if r.reg == nil {
		panic("hasql: Callbacks must come from Connector.Callbacks or a RegisterPackage setup")
	}
	r.reg.mu.Lock()
	defer r.reg.mu.Unlock()
	r.fns[fn][when] = cb
	r.reg.rebuild()
}

// Get returns the callback registered for (fn, when), or nil. A new callback
// can call the one it replaces (OCIUserCallbackGet).
func (r *Callbacks) Get(fn Fn, when When) Callback {
	if fn >= numFn || when >= numWhen || r.reg == nil {
		return nil
	}
	r.reg.mu.Lock()
	defer r.reg.mu.Unlock()
	return r.fns[fn][when]
}

// registry holds a connector's own callbacks and its loaded packages, and the
// flattened chains calls read with one atomic load.
type registry struct {
	conn *Connector // set once by init
	mu   sync.Mutex
	own  Callbacks
	pkgs []*Callbacks // load order
	plan atomic.Pointer[plan]
}

// plan is an immutable snapshot: chains[fn] is nil when fn has no callbacks.
type plan struct {
	chains [numFn]*chain
}

// chain is the callbacks of one Fn in the order they run; exit is already
// reversed.
type chain struct {
	conn                 *Connector // whose callbacks: panics are counted there
	fn                   Fn
	entry, replace, exit []Callback
}

func (reg *registry) init(c *Connector) {
	reg.conn = c
	reg.own.reg = reg
	reg.plan.Store(&plan{})
}

// rebuild makes a new plan from the current registrations; reg.mu is held.
func (reg *registry) rebuild() {
	p := &plan{}
	sets := append([]*Callbacks{&reg.own}, reg.pkgs...)
	for fn := Fn(0); fn < numFn; fn++ {
		ch := &chain{conn: reg.conn, fn: fn}
		for _, s := range sets {
			if cb := s.fns[fn][Entry]; cb != nil {
				ch.entry = append(ch.entry, cb)
			}
			if cb := s.fns[fn][Replace]; cb != nil {
				ch.replace = append(ch.replace, cb)
			}
		}
		for i := len(sets) - 1; i >= 0; i-- {
			if cb := sets[i].fns[fn][Exit]; cb != nil {
				ch.exit = append(ch.exit, cb)
			}
		}
		if len(ch.entry)+len(ch.replace)+len(ch.exit) > 0 {
			p.chains[fn] = ch
		}
	}
	reg.plan.Store(p)
}

// chain returns the chain for fn, or nil when no callback is registered.
func (reg *registry) chain(fn Fn) *chain {
	return reg.plan.Load().chains[fn]
}

var (
	packagesMu sync.RWMutex
	packages   = map[string]func(*Callbacks) error{}
)

// RegisterPackage makes a callback package available under name, to be
// loaded by connectors that list it in hasql.callbacks,
// HASQL_CALLBACK_PACKAGES or WithCallbackPackages. setup runs once for each
// connector that loads the package and registers the package's callbacks on
// the Callbacks it is given. Like sql.Register, it panics if name is empty,
// setup is nil, or name is already registered.
func RegisterPackage(name string, setup func(r *Callbacks) error) {
	packagesMu.Lock()
	defer packagesMu.Unlock()
	if name == "" || setup == nil {
		panic("hasql: RegisterPackage needs a name and a setup function")
	}
	if _, dup := packages[name]; dup {
		panic("hasql: RegisterPackage called twice for package " + name)
	}
	packages[name] = setup
}

// load runs the setup of each named package, in order, on this registry.
func (reg *registry) load(names []string) error {
	if len(names) > maxPackages {
		return newError(ErrDSN, fmt.Sprintf("%d callback packages listed; at most %d may be loaded", len(names), maxPackages), nil)
	}
	for _, name := range names {
		packagesMu.RLock()
		setup, ok := packages[name]
		packagesMu.RUnlock()
		if !ok {
			return newError(ErrDSN, fmt.Sprintf("callback package %s is not registered (hasql.RegisterPackage)", quoteValue(name)), nil)
		}
		pkg := &Callbacks{reg: reg}
		if err := setup(pkg); err != nil {
			return newError(ErrDSN, fmt.Sprintf("callback package %s failed to load", quoteValue(name)), err)
		}
		reg.mu.Lock()
		reg.pkgs = append(reg.pkgs, pkg)
		reg.rebuild()
		reg.mu.Unlock()
	}
	return nil
}

// invoker performs the driver call behind a Call, setting Result or Rows and
// returning the driver's error.
type invoker interface {
	invoke(c *Call) error
}

// run executes one call through the chain. The returned error is the final
// outcome; c.Result and c.Rows hold the rest of it. driver.ErrSkip from the
// driver is returned bare, with no exit callbacks run.
func (ch *chain) run(c *Call, inv invoker) error {
	for _, cb := range ch.entry {
		r, panicked := ch.safeCall(cb, c, Entry)
		if panicked {
			return c.fail(r)
		}
		if r != Continue {
			c.Err = r
		}
	}
	replaced := false
	for _, cb := range ch.replace {
		r, panicked := ch.safeCall(cb, c, Replace)
		if panicked {
			return c.fail(r)
		}
		if r != Continue {
			c.Err, replaced = r, true
			break
		}
	}
	if !replaced {
		c.Err = inv.invoke(c)
		if c.Err == driver.ErrSkip {
			return driver.ErrSkip
		}
	}
	for _, cb := range ch.exit {
		r, panicked := ch.safeCall(cb, c, Exit)
		if panicked {
			return c.fail(r)
		}
		if r != Continue {
			c.Err = r
		}
	}
	return c.outcome()
}

// outcome makes the end state of a call consistent: an error outcome frees
// any rows, and a success must carry what its Fn returns.
func (c *Call) outcome() error {
	if c.Err != nil {
		return c.fail(c.Err)
	}
	switch c.Fn {
	case FnQuery, FnStmtQuery:
		if c.Rows == nil {
			return c.fail(newError(ErrCallbackOutcome, fmt.Sprintf("callbacks for %v succeeded without Rows", c.Fn), nil))
		}
	case FnExec, FnStmtExec:
		if c.Result == nil {
			return c.fail(newError(ErrCallbackOutcome, fmt.Sprintf("callbacks for %v succeeded without a Result", c.Fn), nil))
		}
	}
	return nil
}

// fail ends a call with err, closing rows nobody will read.
func (c *Call) fail(err error) error {
	if c.Rows != nil {
		c.Rows.Close()
		c.Rows = nil
	}
	c.Result = nil
	c.Err = err
	return err
}

// safeCall runs cb, turning a panic into an error that names the callback.
func (ch *chain) safeCall(cb Callback, c *Call, when When) (ret error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			ret = ch.conn.userPanic(fmt.Sprintf("%v %v callback", c.Fn, when), p)
			panicked = true
		}
	}()
	return cb(c), false
}
