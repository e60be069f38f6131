package hasql

// fakedb: the one fake inner driver of the unit tests, in the manner of
// database/sql's own fakedb_test.go. Every unit test that needs an inner
// driver uses it; integration tests use real servers (harness_test.go).
//
// Three parts, each configured per test:
//
//   - A FakeDriver is what database/sql and hasql see. Its Caps choose, one
//     bit each, the optional interfaces its connections, statements and rows
//     implement (ExecerContext/Execer, QueryerContext/Queryer,
//     ConnPrepareContext, ConnBeginTx, Pinger, SessionResetter, Validator,
//     NamedValueChecker; StmtExecContext/StmtQueryContext,
//     NamedValueChecker, ColumnConverter; RowsNextResultSet and the
//     RowsColumnType* interfaces). A driver either serves one FakeDB (DB set)
//     or finds the FakeDB its DSN names (NewFakeDB registers one), or, in a
//     DSN mode, keeps no FakeDB and only records or echoes the DSN it was
//     given (for the DSN tests). FakePlainDriver is the same without
//     driver.DriverContext.
//   - A FakeDB is one fake server: its sessions (FakeConn), its counters
//     (connects, closes, resets, overlapping use, use after close), its call
//     log and its behaviour. Without hooks it answers as a recording driver:
//     results are derived from the query text and every call is logged with
//     its arguments (when the FakeDB records, see NewFakeDB; NoopFakeDB
//     neither records nor allocates beyond what a driver must). Hooks
//     (OnExec, OnQuery, ...) replace the answer of one kind of call.
//   - Faults (Inject, FailNext, query-text markers, FakeConn.Kill) make calls
//     fail: the Nth call of a kind or matching a pattern, before or after it
//     reached the server, with latency, or leaving the session dead so that
//     IsValid and ResetSession report it.
//
// Go cannot add methods at run time, so every optional interface is a small
// capability struct (FExecCtx, FPing, FSConv, FRScan, ...) that carries a
// pointer to the base object and implements that one interface by calling
// the base. A combination is an anonymous struct embedding the base and the
// capabilities it should have; the tables fakeConnProtos, fakeStmtProtos and
// fakeRowsProtos list the combinations the tests use, and fakeKinds derives
// each prototype's capability mask from its method set by reflection, so a
// table entry cannot claim an interface it lacks.
//
// Query-text markers (applied before any hook):
//
//	badconn-once!  the first Exec/Query/Prepare/statement call that sees this
//	               query text fails with driver.ErrBadConn
//	skip!          ad-hoc Exec/Query on the connection return driver.ErrSkip
//	fail!          any call with this text fails with a *FakeError
//	cancel!        a context-aware call cancels the context the test gave
//	               the FakeDB (SetCancel) and returns ctx.Err() once done;
//	               a call without a context ignores the marker
//	rows=N sets=N  the shape of a query's result (default rows=2 sets=1)
//	numinput=-1    the statement does not know its argument count
//
// Kinds of call, for faults: "connect", "exec", "query", "prepare",
// "stmtexec", "stmtquery", "begin", "commit", "rollback", "ping", "reset",
// "invalid" (IsValid reports false).

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

// FakeCaps is a set of optional driver interfaces, one bit each.
type FakeCaps uint32

const (
	FakeExecerContext FakeCaps = 1 << iota
	FakeExecer
	FakeQueryerContext
	FakeQueryer
	FakeConnPrepareContext
	FakeConnBeginTx
	FakePinger
	FakeSessionResetter
	FakeValidator
	FakeConnChecker
	FakeStmtExecContext
	FakeStmtQueryContext
	FakeStmtChecker
	FakeColumnConverter
	FakeNextResultSet
	FakeScanType
	FakeDBTypeName
	FakeLength
	FakeNullable
	FakePrecisionScale

	FakeCapCount = iota
)

const (
	FakeCapsAll  FakeCaps = 1<<FakeCapCount - 1
	FakeCapsConn          = FakeExecerContext | FakeExecer | FakeQueryerContext | FakeQueryer |
		FakeConnPrepareContext | FakeConnBeginTx | FakePinger | FakeSessionResetter | FakeValidator |
		FakeConnChecker
	FakeCapsStmt = FakeStmtExecContext | FakeStmtQueryContext | FakeStmtChecker | FakeColumnConverter
	FakeCapsRows = FakeCapsAll &^ (FakeCapsConn | FakeCapsStmt)

	// FakeCapsContext is a modern driver (pgx, go-sql-driver/mysql): every
	// context-aware interface, no legacy Execer/Queryer, plain rows.
	FakeCapsContext = FakeExecerContext | FakeQueryerContext | FakeConnPrepareContext |
		FakeConnBeginTx | FakePinger | FakeSessionResetter | FakeValidator | FakeConnChecker |
		FakeStmtExecContext | FakeStmtQueryContext
	// FakeCapsPool is a session for the pool tests: ad-hoc work, reset and
	// validity, nothing else.
	FakeCapsPool = FakeExecerContext | FakeQueryerContext | FakeSessionResetter | FakeValidator
)

var FakeCapInfo = [FakeCapCount]struct {
	Name  string
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

func (m FakeCaps) String() string {
	var names []string
	for i := range FakeCapCount {
		if m&(1<<i) != 0 {
			names = append(names, FakeCapInfo[i].Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// The combinations. Each entry is a prototype value; only its type matters.
// Every capability appears alone, in all-but-one, in all and in none.
var fakeConnProtos = []any{
	struct{ *FakeConn }{},
	struct {
		*FakeConn
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
		*FakeConn
		FExecCtx
	}{},
	struct {
		*FakeConn
		FExec
	}{},
	struct {
		*FakeConn
		FQueryCtx
	}{},
	struct {
		*FakeConn
		FQuery
	}{},
	struct {
		*FakeConn
		FPrepCtx
	}{},
	struct {
		*FakeConn
		FBeginTx
	}{},
	struct {
		*FakeConn
		FPing
	}{},
	struct {
		*FakeConn
		FReset
	}{},
	struct {
		*FakeConn
		FValid
	}{},
	struct {
		*FakeConn
		FCheck
	}{},
	// one off
	struct {
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
		*FakeConn
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
	// the configurations the unit tests use (see FakeCaps* below)
	struct {
		*FakeConn
		FExecCtx
		FQueryCtx
		FPrepCtx
		FBeginTx
		FPing
		FReset
		FValid
		FCheck
	}{},
	struct {
		*FakeConn
		FExecCtx
		FQueryCtx
		FPrepCtx
		FPing
		FReset
		FCheck
	}{},
	struct {
		*FakeConn
		FExecCtx
		FQueryCtx
		FReset
		FValid
	}{},
	struct {
		*FakeConn
		FExecCtx
		FQueryCtx
		FPrepCtx
	}{},
	struct {
		*FakeConn
		FReset
		FValid
	}{},
}

var fakeStmtProtos = []any{
	struct{ *FakeStmt }{},
	struct {
		*FakeStmt
		FSExecCtx
		FSQueryCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FakeStmt
		FSExecCtx
	}{},
	struct {
		*FakeStmt
		FSQueryCtx
	}{},
	struct {
		*FakeStmt
		FSCheck
	}{},
	struct {
		*FakeStmt
		FSConv
	}{},
	struct {
		*FakeStmt
		FSQueryCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FakeStmt
		FSExecCtx
		FSCheck
		FSConv
	}{},
	struct {
		*FakeStmt
		FSExecCtx
		FSQueryCtx
		FSConv
	}{},
	struct {
		*FakeStmt
		FSExecCtx
		FSQueryCtx
		FSCheck
	}{},
	// the statements of FakeCapsContext
	struct {
		*FakeStmt
		FSExecCtx
		FSQueryCtx
	}{},
}

var fakeRowsProtos = []any{
	struct{ *FakeRows }{},
	struct {
		*FakeRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
	}{},
	struct {
		*FakeRows
		FRScan
	}{},
	struct {
		*FakeRows
		FRDBType
	}{},
	struct {
		*FakeRows
		FRLength
	}{},
	struct {
		*FakeRows
		FRNull
	}{},
	struct {
		*FakeRows
		FRPrec
	}{},
	struct {
		*FakeRows
		FRScan
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
		FRDBType
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
		FRScan
		FRLength
		FRNull
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
		FRScan
		FRDBType
		FRNull
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRPrec
	}{},
	struct {
		*FakeRows
		FRNext
		FRScan
		FRDBType
		FRLength
		FRNull
	}{},
}

// FakeKind maps the capability mask of one group (conn, stmt or rows) to the
// combination type that has exactly those capabilities.
type FakeKind map[FakeCaps]reflect.Type

var (
	FakeConnKinds = fakeKinds(FakeCapsConn, fakeConnProtos)
	FakeStmtKinds = fakeKinds(FakeCapsStmt, fakeStmtProtos)
	FakeRowsKinds = fakeKinds(FakeCapsRows, fakeRowsProtos)
)

func fakeKinds(group FakeCaps, protos []any) FakeKind {
	k := FakeKind{}
	for _, p := range protos {
		t := reflect.TypeOf(p)
		m := fakeCapsOf(reflect.PointerTo(t)) & group
		if _, dup := k[m]; dup {
			panic(fmt.Sprintf("fakedb: two prototypes with capabilities %v", m))
		}
		k[m] = t
	}
	return k
}

// fakeCapsOf is the set of optional interfaces a type implements.
func fakeCapsOf(t reflect.Type) FakeCaps {
	var m FakeCaps
	for i := range FakeCapCount {
		if t.Implements(FakeCapInfo[i].iface) {
			m |= 1 << i
		}
	}
	return m
}

// FakeCapsOfValue is the set of optional interfaces a driver value
// implements, limited to group.
func FakeCapsOfValue(v any, group FakeCaps) FakeCaps {
	return fakeCapsOf(reflect.TypeOf(v)) & group
}

// Make builds a value of the combination with mask m (within the group),
// every field pointing at base. The base itself is returned when m is empty.
func (k FakeKind) Make(m FakeCaps, base any) any {
	t, ok := k[m]
	if !ok {
		panic(fmt.Sprintf("fakedb: no prototype with capabilities %v", m))
	}
	if m == 0 {
		return base
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

// FakeHasKinds reports whether every group of m has a prototype.
func FakeHasKinds(m FakeCaps) bool {
	_, c := FakeConnKinds[m&FakeCapsConn]
	_, s := FakeStmtKinds[m&FakeCapsStmt]
	_, r := FakeRowsKinds[m&FakeCapsRows]
	return c && s && r
}

// ---------------------------------------------------------------------------
// The driver

// FakeDSNMode is what a FakeDriver that serves no FakeDB does with a DSN.
type FakeDSNMode int

const (
	FakeDSNNamesDB   FakeDSNMode = iota // the DSN names a FakeDB (NewFakeDB)
	FakeDSNRecord                       // any DSN is accepted and kept by the connector; Connect fails
	FakeDSNEcho                         // any DSN is accepted; Connect fails quoting it verbatim
	FakeDSNEchoOpen                     // OpenConnector fails quoting the DSN verbatim
	FakeDSNEchoPlain                    // Open fails quoting the DSN (with FakePlainDriver)
)

// FakeDriver is the driver: database/sql's driver.Driver and
// driver.DriverContext. Its connectors implement io.Closer.
type FakeDriver struct {
	Caps FakeCaps    // the optional interfaces of what it hands out
	DB   *FakeDB     // the one FakeDB it serves; nil: the DSN decides (Mode)
	Mode FakeDSNMode // without DB
	Name string      // quoted by the DSN modes' errors
}

var (
	_ driver.Driver        = (*FakeDriver)(nil)
	_ driver.DriverContext = (*FakeDriver)(nil)
)

// FakePlainDriver is a FakeDriver without driver.DriverContext:
// database/sql's Open(dsn) path.
type FakePlainDriver struct{ D FakeDriver }

func (p *FakePlainDriver) Open(dsn string) (driver.Conn, error) {
	if p.D.Mode == FakeDSNEchoPlain {
		return nil, fmt.Errorf("%s: no server for %s", p.D.Name, dsn)
	}
	return p.D.Open(dsn)
}

var fakeRegistered sync.Map // name → *FakeDriver

// FakeDriverName registers (once) and returns the name of a FakeDriver with
// capabilities m whose DSN names a FakeDB.
func FakeDriverName(m FakeCaps) string {
	name := fmt.Sprintf("fakedb-%05x", uint32(m))
	if _, loaded := fakeRegistered.LoadOrStore(name, &FakeDriver{Caps: m}); !loaded {
		d, _ := fakeRegistered.Load(name)
		sql.Register(name, d.(*FakeDriver))
	}
	return name
}

// FakeDriverFor is the driver FakeDriverName(m) names.
func FakeDriverFor(m FakeCaps) *FakeDriver {
	d, _ := fakeRegistered.Load(FakeDriverName(m))
	return d.(*FakeDriver)
}

func (d *FakeDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

func (d *FakeDriver) OpenConnector(dsn string) (driver.Connector, error) {
	db := d.DB
	if db == nil {
		switch d.Mode {
		case FakeDSNRecord, FakeDSNEcho, FakeDSNEchoPlain:
			return &FakeConnector{d: d, DSN: dsn}, nil
		case FakeDSNEchoOpen:
			return nil, fmt.Errorf("%s: cannot parse %s", d.Name, dsn)
		}
		v, ok := fakeDBs.Load(dsn)
		if !ok {
			return nil, fmt.Errorf("fakedb: unknown DSN %q", dsn)
		}
		db = v.(*FakeDB)
	}
	c := &FakeConnector{d: d, db: db, DSN: dsn}
	db.mu.Lock()
	db.connectors = append(db.connectors, c)
	db.mu.Unlock()
	return c, nil
}

// Connector is a connector of d for hasql.NewConnector, as if from
// OpenConnector("").
func (d *FakeDriver) Connector() driver.Connector {
	c, err := d.OpenConnector("")
	if err != nil {
		panic(err)
	}
	return c
}

// FakeConnector counts its Connect and Close calls.
type FakeConnector struct {
	d        *FakeDriver
	db       *FakeDB // nil in the DSN modes
	DSN      string  // as given to OpenConnector
	Connects atomic.Int32
	Closes   atomic.Int32
}

var (
	_ driver.Connector = (*FakeConnector)(nil)
	_ io.Closer        = (*FakeConnector)(nil)
)

func (c *FakeConnector) Driver() driver.Driver { return c.d }

func (c *FakeConnector) Close() error {
	c.Closes.Add(1)
	return nil
}

func (c *FakeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.Connects.Add(1)
	db := c.db
	switch {
	case db != nil:
	case c.d.Mode == FakeDSNEcho || c.d.Mode == FakeDSNEchoPlain:
		return nil, fmt.Errorf("%s: cannot connect with %s", c.d.Name, c.DSN)
	default:
		return nil, fmt.Errorf("%s: no connections", c.d.Name)
	}
	n := db.Started.Add(1)
	if db.recording {
		if err := db.injected("connect"); err != nil {
			db.log("Connect -> %s", errText(err))
			return nil, err
		}
	}
	if f := db.fault(ctx, "connect", ""); f != nil {
		return nil, f.Err
	}
	if h := db.OnConnect; h != nil {
		if err := h(ctx, n); err != nil {
			return nil, err
		}
	}
	base := &FakeConn{db: db, caps: c.d.Caps, ID: n, Vars: map[string]string{}, stmts: map[*FakeStmt]bool{}}
	base.tx.c = base
	if db.recording {
		base.id = "c" + strconv.Itoa(db.next("c"))
	}
	ci := FakeConnKinds.Make(c.d.Caps&FakeCapsConn, base).(driver.Conn)
	db.mu.Lock()
	db.conns = append(db.conns, ci)
	db.live[n] = base
	db.mu.Unlock()
	db.Opens.Add(1)
	if db.recording {
		db.log("Connect %s", base.id)
	}
	return ci, nil
}

// ---------------------------------------------------------------------------
// The fake server

var (
	fakeDBs   sync.Map // DSN → *FakeDB
	fakeDBSeq atomic.Int64
)

// FakeDB is one fake server. Hooks must be set before its first
// connection; counters and the log may be read at any time.
type FakeDB struct {
	// Hooks. Each, when set, answers its kind of call in place of the
	// recording behaviour (faults and markers are applied first).
	OnConnect   func(ctx context.Context, n int64) error // n: the attempt's ordinal, 1-based; may block or fail
	OnExec      func(c *FakeConn, ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error)
	OnQuery     func(c *FakeConn, ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error)
	OnPrepare   func(c *FakeConn, ctx context.Context, q string) error // may refuse; the statement is made after it
	OnStmtExec  func(s *FakeStmt, ctx context.Context, args []driver.NamedValue) (driver.Result, error)
	OnStmtQuery func(s *FakeStmt, ctx context.Context, args []driver.NamedValue) (driver.Rows, error)
	OnStmtClose func(s *FakeStmt) error
	OnBegin     func(c *FakeConn) error
	OnCommit    func(c *FakeConn) error
	OnRollback  func(c *FakeConn) error
	OnPing      func(c *FakeConn) error
	OnReset     func(c *FakeConn) error
	OnClose     func(c *FakeConn)
	NumInput    func(q string) int // a statement's NumInput; default: the count of '?', -1 with numinput=-1

	Started   atomic.Int64 // Connect calls
	Opens     atomic.Int64 // successful Connects
	Closes    atomic.Int64 // Close calls (first per connection)
	DupCloses atomic.Int64 // Close on an already closed connection
	Resets    atomic.Int64 // ResetSession calls
	BadResets atomic.Int64 // ResetSession calls that failed (dead connection)
	Overlaps  atomic.Int64 // a connection used by two goroutines at once
	UseClosed atomic.Int64 // a call on a closed connection

	dsn       string
	recording bool

	nfaults atomic.Int32 // len(faults), read without mu on the hot path

	mu         sync.Mutex
	events     []string
	changed    chan struct{} // closed and replaced on every event
	counters   map[string]int
	seen       map[string]bool
	inject     map[string][]error
	faults     []*FakeFault
	cancel     context.CancelFunc
	conns      []driver.Conn
	connectors []*FakeConnector
	live       map[int64]*FakeConn
	stale      error // what a stale statement fails with

	epoch atomic.Int64 // statements prepared before it are stale (ChangeSchema)
}

func newFakeDB() *FakeDB {
	return &FakeDB{
		changed:  make(chan struct{}),
		counters: map[string]int{},
		seen:     map[string]bool{},
		inject:   map[string][]error{},
		live:     map[int64]*FakeConn{},
	}
}

// NewFakeDB makes a recording FakeDB, registered (until the test ends) under
// its DSN for the drivers whose DSN names a FakeDB.
func NewFakeDB(t testing.TB) *FakeDB {
	db := newFakeDB()
	db.recording = true
	db.dsn = fmt.Sprintf("rec-%d", fakeDBSeq.Add(1))
	fakeDBs.Store(db.dsn, db)
	t.Cleanup(func() { fakeDBs.Delete(db.dsn) })
	return db
}

// NewQuietFakeDB is NewFakeDB without the call log: for tests whose hooks
// keep their own.
func NewQuietFakeDB(t testing.TB) *FakeDB {
	db := NewFakeDB(t)
	db.recording = false
	return db
}

// NoopFakeDB makes a FakeDB that records nothing and is registered nowhere:
// bind it to a FakeDriver (DB). With no hooks its calls allocate only what a
// driver must (a statement per prepare, rows per query).
func NoopFakeDB() *FakeDB { return newFakeDB() }

// DSN names the FakeDB (NewFakeDB only).
func (db *FakeDB) DSN() string { return db.dsn }

func (db *FakeDB) log(format string, args ...any) {
	ev := fmt.Sprintf(format, args...)
	db.Log(ev)
}

// Log appends ev to the call log (hooks use it for their own events).
func (db *FakeDB) Log(ev string) {
	db.mu.Lock()
	db.events = append(db.events, ev)
	close(db.changed)
	db.changed = make(chan struct{})
	db.mu.Unlock()
}

func (db *FakeDB) next(kind string) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.counters[kind]++
	return db.counters[kind]
}

// Events returns a copy of the log.
func (db *FakeDB) Events() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]string(nil), db.events...)
}

// TakeEvents returns the log and clears it.
func (db *FakeDB) TakeEvents() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	ev := db.events
	db.events = nil
	return ev
}

// Mark is the position of the next event.
func (db *FakeDB) Mark() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.events)
}

// WaitFor blocks until an event at or after index from satisfies match. It
// synchronises with work database/sql does on its own goroutines (rollback
// or rows close after a context ends); the timeout only guards a hang.
func (db *FakeDB) WaitFor(t testing.TB, from int, match func(ev string) bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		db.mu.Lock()
		for _, ev := range db.events[min(from, len(db.events)):] {
			if match(ev) {
				db.mu.Unlock()
				return
			}
		}
		ch := db.changed
		db.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no awaited driver event after event %d; log:\n%s", from, strings.Join(db.Events(), "\n"))
		}
	}
}

// FailNext makes the next recorded call of kind fail with err (errors queue
// up). For "invalid", IsValid reports false.
func (db *FakeDB) FailNext(kind string, err error) {
	db.mu.Lock()
	db.inject[kind] = append(db.inject[kind], err)
	db.mu.Unlock()
}

// ClearInjections drops FailNext injections no call consumed (the driver
// lacks the interface that would have).
func (db *FakeDB) ClearInjections() {
	db.mu.Lock()
	clear(db.inject)
	db.mu.Unlock()
}

func (db *FakeDB) injected(kind string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	q := db.inject[kind]
	if len(q) == 0 {
		return nil
	}
	db.inject[kind] = q[1:]
	return q[0]
}

// SetCancel gives the cancel! marker the function it calls.
func (db *FakeDB) SetCancel(c context.CancelFunc) {
	db.mu.Lock()
	db.cancel = c
	db.mu.Unlock()
}

// LastConn is the most recently connected inner connection.
func (db *FakeDB) LastConn() driver.Conn {
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.conns) == 0 {
		return nil
	}
	return db.conns[len(db.conns)-1]
}

// Connectors lists the connectors opened on the FakeDB.
func (db *FakeDB) Connectors() []*FakeConnector {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]*FakeConnector(nil), db.connectors...)
}

// LiveIDs returns the ids of the connections open now.
func (db *FakeDB) LiveIDs() map[int64]bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	m := make(map[int64]bool, len(db.live))
	for id := range db.live {
		m[id] = true
	}
	return m
}

// Conn is the open connection with the given id, or nil.
func (db *FakeDB) Conn(id int64) *FakeConn {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.live[id]
}

// ChangeSchema makes every statement prepared so far fail with err when
// executed (a stale statement: MySQL 1615, PostgreSQL 0A000).
func (db *FakeDB) ChangeSchema(err error) {
	db.mu.Lock()
	db.stale = err
	db.epoch.Add(1)
	db.mu.Unlock()
}

// Stale returns the error s fails with if the schema changed since it was
// prepared, else nil (for hooks; without them statements check it
// themselves).
func (db *FakeDB) Stale(s *FakeStmt) error {
	if int64(s.Epoch) >= db.epoch.Load() {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.stale
}

// trigger applies the markers in query text q to a call (ctx is nil for
// calls without a context; adhoc marks a connection's own Exec or Query).
func (db *FakeDB) trigger(ctx context.Context, q string, adhoc bool) error {
	if strings.Contains(q, "badconn-once!") {
		db.mu.Lock()
		first := !db.seen[q]
		db.seen[q] = true
		db.mu.Unlock()
		if first {
			return driver.ErrBadConn
		}
	}
	if adhoc && strings.Contains(q, "skip!") {
		return driver.ErrSkip
	}
	if strings.Contains(q, "fail!") {
		return &FakeError{Code: 42, Msg: "failed: " + q}
	}
	if ctx != nil && strings.Contains(q, "cancel!") {
		db.mu.Lock()
		cancel := db.cancel
		db.mu.Unlock()
		if cancel == nil {
			return errors.New("fakedb: cancel! without SetCancel")
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// ---------------------------------------------------------------------------
// Faults

// FakeFault makes calls fail. Faults form a queue: a call is counted only by
// the first fault it matches that has not fired out.
type FakeFault struct {
	Kind  string        // the kind of call (see the file comment); "" matches every kind
	Match string        // a substring of the query text; "" matches every call
	Nth   int           // fire on the Nth matching call (1-based) and retire; 0: every matching call
	Err   error         // what the call returns; nil: driver.ErrBadConn
	Sent  bool          // the call reaches the server (its effect and log happen) before it fails
	Kill  bool          // the session is dead from then on (FakeConn.Kill)
	Delay time.Duration // latency before the call proceeds or fails (honours the call's context)

	seen int
}

// Inject adds a fault to the queue.
func (db *FakeDB) Inject(f FakeFault) {
	if f.Err == nil {
		f.Err = driver.ErrBadConn
	}
	db.mu.Lock()
	db.faults = append(db.faults, &f)
	db.nfaults.Store(int32(len(db.faults)))
	db.mu.Unlock()
}

// fault returns the fault a call of kind with query text q hits, or nil,
// after the fault's latency.
func (db *FakeDB) fault(ctx context.Context, kind, q string) *FakeFault {
	if db.nfaults.Load() == 0 {
		return nil
	}
	db.mu.Lock()
	var hit *FakeFault
	for i, f := range db.faults {
		if (f.Kind != "" && f.Kind != kind) || !strings.Contains(q, f.Match) {
			continue
		}
		f.seen++
		if f.Nth == 0 || f.seen == f.Nth {
			hit = f
			if f.Nth != 0 {
				db.faults = append(db.faults[:i:i], db.faults[i+1:]...)
				db.nfaults.Store(int32(len(db.faults)))
			}
		}
		break
	}
	db.mu.Unlock()
	if hit != nil && hit.Delay > 0 {
		t := time.NewTimer(hit.Delay)
		defer t.Stop()
		if ctx == nil {
			ctx = context.Background()
		}
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return hit
}

// ---------------------------------------------------------------------------
// Values the tests pass as arguments

// ErrFakeSentinel is wrapped by every *FakeError.
var ErrFakeSentinel = errors.New("fakedb sentinel")

// FakeError is the driver's own error type.
type FakeError struct {
	Code int
	Msg  string
}

func (e *FakeError) Error() string { return fmt.Sprintf("fid error %d: %s", e.Code, e.Msg) }
func (e *FakeError) Unwrap() error { return ErrFakeSentinel }

// FakeValuer is a driver.Valuer that logs each Value call.
type FakeValuer struct {
	Rec *FakeDB
	S   string
}

func (v FakeValuer) Value() (driver.Value, error) {
	v.Rec.log("Valuer.Value %s", v.S)
	return "valued:" + v.S, nil
}

func (v FakeValuer) String() string { return "valuer(" + v.S + ")" }

// FakeRemove makes a checker return driver.ErrRemoveArgument.
type FakeRemove struct{}

// FakeChecked is converted by a checker (and by nothing else).
type FakeChecked struct{ S string }

// FakeReject makes a checker fail with a *FakeError.
type FakeReject struct{ S string }

// FakeCCOnly is converted by a ColumnConverter (and by nothing else).
type FakeCCOnly struct{ S string }

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

func namedValues(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return "error " + err.Error()
}

// check is the NamedValueChecker of connections and statements.
func (db *FakeDB) check(who string, nv *driver.NamedValue) error {
	in := ""
	if db.recording {
		in = fmtNV(*nv)
	}
	var err error
	switch v := nv.Value.(type) {
	case FakeRemove:
		err = driver.ErrRemoveArgument
	case FakeChecked:
		nv.Value = "checked:" + v.S
	case FakeReject:
		err = &FakeError{Code: 7, Msg: "rejected " + v.S}
	default:
		err = driver.ErrSkip
	}
	if db.recording {
		db.log("%s CheckNamedValue %s -> %s", who, in, errText(err))
	}
	return err
}

// ---------------------------------------------------------------------------
// Connections

// FakeConn is the base connection: driver.Conn and nothing optional.
type FakeConn struct {
	db   *FakeDB
	caps FakeCaps
	ID   int64             // 1-based, in the order of Connect calls on its FakeDB
	id   string            // "c<n>" in the log
	Vars map[string]string // session state for hooks; touched only by the session's user

	stmts     map[*FakeStmt]bool // open statements; touched only by the session's user
	tx        fakeTx             // every transaction when the FakeDB does not record
	inUse     atomic.Int32
	closed    atomic.Bool
	dead      atomic.Bool // every call fails with driver.ErrBadConn, IsValid false
	failReset atomic.Bool // ResetSession fails as if the server had gone
}

// FakeConnOf returns the base of a connection the fakedb driver handed out
// (what Session.Unwrap returns), or nil.
func FakeConnOf(c driver.Conn) *FakeConn {
	if f, ok := c.(interface{ Fake() *FakeConn }); ok {
		return f.Fake()
	}
	return nil
}

// Fake returns c, through any combination that embeds it.
func (c *FakeConn) Fake() *FakeConn { return c }

// DB is the connection's server.
func (c *FakeConn) DB() *FakeDB { return c.db }

// Kill makes the session dead: every later call fails with
// driver.ErrBadConn, ResetSession fails and IsValid reports false.
func (c *FakeConn) Kill() { c.dead.Store(true) }

// OpenStmts is the number of statements prepared and not closed.
func (c *FakeConn) OpenStmts() int { return len(c.stmts) }

// enter and exit bracket every call, to catch overlapping use and use after
// close.
func (c *FakeConn) enter() {
	if c.inUse.Add(1) != 1 {
		c.db.Overlaps.Add(1)
	}
	if c.closed.Load() {
		c.db.UseClosed.Add(1)
	}
}

func (c *FakeConn) exit() { c.inUse.Add(-1) }

// failed applies fault f (when f is not nil) to the connection.
func (c *FakeConn) failed(f *FakeFault) error {
	if f.Kill {
		c.Kill()
	}
	return f.Err
}

func (c *FakeConn) Prepare(q string) (driver.Stmt, error) {
	if c.db.recording {
		c.db.log("%s Prepare %q", c.id, q)
	}
	return c.prepare(nil, q)
}

func (c *FakeConn) Close() error {
	if c.db.recording {
		c.db.log("%s Close", c.id)
	}
	if !c.closed.CompareAndSwap(false, true) {
		c.db.DupCloses.Add(1)
		return nil
	}
	c.db.mu.Lock()
	delete(c.db.live, c.ID)
	c.db.mu.Unlock()
	c.db.Closes.Add(1)
	if h := c.db.OnClose; h != nil {
		h(c)
	}
	return nil
}

func (c *FakeConn) Begin() (driver.Tx, error) {
	if c.db.recording {
		c.db.log("%s Begin", c.id)
	}
	return c.begin(nil)
}

func (c *FakeConn) prepare(ctx context.Context, q string) (driver.Stmt, error) {
	c.enter()
	defer c.exit()
	db := c.db
	f, err := c.admit(ctx, "prepare", q, false, c.id)
	if err != nil {
		return nil, err
	}
	if h := db.OnPrepare; h != nil {
		if err := h(c, ctx, q); err != nil {
			return nil, err
		}
	}
	var n int
	if db.NumInput != nil {
		n = db.NumInput(q)
	} else {
		n = strings.Count(q, "?")
		if strings.Contains(q, "numinput=-1") {
			n = -1
		}
	}
	var base *FakeStmt
	var stmt driver.Stmt
	if c.caps&FakeCapsStmt == FakeStmtExecContext|FakeStmtQueryContext {
		// The benchmarks' statement: one allocation, as a driver's.
		cs := &fakeCtxStmt{FakeStmt: FakeStmt{c: c, SQL: q, numInput: n}}
		cs.FSExecCtx.S, cs.FSQueryCtx.S = &cs.FakeStmt, &cs.FakeStmt
		base, stmt = &cs.FakeStmt, cs
	} else {
		base = &FakeStmt{c: c, SQL: q, numInput: n}
		stmt = FakeStmtKinds.Make(c.caps&FakeCapsStmt, base).(driver.Stmt)
	}
	if db.recording {
		base.id = c.id + ".s" + strconv.Itoa(db.next("s"))
		db.log("%s   -> %s", c.id, base.id)
	}
	base.Epoch = int(db.epoch.Load())
	c.stmts[base] = true
	if f != nil {
		return nil, c.failed(f)
	}
	return stmt, nil
}

func (c *FakeConn) begin(ctx context.Context) (driver.Tx, error) {
	c.enter()
	defer c.exit()
	db := c.db
	if c.dead.Load() {
		return nil, driver.ErrBadConn
	}
	if f := db.fault(ctx, "begin", ""); f != nil {
		return nil, c.failed(f)
	}
	if db.recording {
		if err := db.injected("begin"); err != nil {
			db.log("%s   -> %s", c.id, errText(err))
			return nil, err
		}
	}
	if h := db.OnBegin; h != nil {
		if err := h(c); err != nil {
			return nil, err
		}
	}
	if !db.recording {
		return &c.tx, nil // nothing to tell transactions apart by: no allocation
	}
	tx := &fakeTx{c: c, id: c.id + ".t" + strconv.Itoa(db.next("t"))}
	db.log("%s   -> %s", c.id, tx.id)
	return tx, nil
}

// fakeNoopResult is shared: a result has no state worth allocating for.
var fakeNoopResult driver.Result = driver.RowsAffected(1)

func (c *FakeConn) exec(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.enter()
	defer c.exit()
	db := c.db
	f, err := c.admit(ctx, "exec", q, true, c.id)
	if err != nil {
		return nil, err
	}
	var res driver.Result = fakeNoopResult
	if h := db.OnExec; h != nil {
		res, err = h(c, ctx, q, args)
	} else if db.recording {
		res = &fakeResult{db: db, who: c.id, last: int64(len(q)), affected: int64(len(args))}
	}
	if f != nil {
		return nil, c.failed(f)
	}
	return res, err
}

func (c *FakeConn) query(ctx context.Context, q string, args []driver.NamedValue, shown string) (driver.Rows, error) {
	c.enter()
	defer c.exit()
	db := c.db
	f, err := c.admit(ctx, "query", q, true, c.id)
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if h := db.OnQuery; h != nil {
		rows, err = h(c, ctx, q, args)
	} else {
		rows = newFakeRows(c, c.id, q, shown)
	}
	if f != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, c.failed(f)
	}
	return rows, err
}

// FExecCtx gives a connection driver.ExecerContext.
type FExecCtx struct{ C *FakeConn }

func (x FExecCtx) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if x.C.db.recording {
		x.C.db.log("%s ExecContext %q %s", x.C.id, q, fmtNVs(args))
	}
	return x.C.exec(ctx, q, args)
}

// FExec gives a connection driver.Execer.
type FExec struct{ C *FakeConn }

func (x FExec) Exec(q string, args []driver.Value) (driver.Result, error) {
	if x.C.db.recording {
		x.C.db.log("%s Exec %q %s", x.C.id, q, fmtValues(args))
	}
	return x.C.exec(nil, q, namedValues(args))
}

// FQueryCtx gives a connection driver.QueryerContext.
type FQueryCtx struct{ C *FakeConn }

func (x FQueryCtx) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	shown := ""
	if x.C.db.recording {
		shown = fmtNVs(args)
		x.C.db.log("%s QueryContext %q %s", x.C.id, q, shown)
	}
	return x.C.query(ctx, q, args, shown)
}

// FQuery gives a connection driver.Queryer.
type FQuery struct{ C *FakeConn }

func (x FQuery) Query(q string, args []driver.Value) (driver.Rows, error) {
	shown := ""
	if x.C.db.recording {
		shown = fmtValues(args)
		x.C.db.log("%s Query %q %s", x.C.id, q, shown)
	}
	return x.C.query(nil, q, namedValues(args), shown)
}

// FPrepCtx gives a connection driver.ConnPrepareContext.
type FPrepCtx struct{ C *FakeConn }

func (x FPrepCtx) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if x.C.db.recording {
		x.C.db.log("%s PrepareContext %q", x.C.id, q)
	}
	return x.C.prepare(ctx, q)
}

// FBeginTx gives a connection driver.ConnBeginTx.
type FBeginTx struct{ C *FakeConn }

func (x FBeginTx) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if x.C.db.recording {
		x.C.db.log("%s BeginTx isolation=%d readonly=%v", x.C.id, opts.Isolation, opts.ReadOnly)
	}
	return x.C.begin(ctx)
}

// FPing gives a connection driver.Pinger.
type FPing struct{ C *FakeConn }

func (x FPing) Ping(ctx context.Context) error {
	c := x.C
	c.enter()
	defer c.exit()
	if c.dead.Load() {
		return driver.ErrBadConn
	}
	if f := c.db.fault(ctx, "ping", ""); f != nil {
		return c.failed(f)
	}
	var err error
	if c.db.recording {
		err = c.db.injected("ping")
		c.db.log("%s Ping -> %s", c.id, errText(err))
	}
	if h := c.db.OnPing; h != nil && err == nil {
		err = h(c)
	}
	return err
}

// FReset gives a connection driver.SessionResetter.
type FReset struct{ C *FakeConn }

func (x FReset) ResetSession(ctx context.Context) error {
	c := x.C
	c.enter()
	defer c.exit()
	db := c.db
	db.Resets.Add(1)
	var err error
	if f := db.fault(ctx, "reset", ""); f != nil {
		err = c.failed(f)
	}
	if db.recording && err == nil {
		err = db.injected("reset")
		db.log("%s ResetSession -> %s", c.id, errText(err))
	}
	if err == nil && (c.dead.Load() || c.failReset.Load()) {
		err = driver.ErrBadConn
	}
	if err != nil {
		db.BadResets.Add(1)
		return err
	}
	if h := db.OnReset; h != nil {
		return h(c)
	}
	return nil
}

// FValid gives a connection driver.Validator.
type FValid struct{ C *FakeConn }

func (x FValid) IsValid() bool {
	c := x.C
	ok := !c.dead.Load() && !c.closed.Load() && c.db.fault(nil, "invalid", "") == nil
	if c.db.recording {
		ok = ok && c.db.injected("invalid") == nil
		c.db.log("%s IsValid -> %v", c.id, ok)
	}
	return ok
}

// FCheck gives a connection driver.NamedValueChecker.
type FCheck struct{ C *FakeConn }

func (x FCheck) CheckNamedValue(nv *driver.NamedValue) error {
	return x.C.db.check(x.C.id, nv)
}

// fakeResult logs the calls database/sql makes on a result.
type fakeResult struct {
	db             *FakeDB
	who            string
	last, affected int64
}

func (r *fakeResult) LastInsertId() (int64, error) {
	r.db.log("%s Result.LastInsertId", r.who)
	return r.last, nil
}

func (r *fakeResult) RowsAffected() (int64, error) {
	r.db.log("%s Result.RowsAffected", r.who)
	return r.affected, nil
}

// fakeTx is a transaction.
type fakeTx struct {
	c  *FakeConn
	id string
}

func (t *fakeTx) Commit() error {
	db := t.c.db
	f := db.fault(nil, "commit", "")
	if f != nil && !f.Sent {
		return t.c.failed(f)
	}
	var err error
	if db.recording {
		err = db.injected("commit")
		db.log("%s Commit -> %s", t.id, errText(err))
	}
	if h := db.OnCommit; h != nil && err == nil {
		err = h(t.c)
	}
	if f != nil {
		return t.c.failed(f) // the commit reached the server; its answer did not come back
	}
	return err
}

func (t *fakeTx) Rollback() error {
	db := t.c.db
	if f := db.fault(nil, "rollback", ""); f != nil {
		return t.c.failed(f)
	}
	var err error
	if db.recording {
		err = db.injected("rollback")
		db.log("%s Rollback -> %s", t.id, errText(err))
	}
	if h := db.OnRollback; h != nil && err == nil {
		err = h(t.c)
	}
	return err
}

// ---------------------------------------------------------------------------
// Statements

// FakeStmt is the base statement: driver.Stmt and nothing optional.
type FakeStmt struct {
	c        *FakeConn
	id       string
	SQL      string
	Epoch    int  // the FakeDB's schema epoch when prepared (ChangeSchema)
	Closed   bool // touched only by the session's user
	numInput int
}

// Conn is the statement's connection.
func (s *FakeStmt) Conn() *FakeConn { return s.c }

func (s *FakeStmt) Close() error {
	db := s.c.db
	if db.recording {
		db.log("%s Close", s.id)
	}
	if h := db.OnStmtClose; h != nil {
		return h(s)
	}
	s.Forget()
	return nil
}

// Forget marks s closed and drops it from its connection's open statements
// (for OnStmtClose hooks).
func (s *FakeStmt) Forget() {
	s.Closed = true
	delete(s.c.stmts, s)
}

func (s *FakeStmt) NumInput() int {
	if s.c.db.recording {
		s.c.db.log("%s NumInput -> %d", s.id, s.numInput)
	}
	return s.numInput
}

func (s *FakeStmt) Exec(args []driver.Value) (driver.Result, error) {
	if s.c.db.recording {
		s.c.db.log("%s Exec %s", s.id, fmtValues(args))
	}
	return s.exec(nil, namedValues(args))
}

func (s *FakeStmt) Query(args []driver.Value) (driver.Rows, error) {
	shown := ""
	if s.c.db.recording {
		shown = fmtValues(args)
		s.c.db.log("%s Query %s", s.id, shown)
	}
	return s.query(nil, namedValues(args), shown)
}

// admit is what every call of kind with query text q goes through first: a
// dead session's ErrBadConn, the faults due (one that fails before the
// server returns its error; one that fails after, f, is returned for the
// caller to apply), and the query-text markers. adhoc: an ad-hoc call, which
// the skip! marker concerns; id names the caller in the log.
func (c *FakeConn) admit(ctx context.Context, kind, q string, adhoc bool, id string) (f *FakeFault, err error) {
	db := c.db
	if c.dead.Load() {
		return nil, driver.ErrBadConn
	}
	if f = db.fault(ctx, kind, q); f != nil && !f.Sent {
		return nil, c.failed(f)
	}
	if err := db.trigger(ctx, q, adhoc); err != nil {
		if db.recording {
			db.log("%s   -> %s", id, errText(err))
		}
		return nil, err
	}
	return f, nil
}

// run applies what every statement execution goes through: the session's
// state, faults, markers and the schema epoch. f is a fault to apply after
// the execution (Sent).
func (s *FakeStmt) run(ctx context.Context, kind string) (f *FakeFault, err error) {
	db := s.c.db
	if f, err = s.c.admit(ctx, kind, s.SQL, false, s.id); err != nil {
		return nil, err
	}
	if db.OnStmtExec == nil && db.OnStmtQuery == nil {
		if err := db.Stale(s); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (s *FakeStmt) exec(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	c, db := s.c, s.c.db
	c.enter()
	defer c.exit()
	f, err := s.run(ctx, "stmtexec")
	if err != nil {
		return nil, err
	}
	var res driver.Result = fakeNoopResult
	if h := db.OnStmtExec; h != nil {
		res, err = h(s, ctx, args)
	} else if db.recording {
		res = &fakeResult{db: db, who: s.id, last: int64(len(s.SQL)), affected: int64(len(args))}
	}
	if f != nil {
		return nil, c.failed(f)
	}
	return res, err
}

func (s *FakeStmt) query(ctx context.Context, args []driver.NamedValue, shown string) (driver.Rows, error) {
	c, db := s.c, s.c.db
	c.enter()
	defer c.exit()
	f, err := s.run(ctx, "stmtquery")
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if h := db.OnStmtQuery; h != nil {
		rows, err = h(s, ctx, args)
	} else {
		rows = newFakeRows(c, s.id, s.SQL, shown)
	}
	if f != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, c.failed(f)
	}
	return rows, err
}

// fakeCtxStmt is the combination FSExecCtx+FSQueryCtx in one allocation.
type fakeCtxStmt struct {
	FakeStmt
	FSExecCtx
	FSQueryCtx
}

// FSExecCtx gives a statement driver.StmtExecContext.
type FSExecCtx struct{ S *FakeStmt }

func (x FSExecCtx) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if x.S.c.db.recording {
		x.S.c.db.log("%s ExecContext %s", x.S.id, fmtNVs(args))
	}
	return x.S.exec(ctx, args)
}

// FSQueryCtx gives a statement driver.StmtQueryContext.
type FSQueryCtx struct{ S *FakeStmt }

func (x FSQueryCtx) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	shown := ""
	if x.S.c.db.recording {
		shown = fmtNVs(args)
		x.S.c.db.log("%s QueryContext %s", x.S.id, shown)
	}
	return x.S.query(ctx, args, shown)
}

// FSCheck gives a statement driver.NamedValueChecker.
type FSCheck struct{ S *FakeStmt }

func (x FSCheck) CheckNamedValue(nv *driver.NamedValue) error {
	return x.S.c.db.check(x.S.id, nv)
}

// FSConv gives a statement driver.ColumnConverter.
type FSConv struct{ S *FakeStmt }

func (x FSConv) ColumnConverter(idx int) driver.ValueConverter {
	if x.S.c.db.recording {
		x.S.c.db.log("%s ColumnConverter %d", x.S.id, idx)
	}
	return fakeConverter{s: x.S, idx: idx}
}

type fakeConverter struct {
	s   *FakeStmt
	idx int
}

func (c fakeConverter) ConvertValue(v any) (driver.Value, error) {
	var out driver.Value
	var err error
	if cc, ok := v.(FakeCCOnly); ok {
		out = "cc:" + cc.S
	} else {
		out, err = driver.DefaultParameterConverter.ConvertValue(v)
	}
	if c.s.c.db.recording {
		c.s.c.db.log("%s ConvertValue %d %T(%v) -> %s", c.s.id, c.idx, v, v, errText(err))
	}
	return out, err
}

// ---------------------------------------------------------------------------
// Rows

// FakeRows is the base result of the recording behaviour: driver.Rows and
// nothing optional. Each result set has the columns q (the query), n (a
// counter) and args (the arguments as the driver received them).
type FakeRows struct {
	c    *FakeConn
	id   string
	q    string
	args string
	sets int
	rows int
	set  int
	pos  int
}

// fakeNoopRows is the no-op behaviour's result: one row of two int64
// columns, id 1 and v 2.
type fakeNoopRows struct{ done bool }

var fakeNoopColumns = []string{"id", "v"}

func (r *fakeNoopRows) Columns() []string { return fakeNoopColumns }
func (r *fakeNoopRows) Close() error      { return nil }
func (r *fakeNoopRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0], dest[1] = int64(1), int64(2)
	return nil
}

func newFakeRows(c *FakeConn, who, q, args string) driver.Rows {
	if !c.db.recording {
		// One row (id 1, v 2), for the benchmarks: one small allocation,
		// as a driver must.
		return &fakeNoopRows{}
	}
	base := &FakeRows{
		c: c, id: c.id + ".r" + strconv.Itoa(c.db.next("r")), q: q, args: args,
		sets: queryParam(q, "sets", 1), rows: queryParam(q, "rows", 2),
	}
	c.db.log("%s   -> %s", who, base.id)
	return FakeRowsKinds.Make(c.caps&FakeCapsRows, base).(driver.Rows)
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

func (r *FakeRows) Columns() []string {
	r.c.db.log("%s Columns", r.id)
	sfx := ""
	if r.set > 0 {
		sfx = strconv.Itoa(r.set)
	}
	return []string{"q" + sfx, "n" + sfx, "args" + sfx}
}

func (r *FakeRows) Close() error {
	r.c.db.log("%s Close", r.id)
	return nil
}

func (r *FakeRows) Next(dest []driver.Value) error {
	if r.pos >= r.rows {
		r.c.db.log("%s Next -> EOF", r.id)
		return io.EOF
	}
	r.c.db.log("%s Next", r.id)
	dest[0] = r.q
	dest[1] = int64(100*r.set + r.pos)
	dest[2] = r.args
	r.pos++
	return nil
}

// FRNext gives rows driver.RowsNextResultSet.
type FRNext struct{ R *FakeRows }

func (x FRNext) HasNextResultSet() bool {
	has := x.R.set+1 < x.R.sets
	x.R.c.db.log("%s HasNextResultSet -> %v", x.R.id, has)
	return has
}

func (x FRNext) NextResultSet() error {
	x.R.c.db.log("%s NextResultSet", x.R.id)
	if x.R.set+1 >= x.R.sets {
		return io.EOF
	}
	x.R.set++
	x.R.pos = 0
	return nil
}

// FRScan gives rows driver.RowsColumnTypeScanType.
type FRScan struct{ R *FakeRows }

func (x FRScan) ColumnTypeScanType(i int) reflect.Type {
	x.R.c.db.log("%s ColumnTypeScanType %d", x.R.id, i)
	if i == 1 {
		return reflect.TypeFor[int64]()
	}
	return reflect.TypeFor[string]()
}

// FRDBType gives rows driver.RowsColumnTypeDatabaseTypeName.
type FRDBType struct{ R *FakeRows }

func (x FRDBType) ColumnTypeDatabaseTypeName(i int) string {
	x.R.c.db.log("%s ColumnTypeDatabaseTypeName %d", x.R.id, i)
	return [...]string{"TEXT", "INT8", "VARCHAR"}[i]
}

// FRLength gives rows driver.RowsColumnTypeLength.
type FRLength struct{ R *FakeRows }

func (x FRLength) ColumnTypeLength(i int) (int64, bool) {
	x.R.c.db.log("%s ColumnTypeLength %d", x.R.id, i)
	switch i {
	case 0:
		return 1 << 30, true
	case 2:
		return 255, true
	}
	return 0, false
}

// FRNull gives rows driver.RowsColumnTypeNullable.
type FRNull struct{ R *FakeRows }

func (x FRNull) ColumnTypeNullable(i int) (bool, bool) {
	x.R.c.db.log("%s ColumnTypeNullable %d", x.R.id, i)
	return i == 2, true
}

// FRPrec gives rows driver.RowsColumnTypePrecisionScale.
type FRPrec struct{ R *FakeRows }

func (x FRPrec) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	x.R.c.db.log("%s ColumnTypePrecisionScale %d", x.R.id, i)
	if i == 1 {
		return 19, 0, true
	}
	return 0, 0, false
}

// FakeSliceRows is a fixed result, for hooks: Vals is read, never written.
// CloseErr, when set, is what Close returns.
type FakeSliceRows struct {
	Cols     []string
	Vals     [][]driver.Value
	CloseErr error

	i int
}

// FakeOneRow is a result of one row with one column "v".
func FakeOneRow(v driver.Value) *FakeSliceRows {
	return &FakeSliceRows{Cols: []string{"v"}, Vals: [][]driver.Value{{v}}}
}

func (r *FakeSliceRows) Columns() []string { return r.Cols }
func (r *FakeSliceRows) Close() error      { return r.CloseErr }
func (r *FakeSliceRows) Next(dest []driver.Value) error {
	if r.i >= len(r.Vals) {
		return io.EOF
	}
	copy(dest, r.Vals[r.i])
	r.i++
	return nil
}

// ---------------------------------------------------------------------------
// The fake's own test: faults do what FakeFault says.

func TestFakeDBFaults(t *testing.T) {
	errX := errors.New("injected")
	for _, tc := range []struct {
		name   string
		faults []FakeFault
		calls  []string // queries run with ExecContext, in order
		want   []string // "ok", "err" (errX), "bad" (driver.ErrBadConn)
		execs  int      // calls that reached the server (OnExec ran)
		dead   bool     // the session is dead afterwards
	}{
		{"no fault", nil, []string{"a", "b"}, []string{"ok", "ok"}, 2, false},
		{"Nth call", []FakeFault{{Kind: "exec", Nth: 2, Err: errX}}, []string{"a", "a", "a"}, []string{"ok", "err", "ok"}, 2, false},
		{"every matching call", []FakeFault{{Kind: "exec", Match: "b", Err: errX}}, []string{"a", "b", "b"}, []string{"ok", "err", "err"}, 1, false},
		{"other kind", []FakeFault{{Kind: "query", Err: errX}}, []string{"a"}, []string{"ok"}, 1, false},
		{"queued", []FakeFault{{Kind: "exec", Nth: 1, Err: errX}, {Kind: "exec", Nth: 1}}, []string{"a", "a", "a"}, []string{"err", "bad", "ok"}, 1, false},
		{"sent before failing", []FakeFault{{Kind: "exec", Nth: 1, Err: errX, Sent: true}}, []string{"a"}, []string{"err"}, 1, false},
		{"kill", []FakeFault{{Kind: "exec", Nth: 1, Kill: true}}, []string{"a", "b"}, []string{"bad", "bad"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := NoopFakeDB()
			execs := 0
			db.OnExec = func(*FakeConn, context.Context, string, []driver.NamedValue) (driver.Result, error) {
				execs++
				return driver.RowsAffected(1), nil
			}
			for _, f := range tc.faults {
				db.Inject(f)
			}
			conn, err := (&FakeDriver{Caps: FakeCapsContext, DB: db}).Open("")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for i, q := range tc.calls {
				_, err := conn.(driver.ExecerContext).ExecContext(context.Background(), q, nil)
				got := "ok"
				switch {
				case errors.Is(err, errX):
					got = "err"
				case errors.Is(err, driver.ErrBadConn):
					got = "bad"
				case err != nil:
					got = err.Error()
				}
				if got != tc.want[i] {
					t.Errorf("call %d (%q): %s, want %s", i+1, q, got, tc.want[i])
				}
			}
			if execs != tc.execs {
				t.Errorf("%d calls reached the server, want %d", execs, tc.execs)
			}
			valid := conn.(driver.Validator).IsValid()
			reset := conn.(driver.SessionResetter).ResetSession(context.Background())
			if valid == tc.dead || (reset != nil) != tc.dead {
				t.Errorf("IsValid %v, ResetSession %v; want dead=%v", valid, reset, tc.dead)
			}
		})
	}

	t.Run("latency honours the context", func(t *testing.T) {
		db := NoopFakeDB()
		db.Inject(FakeFault{Kind: "ping", Delay: time.Hour, Nth: 1, Err: errX})
		conn, err := (&FakeDriver{Caps: FakeCapsContext, DB: db}).Open("")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := conn.(driver.Pinger).Ping(ctx); !errors.Is(err, errX) {
			t.Fatalf("Ping: %v, want the injected error after the context ended", err)
		}
	})
}
