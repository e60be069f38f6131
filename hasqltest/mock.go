// Package hasqltest helps applications test their database code as it runs
// under hasql: a hasql *sql.DB over go-sqlmock that survives a simulated
// lost connection (NewMock), and a fault-injection callback package that
// works over any inner driver, real or mock (Faults).
//
//	func TestSaveOrder(t *testing.T) {
//		faults := hasqltest.NewFaults()
//		db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
//		faults.LoseAfterSend("INSERT INTO orders", 1)
//		mock.ExpectExec("INSERT INTO orders").WillReturnResult(sqlmock.NewResult(1, 1))
//		err := SaveOrder(ctx, db, order)
//		if !errors.Is(err, hasql.ErrConnectionLost) { ... }
//	}
//
// # The mock
//
// NewMock opens hasql over a go-sqlmock mock with a DSN of its own, so tests
// may run in parallel. go-sqlmock hands out the same mock for every
// connection opened with that DSN and forgets the DSN when the last one is
// closed; hasql closes a physical session whose connection was lost and
// opens a new one, which would then fail. NewMock therefore holds one
// connection of its own to the mock for the life of the test, so that a
// reconnect after a lost connection finds the mock, as a reconnect after a
// database restart finds the database.
//
// Every physical session hasql opens is the same mock, so the expectations
// are one ordered script whatever session the work lands on.
//
// # The statement cache
//
// NewMock keeps hasql's defaults, so the tests see what production does.
// With the statement cache on (the default, 20 statements per session) an
// explicitly prepared statement is prepared once per physical session and
// reused: expect one ExpectPrepare for any number of db.Prepare or
// tx.Prepare calls of the same text on that session, followed by the
// ExpectExec or ExpectQuery of each execution; a statement's WillBeClosed is
// satisfied when the statement leaves the cache (eviction, or the session
// closing — at the latest when the test's DB is closed, before the
// expectations are checked), not at *sql.Stmt.Close. A session whose
// connection is lost is ended without closing its statements (they went
// with the connection), so do not mark those WillBeClosed; the next session
// prepares again: expect a second ExpectPrepare. Ad-hoc work (db.Exec, db.Query) is not affected: go-sqlmock
// runs it without a prepared statement.
//
// To script prepares exactly as with go-sqlmock alone — one ExpectPrepare
// per Prepare, closed at Stmt.Close — turn the cache off:
//
//	hasqltest.NewMock(t, hasqltest.WithHasql(hasql.WithStmtCacheSize(0)))
//	hasqltest.NewMock(t, hasqltest.WithDSNParams("hasql.stmtcache=0"))
//
// # What not to expect
//
// Avoid ExpectClose: hasql closes the mock's connection once for every
// physical session it ends — after each lost connection as well as when the
// DB is closed — and each of those closes would try to satisfy it.
package hasqltest

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
)

// Option configures NewMock and OpenMock.
type Option func(*config)

type config struct {
	hasql  []hasql.Option
	mock   []func(sqlmock.Sqlmock) error
	params string
	faults []*Faults
}

// WithHasql passes options to hasql (hasql.Open). Options win over
// WithDSNParams, as they do over DSN keys.
func WithHasql(opts ...hasql.Option) Option {
	return func(c *config) { c.hasql = append(c.hasql, opts...) }
}

// WithSqlmock passes go-sqlmock options, such as
// sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual),
// sqlmock.MonitorPingsOption(true) or sqlmock.ValueConverterOption(...).
// (P is go-sqlmock's unexported mock type; it is inferred.)
func WithSqlmock[P any](opts ...func(P) error) Option {
	return func(c *config) {
		for _, o := range opts {
			c.mock = append(c.mock, func(m sqlmock.Sqlmock) error {
				p, ok := m.(P)
				if !ok {
					return fmt.Errorf("hasqltest: WithSqlmock: option for %T does not apply to the mock (%T)", *new(P), m)
				}
				return o(p)
			})
		}
	}
}

// WithDSNParams adds hasql.* settings to the DSN, as the parameter section
// of a URL: "hasql.stmtcache=0&hasql.retry=idempotent".
func WithDSNParams(params string) Option {
	return func(c *config) {
		params = strings.TrimPrefix(params, "?")
		if params == "" {
			return
		}
		if c.params != "" {
			c.params += "&"
		}
		c.params += params
	}
}

// WithFaults attaches f to the new DB (f.Attach), so that its rules apply to
// the DB's calls.
func WithFaults(f *Faults) Option {
	return func(c *config) { c.faults = append(c.faults, f) }
}

// NewMock returns a hasql *sql.DB over a new go-sqlmock mock, and the mock to
// script it with. The DSN is unique to the call. When the test ends, the DB
// is closed and the mock's expectations are checked: an unmet one fails the
// test (t.Errorf). A setup failure fails the test at once (t.Fatalf).
func NewMock(t testing.TB, opts ...Option) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	m, err := openMock(t.Name(), opts)
	if err != nil {
		t.Fatalf("hasqltest.NewMock: %v", err)
	}
	t.Cleanup(func() {
		if err := m.close(); err != nil {
			t.Errorf("hasqltest: %v", err)
		}
	})
	return m.db, m.mock
}

// OpenMock is NewMock for code without a testing.TB (examples, TestMain,
// benchmarks' setup). The caller calls closeFn when done: it closes the DB,
// checks the mock's expectations and returns the first problem, and releases
// the mock.
func OpenMock(opts ...Option) (db *sql.DB, mock sqlmock.Sqlmock, closeFn func() error, err error) {
	m, err := openMock("", opts)
	if err != nil {
		return nil, nil, nil, err
	}
	return m.db, m.mock, m.close, nil
}

var seq atomic.Int64

type mockDB struct {
	db     *sql.DB
	mock   sqlmock.Sqlmock
	keeper driver.Conn // holds the mock's DSN registered with go-sqlmock
	closed atomic.Bool
}

func openMock(name string, opts []Option) (*mockDB, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	dsn := fmt.Sprintf("hasqltest-%d", seq.Add(1))
	if name != "" {
		dsn += "-" + sanitize(name)
	}
	raw, mock, err := sqlmock.NewWithDSN(dsn)
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		return nil, err
	}
	// One connection of our own, so that go-sqlmock keeps the DSN while
	// hasql closes and reopens sessions; then the mock's own *sql.DB can go.
	keeper, err := raw.Driver().Open(dsn)
	raw.Close()
	if err != nil {
		return nil, fmt.Errorf("holding the mock open: %w", err)
	}
	m := &mockDB{mock: mock, keeper: keeper}
	for _, o := range cfg.mock {
		if err := o(mock); err != nil {
			keeper.Close()
			return nil, err
		}
	}
	hdsn := dsn
	if cfg.params != "" {
		hdsn += "?" + cfg.params
	}
	db, err := hasql.Open("sqlmock", hdsn, cfg.hasql...)
	if err != nil {
		keeper.Close()
		return nil, err
	}
	m.db = db
	for _, f := range cfg.faults {
		if err := f.Attach(db); err != nil {
			db.Close()
			keeper.Close()
			return nil, err
		}
	}
	return m, nil
}

// close closes the DB, checks the expectations, and lets go of the mock.
func (m *mockDB) close() error {
	if m.closed.Swap(true) {
		return nil
	}
	var errs []error
	if err := m.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the DB: %w", err))
	}
	if err := m.mock.ExpectationsWereMet(); err != nil {
		errs = append(errs, fmt.Errorf("sqlmock expectations: %w", err))
	}
	m.keeper.Close() // go-sqlmock's error here only says no ExpectClose was pending
	return errors.Join(errs...)
}

// sanitize keeps a test name readable in a DSN without giving it a
// parameter section or a separator.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
