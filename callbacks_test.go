package hasql_test

// Tests for the interceptor chains (OCI user callbacks): order across the
// connector's own callbacks and loaded packages, the outcome rules, where each
// Fn fires, recursion, chaining with Get, and concurrent (de)registration.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
)

// ---------------------------------------------------------------------------
// Helpers: a recorder, a tiny inner driver, sqlmock plumbing, test packages.

var cbSeq atomic.Int64

// recorder collects the lines callbacks and the tiny driver print.
type recorder struct {
	mu       sync.Mutex
	lines    []string
	exitErrs []error

	// Read by the packages' replacement callbacks: the package label whose
	// replacement bypasses the rest of the chain, and what it returns.
	bypass    string
	bypassErr error
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
}

// take returns the lines so far and clears them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lines
	r.lines = nil
	return l
}

type recKey struct{}

func withRec(ctx context.Context, r *recorder) context.Context {
	return context.WithValue(ctx, recKey{}, r)
}

func recFrom(ctx context.Context) *recorder {
	if ctx == nil {
		return nil
	}
	r, _ := ctx.Value(recKey{}).(*recorder)
	return r
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// The tiny inner driver, "hasqlcbtest": fakedb's driver, whose hooks record
// every call it gets in the backend's recorder, so tests see exactly where the
// driver call falls among the callbacks. Its DSN names the backend's FakeDB.
// It has no DriverContext, so that a DSN naming no backend fails at the first
// connection, not at Open.
const tdName = "hasqlcbtest"

// tdCaps: ad-hoc work, PrepareContext, Ping, reset and argument checks; no
// BeginTx, no Validator; statements and rows with nothing optional.
const tdCaps = hasql.FakeExecerContext | hasql.FakeQueryerContext | hasql.FakeConnPrepareContext |
	hasql.FakePinger | hasql.FakeSessionResetter | hasql.FakeConnChecker

func init() { sql.Register(tdName, &hasql.FakePlainDriver{D: hasql.FakeDriver{Caps: tdCaps}}) }

type tdBackend struct {
	db       *hasql.FakeDB
	rec      *recorder
	skipExec bool // ExecContext returns driver.ErrSkip, as a driver without ad-hoc exec
	quiet    bool // record nothing (concurrency test)
}

func (b *tdBackend) log(s string) {
	if !b.quiet {
		b.rec.add("driver: " + s)
	}
}

func newTD(t testing.TB) (string, *tdBackend) {
	b := &tdBackend{db: hasql.NewQuietFakeDB(t), rec: &recorder{}}
	d := b.db
	d.OnPrepare = func(_ *hasql.FakeConn, _ context.Context, q string) error { b.log("prepare " + q); return nil }
	d.OnClose = func(*hasql.FakeConn) { b.log("close") }
	d.OnBegin = func(*hasql.FakeConn) error { b.log("begin"); return nil }
	d.OnCommit = func(*hasql.FakeConn) error { b.log("commit"); return nil }
	d.OnRollback = func(*hasql.FakeConn) error { b.log("rollback"); return nil }
	d.OnExec = func(_ *hasql.FakeConn, _ context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
		if b.skipExec {
			b.log("exec " + q + " -> ErrSkip")
			return nil, driver.ErrSkip
		}
		b.log("exec " + q)
		return driver.RowsAffected(1), nil
	}
	d.OnQuery = func(_ *hasql.FakeConn, _ context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
		b.log("query " + q)
		return oneRow(int64(1)), nil
	}
	d.OnPing = func(*hasql.FakeConn) error { b.log("ping"); return nil }
	d.OnReset = func(*hasql.FakeConn) error { b.log("reset"); return nil }
	d.NumInput = func(string) int { return -1 }
	d.OnStmtClose = func(s *hasql.FakeStmt) error { b.log("stmt close " + s.SQL); s.Forget(); return nil }
	d.OnStmtExec = func(s *hasql.FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Result, error) {
		b.log("stmt exec " + s.SQL)
		return driver.RowsAffected(1), nil
	}
	d.OnStmtQuery = func(s *hasql.FakeStmt, _ context.Context, _ []driver.NamedValue) (driver.Rows, error) {
		b.log("stmt query " + s.SQL)
		return oneRow(int64(1)), nil
	}
	return d.DSN(), b
}

// sliceRows is a minimal driver.Rows, for replacement callbacks (and what
// the tiny driver's hooks answer).
type sliceRows struct {
	cols   []string
	vals   [][]driver.Value
	i      int
	closed atomic.Bool
}

func oneRow(v driver.Value) *sliceRows {
	return &sliceRows{cols: []string{"v"}, vals: [][]driver.Value{{v}}}
}

func (r *sliceRows) Columns() []string { return r.cols }
func (r *sliceRows) Close() error      { r.closed.Store(true); return nil }
func (r *sliceRows) Next(dest []driver.Value) error {
	if r.i >= len(r.vals) {
		return io.EOF
	}
	copy(dest, r.vals[r.i])
	r.i++
	return nil
}

// openTD opens a hasql *sql.DB over the tiny driver; params is appended to
// the DSN (e.g. "?hasql.callbacks=a;b").
func openTD(t *testing.T, params string, opts ...hasql.Option) (*sql.DB, *tdBackend, *hasql.Callbacks) {
	t.Helper()
	name, b := newTD(t)
	var db *sql.DB
	var err error
	if len(opts) > 0 {
		db, err = hasql.Open(tdName, name+params, opts...)
	} else {
		db, err = sql.Open("hasql", tdName+":"+name+params)
	}
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a hasql db")
	}
	return db, b, c.Callbacks()
}

// openMock opens a hasql *sql.DB over a fresh sqlmock (exact query matching).
func openMock(t *testing.T, params string) (*sql.DB, sqlmock.Sqlmock, *hasql.Callbacks) {
	t.Helper()
	name := fmt.Sprintf("cbmock%d", cbSeq.Add(1))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatalf("sqlmock: %v", err)
	}
	t.Cleanup(func() { mdb.Close() })
	db, err := sql.Open("hasql", "sqlmock:"+name+params)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	c, ok := hasql.ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a hasql db")
	}
	return db, mock, c.Callbacks()
}

func metExpectations(t *testing.T, mock sqlmock.Sqlmock) {
	t.Helper()
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

// installOCIStyle registers entry, replacement and exit callbacks for
// FnPrepare that print as the seed's pkgN_*_callback_fn() do. They print into
// the recorder carried by the call's context (and do nothing without one).
func installOCIStyle(r *hasql.Callbacks, label string) {
	r.Register(hasql.FnPrepare, hasql.Entry, func(c *hasql.Call) error {
		if rec := recFrom(c.Ctx); rec != nil {
			rec.add(label + "_entry_callback_fn()")
		}
		return hasql.Continue
	})
	r.Register(hasql.FnPrepare, hasql.Replace, func(c *hasql.Call) error {
		rec := recFrom(c.Ctx)
		if rec == nil {
			return hasql.Continue
		}
		rec.add(label + "_replace_callback_fn()")
		if rec.bypass == label {
			return rec.bypassErr // nil: this replacement supplies the outcome
		}
		return hasql.Continue
	})
	r.Register(hasql.FnPrepare, hasql.Exit, func(c *hasql.Call) error {
		if rec := recFrom(c.Ctx); rec != nil {
			rec.add(label + "_exit_callback_fn()")
			rec.mu.Lock()
			rec.exitErrs = append(rec.exitErrs, c.Err)
			rec.mu.Unlock()
		}
		return hasql.Continue
	})
}

var (
	testPackagesOnce sync.Once
	errSetupFailed   = errors.New("setup failed on purpose")
	pkgSetups        atomic.Int64 // how many times cbtest_pkgN setups ran
)

// registerTestPackages registers cbtest_pkg1 … cbtest_pkg6 and cbtest_failing
// once for the whole test binary (RegisterPackage panics on a repeated name).
func registerTestPackages() {
	testPackagesOnce.Do(func() {
		for i := 1; i <= 6; i++ {
			label := fmt.Sprintf("pkg%d", i)
			hasql.RegisterPackage("cbtest_"+label, func(r *hasql.Callbacks) error {
				pkgSetups.Add(1)
				installOCIStyle(r, label)
				return nil
			})
		}
		hasql.RegisterPackage("cbtest_failing", func(*hasql.Callbacks) error { return errSetupFailed })
		// cbtest_seer prints the Call.Err each of its FnPing callbacks sees.
		hasql.RegisterPackage("cbtest_seer", func(r *hasql.Callbacks) error {
			for _, when := range []hasql.When{hasql.Entry, hasql.Replace, hasql.Exit} {
				when := when
				r.Register(hasql.FnPing, when, func(c *hasql.Call) error {
					if rec := recFrom(c.Ctx); rec != nil {
						rec.add(fmt.Sprintf("seer %v err=%v", when, c.Err))
					}
					return hasql.Continue
				})
			}
			return nil
		})
	})
}

// ociOrder is the seed's list for one OCIStmtPrepare call with the static
// callbacks and the given packages, the driver call in the middle.
func ociOrder(pkgs ...string) []string { return ociOrderOf(append([]string{"static"}, pkgs...)) }

// ociOrderOf is ociOrder without the static callbacks.
func ociOrderOf(all []string) []string {
	var out []string
	for _, p := range all {
		out = append(out, p+"_entry_callback_fn()")
	}
	for _, p := range all {
		out = append(out, p+"_replace_callback_fn()")
	}
	out = append(out, "driver: prepare SELECT 1")
	for i := len(all) - 1; i >= 0; i-- {
		out = append(out, all[i]+"_exit_callback_fn()")
	}
	return out
}

// prepareRecorded prepares "SELECT 1" on db with the backend's recorder in
// the context and returns the lines printed meanwhile, leaving out the
// driver's session reset at checkout (a call of its own, before the prepare).
func prepareRecorded(t *testing.T, db *sql.DB, b *tdBackend) ([]string, error) {
	t.Helper()
	b.rec.take()
	st, err := db.PrepareContext(withRec(context.Background(), b.rec), "SELECT 1")
	var lines []string
	for _, l := range b.rec.take() {
		if l != "driver: reset" {
			lines = append(lines, l)
		}
	}
	if st != nil {
		st.Close()
	}
	return lines, err
}

// fivePkgs loads the seed's five packages; the statement cache is off so that
// every prepare reaches the driver.
const fivePkgs = "?hasql.stmtcache=0&hasql.callbacks=cbtest_pkg1;cbtest_pkg2;cbtest_pkg3;cbtest_pkg4;cbtest_pkg5"

// ---------------------------------------------------------------------------
// The seed's five-package example.

func TestCallbacksFivePackagesOrder(t *testing.T) {
	registerTestPackages()
	before := pkgSetups.Load()
	db, b, own := openTD(t, fivePkgs)
	if n := pkgSetups.Load() - before; n != 5 {
		t.Fatalf("package setups ran %d times at open, want 5", n)
	}
	installOCIStyle(own, "static")

	lines, err := prepareRecorded(t, db, b)
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, "OCIStmtPrepare order", lines, ociOrder("pkg1", "pkg2", "pkg3", "pkg4", "pkg5"))
	// The seed's list, literally, with the driver in place of "OCI code".
	want := "static_entry_callback_fn() pkg1_entry_callback_fn() pkg2_entry_callback_fn() pkg3_entry_callback_fn() pkg4_entry_callback_fn() pkg5_entry_callback_fn() static_replace_callback_fn() pkg1_replace_callback_fn() pkg2_replace_callback_fn() pkg3_replace_callback_fn() pkg4_replace_callback_fn() pkg5_replace_callback_fn() OCI code for OCIStmtPrepare call pkg5_exit_callback_fn() pkg4_exit_callback_fn() pkg3_exit_callback_fn() pkg2_exit_callback_fn() pkg1_exit_callback_fn() static_exit_callback_fn()"
	got := strings.Replace(strings.Join(lines, " "), "driver: prepare SELECT 1", "OCI code for OCIStmtPrepare call", 1)
	if got != want {
		t.Fatalf("seed order:\n got  %s\n want %s", got, want)
	}
	// The package callbacks are only active for that connector: another
	// connector without the DSN key runs none of them.
	db2, b2, _ := openTD(t, "")
	lines, err = prepareRecorded(t, db2, b2)
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, "no packages", lines, []string{"driver: prepare SELECT 1"})
}

func TestCallbacksFivePackagesBypass(t *testing.T) {
	registerTestPackages()
	db, b, own := openTD(t, fivePkgs)
	installOCIStyle(own, "static")

	want := []string{
		"static_entry_callback_fn()", "pkg1_entry_callback_fn()", "pkg2_entry_callback_fn()",
		"pkg3_entry_callback_fn()", "pkg4_entry_callback_fn()", "pkg5_entry_callback_fn()",
		"static_replace_callback_fn()", "pkg1_replace_callback_fn()", "pkg2_replace_callback_fn()",
		"pkg3_replace_callback_fn()",
		// pkg4's and pkg5's replacements and the driver are bypassed.
		"pkg5_exit_callback_fn()", "pkg4_exit_callback_fn()", "pkg3_exit_callback_fn()",
		"pkg2_exit_callback_fn()", "pkg1_exit_callback_fn()", "static_exit_callback_fn()",
	}

	t.Run("success", func(t *testing.T) {
		b.rec.bypass, b.rec.bypassErr, b.rec.exitErrs = "pkg3", nil, nil
		defer func() { b.rec.bypass = "" }()
		lines, err := prepareRecorded(t, db, b)
		if err != nil {
			t.Fatalf("bypassed prepare: %v", err)
		}
		sameLines(t, "bypass order", lines, want)
		for i, e := range b.rec.exitErrs {
			if e != nil {
				t.Fatalf("exit %d saw Err %v, want nil", i, e)
			}
		}
	})
	t.Run("error", func(t *testing.T) {
		errPkg3 := errors.New("pkg3 says no")
		b.rec.bypass, b.rec.bypassErr, b.rec.exitErrs = "pkg3", errPkg3, nil
		defer func() { b.rec.bypass, b.rec.bypassErr = "", nil }()
		lines, err := prepareRecorded(t, db, b)
		if !errors.Is(err, errPkg3) {
			t.Fatalf("prepare error %v, want %v", err, errPkg3)
		}
		sameLines(t, "bypass order", lines, want)
		if len(b.rec.exitErrs) != 6 {
			t.Fatalf("%d exits ran, want 6", len(b.rec.exitErrs))
		}
		for i, e := range b.rec.exitErrs {
			if e != errPkg3 {
				t.Fatalf("exit %d saw Err %v, want the replacement's error", i, e)
			}
		}
	})
	t.Run("static bypass", func(t *testing.T) {
		b.rec.bypass = "static"
		defer func() { b.rec.bypass = "" }()
		lines, err := prepareRecorded(t, db, b)
		if err != nil {
			t.Fatal(err)
		}
		w := append([]string(nil), want[:7]...)
		w = append(w, want[10:]...)
		sameLines(t, "static bypass order", lines, w)
	})
}

func TestCallbacksPackagesFromEnvAndOption(t *testing.T) {
	registerTestPackages()

	t.Run("env", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "cbtest_pkg2;cbtest_pkg1")
		db, b, own := openTD(t, "?hasql.stmtcache=0")
		installOCIStyle(own, "static")
		lines, err := prepareRecorded(t, db, b)
		if err != nil {
			t.Fatal(err)
		}
		sameLines(t, "env order", lines, ociOrder("pkg2", "pkg1"))
	})
	t.Run("dsn wins over env", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "cbtest_pkg2;cbtest_pkg1")
		db, b, _ := openTD(t, "?hasql.stmtcache=0&hasql.callbacks=cbtest_pkg4")
		lines, err := prepareRecorded(t, db, b)
		if err != nil {
			t.Fatal(err)
		}
		sameLines(t, "dsn order", lines, ociOrderOf([]string{"pkg4"}))
	})
	t.Run("option", func(t *testing.T) {
		t.Setenv("HASQL_CALLBACK_PACKAGES", "cbtest_pkg5")
		db, b, own := openTD(t, "?hasql.stmtcache=0&hasql.callbacks=cbtest_pkg4", hasql.WithCallbackPackages("cbtest_pkg3", "cbtest_pkg1", "cbtest_pkg2"))
		installOCIStyle(own, "static")
		lines, err := prepareRecorded(t, db, b)
		if err != nil {
			t.Fatal(err)
		}
		sameLines(t, "option order", lines, ociOrder("pkg3", "pkg1", "pkg2"))
	})
}

func TestCallbacksPackageLoadErrors(t *testing.T) {
	registerTestPackages()
	cases := []struct {
		name  string
		list  []string
		want  []string
		cause error
	}{
		{"unknown", []string{"cbtest_pkg1", "cbtest_nope"}, []string{`"cbtest_nope"`, "not registered"}, nil},
		{"duplicate", []string{"cbtest_pkg1", "cbtest_pkg2", "cbtest_pkg1"}, []string{`"cbtest_pkg1"`, "twice"}, nil},
		{"sixth", []string{"cbtest_pkg1", "cbtest_pkg2", "cbtest_pkg3", "cbtest_pkg4", "cbtest_pkg5", "cbtest_pkg6"},
			[]string{"6 callback packages", "at most 5"}, nil},
		{"setup fails", []string{"cbtest_failing"}, []string{`"cbtest_failing"`, "failed to load", errSetupFailed.Error()}, errSetupFailed},
	}
	check := func(t *testing.T, err error, want []string, cause error) {
		t.Helper()
		if err == nil {
			t.Fatal("open succeeded, want an error")
		}
		if !errors.Is(err, hasql.ErrDSN) {
			t.Fatalf("error %q does not wrap ErrDSN", err)
		}
		if cause != nil && !errors.Is(err, cause) {
			t.Fatalf("error %q does not wrap the setup's error", err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not mention %q", err, w)
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name+"/dsn", func(t *testing.T) {
			_, err := sql.Open("hasql", tdName+":nobackend?hasql.callbacks="+strings.Join(tc.list, ";"))
			check(t, err, tc.want, tc.cause)
		})
		t.Run(tc.name+"/env", func(t *testing.T) {
			t.Setenv("HASQL_CALLBACK_PACKAGES", strings.Join(tc.list, ";"))
			_, err := sql.Open("hasql", tdName+":nobackend")
			check(t, err, tc.want, tc.cause)
		})
		t.Run(tc.name+"/option", func(t *testing.T) {
			_, err := hasql.Open(tdName, "nobackend", hasql.WithCallbackPackages(tc.list...))
			check(t, err, tc.want, tc.cause)
		})
	}
}

func TestCallbacksRegisterPackagePanics(t *testing.T) {
	registerTestPackages()
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s: no panic", what)
			}
		}()
		f()
	}
	mustPanic("duplicate", func() { hasql.RegisterPackage("cbtest_pkg1", func(*hasql.Callbacks) error { return nil }) })
	mustPanic("empty name", func() { hasql.RegisterPackage("", func(*hasql.Callbacks) error { return nil }) })
	mustPanic("nil setup", func() { hasql.RegisterPackage("cbtest_nilsetup", nil) })
	// The failed registrations left nothing behind.
	if _, err := hasql.Open(tdName, "nobackend", hasql.WithCallbackPackages("cbtest_nilsetup")); !errors.Is(err, hasql.ErrDSN) {
		t.Fatalf("cbtest_nilsetup loaded after a panicking RegisterPackage: %v", err)
	}
}

// ---------------------------------------------------------------------------
// Outcome rules.

func TestCallbacksOutcomeRules(t *testing.T) {
	errDriver := errors.New("driver: duplicate key")
	errApp := errors.New("app: already exists")
	errEntry := errors.New("entry: noted")

	t.Run("replacement nil with Rows serves a query without the driver", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		served := oneRow("from cache")
		own.Register(hasql.FnQuery, hasql.Replace, func(c *hasql.Call) error {
			c.Rows = served
			return nil
		})
		var v string
		if err := db.QueryRowContext(context.Background(), "SELECT v FROM t").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "from cache" {
			t.Fatalf("got %q", v)
		}
		if !served.closed.Load() {
			t.Fatal("database/sql did not close the replacement's rows")
		}
		metExpectations(t, mock) // no expectation: a driver call would have failed
	})

	t.Run("replacement nil without Rows is an outcome error", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		own.Register(hasql.FnQuery, hasql.Replace, func(c *hasql.Call) error { return nil })
		_, err := db.QueryContext(context.Background(), "SELECT 1")
		if !errors.Is(err, hasql.ErrCallbackOutcome) {
			t.Fatalf("err %v, want ErrCallbackOutcome", err)
		}
		own.Register(hasql.FnExec, hasql.Replace, func(c *hasql.Call) error { return nil })
		if _, err = db.ExecContext(context.Background(), "DELETE FROM t"); !errors.Is(err, hasql.ErrCallbackOutcome) {
			t.Fatalf("exec err %v, want ErrCallbackOutcome", err)
		}
		metExpectations(t, mock)
	})

	t.Run("replacement error becomes the outcome", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		var exitSaw error
		own.Register(hasql.FnExec, hasql.Replace, func(c *hasql.Call) error { return errApp })
		own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error { exitSaw = c.Err; return hasql.Continue })
		_, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
		if err != errApp {
			t.Fatalf("err %v, want the replacement's error itself", err)
		}
		if exitSaw != errApp {
			t.Fatalf("exit saw %v", exitSaw)
		}
		metExpectations(t, mock)
	})

	t.Run("exit nil clears an error (translation)", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnError(errDriver)
		own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error {
			if errors.Is(c.Err, errDriver) {
				c.Result = driver.RowsAffected(0) // "insert or ignore"
				return nil
			}
			return hasql.Continue
		})
		res, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
		if err != nil {
			t.Fatalf("err %v, want it cleared", err)
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Fatalf("rows affected %d", n)
		}
		metExpectations(t, mock)
	})

	t.Run("exit error translates an error", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnError(errDriver)
		own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error {
			if errors.Is(c.Err, errDriver) {
				return fmt.Errorf("%w (%w)", errApp, c.Err)
			}
			return hasql.Continue
		})
		_, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
		if !errors.Is(err, errApp) || !errors.Is(err, errDriver) {
			t.Fatalf("err %v, want the translation wrapping the driver's error", err)
		}
		metExpectations(t, mock)
	})

	t.Run("exit error replaces a success", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
		var rows driver.Rows
		own.Register(hasql.FnQuery, hasql.Exit, func(c *hasql.Call) error {
			rows = c.Rows
			return errApp
		})
		_, err := db.QueryContext(context.Background(), "SELECT 1")
		if err != errApp {
			t.Fatalf("err %v, want the exit's error", err)
		}
		if rows == nil {
			t.Fatal("exit did not see the driver's rows")
		}
		metExpectations(t, mock)
	})

	t.Run("exit Continue keeps the outcome", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		mock.ExpectExec("UPDATE t SET v = 1").WillReturnError(errDriver)
		own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error { return hasql.Continue })
		_, err := db.ExecContext(context.Background(), "UPDATE t SET v = 1")
		if !errors.Is(err, errDriver) {
			t.Fatalf("err %v, want the driver's", err)
		}
		if errors.Is(err, hasql.Continue) {
			t.Fatal("Continue reached the application")
		}
		metExpectations(t, mock)
	})

	t.Run("entry error is seen later and dropped when the driver runs", func(t *testing.T) {
		registerTestPackages()
		db, mock, own := openMock(t, "?hasql.callbacks=cbtest_pkg1")
		mock.ExpectExec("UPDATE t SET v = 1").WillReturnResult(sqlmock.NewResult(0, 3))
		var replSaw, exitSaw error = nil, errors.New("unset")
		own.Register(hasql.FnExec, hasql.Entry, func(c *hasql.Call) error { return errEntry })
		own.Register(hasql.FnExec, hasql.Replace, func(c *hasql.Call) error { replSaw = c.Err; return hasql.Continue })
		own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error { exitSaw = c.Err; return hasql.Continue })
		res, err := db.ExecContext(context.Background(), "UPDATE t SET v = 1")
		if err != nil {
			t.Fatalf("err %v: the entry's error should be dropped once the driver ran", err)
		}
		if n, _ := res.RowsAffected(); n != 3 {
			t.Fatalf("rows affected %d", n)
		}
		if replSaw != errEntry {
			t.Fatalf("replacement saw %v, want the entry's error", replSaw)
		}
		if exitSaw != nil {
			t.Fatalf("exit saw %v, want nil (driver succeeded)", exitSaw)
		}
		metExpectations(t, mock)
	})

	t.Run("entry error passed on by a replacement (OCI's idiom)", func(t *testing.T) {
		db, mock, own := openMock(t, "")
		own.Register(hasql.FnExec, hasql.Entry, func(c *hasql.Call) error {
			if strings.HasPrefix(c.Query, "DROP") {
				return errEntry
			}
			return hasql.Continue
		})
		own.Register(hasql.FnExec, hasql.Replace, func(c *hasql.Call) error {
			if c.Err != nil {
				return c.Err
			}
			return hasql.Continue
		})
		if _, err := db.ExecContext(context.Background(), "DROP TABLE t"); err != errEntry {
			t.Fatalf("err %v, want the entry's error", err)
		}
		metExpectations(t, mock) // the driver never saw DROP
	})

	t.Run("Call.Err through entry, replacement and exit", func(t *testing.T) {
		registerTestPackages()
		db, mock, own := openMock(t, "?hasql.callbacks=cbtest_seer")
		rec := &recorder{}
		for _, when := range []hasql.When{hasql.Entry, hasql.Replace, hasql.Exit} {
			when := when
			own.Register(hasql.FnPing, when, func(c *hasql.Call) error {
				rec.add(fmt.Sprintf("own %v err=%v", when, c.Err))
				if when == hasql.Entry {
					return errEntry
				}
				return hasql.Continue
			})
		}
		if err := db.PingContext(withRec(context.Background(), rec)); err != nil {
			t.Fatal(err)
		}
		sameLines(t, "Call.Err seen", rec.take(), []string{
			"own Entry err=<nil>",
			"seer Entry err=entry: noted",
			"own Replace err=entry: noted",
			"seer Replace err=entry: noted",
			// the driver's Ping ran: the entry's error is dropped
			"seer Exit err=<nil>",
			"own Exit err=<nil>",
		})
		metExpectations(t, mock)
	})
}

func TestCallbacksPanic(t *testing.T) {
	for _, when := range []hasql.When{hasql.Entry, hasql.Replace, hasql.Exit} {
		t.Run(when.String(), func(t *testing.T) {
			db, mock, own := openMock(t, "")
			var armed atomic.Bool
			armed.Store(true)
			own.Register(hasql.FnQuery, when, func(c *hasql.Call) error {
				if armed.CompareAndSwap(true, false) {
					panic("boom")
				}
				return hasql.Continue
			})
			if when == hasql.Exit {
				// The driver call ran before the panic; its rows are closed.
				mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1)).RowsWillBeClosed()
			}
			_, err := db.QueryContext(context.Background(), "SELECT 1")
			if !errors.Is(err, hasql.ErrCallbackPanic) {
				t.Fatalf("err %v, want ErrCallbackPanic", err)
			}
			for _, w := range []string{"FnQuery", when.String(), "boom"} {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
			// The next call works, on the same session.
			mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(7))
			var v int
			if err := db.QueryRowContext(context.Background(), "SELECT 1").Scan(&v); err != nil || v != 7 {
				t.Fatalf("next call: %v, %d", err, v)
			}
			metExpectations(t, mock)
		})
	}
}

// TestCallbacksBeginExitErrorRollsBack: when an exit callback turns a
// successful BeginTx into an error, the application gets no Tx to end, so the
// transaction the driver began must be rolled back rather than left open on a
// pooled session.
func TestCallbacksBeginExitErrorRollsBack(t *testing.T) {
	errNo := errors.New("no transactions today")
	db, mock, own := openMock(t, "")
	mock.ExpectBegin()
	mock.ExpectRollback()
	own.Register(hasql.FnBegin, hasql.Exit, func(c *hasql.Call) error { return errNo })
	if _, err := db.BeginTx(context.Background(), nil); err != errNo {
		t.Fatalf("err %v, want the exit's error", err)
	}
	metExpectations(t, mock)

	// With the exit gone, a transaction works on the same session.
	own.Register(hasql.FnBegin, hasql.Exit, nil)
	mock.ExpectBegin()
	mock.ExpectCommit()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	metExpectations(t, mock)
}

// TestCallbacksErrSkipPassesThrough: an inner driver without ad-hoc exec
// returns driver.ErrSkip; with the statement cache off hasql hands it to
// database/sql bare, with no exit callback for that attempt, and database/sql
// prepares, executes and closes a statement instead — each step with its own
// callbacks. (With the cache on, hasql runs the work on a cached statement
// inside the FnExec call itself; see the statement cache's tests.)
func TestCallbacksErrSkipPassesThrough(t *testing.T) {
	db, b, own := openTD(t, "?hasql.stmtcache=0")
	b.skipExec = true
	for _, fn := range []hasql.Fn{hasql.FnExec, hasql.FnPrepare, hasql.FnStmtExec, hasql.FnStmtClose} {
		fn := fn
		own.Register(fn, hasql.Entry, func(c *hasql.Call) error { b.rec.add(fn.String() + " entry"); return hasql.Continue })
		own.Register(fn, hasql.Exit, func(c *hasql.Call) error {
			b.rec.add(fmt.Sprintf("%v exit err=%v", fn, c.Err))
			return hasql.Continue
		})
	}
	if err := db.PingContext(context.Background()); err != nil { // connect outside the recording
		t.Fatal(err)
	}
	b.rec.take()
	res, err := db.ExecContext(context.Background(), "INSERT 1")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d", n)
	}
	sameLines(t, "ErrSkip fallback", b.rec.take(), []string{
		"driver: reset",
		"FnExec entry",
		"driver: exec INSERT 1 -> ErrSkip",
		// no "FnExec exit": ErrSkip is not an outcome
		"FnPrepare entry", "driver: prepare INSERT 1", "FnPrepare exit err=<nil>",
		"FnStmtExec entry", "driver: stmt exec INSERT 1", "FnStmtExec exit err=<nil>",
		"FnStmtClose entry", "driver: stmt close INSERT 1", "FnStmtClose exit err=<nil>",
	})
}

// ---------------------------------------------------------------------------
// Where each Fn fires.

func TestFnStringAndWhenString(t *testing.T) {
	fns := []struct {
		fn   hasql.Fn
		name string
	}{
		{hasql.FnConnect, "FnConnect"}, {hasql.FnPing, "FnPing"}, {hasql.FnPrepare, "FnPrepare"},
		{hasql.FnExec, "FnExec"}, {hasql.FnQuery, "FnQuery"}, {hasql.FnStmtExec, "FnStmtExec"},
		{hasql.FnStmtQuery, "FnStmtQuery"}, {hasql.FnStmtClose, "FnStmtClose"}, {hasql.FnBegin, "FnBegin"},
		{hasql.FnCommit, "FnCommit"}, {hasql.FnRollback, "FnRollback"}, {hasql.FnReset, "FnReset"},
		{hasql.FnClose, "FnClose"}, {hasql.FnClose + 1, "Fn(13)"}, {255, "Fn(255)"},
	}
	for i, f := range fns {
		if got := f.fn.String(); got != f.name {
			t.Errorf("Fn %d: String() = %q, want %q", f.fn, got, f.name)
		}
		if i < 13 && int(f.fn) != i {
			t.Errorf("%s = %d, want %d", f.name, f.fn, i)
		}
	}
	whens := map[hasql.When]string{hasql.Entry: "Entry", hasql.Replace: "Replace", hasql.Exit: "Exit", 3: "When(3)", 200: "When(200)"}
	for w, name := range whens {
		if got := w.String(); got != name {
			t.Errorf("When %d: String() = %q, want %q", w, got, name)
		}
	}
}

func TestFnEveryCallFires(t *testing.T) {
	// The statement cache is off so that closing the *sql.Stmt closes the
	// driver's statement, which sqlmock checks.
	db, mock, own := openMock(t, "?hasql.stmtcache=0")
	ctx := context.Background()
	var mu sync.Mutex
	var log []string
	add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	take := func() []string { mu.Lock(); defer mu.Unlock(); l := log; log = nil; return l }

	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		fn := fn
		own.Register(fn, hasql.Entry, func(c *hasql.Call) error {
			s := fn.String() + " entry"
			if fn == hasql.FnConnect {
				s += fmt.Sprintf(" session=%v", c.Session != nil)
			}
			add(s)
			return hasql.Continue
		})
		own.Register(fn, hasql.Exit, func(c *hasql.Call) error {
			s := fn.String() + " exit"
			switch fn {
			case hasql.FnConnect:
				s += fmt.Sprintf(" session=%v inner=%v", c.Session != nil, c.Session != nil && c.Session.Unwrap() != nil)
			case hasql.FnExec, hasql.FnStmtExec:
				n, _ := c.Result.RowsAffected()
				s += fmt.Sprintf(" rows=%d", n)
			case hasql.FnQuery, hasql.FnStmtQuery:
				s += fmt.Sprintf(" hasRows=%v", c.Rows != nil)
			}
			if c.Err != nil {
				s += " err=" + c.Err.Error()
			}
			add(s)
			return hasql.Continue
		})
	}
	pair := func(fns ...string) []string {
		var out []string
		for _, f := range fns {
			name, extra, _ := strings.Cut(f, "|")
			out = append(out, name+" entry", strings.TrimSpace(name+" exit "+extra))
		}
		return out
	}

	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"FnConnect entry session=false", "FnConnect exit session=true inner=true"}
	want = append(want, pair("FnReset", "FnPing")...)
	sameLines(t, "ping on a new db", take(), want)

	mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnResult(sqlmock.NewResult(1, 1))
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "exec", take(), pair("FnReset", "FnExec|rows=1"))

	mock.ExpectQuery("SELECT v FROM t").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	rows, err := db.QueryContext(ctx, "SELECT v FROM t")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	sameLines(t, "query", take(), pair("FnReset", "FnQuery|hasRows=true"))

	ep := mock.ExpectPrepare("UPDATE t SET v = ?").WillBeClosed()
	ep.ExpectExec().WithArgs(2).WillReturnResult(sqlmock.NewResult(0, 4))
	ep.ExpectQuery().WithArgs(3).WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(3))
	st, err := db.PrepareContext(ctx, "UPDATE t SET v = ?")
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, "prepare", take(), pair("FnReset", "FnPrepare"))
	if _, err := st.ExecContext(ctx, 2); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "stmt exec", take(), pair("FnReset", "FnStmtExec|rows=4"))
	rows, err = st.QueryContext(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	sameLines(t, "stmt query", take(), pair("FnReset", "FnStmtQuery|hasRows=true"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "stmt close", take(), pair("FnStmtClose"))

	mock.ExpectBegin()
	mock.ExpectCommit()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, "begin", take(), pair("FnReset", "FnBegin"))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "commit", take(), pair("FnCommit"))

	mock.ExpectBegin()
	mock.ExpectRollback()
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	take()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "rollback", take(), pair("FnRollback"))

	mock.ExpectClose()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "db.Close", take(), pair("FnClose"))
	metExpectations(t, mock)
}

// ---------------------------------------------------------------------------
// No recursion, Get and chaining, runtime (de)registration.

func TestCallbacksNoRecursion(t *testing.T) {
	db, mock, own := openMock(t, "")
	ctx := context.Background()
	var count [hasql.FnClose + 1]atomic.Int64
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		fn := fn
		own.Register(fn, hasql.Exit, func(c *hasql.Call) error { count[fn].Add(1); return hasql.Continue })
	}
	var inner []error
	own.Register(hasql.FnConnect, hasql.Exit, func(c *hasql.Call) error {
		count[hasql.FnConnect].Add(1)
		// A bare physical session: Session.Exec works here too.
		inner = append(inner, c.Session.Exec(c.Ctx, "SET application_name = 'hasql'"))
		return hasql.Continue
	})
	own.Register(hasql.FnExec, hasql.Entry, func(c *hasql.Call) error {
		inner = append(inner, c.Session.Exec(c.Ctx, "SET search_path = app"))
		dc := c.Session.Unwrap()
		if dc == nil {
			inner = append(inner, errors.New("Unwrap returned nil"))
			return hasql.Continue
		}
		_, err := dc.(driver.ExecerContext).ExecContext(c.Ctx, "SET timezone = 'UTC'", nil)
		inner = append(inner, err)
		return hasql.Continue
	})
	mock.ExpectExec("SET application_name = 'hasql'").WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectExec("SET search_path = app").WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectExec("SET timezone = 'UTC'").WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnResult(sqlmock.NewResult(1, 1))
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	for i, err := range inner {
		if err != nil {
			t.Fatalf("work %d inside a callback: %v", i, err)
		}
	}
	if len(inner) != 3 {
		t.Fatalf("%d pieces of work ran inside callbacks, want 3", len(inner))
	}
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		want := int64(0)
		switch fn {
		case hasql.FnConnect, hasql.FnReset, hasql.FnExec:
			want = 1
		}
		if got := count[fn].Load(); got != want {
			t.Errorf("%v exit ran %d times, want %d", fn, got, want)
		}
	}
	metExpectations(t, mock)
}

func funcPtr(f hasql.Callback) uintptr {
	if f == nil {
		return 0
	}
	return reflect.ValueOf(f).Pointer()
}

func TestCallbacksGetAndChaining(t *testing.T) {
	db, mock, own := openMock(t, "")
	ctx := context.Background()

	if own.Get(hasql.FnQuery, hasql.Entry) != nil {
		t.Fatal("Get on an empty registry returned a callback")
	}
	if own.Get(hasql.FnClose+1, hasql.Entry) != nil || own.Get(hasql.FnQuery, hasql.Exit+1) != nil {
		t.Fatal("Get out of range returned a callback")
	}
	own.Register(hasql.FnClose+1, hasql.Entry, func(*hasql.Call) error { return nil }) // ignored
	own.Register(hasql.FnQuery, hasql.Exit+1, func(*hasql.Call) error { return nil })  // ignored

	var order []string
	first := func(c *hasql.Call) error { order = append(order, "first:"+c.Query); return hasql.Continue }
	own.Register(hasql.FnQuery, hasql.Entry, first)
	if funcPtr(own.Get(hasql.FnQuery, hasql.Entry)) != funcPtr(first) {
		t.Fatal("Get did not return the registered callback")
	}
	if own.Get(hasql.FnQuery, hasql.Exit) != nil {
		t.Fatal("Get returned a callback for another When")
	}

	// OCIUserCallbackGet: override, then call the overridden one.
	prev := own.Get(hasql.FnQuery, hasql.Entry)
	second := func(c *hasql.Call) error {
		order = append(order, "second")
		if prev != nil {
			return prev(c)
		}
		return hasql.Continue
	}
	own.Register(hasql.FnQuery, hasql.Entry, second)
	if funcPtr(own.Get(hasql.FnQuery, hasql.Entry)) != funcPtr(second) {
		t.Fatal("Get did not return the new callback")
	}
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	rows, err := db.QueryContext(ctx, "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	sameLines(t, "chain", order, []string{"second", "first:SELECT 1"})

	// A chained exit that translates only what the earlier one left alone.
	errA := errors.New("a")
	own.Register(hasql.FnQuery, hasql.Exit, func(c *hasql.Call) error { return errA })
	prevExit := own.Get(hasql.FnQuery, hasql.Exit)
	own.Register(hasql.FnQuery, hasql.Exit, func(c *hasql.Call) error {
		if r := prevExit(c); r != hasql.Continue {
			return fmt.Errorf("wrapped: %w", r)
		}
		return hasql.Continue
	})
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	if _, err := db.QueryContext(ctx, "SELECT 1"); !errors.Is(err, errA) || !strings.HasPrefix(err.Error(), "wrapped: ") {
		t.Fatalf("err %v", err)
	}

	// nil de-registers.
	own.Register(hasql.FnQuery, hasql.Entry, nil)
	own.Register(hasql.FnQuery, hasql.Exit, nil)
	if own.Get(hasql.FnQuery, hasql.Entry) != nil || own.Get(hasql.FnQuery, hasql.Exit) != nil {
		t.Fatal("Get after de-registration returned a callback")
	}
	order = nil
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	rows, err = db.QueryContext(ctx, "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(order) != 0 {
		t.Fatalf("de-registered callbacks ran: %q", order)
	}
	metExpectations(t, mock)
}

func TestCallbacksGetInPackageSetup(t *testing.T) {
	// A package sees only its own registrations through Get: the Callbacks
	// it is handed is its own, not the connector's.
	var sawOwn atomic.Bool
	name := fmt.Sprintf("cbtest_getpkg%d", cbSeq.Add(1))
	hasql.RegisterPackage(name, func(r *hasql.Callbacks) error {
		if r.Get(hasql.FnQuery, hasql.Entry) != nil {
			sawOwn.Store(true)
		}
		cb := func(c *hasql.Call) error { return hasql.Continue }
		r.Register(hasql.FnQuery, hasql.Entry, cb)
		if funcPtr(r.Get(hasql.FnQuery, hasql.Entry)) != funcPtr(cb) {
			return errors.New("Get inside setup did not return what was registered")
		}
		return nil
	})
	db, _, own := openMock(t, "?hasql.callbacks="+name)
	_ = db
	if sawOwn.Load() {
		t.Fatal("a package's Callbacks started with registrations")
	}
	if own.Get(hasql.FnQuery, hasql.Entry) != nil {
		t.Fatal("the package's registration shows in the connector's own Callbacks")
	}
}

func TestCallbacksRegisterFromInsideACallback(t *testing.T) {
	db, mock, own := openMock(t, "")
	ctx := context.Background()
	var runs atomic.Int64
	// A one-shot exit: it de-registers itself while the call is running.
	own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error {
		runs.Add(1)
		own.Register(hasql.FnExec, hasql.Exit, nil)
		return hasql.Continue
	})
	for i := 0; i < 3; i++ {
		mock.ExpectExec("DELETE FROM t").WillReturnResult(sqlmock.NewResult(0, 0))
		if _, err := db.ExecContext(ctx, "DELETE FROM t"); err != nil {
			t.Fatal(err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("one-shot exit ran %d times", n)
	}
	metExpectations(t, mock)
}

// ---------------------------------------------------------------------------
// Concurrency.

type genKey struct{}

// TestCallbacksConcurrentRegistration: one goroutine registers and
// de-registers an entry/exit pair in a loop while 8 goroutines query. The
// registrations go entry(g), exit(g), exit(nil), entry(nil), so every state
// that ever exists has exit(g) only together with entry(g): a call that runs
// exit(g) must have run entry(g) itself, which its context shows.
func TestCallbacksConcurrentRegistration(t *testing.T) {
	db, b, own := openTD(t, "")
	b.quiet = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var entries, exits, mismatched atomic.Int64
	stop := make(chan struct{})
	regDone := make(chan int64)
	go func() {
		g := int64(0)
		defer func() { regDone <- g }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			g++
			gen := g
			own.Register(hasql.FnQuery, hasql.Entry, func(c *hasql.Call) error {
				entries.Add(1)
				c.Ctx = context.WithValue(c.Ctx, genKey{}, gen)
				return hasql.Continue
			})
			own.Register(hasql.FnQuery, hasql.Exit, func(c *hasql.Call) error {
				exits.Add(1)
				if got, _ := c.Ctx.Value(genKey{}).(int64); got != gen {
					mismatched.Add(1)
				}
				return hasql.Continue
			})
			own.Register(hasql.FnQuery, hasql.Exit, nil)
			own.Register(hasql.FnQuery, hasql.Entry, nil)
			runtime.Gosched()
		}
	}()

	const workers, perWorker = 8, 250
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				var v int64
				if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
					errs <- err
					return
				}
				if v != 1 {
					errs <- fmt.Errorf("got %d", v)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	gens := <-regDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("deadline passed before 2000 queries finished")
	}
	if n := mismatched.Load(); n != 0 {
		t.Fatalf("%d calls ran an exit callback without its own entry", n)
	}
	if e, x := entries.Load(), exits.Load(); x > e {
		t.Fatalf("%d exits for %d entries", x, e)
	}
	t.Logf("%d generations registered; %d entries, %d exits over %d queries", gens, entries.Load(), exits.Load(), workers*perWorker)

	// With the pair in place the chain is whole again, deterministically.
	own.Register(hasql.FnQuery, hasql.Entry, func(c *hasql.Call) error {
		c.Ctx = context.WithValue(c.Ctx, genKey{}, int64(-1))
		return hasql.Continue
	})
	var final atomic.Int64
	own.Register(hasql.FnQuery, hasql.Exit, func(c *hasql.Call) error {
		final.Store(c.Ctx.Value(genKey{}).(int64))
		return hasql.Continue
	})
	var v int64
	if err := db.QueryRowContext(context.Background(), "SELECT 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if final.Load() != -1 {
		t.Fatalf("final exit saw generation %d", final.Load())
	}
}

// TestCallbacksPanicDoesNotLeak: a callback that panics fails its call, but
// a close still releases what it was closing — nothing else ever will.
func TestCallbacksPanicDoesNotLeak(t *testing.T) {
	t.Run("FnClose", func(t *testing.T) {
		db, b, own := openTD(t, "")
		own.Register(hasql.FnClose, hasql.Entry, func(*hasql.Call) error { panic("close entry") })
		if err := db.PingContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if o, c := b.db.Opens.Load(), b.db.Closes.Load(); o != 1 || c != 1 {
			t.Fatalf("opened %d, closed %d inner connections", o, c)
		}
	})
	t.Run("FnStmtClose", func(t *testing.T) {
		db, b, own := openTD(t, "?hasql.stmtcache=0")
		own.Register(hasql.FnStmtClose, hasql.Replace, func(*hasql.Call) error { panic("stmt close replacement") })
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st, err := conn.PrepareContext(ctx, "SELECT 1")
		if err != nil {
			t.Fatal(err)
		}
		b.rec.take()
		err = st.Close()
		if !errors.Is(err, hasql.ErrCallbackPanic) {
			t.Fatalf("Stmt.Close: %v, want the callback's panic", err)
		}
		sameLines(t, "stmt close after a panic", b.rec.take(), []string{"driver: stmt close SELECT 1"})
	})
}
