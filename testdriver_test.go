package hasql_test

// A recording test driver whose connections, statements and rows implement
// exactly the optional database/sql/driver interfaces they are told to, for
// the interface-fidelity tests in fidelity_test.go.
//
// Go cannot add methods at run time, so every optional interface is a small
// capability struct (FExecCtx, FPing, FSConv, FRScan, ...) that carries a
// pointer to the base object and implements that one interface by calling
// the base. A combination is an anonymous struct embedding the base and the
// capabilities it should have; the tables connProtos, stmtProtos and
// rowsProtos list the combinations the tests use, and fidKinds derives each
// prototype's capability mask from its method set by reflection, so a table
// entry cannot claim an interface it lacks.
//
// The driver registers as "fidelity-<mask>" (see fidDriverName). A DSN names
// a fidRecorder (newFidRecorder): every call the driver receives is logged
// there, in order, with the arguments it got; results are derived from the
// query text, and markers in the query text or queued injections make calls
// fail:
//
//	badconn-once!  the first Exec/Query/Prepare/statement call that sees this
//	               query text fails with driver.ErrBadConn
//	skip!          ad-hoc Exec/Query on the connection return driver.ErrSkip
//	fail!          any call with this text fails with a *FidError
//	cancel!        a context-aware call cancels the context the test gave
//	               the recorder (setCancel) and returns ctx.Err() once done;
//	               a call without a context ignores the marker
//	rows=N sets=N  the shape of a query's result (default rows=2 sets=1)
//	numinput=-1    the statement does not know its argument count
//
// Injections (failNext) hit the next call of a kind: "connect", "ping",
// "reset", "begin", "commit", "rollback", "invalid" (IsValid reports false).

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Capabilities

// fidCaps is a set of optional driver interfaces, one bit each.
type fidCaps uint32

const (
	capExecerCtx fidCaps = 1 << iota
	capExecer
	capQueryerCtx
	capQueryer
	capPrepareCtx
	capBeginTx
	capPinger
	capResetter
	capValidator
	capConnChecker
	capStmtExecCtx
	capStmtQueryCtx
	capStmtChecker
	capColumnConverter
	capNextResultSet
	capScanType
	capDBTypeName
	capLength
	capNullable
	capPrecisionScale

	capCount = iota
)

const (
	capAll   fidCaps = 1<<capCount - 1
	capsConn         = capExecerCtx | capExecer | capQueryerCtx | capQueryer | capPrepareCtx |
		capBeginTx | capPinger | capResetter | capValidator | capConnChecker
	capsStmt = capStmtExecCtx | capStmtQueryCtx | capStmtChecker | capColumnConverter
	capsRows = capAll &^ (capsConn | capsStmt)
)

var capInfo = [capCount]struct {
	name  string
	iface reflect.Type
}{
	{"ExecerContext", reflect.TypeFor[driver.ExecerContext]()},
	{"Execer", reflect.TypeFor[driver.Execer]()}, //nolint:staticcheck // under test
	{"QueryerContext", reflect.TypeFor[driver.QueryerContext]()},
	{"Queryer", reflect.TypeFor[driver.Queryer]()}, //nolint:staticcheck
	{"ConnPrepareContext", reflect.TypeFor[driver.ConnPrepareContext]()},
	{"ConnBeginTx", reflect.TypeFor[driver.ConnBeginTx]()},
	{"Pinger", reflect.TypeFor[driver.Pinger]()},
	{"SessionResetter", reflect.TypeFor[driver.SessionResetter]()},
	{"Validator", reflect.TypeFor[driver.Validator]()},
	{"ConnNamedValueChecker", reflect.TypeFor[driver.NamedValueChecker]()},
	{"StmtExecContext", reflect.TypeFor[driver.StmtExecContext]()},
	{"StmtQueryContext", reflect.TypeFor[driver.StmtQueryContext]()},
	{"StmtNamedValueChecker", reflect.TypeFor[driver.NamedValueChecker]()},
	{"ColumnConverter", reflect.TypeFor[driver.ColumnConverter]()}, //nolint:staticcheck
	{"RowsNextResultSet", reflect.TypeFor[driver.RowsNextResultSet]()},
	{"ColumnTypeScanType", reflect.TypeFor[driver.RowsColumnTypeScanType]()},
	{"ColumnTypeDatabaseTypeName", reflect.TypeFor[driver.RowsColumnTypeDatabaseTypeName]()},
	{"ColumnTypeLength", reflect.TypeFor[driver.RowsColumnTypeLength]()},
	{"ColumnTypeNullable", reflect.TypeFor[driver.RowsColumnTypeNullable]()},
	{"ColumnTypePrecisionScale", reflect.TypeFor[driver.RowsColumnTypePrecisionScale]()},
}

func (m fidCaps) String() string {
	var names []string
	for i := range capCount {
		if m&(1<<i) != 0 {
			names = append(names, capInfo[i].name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// The combinations. Each entry is a prototype value; only its type matters.
// Every capability appears alone, in all-but-one, in all and in none.
var connProtos = []any{
	struct{ *FConn }{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	// one on
	struct {
		*FConn
		FExecCtx
	}{},
	struct {
		*FConn
		FExec
	}{},
	struct {
		*FConn
		FQueryCtx
	}{},
	struct {
		*FConn
		FQuery
	}{},
	struct {
		*FConn
		FPrepCtx
	}{},
	struct {
		*FConn
		FBeginTx
	}{},
	struct {
		*FConn
		FPing
	}{},
	struct {
		*FConn
		FReset
	}{},
	struct {
		*FConn
		FValid
	}{},
	struct {
		*FConn
		FCheck
	}{},
	// one off
	struct {
		*FConn
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FValid
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FCheck
	}{},
	struct {
		*FConn
		FExecCtx
		FExec
		FQueryCtx
		FQuery
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
	}{},
}

var stmtProtos = []any{
	struct{ *FStmt }{},
	struct {
		*FStmt
		FSExecCtx
		FSQueryCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FStmt
		FSExecCtx
	}{},
	struct {
		*FStmt
		FSQueryCtx
	}{},
	struct {
		*FStmt
		FSCheck
	}{},
	struct {
		*FStmt
		FSConv
	}{},
	struct {
		*FStmt
		FSQueryCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FStmt
		FSExecCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FStmt
		FSExecCtx
		FSQueryCtx
		FSConv
	}{},
	struct {
		*FStmt
		FSExecCtx
		FSQueryCtx
		FSCheck
	}{},
}

var rowsProtos = []any{
	struct{ *FRows }{},
	struct {
		*FRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
	}{},
	struct {
		*FRows
		FRScan
	}{},
	struct {
		*FRows
		FRDBType
	}{},
	struct {
		*FRows
		FRLength
	}{},
	struct {
		*FRows
		FRNull
	}{},
	struct {
		*FRows
		FRPrec
	}{},
	struct {
		*FRows
		FRScan
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
		FRScan
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
		FRScan
		FRDBType
		FRNull
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRPrec
	}{},
	struct {
		*FRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRNull
	}{},
}

// fidKind maps the capability mask of one group (conn, stmt or rows) to the
// combination type that has exactly those capabilities.
type fidKind map[fidCaps]reflect.Type

var (
	connKinds = fidKinds(capsConn, connProtos)
	stmtKinds = fidKinds(capsStmt, stmtProtos)
	rowsKinds = fidKinds(capsRows, rowsProtos)
)

func fidKinds(group fidCaps, protos []any) fidKind {
	k := fidKind{}
	for _, p := range protos {
		t := reflect.TypeOf(p)
		m := capsOf(reflect.PointerTo(t)) & group
		if _, dup := k[m]; dup {
			panic(fmt.Sprintf("fidelity: two prototypes with capabilities %v", m))
		}
		k[m] = t
	}
	return k
}

// capsOf is the set of optional interfaces a type implements.
func capsOf(t reflect.Type) fidCaps {
	var m fidCaps
	for i := range capCount {
		if t.Implements(capInfo[i].iface) {
			m |= 1 << i
		}
	}
	return m
}

// capsOfValue is the set of optional interfaces a driver value implements,
// limited to group.
func capsOfValue(v any, group fidCaps) fidCaps {
	return capsOf(reflect.TypeOf(v)) & group
}

// make builds a value of the combination with mask m (within the group),
// every field pointing at base.
func (k fidKind) make(m fidCaps, base any) any {
	t, ok := k[m]
	if !ok {
		panic(fmt.Sprintf("fidelity: no prototype with capabilities %v", m))
	}
	v := reflect.New(t)
	bv := reflect.ValueOf(base)
	e := v.Elem()
	for i := range e.NumField() {
		if f := e.Field(i); f.Type() == bv.Type() {
			f.Set(bv)
		} else {
			f.Field(0).Set(bv)
		}
	}
	return v.Interface()
}

// fidHasKinds reports whether every group of m has a prototype.
func fidHasKinds(m fidCaps) bool {
	_, c := connKinds[m&capsConn]
	_, s := stmtKinds[m&capsStmt]
	_, r := rowsKinds[m&capsRows]
	return c && s && r
}

// ---------------------------------------------------------------------------
// Registration

var fidRegistered sync.Map // name → *fidDriver

// fidDriverName registers (once) and returns the driver name for m.
func fidDriverName(m fidCaps) string {
	name := fmt.Sprintf("fidelity-%05x", uint32(m))
	if _, loaded := fidRegistered.LoadOrStore(name, &fidDriver{caps: m}); !loaded {
		d, _ := fidRegistered.Load(name)
		sql.Register(name, d.(*fidDriver))
	}
	return name
}

// fidDriver is the driver. It implements DriverContext; its connectors
// implement io.Closer.
type fidDriver struct{ caps fidCaps }

var (
	_ driver.Driver        = (*fidDriver)(nil)
	_ driver.DriverContext = (*fidDriver)(nil)
)

func (d *fidDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

func (d *fidDriver) OpenConnector(dsn string) (driver.Connector, error) {
	r, ok := fidRecorders.Load(dsn)
	if !ok {
		return nil, fmt.Errorf("fidelity: unknown recorder DSN %q", dsn)
	}
	rec := r.(*fidRecorder)
	c := &fidConnector{d: d, rec: rec}
	rec.mu.Lock()
	rec.connectors = append(rec.connectors, c)
	rec.mu.Unlock()
	return c, nil
}

// fidConnector counts its Connect and Close calls.
type fidConnector struct {
	d        *fidDriver
	rec      *fidRecorder
	connects atomic.Int32
	closes   atomic.Int32
}

var (
	_ driver.Connector = (*fidConnector)(nil)
	_ io.Closer        = (*fidConnector)(nil)
)

func (c *fidConnector) Driver() driver.Driver { return c.d }

func (c *fidConnector) Close() error {
	c.closes.Add(1)
	return nil
}

func (c *fidConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.connects.Add(1)
	rec := c.rec
	if err := rec.injected("connect"); err != nil {
		rec.log("Connect -> %s", errText(err))
		return nil, err
	}
	base := &FConn{rec: rec, caps: c.d.caps, id: "c" + strconv.Itoa(rec.next("c"))}
	ci := connKinds.make(c.d.caps&capsConn, base).(driver.Conn)
	rec.mu.Lock()
	rec.conns = append(rec.conns, ci)
	rec.mu.Unlock()
	rec.log("Connect %s", base.id)
	return ci, nil
}

// ---------------------------------------------------------------------------
// Recorder

var (
	fidRecorders sync.Map // DSN → *fidRecorder
	fidRecSeq    atomic.Int64
)

// fidRecorder is one run's log and fault plan.
type fidRecorder struct {
	dsn string

	mu         sync.Mutex
	events     []string
	changed    chan struct{} // closed and replaced on every event
	counters   map[string]int
	seen       map[string]bool
	inject     map[string][]error
	cancel     context.CancelFunc
	conns      []driver.Conn
	connectors []*fidConnector
}

func newFidRecorder(t testing.TB) *fidRecorder {
	r := &fidRecorder{
		dsn:      fmt.Sprintf("rec-%d", fidRecSeq.Add(1)),
		changed:  make(chan struct{}),
		counters: map[string]int{},
		seen:     map[string]bool{},
		inject:   map[string][]error{},
	}
	fidRecorders.Store(r.dsn, r)
	t.Cleanup(func() { fidRecorders.Delete(r.dsn) })
	return r
}

func (r *fidRecorder) log(format string, args ...any) {
	ev := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.events = append(r.events, ev)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *fidRecorder) next(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counters[kind]++
	return r.counters[kind]
}

// Events returns a copy of the log.
func (r *fidRecorder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *fidRecorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor blocks until an event at or after index from satisfies match. It
// synchronises with work database/sql does on its own goroutines (rollback
// or rows close after a context ends); the timeout only guards a hang.
func (r *fidRecorder) waitFor(t testing.TB, from int, match func(ev string) bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, ev := range r.events[min(from, len(r.events)):] {
			if match(ev) {
				r.mu.Unlock()
				return
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no awaited driver event after event %d; log:\n%s", from, strings.Join(r.Events(), "\n"))
		}
	}
}

// failNext makes the next call of kind fail with err (errors queue up).
func (r *fidRecorder) failNext(kind string, err error) {
	r.mu.Lock()
	r.inject[kind] = append(r.inject[kind], err)
	r.mu.Unlock()
}

// clearInjections drops injections no call consumed (the combination lacks
// the interface that would have).
func (r *fidRecorder) clearInjections() {
	r.mu.Lock()
	clear(r.inject)
	r.mu.Unlock()
}

func (r *fidRecorder) injected(kind string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.inject[kind]
	if len(q) == 0 {
		return nil
	}
	r.inject[kind] = q[1:]
	return q[0]
}

func (r *fidRecorder) setCancel(c context.CancelFunc) {
	r.mu.Lock()
	r.cancel = c
	r.mu.Unlock()
}

// lastConn is the most recently connected inner connection.
func (r *fidRecorder) lastConn() driver.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) == 0 {
		return nil
	}
	return r.conns[len(r.conns)-1]
}

func (r *fidRecorder) connectorList() []*fidConnector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*fidConnector(nil), r.connectors...)
}

// trigger applies the markers in query text q to a call (ctx is nil for
// calls without a context; adhoc marks a connection's own Exec or Query).
func (r *fidRecorder) trigger(ctx context.Context, q string, adhoc bool) error {
	if strings.Contains(q, "badconn-once!") {
		r.mu.Lock()
		first := !r.seen[q]
		r.seen[q] = true
		r.mu.Unlock()
		if first {
			return driver.ErrBadConn
		}
	}
	if adhoc && strings.Contains(q, "skip!") {
		return driver.ErrSkip
	}
	if strings.Contains(q, "fail!") {
		return &FidError{Code: 42, Msg: "failed: " + q}
	}
	if ctx != nil && strings.Contains(q, "cancel!") {
		r.mu.Lock()
		cancel := r.cancel
		r.mu.Unlock()
		if cancel == nil {
			return errors.New("fidelity: cancel! without setCancel")
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// ---------------------------------------------------------------------------
// Values the tests pass as arguments

// errFidSentinel is wrapped by every *FidError.
var errFidSentinel = errors.New("fidelity sentinel")

// FidError is the driver's own error type.
type FidError struct {
	Code int
	Msg  string
}

func (e *FidError) Error() string { return fmt.Sprintf("fid error %d: %s", e.Code, e.Msg) }
func (e *FidError) Unwrap() error { return errFidSentinel }

// FidValuer is a driver.Valuer that logs each Value call.
type FidValuer struct {
	Rec *fidRecorder
	S   string
}

func (v FidValuer) Value() (driver.Value, error) {
	v.Rec.log("Valuer.Value %s", v.S)
	return "valued:" + v.S, nil
}

func (v FidValuer) String() string { return "valuer(" + v.S + ")" }

// FidRemove makes a checker return driver.ErrRemoveArgument.
type FidRemove struct{}

// FidChecked is converted by a checker (and by nothing else).
type FidChecked struct{ S string }

// FidReject makes a checker fail with a *FidError.
type FidReject struct{ S string }

// FidCCOnly is converted by a ColumnConverter (and by nothing else).
type FidCCOnly struct{ S string }

func fmtNV(nv driver.NamedValue) string {
	key := strconv.Itoa(nv.Ordinal)
	if nv.Name != "" {
		key += ":" + nv.Name
	}
	return fmt.Sprintf("%s=%T(%v)", key, nv.Value, nv.Value)
}

func fmtNVs(args []driver.NamedValue) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = fmtNV(a)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func fmtValues(args []driver.Value) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = fmt.Sprintf("%T(%v)", a, a)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return "error " + err.Error()
}

// check is the NamedValueChecker of connections and statements.
func (r *fidRecorder) check(who string, nv *driver.NamedValue) error {
	in := fmtNV(*nv)
	var err error
	switch v := nv.Value.(type) {
	case FidRemove:
		err = driver.ErrRemoveArgument
	case FidChecked:
		nv.Value = "checked:" + v.S
	case FidReject:
		err = &FidError{Code: 7, Msg: "rejected " + v.S}
	default:
		err = driver.ErrSkip
	}
	r.log("%s CheckNamedValue %s -> %s", who, in, errText(err))
	return err
}

// ---------------------------------------------------------------------------
// Connections

// FConn is the base connection: driver.Conn and nothing optional.
type FConn struct {
	rec  *fidRecorder
	caps fidCaps
	id   string
}

func (c *FConn) Prepare(q string) (driver.Stmt, error) {
	c.rec.log("%s Prepare %q", c.id, q)
	return c.prepare(nil, q)
}

func (c *FConn) Close() error {
	c.rec.log("%s Close", c.id)
	return nil
}

func (c *FConn) Begin() (driver.Tx, error) {
	c.rec.log("%s Begin", c.id)
	return c.begin()
}

func (c *FConn) prepare(ctx context.Context, q string) (driver.Stmt, error) {
	if err := c.rec.trigger(ctx, q, false); err != nil {
		c.rec.log("%s   -> %s", c.id, errText(err))
		return nil, err
	}
	n := strings.Count(q, "?")
	if strings.Contains(q, "numinput=-1") {
		n = -1
	}
	base := &FStmt{c: c, id: c.id + ".s" + strconv.Itoa(c.rec.next("s")), q: q, numInput: n}
	c.rec.log("%s   -> %s", c.id, base.id)
	return stmtKinds.make(c.caps&capsStmt, base).(driver.Stmt), nil
}

func (c *FConn) begin() (driver.Tx, error) {
	if err := c.rec.injected("begin"); err != nil {
		c.rec.log("%s   -> %s", c.id, errText(err))
		return nil, err
	}
	tx := &fidTx{c: c, id: c.id + ".t" + strconv.Itoa(c.rec.next("t"))}
	c.rec.log("%s   -> %s", c.id, tx.id)
	return tx, nil
}

func (c *FConn) exec(ctx context.Context, who, q string, nargs int) (driver.Result, error) {
	if err := c.rec.trigger(ctx, q, true); err != nil {
		c.rec.log("%s   -> %s", who, errText(err))
		return nil, err
	}
	return &fidResult{rec: c.rec, who: who, last: int64(len(q)), affected: int64(nargs)}, nil
}

func (c *FConn) query(ctx context.Context, who, q string, args string, adhoc bool) (driver.Rows, error) {
	if err := c.rec.trigger(ctx, q, adhoc); err != nil {
		c.rec.log("%s   -> %s", who, errText(err))
		return nil, err
	}
	return newFidRows(c, who, q, args), nil
}

// FExecCtx gives a connection driver.ExecerContext.
type FExecCtx struct{ C *FConn }

func (x FExecCtx) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	x.C.rec.log("%s ExecContext %q %s", x.C.id, q, fmtNVs(args))
	return x.C.exec(ctx, x.C.id, q, len(args))
}

// FExec gives a connection driver.Execer.
type FExec struct{ C *FConn }

func (x FExec) Exec(q string, args []driver.Value) (driver.Result, error) {
	x.C.rec.log("%s Exec %q %s", x.C.id, q, fmtValues(args))
	return x.C.exec(nil, x.C.id, q, len(args))
}

// FQueryCtx gives a connection driver.QueryerContext.
type FQueryCtx struct{ C *FConn }

func (x FQueryCtx) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	x.C.rec.log("%s QueryContext %q %s", x.C.id, q, fmtNVs(args))
	return x.C.query(ctx, x.C.id, q, fmtNVs(args), true)
}

// FQuery gives a connection driver.Queryer.
type FQuery struct{ C *FConn }

func (x FQuery) Query(q string, args []driver.Value) (driver.Rows, error) {
	x.C.rec.log("%s Query %q %s", x.C.id, q, fmtValues(args))
	return x.C.query(nil, x.C.id, q, fmtValues(args), true)
}

// FPrepCtx gives a connection driver.ConnPrepareContext.
type FPrepCtx struct{ C *FConn }

func (x FPrepCtx) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	x.C.rec.log("%s PrepareContext %q", x.C.id, q)
	return x.C.prepare(ctx, q)
}

// FBeginTx gives a connection driver.ConnBeginTx.
type FBeginTx struct{ C *FConn }

func (x FBeginTx) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	x.C.rec.log("%s BeginTx isolation=%d readonly=%v", x.C.id, opts.Isolation, opts.ReadOnly)
	return x.C.begin()
}

// FPing gives a connection driver.Pinger.
type FPing struct{ C *FConn }

func (x FPing) Ping(ctx context.Context) error {
	err := x.C.rec.injected("ping")
	x.C.rec.log("%s Ping -> %s", x.C.id, errText(err))
	return err
}

// FReset gives a connection driver.SessionResetter.
type FReset struct{ C *FConn }

func (x FReset) ResetSession(ctx context.Context) error {
	err := x.C.rec.injected("reset")
	x.C.rec.log("%s ResetSession -> %s", x.C.id, errText(err))
	return err
}

// FValid gives a connection driver.Validator.
type FValid struct{ C *FConn }

func (x FValid) IsValid() bool {
	ok := x.C.rec.injected("invalid") == nil
	x.C.rec.log("%s IsValid -> %v", x.C.id, ok)
	return ok
}

// FCheck gives a connection driver.NamedValueChecker.
type FCheck struct{ C *FConn }

func (x FCheck) CheckNamedValue(nv *driver.NamedValue) error {
	return x.C.rec.check(x.C.id, nv)
}

// fidResult logs the calls database/sql makes on a result.
type fidResult struct {
	rec            *fidRecorder
	who            string
	last, affected int64
}

func (r *fidResult) LastInsertId() (int64, error) {
	r.rec.log("%s Result.LastInsertId", r.who)
	return r.last, nil
}

func (r *fidResult) RowsAffected() (int64, error) {
	r.rec.log("%s Result.RowsAffected", r.who)
	return r.affected, nil
}

// fidTx is a transaction.
type fidTx struct {
	c  *FConn
	id string
}

func (t *fidTx) Commit() error {
	err := t.c.rec.injected("commit")
	t.c.rec.log("%s Commit -> %s", t.id, errText(err))
	return err
}

func (t *fidTx) Rollback() error {
	err := t.c.rec.injected("rollback")
	t.c.rec.log("%s Rollback -> %s", t.id, errText(err))
	return err
}

// ---------------------------------------------------------------------------
// Statements

// FStmt is the base statement: driver.Stmt and nothing optional.
type FStmt struct {
	c        *FConn
	id       string
	q        string
	numInput int
}

func (s *FStmt) Close() error {
	s.c.rec.log("%s Close", s.id)
	return nil
}

func (s *FStmt) NumInput() int {
	s.c.rec.log("%s NumInput -> %d", s.id, s.numInput)
	return s.numInput
}

func (s *FStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.c.rec.log("%s Exec %s", s.id, fmtValues(args))
	return s.exec(nil, len(args))
}

func (s *FStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.c.rec.log("%s Query %s", s.id, fmtValues(args))
	return s.c.query(nil, s.id, s.q, fmtValues(args), false)
}

func (s *FStmt) exec(ctx context.Context, nargs int) (driver.Result, error) {
	if err := s.c.rec.trigger(ctx, s.q, false); err != nil {
		s.c.rec.log("%s   -> %s", s.id, errText(err))
		return nil, err
	}
	return &fidResult{rec: s.c.rec, who: s.id, last: int64(len(s.q)), affected: int64(nargs)}, nil
}

// FSExecCtx gives a statement driver.StmtExecContext.
type FSExecCtx struct{ S *FStmt }

func (x FSExecCtx) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	x.S.c.rec.log("%s ExecContext %s", x.S.id, fmtNVs(args))
	return x.S.exec(ctx, len(args))
}

// FSQueryCtx gives a statement driver.StmtQueryContext.
type FSQueryCtx struct{ S *FStmt }

func (x FSQueryCtx) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	x.S.c.rec.log("%s QueryContext %s", x.S.id, fmtNVs(args))
	return x.S.c.query(ctx, x.S.id, x.S.q, fmtNVs(args), false)
}

// FSCheck gives a statement driver.NamedValueChecker.
type FSCheck struct{ S *FStmt }

func (x FSCheck) CheckNamedValue(nv *driver.NamedValue) error {
	return x.S.c.rec.check(x.S.id, nv)
}

// FSConv gives a statement driver.ColumnConverter.
type FSConv struct{ S *FStmt }

func (x FSConv) ColumnConverter(idx int) driver.ValueConverter {
	x.S.c.rec.log("%s ColumnConverter %d", x.S.id, idx)
	return fidConverter{s: x.S, idx: idx}
}

type fidConverter struct {
	s   *FStmt
	idx int
}

func (c fidConverter) ConvertValue(v any) (driver.Value, error) {
	var out driver.Value
	var err error
	if cc, ok := v.(FidCCOnly); ok {
		out = "cc:" + cc.S
	} else {
		out, err = driver.DefaultParameterConverter.ConvertValue(v)
	}
	c.s.c.rec.log("%s ConvertValue %d %T(%v) -> %s", c.s.id, c.idx, v, v, errText(err))
	return out, err
}

// ---------------------------------------------------------------------------
// Rows

// FRows is the base result: driver.Rows and nothing optional. Each result set
// has the columns q (the query), n (a counter) and args (the arguments as the
// driver received them).
type FRows struct {
	c    *FConn
	id   string
	q    string
	args string
	sets int
	rows int
	set  int
	pos  int
}

func newFidRows(c *FConn, who, q, args string) driver.Rows {
	base := &FRows{
		c: c, id: c.id + ".r" + strconv.Itoa(c.rec.next("r")), q: q, args: args,
		sets: queryParam(q, "sets", 1), rows: queryParam(q, "rows", 2),
	}
	c.rec.log("%s   -> %s", who, base.id)
	return rowsKinds.make(c.caps&capsRows, base).(driver.Rows)
}

// queryParam reads "name=N" from query text.
func queryParam(q, name string, def int) int {
	i := strings.Index(q, name+"=")
	if i < 0 {
		return def
	}
	s := q[i+len(name)+1:]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(s[:j])
	if err != nil {
		return def
	}
	return n
}

func (r *FRows) Columns() []string {
	r.c.rec.log("%s Columns", r.id)
	sfx := ""
	if r.set > 0 {
		sfx = strconv.Itoa(r.set)
	}
	return []string{"q" + sfx, "n" + sfx, "args" + sfx}
}

func (r *FRows) Close() error {
	r.c.rec.log("%s Close", r.id)
	return nil
}

func (r *FRows) Next(dest []driver.Value) error {
	if r.pos >= r.rows {
		r.c.rec.log("%s Next -> EOF", r.id)
		return io.EOF
	}
	r.c.rec.log("%s Next", r.id)
	dest[0] = r.q
	dest[1] = int64(100*r.set + r.pos)
	dest[2] = r.args
	r.pos++
	return nil
}

// FRNext gives rows driver.RowsNextResultSet.
type FRNext struct{ R *FRows }

func (x FRNext) HasNextResultSet() bool {
	has := x.R.set+1 < x.R.sets
	x.R.c.rec.log("%s HasNextResultSet -> %v", x.R.id, has)
	return has
}

func (x FRNext) NextResultSet() error {
	x.R.c.rec.log("%s NextResultSet", x.R.id)
	if x.R.set+1 >= x.R.sets {
		return io.EOF
	}
	x.R.set++
	x.R.pos = 0
	return nil
}

// FRScan gives rows driver.RowsColumnTypeScanType.
type FRScan struct{ R *FRows }

func (x FRScan) ColumnTypeScanType(i int) reflect.Type {
	x.R.c.rec.log("%s ColumnTypeScanType %d", x.R.id, i)
	if i == 1 {
		return reflect.TypeFor[int64]()
	}
	return reflect.TypeFor[string]()
}

// FRDBType gives rows driver.RowsColumnTypeDatabaseTypeName.
type FRDBType struct{ R *FRows }

func (x FRDBType) ColumnTypeDatabaseTypeName(i int) string {
	x.R.c.rec.log("%s ColumnTypeDatabaseTypeName %d", x.R.id, i)
	return [...]string{"TEXT", "INT8", "VARCHAR"}[i]
}

// FRLength gives rows driver.RowsColumnTypeLength.
type FRLength struct{ R *FRows }

func (x FRLength) ColumnTypeLength(i int) (int64, bool) {
	x.R.c.rec.log("%s ColumnTypeLength %d", x.R.id, i)
	switch i {
	case 0:
		return 1 << 30, true
	case 2:
		return 255, true
	}
	return 0, false
}

// FRNull gives rows driver.RowsColumnTypeNullable.
type FRNull struct{ R *FRows }

func (x FRNull) ColumnTypeNullable(i int) (bool, bool) {
	x.R.c.rec.log("%s ColumnTypeNullable %d", x.R.id, i)
	return i == 2, true
}

// FRPrec gives rows driver.RowsColumnTypePrecisionScale.
type FRPrec struct{ R *FRows }

func (x FRPrec) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	x.R.c.rec.log("%s ColumnTypePrecisionScale %d", x.R.id, i)
	if i == 1 {
		return 19, 0, true
	}
	return 0, 0, false
}
