package hasql_test

// Interface fidelity (ARCHITECTURE.md, "Interface fidelity"): for every
// combination of optional driver interfaces the recording driver of
// testdriver_test.go can take, the same scripted database/sql work runs
// through the driver directly and through hasql, and
//
//   - what the application sees (results, rows, column types, error texts,
//     errors.Is against sentinels, errors.As to the driver's error type) is
//     identical, and
//   - the calls the inner driver receives, with their arguments and in their
//     order, are identical, with hasql's statement cache off (the cache
//     legitimately removes Prepare and Close calls). With the default
//     configuration only the application's view is compared.
//
// Both logs must also satisfy: nothing reaches a connection, or a statement,
// rows or transaction of it, after the connection's Close.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hasqlgo/hasql"
)

// fidCombo is one combination under test.
type fidCombo struct {
	name string
	caps hasql.FakeCaps
}

// fidCombos: all on, all off, and each interface off with the rest on and on
// with the rest off.
func fidCombos() []fidCombo {
	list := []fidCombo{{"all", hasql.FakeCapsAll}, {"none", 0}}
	for i := range hasql.FakeCapCount {
		bit := hasql.FakeCaps(1) << i
		list = append(list,
			fidCombo{"no-" + hasql.FakeCapInfo[i].Name, hasql.FakeCapsAll &^ bit},
			fidCombo{"only-" + hasql.FakeCapInfo[i].Name, bit})
	}
	return list
}

func TestFidelityCombinationsCovered(t *testing.T) {
	for _, c := range fidCombos() {
		if !hasql.FakeHasKinds(c.caps) {
			t.Errorf("%s: no prototype for %v", c.name, c.caps)
		}
	}
	// Each prototype has exactly the interfaces its mask says, and the
	// values the driver hands out have them too.
	for m := range hasql.FakeConnKinds {
		if got := hasql.FakeCapsOfValue(hasql.FakeConnKinds.Make(m, &hasql.FakeConn{}), hasql.FakeCapsConn); got != m {
			t.Errorf("conn prototype %v implements %v", m, got)
		}
	}
	for m := range hasql.FakeStmtKinds {
		if got := hasql.FakeCapsOfValue(hasql.FakeStmtKinds.Make(m, &hasql.FakeStmt{}), hasql.FakeCapsStmt); got != m {
			t.Errorf("stmt prototype %v implements %v", m, got)
		}
	}
	for m := range hasql.FakeRowsKinds {
		if got := hasql.FakeCapsOfValue(hasql.FakeRowsKinds.Make(m, &hasql.FakeRows{}), hasql.FakeCapsRows); got != m {
			t.Errorf("rows prototype %v implements %v", m, got)
		}
	}
}

func TestFidelity(t *testing.T) {
	for _, combo := range fidCombos() {
		t.Run(combo.name, func(t *testing.T) {
			t.Parallel()
			name := hasql.FakeDriverName(combo.caps)
			rawDB := func(rec *hasql.FakeDB) (*sql.DB, error) {
				return sql.Open(name, rec.DSN())
			}
			// Exact: no statement cache (it saves Prepare and Close calls)
			// and no retries of hasql's own (database/sql's happen as
			// without hasql).
			exactDB := func(rec *hasql.FakeDB) (*sql.DB, error) {
				return sql.Open("hasql", name+":"+rec.DSN()+"?hasql.stmtcache=0&hasql.retry=off")
			}
			defaultDB := func(rec *hasql.FakeDB) (*sql.DB, error) {
				return sql.Open("hasql", name+":"+rec.DSN())
			}

			raw := runFidelity(t, fidelityScript, rawDB)
			exact := runFidelity(t, fidelityScript, exactDB)
			def := runFidelity(t, fidelityScript, defaultDB)
			for _, run := range []*fidRun{raw, exact, def} {
				checkNoUseAfterClose(t, run.label, run.events)
			}
			if d := fidDiff(raw.out, exact.out); d != "" {
				t.Errorf("what the application sees differs (- raw driver, + hasql):\n%s", d)
			}
			if d := fidDiff(withoutStmtClosesAtClose(raw.events), withoutStmtClosesAtClose(exact.events)); d != "" {
				t.Errorf("the calls the inner driver received differ (- raw driver, + hasql):\n%s", d)
			}
			if d := fidDiff(withoutRecoverable(raw.out), withoutRecoverable(def.out)); d != "" {
				t.Errorf("what the application sees differs with hasql's default configuration (- raw driver, + hasql):\n%s", d)
			}
			for _, line := range def.out {
				if strings.HasPrefix(line, "~") && !strings.HasSuffix(line, ": ok") && !strings.HasSuffix(line, "| ok") {
					t.Errorf("hasql's default configuration did not recover: %s", line)
				}
			}

			checkScriptExpectations(t, combo.caps, raw.out)

			// Work whose inner calls legitimately differ: only what the
			// application sees is compared.
			rawApp := runFidelity(t, fidelityAppOnlyScript, rawDB)
			for _, open := range []func(*hasql.FakeDB) (*sql.DB, error){exactDB, defaultDB} {
				run := runFidelity(t, fidelityAppOnlyScript, open)
				checkNoUseAfterClose(t, run.label, run.events)
				if d := fidDiff(withoutRecoverable(rawApp.out), withoutRecoverable(run.out)); d != "" {
					t.Errorf("what the application sees differs (- raw driver, + hasql):\n%s", d)
				}
				checkLostOutcomes(t, rawApp.out, run.out)
			}

			if t.Failed() || testing.Verbose() {
				t.Logf("application transcript:\n%s\n%s", strings.Join(raw.out, "\n"), strings.Join(rawApp.out, "\n"))
			}
		})
	}
}

// fidRun is one run of the script.
type fidRun struct {
	t     *testing.T
	label string
	db    *sql.DB
	rec   *hasql.FakeDB
	hasql bool
	out   []string // what the application saw

	// recoverable marks steps whose failure hasql's default configuration
	// (retry=safe) may turn into success; their transcript lines start
	// with "~". lost marks steps on a connection lost inside a transaction,
	// whose errors hasql classifies (checkLostOutcomes); their lines start
	// with "!".
	recoverable, lost bool
	events            []string // what the inner driver received
}

func runFidelity(t *testing.T, script func(*fidRun), open func(rec *hasql.FakeDB) (*sql.DB, error)) *fidRun {
	t.Helper()
	rec := hasql.NewFakeDB(t)
	db, err := open(rec)
	if err != nil {
		t.Fatal(err)
	}
	_, isHasql := hasql.ConnectorOf(db)
	r := &fidRun{t: t, db: db, rec: rec, hasql: isHasql, label: "raw"}
	if isHasql {
		r.label = "hasql"
	}
	script(r)
	r.note("db.Close", nil, db.Close())
	r.events = rec.Events()
	return r
}

// fidSentinels are the errors whose errors.Is (and ==) the transcript records.
var fidSentinels = []struct {
	name string
	err  error
}{
	{"ErrSkip", driver.ErrSkip},
	{"ErrBadConn", driver.ErrBadConn},
	{"ErrRemoveArgument", driver.ErrRemoveArgument},
	{"Canceled", context.Canceled},
	{"DeadlineExceeded", context.DeadlineExceeded},
	{"ErrTxDone", sql.ErrTxDone},
	{"ErrConnDone", sql.ErrConnDone},
	{"ErrNoRows", sql.ErrNoRows},
	{"EOF", io.EOF},
	{"fidSentinel", hasql.ErrFakeSentinel},
	{"hasql.ErrConnectionLost", hasql.ErrConnectionLost},
	{"hasql.ErrTxResolutionUnknown", hasql.ErrTxResolutionUnknown},
	{"hasql.ErrTxNotCommitted", hasql.ErrTxNotCommitted},
	{"hasql.ErrClosed", hasql.ErrClosed},
}

// describeErr is an error as the transcript records it: its text, which
// sentinels errors.Is finds (and which it is, bare), and the driver's error
// reached with errors.As.
func describeErr(err error) string {
	if err == nil {
		return "ok"
	}
	var tags []string
	for _, s := range fidSentinels {
		if err == s.err { //nolint:errorlint // bareness is under test
			tags = append(tags, "=="+s.name)
		} else if errors.Is(err, s.err) {
			tags = append(tags, s.name)
		}
	}
	var fe *hasql.FakeError
	if errors.As(err, &fe) {
		tags = append(tags, fmt.Sprintf("hasql.FakeError(%d)", fe.Code))
	}
	return fmt.Sprintf("error %q %v", err.Error(), tags)
}

func (r *fidRun) note(step string, v any, err error) {
	if r.recoverable {
		step = "~" + step
	}
	if r.lost {
		step = "!" + step
	}
	if v == nil {
		r.out = append(r.out, fmt.Sprintf("%s: %s", step, describeErr(err)))
		return
	}
	r.out = append(r.out, fmt.Sprintf("%s: %v | %s", step, v, describeErr(err)))
}

type fidExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type fidQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (r *fidRun) exec(ctx context.Context, step string, ex fidExecer, q string, args ...any) {
	res, err := ex.ExecContext(ctx, q, args...)
	r.result(step, res, err)
}

func (r *fidRun) result(step string, res sql.Result, err error) {
	if err != nil {
		r.note(step, nil, err)
		return
	}
	id, err1 := res.LastInsertId()
	n, err2 := res.RowsAffected()
	r.note(step, fmt.Sprintf("id=%d (%s) affected=%d (%s)", id, describeErr(err1), n, describeErr(err2)), nil)
}

func (r *fidRun) query(ctx context.Context, step string, qr fidQueryer, q string, args ...any) {
	rows, err := qr.QueryContext(ctx, q, args...)
	r.rows(step, rows, err)
}

// rows records every result set of rows, then closes it.
func (r *fidRun) rows(step string, rows *sql.Rows, err error) {
	if err != nil {
		r.note(step, nil, err)
		return
	}
	var b strings.Builder
	for set := 0; ; set++ {
		cols, err := rows.Columns()
		fmt.Fprintf(&b, "set %d columns %v (%s)", set, cols, describeErr(err))
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			err := rows.Scan(ptrs...)
			fmt.Fprintf(&b, "; row %v (%s)", vals, describeErr(err))
		}
		if !rows.NextResultSet() {
			break
		}
		b.WriteString("; ")
	}
	fmt.Fprintf(&b, "; rows.Err %s; Close %s", describeErr(rows.Err()), describeErr(rows.Close()))
	r.note(step, b.String(), nil)
}

// columnTypes records every accessor of every column type.
func (r *fidRun) columnTypes(step string, rows *sql.Rows) {
	cts, err := rows.ColumnTypes()
	var b strings.Builder
	for _, ct := range cts {
		l, lok := ct.Length()
		p, s, pok := ct.DecimalSize()
		n, nok := ct.Nullable()
		st := "<nil>"
		if ct.ScanType() != nil {
			st = ct.ScanType().String()
		}
		fmt.Fprintf(&b, "[%s db=%q scan=%s length=%d,%v decimal=%d,%d,%v nullable=%v,%v] ",
			ct.Name(), ct.DatabaseTypeName(), st, l, lok, p, s, pok, n, nok)
	}
	r.note(step, b.String(), err)
}

func (r *fidRun) queryRow(ctx context.Context, step string, qr fidQueryer, q string, args ...any) {
	var a, c any
	var n int64
	err := qr.QueryRowContext(ctx, q, args...).Scan(&a, &n, &c)
	r.note(step, fmt.Sprintf("%v %d %v", a, n, c), err)
}

func (r *fidRun) stmtExec(ctx context.Context, step string, st *sql.Stmt, args ...any) {
	res, err := st.ExecContext(ctx, args...)
	r.result(step, res, err)
}

func (r *fidRun) stmtQuery(ctx context.Context, step string, st *sql.Stmt, args ...any) {
	rows, err := st.QueryContext(ctx, args...)
	r.rows(step, rows, err)
}

// fidelityScript is the database/sql work both runs do. It uses one
// connection at a time (SetMaxOpenConns(1)), so the order of driver calls is
// deterministic; work database/sql does on its own goroutines (rollback and
// rows close when a context ends) is waited for through the driver's log.
func fidelityScript(r *fidRun) {
	db, rec := r.db, r.rec
	ctx := context.Background()
	db.SetMaxOpenConns(1)

	// --- connecting and pinging
	rec.FailNext("connect", &hasql.FakeError{Code: 1, Msg: "connect refused"})
	r.note("connect/error", nil, db.PingContext(ctx))
	rec.FailNext("connect", driver.ErrBadConn)
	r.note("connect/badconn-retried", nil, db.PingContext(ctx))
	r.note("ping", nil, db.PingContext(ctx))
	rec.FailNext("ping", driver.ErrBadConn)
	r.recoverable = true // database/sql does not retry a Ping; hasql does
	r.note("ping/badconn", nil, db.PingContext(ctx))
	r.recoverable = false
	rec.FailNext("ping", &hasql.FakeError{Code: 2, Msg: "ping failed"})
	r.note("ping/error", nil, db.PingContext(ctx))
	rec.FailNext("ping", driver.ErrSkip)
	r.note("ping/skip", nil, db.PingContext(ctx))
	rec.ClearInjections()

	// --- ad-hoc exec
	r.exec(ctx, "exec/plain", db, "insert plain")
	r.exec(ctx, "exec/args", db, "insert ? ?", 1, "two")
	r.exec(ctx, "exec/named", db, "insert :a :b", sql.Named("a", 1), sql.Named("b", "x"))
	r.exec(ctx, "exec/mixed-named", db, "insert ? :b", 1, sql.Named("b", 2.5))
	r.exec(ctx, "exec/valuer", db, "insert ?", hasql.FakeValuer{rec, "e"})
	r.exec(ctx, "exec/remove", db, "insert ? ?", hasql.FakeRemove{}, 5)
	r.exec(ctx, "exec/checked", db, "insert ?", hasql.FakeChecked{"e"})
	r.exec(ctx, "exec/rejected", db, "insert ?", hasql.FakeReject{"e"})
	r.exec(ctx, "exec/cc-only", db, "insert ?", hasql.FakeCCOnly{"e"})
	r.exec(ctx, "exec/int-nil-bytes", db, "insert ? ? ?", int(3), nil, []byte("b"))
	r.exec(ctx, "exec/skip", db, "insert skip! ?", 1)
	r.exec(ctx, "exec/skip-noargs", db, "insert skip!")
	r.exec(ctx, "exec/badconn-once", db, "insert badconn-once! ?", 1)
	r.exec(ctx, "exec/fail", db, "insert fail! ?", 1)

	// --- ad-hoc query
	r.query(ctx, "query/plain", db, "select rows=2")
	r.query(ctx, "query/args", db, "select rows=1 ? ?", 1, "x")
	r.query(ctx, "query/named", db, "select rows=1 :a", sql.Named("a", 2))
	r.query(ctx, "query/valuer", db, "select rows=1 ?", hasql.FakeValuer{rec, "q"})
	r.query(ctx, "query/remove", db, "select rows=1 ? ?", 1, hasql.FakeRemove{})
	r.query(ctx, "query/checked", db, "select rows=1 ?", hasql.FakeChecked{"q"})
	r.query(ctx, "query/cc-only", db, "select rows=1 ?", hasql.FakeCCOnly{"q"})
	r.query(ctx, "query/sets", db, "select sets=3 rows=2")
	r.query(ctx, "query/empty", db, "select rows=0")
	r.query(ctx, "query/skip", db, "select skip! rows=1 ?", 1)
	r.query(ctx, "query/badconn-once", db, "select badconn-once! rows=1")
	r.query(ctx, "query/fail", db, "select fail!")
	r.queryRow(ctx, "queryrow", db, "select rows=1 ?", 9)
	r.queryRow(ctx, "queryrow/norows", db, "select rows=0")
	r.queryRow(ctx, "queryrow/fail", db, "select fail!")
	if rows, err := db.QueryContext(ctx, "select sets=2 rows=3 early-close"); err != nil {
		r.note("query/early-close", nil, err)
	} else {
		r.columnTypes("query/coltypes", rows)
		r.note("query/early-close/next", rows.Next(), rows.Err())
		r.note("query/early-close/nextresultset", rows.NextResultSet(), rows.Err())
		r.columnTypes("query/coltypes-set2", rows)
		r.note("query/early-close/close", nil, rows.Close())
		r.note("query/early-close/next-after-close", rows.Next(), rows.Err())
	}

	// --- prepared statements
	st, err := db.PrepareContext(ctx, "insert ? ?")
	r.note("prepare", nil, err)
	if err == nil {
		r.stmtExec(ctx, "stmt/exec", st, 1, 2)
		r.stmtExec(ctx, "stmt/exec-too-few", st, 1)
		r.stmtExec(ctx, "stmt/exec-named", st, sql.Named("a", 1), 2)
		r.stmtExec(ctx, "stmt/valuer", st, hasql.FakeValuer{rec, "s"}, 2)
		r.stmtExec(ctx, "stmt/remove", st, hasql.FakeRemove{}, 1, 2)
		r.stmtExec(ctx, "stmt/checked", st, hasql.FakeChecked{"s"}, 2)
		r.stmtExec(ctx, "stmt/rejected", st, hasql.FakeReject{"s"}, 2)
		r.stmtExec(ctx, "stmt/cc-only", st, hasql.FakeCCOnly{"s"}, 2)
		r.stmtQuery(ctx, "stmt/query", st, 1, 2)
		var a, c any
		var n int64
		r.note("stmt/queryrow", nil, st.QueryRowContext(ctx, 1, 2).Scan(&a, &n, &c))
		r.note("stmt/close", nil, st.Close())
		r.note("stmt/close-again", nil, st.Close())
		r.stmtExec(ctx, "stmt/exec-after-close", st, 1, 2)
	}
	st, err = db.PrepareContext(ctx, "select numinput=-1 rows=1 ?")
	r.note("prepare/numinput-unknown", nil, err)
	if err == nil {
		r.stmtQuery(ctx, "stmt/numinput-unknown", st, 1, 2, 3)
		r.stmtExec(ctx, "stmt/numinput-unknown-exec", st)
		r.note("stmt/numinput-unknown-close", nil, st.Close())
	}
	_, err = db.PrepareContext(ctx, "select fail!")
	r.note("prepare/fail", nil, err)
	st, err = db.PrepareContext(ctx, "select badconn-once! rows=1")
	r.note("prepare/badconn-once", nil, err)
	if err == nil {
		r.stmtQuery(ctx, "stmt/after-badconn", st)
		r.note("stmt/after-badconn-close", nil, st.Close())
	}

	// --- transactions
	dbStmt, err := db.PrepareContext(ctx, "insert from-db-stmt ?")
	r.note("tx/db-stmt", nil, err)
	tx, err := db.BeginTx(ctx, nil)
	r.note("tx/begin", nil, err)
	if err == nil {
		r.exec(ctx, "tx/exec", tx, "insert in-tx ?", 1)
		r.exec(ctx, "tx/exec-skip", tx, "insert in-tx skip! ?", 1)
		r.query(ctx, "tx/query", tx, "select in-tx rows=1 ?", hasql.FakeValuer{rec, "tx"})
		r.queryRow(ctx, "tx/queryrow", tx, "select in-tx rows=1")
		if tst, err := tx.PrepareContext(ctx, "insert tx-stmt ?"); err != nil {
			r.note("tx/prepare", nil, err)
		} else {
			r.stmtExec(ctx, "tx/stmt-exec", tst, 1)
			r.stmtQuery(ctx, "tx/stmt-query", tst, 2)
		}
		if dbStmt != nil {
			r.stmtExec(ctx, "tx/db-stmt-exec", tx.StmtContext(ctx, dbStmt), 3)
		}
		r.exec(ctx, "tx/exec-fail", tx, "insert in-tx fail!")
		r.note("tx/commit", nil, tx.Commit())
		r.note("tx/commit-again", nil, tx.Commit())
		r.note("tx/rollback-after-commit", nil, tx.Rollback())
		r.exec(ctx, "tx/exec-after-commit", tx, "insert after")
	}
	if dbStmt != nil {
		r.note("tx/db-stmt-close", nil, dbStmt.Close())
	}
	tx, err = db.Begin()
	r.note("tx/begin-legacy", nil, err)
	if err == nil {
		r.exec(ctx, "tx/legacy-exec", tx, "insert legacy")
		r.note("tx/rollback", nil, tx.Rollback())
		r.note("tx/rollback-again", nil, tx.Rollback())
	}
	for _, o := range []struct {
		name string
		opts *sql.TxOptions
	}{
		{"default-opts", &sql.TxOptions{}},
		{"serializable", &sql.TxOptions{Isolation: sql.LevelSerializable}},
		{"read-committed", &sql.TxOptions{Isolation: sql.LevelReadCommitted}},
		{"read-only", &sql.TxOptions{ReadOnly: true}},
		{"serializable-read-only", &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true}},
	} {
		tx, err := db.BeginTx(ctx, o.opts)
		r.note("tx/"+o.name, nil, err)
		if err == nil {
			r.note("tx/"+o.name+"/commit", nil, tx.Commit())
		}
	}
	rec.FailNext("begin", &hasql.FakeError{Code: 3, Msg: "begin failed"})
	_, err = db.BeginTx(ctx, nil)
	r.note("tx/begin-error", nil, err)
	rec.FailNext("begin", driver.ErrBadConn)
	tx, err = db.BeginTx(ctx, nil)
	r.note("tx/begin-badconn-retried", nil, err)
	if err == nil {
		r.note("tx/begin-badconn-retried/rollback", nil, tx.Rollback())
	}
	rec.FailNext("commit", &hasql.FakeError{Code: 4, Msg: "commit failed"})
	if tx, err = db.BeginTx(ctx, nil); err == nil {
		r.note("tx/commit-error", nil, tx.Commit())
	}
	rec.FailNext("rollback", &hasql.FakeError{Code: 5, Msg: "rollback failed"})
	if tx, err = db.BeginTx(ctx, nil); err == nil {
		r.note("tx/rollback-error", nil, tx.Rollback())
	}
	rec.ClearInjections()
	r.exec(ctx, "tx/after-rollback-error", db, "insert after-rollback-error")

	// --- a pinned *sql.Conn
	c, err := db.Conn(ctx)
	r.note("conn", nil, err)
	if err == nil {
		r.note("conn/raw", nil, c.Raw(func(dc any) error {
			r.note("conn/raw/inner-caps", hasql.FakeCapsOfValue(hasql.Unwrap(dc), hasql.FakeCapsConn).String(), nil)
			return nil
		}))
		r.exec(ctx, "conn/exec", c, "insert pinned ?", 1)
		r.query(ctx, "conn/query", c, "select pinned rows=1 ?", sql.Named("p", 1))
		r.queryRow(ctx, "conn/queryrow", c, "select pinned rows=1")
		r.note("conn/ping", nil, c.PingContext(ctx))
		if cst, err := c.PrepareContext(ctx, "insert pinned-stmt ?"); err != nil {
			r.note("conn/prepare", nil, err)
		} else {
			r.stmtExec(ctx, "conn/stmt-exec", cst, hasql.FakeCCOnly{"c"})
			r.note("conn/stmt-close", nil, cst.Close())
		}
		if tx, err := c.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err != nil {
			r.note("conn/begin-read-only", nil, err)
		} else {
			r.note("conn/begin-read-only/rollback", nil, tx.Rollback())
		}
		if tx1, err := c.BeginTx(ctx, nil); err != nil {
			r.note("conn/begin", nil, err)
		} else {
			r.exec(ctx, "conn/tx-exec", tx1, "insert pinned in-tx")
			tx2, err := c.BeginTx(ctx, nil)
			r.note("conn/second-begin", nil, err)
			if err == nil {
				r.exec(ctx, "conn/second-tx-exec", tx2, "insert pinned second-tx")
				r.note("conn/second-tx-rollback", nil, tx2.Rollback())
			}
			r.exec(ctx, "conn/tx-exec-again", tx1, "insert pinned in-tx again")
			r.note("conn/tx-commit", nil, tx1.Commit())
		}
		// database/sql gives up on a pinned connection that reports
		// driver.ErrBadConn; hasql's default retry=safe moves it to a new
		// session instead.
		r.recoverable = true
		r.exec(ctx, "conn/badconn", c, "insert pinned badconn-once!")
		r.exec(ctx, "conn/after-badconn", c, "insert pinned after")
		r.note("conn/close", nil, c.Close())
		r.recoverable = false
	}

	// --- contexts
	done, cancel := context.WithCancel(ctx)
	cancel()
	r.exec(done, "ctx/done/exec", db, "insert never")
	r.query(done, "ctx/done/query", db, "select never")
	_, err = db.PrepareContext(done, "select never")
	r.note("ctx/done/prepare", nil, err)
	_, err = db.BeginTx(done, nil)
	r.note("ctx/done/begin", nil, err)
	r.note("ctx/done/ping", nil, db.PingContext(done))

	// Contexts that end during the driver call (calls without a context
	// cannot see it and succeed).
	cctx, cancel := context.WithCancel(ctx)
	rec.SetCancel(cancel)
	r.exec(cctx, "ctx/cancel-in-exec", db, "insert cancel! ?", 1)
	cancel()
	cctx, cancel = context.WithCancel(ctx)
	rec.SetCancel(cancel)
	r.query(cctx, "ctx/cancel-in-query", db, "select cancel! rows=1")
	cancel()
	cctx, cancel = context.WithCancel(ctx)
	rec.SetCancel(cancel)
	st, err = db.PrepareContext(cctx, "select cancel! prepare")
	r.note("ctx/cancel-in-prepare", nil, err)
	if err == nil {
		r.stmtQuery(cctx, "ctx/cancel-in-stmt-query", st)
		r.note("ctx/cancel-in-stmt-close", nil, st.Close())
	}
	cancel()
	rec.SetCancel(nil)

	// Rows closed by database/sql when their context ends.
	cctx, cancel = context.WithCancel(ctx)
	if rows, err := db.QueryContext(cctx, "select rows=3 cancel-rows"); err != nil {
		r.note("ctx/rows", nil, err)
		cancel()
	} else {
		r.note("ctx/rows/next", rows.Next(), rows.Err())
		m := rec.Mark()
		cancel()
		rec.WaitFor(r.t, m, func(ev string) bool { return strings.Contains(ev, ".r") && strings.HasSuffix(ev, " Close") })
		r.note("ctx/rows/next-after-cancel", rows.Next(), rows.Err())
		r.note("ctx/rows/close", nil, rows.Close())
	}

	// A transaction rolled back by database/sql when its context ends.
	cctx, cancel = context.WithCancel(ctx)
	if tx, err := db.BeginTx(cctx, nil); err != nil {
		r.note("ctx/tx", nil, err)
		cancel()
	} else {
		r.exec(cctx, "ctx/tx/exec", tx, "insert in-cancelled-tx")
		m := rec.Mark()
		cancel()
		rec.WaitFor(r.t, m, func(ev string) bool { return strings.Contains(ev, " Rollback ") })
		r.note("ctx/tx/commit", nil, tx.Commit())
		r.note("ctx/tx/rollback", nil, tx.Rollback())
	}
	r.exec(ctx, "ctx/after-tx-cancel", db, "insert after-tx-cancel")

	// --- session reset and validation
	rec.FailNext("reset", driver.ErrBadConn)
	r.exec(ctx, "reset/badconn", db, "insert after-reset-badconn")
	rec.FailNext("reset", &hasql.FakeError{Code: 6, Msg: "reset failed"})
	r.exec(ctx, "reset/error", db, "insert after-reset-error")
	rec.ClearInjections()
	rec.FailNext("invalid", errors.New("invalid"))
	r.exec(ctx, "invalid/release", db, "insert released-invalid")
	r.exec(ctx, "invalid/next", db, "insert after-invalid")
	rec.ClearInjections()

	// A prepared statement outlives its connection: database/sql prepares
	// it again on the next one.
	st, err = db.PrepareContext(ctx, "insert outliving ? ?")
	r.note("outlive/prepare", nil, err)
	if err == nil {
		r.stmtExec(ctx, "outlive/exec", st, 1, hasql.FakeCCOnly{"o"})
		rec.FailNext("invalid", errors.New("invalid"))
		r.stmtExec(ctx, "outlive/exec-released-invalid", st, 2, hasql.FakeCCOnly{"o"})
		rec.ClearInjections()
		r.stmtExec(ctx, "outlive/exec-on-next-conn", st, 3, hasql.FakeCCOnly{"o"})
		r.stmtQuery(ctx, "outlive/query-on-next-conn", st, 4, hasql.FakeCCOnly{"o"})
		r.note("outlive/close", nil, st.Close())
	}
}

// checkScriptExpectations checks the transcript against what database/sql
// itself must do, so that the raw driver and hasql cannot pass by being
// wrong in the same way.
func checkScriptExpectations(t *testing.T, caps hasql.FakeCaps, out []string) {
	t.Helper()
	lines := map[string]string{}
	for _, line := range out {
		step, rest, _ := strings.Cut(line, ": ")
		lines[strings.TrimLeft(step, "~!")] = rest
	}
	want := func(step, substr string) {
		t.Helper()
		if !strings.Contains(lines[step], substr) {
			t.Errorf("step %s: got %q, want it to contain %q", step, lines[step], substr)
		}
	}
	// database/sql falls back to a prepared statement on driver.ErrSkip and
	// retries on driver.ErrBadConn.
	for _, step := range []string{"exec/skip", "exec/skip-noargs", "query/skip", "exec/badconn-once",
		"query/badconn-once", "prepare/badconn-once", "stmt/after-badconn", "connect/badconn-retried"} {
		want(step, "ok")
		if strings.Contains(lines[step], "error") {
			t.Errorf("step %s failed: %s", step, lines[step])
		}
	}
	want("exec/fail", "hasql.FakeError(42)")
	want("ping/skip", map[bool]string{true: "[==ErrSkip]", false: "ok"}[caps&hasql.FakePinger != 0])
	want("conn/badconn", "[==ErrBadConn]")
	want("conn/after-badconn", "[==ErrConnDone]")
	want("ctx/rows/next-after-cancel", "[==Canceled]")
	want("ctx/tx/commit", "[==ErrTxDone]")
	want("stmt/exec-too-few", `"sql: expected 2 arguments, got 1"`)
	if caps&hasql.FakeConnBeginTx == 0 {
		// database/sql's own texts for a driver without ConnBeginTx.
		for _, step := range []string{"tx/serializable", "tx/read-committed", "tx/serializable-read-only"} {
			want(step, `error "sql: driver does not support non-default isolation level"`)
		}
		want("tx/read-only", `error "sql: driver does not support read-only transactions"`)
		want("conn/begin-read-only", `error "sql: driver does not support read-only transactions"`)
	} else {
		for _, step := range []string{"tx/serializable", "tx/read-committed", "tx/read-only", "tx/serializable-read-only"} {
			want(step, "ok")
		}
	}
	if caps&hasql.FakeNextResultSet != 0 {
		want("query/sets", "set 2 columns [q2 n2 args2]")
	}
}

// withoutStmtClosesAtClose drops the statement closes that come right before
// their connection's close. database/sql closes every statement it still has
// on a connection before closing the connection; hasql lets a session's
// statements go with its connection (pool_session.go, session.close), which the
// driver frees anyway.
func withoutStmtClosesAtClose(events []string) []string {
	var out []string
	for _, ev := range events {
		if conn, ok := strings.CutSuffix(ev, " Close"); ok && !strings.Contains(conn, ".") {
			for len(out) > 0 {
				last := out[len(out)-1]
				if !strings.HasPrefix(last, conn+".s") || !strings.HasSuffix(last, " Close") {
					break
				}
				out = out[:len(out)-1]
			}
		}
		out = append(out, ev)
	}
	return out
}

// withoutRecoverable reduces the transcript lines of recoverable ("~") and
// lost-connection ("!") steps to their step names.
func withoutRecoverable(out []string) []string {
	res := make([]string, len(out))
	for i, line := range out {
		if strings.HasPrefix(line, "~") || strings.HasPrefix(line, "!") {
			line, _, _ = strings.Cut(line, ":")
		}
		res[i] = line
	}
	return res
}

// fidelityAppOnlyScript is work where hasql changes the driver calls in a way
// it cannot avoid, while the application must see the same.
func fidelityAppOnlyScript(r *fidRun) {
	db, ctx := r.db, context.Background()
	db.SetMaxOpenConns(1)
	// database/sql validates argument names before it converts anything.
	// With a driver that has no ad-hoc Exec or Query, it prepares first and
	// then fails; hasql's connection always has ExecerContext and
	// QueryerContext, so database/sql fails before any driver call.
	r.exec(ctx, "exec/bad-name", db, "insert :1", sql.Named("1", 1))
	r.query(ctx, "query/bad-name", db, "select :_x", sql.Named("_x", 1))
	r.exec(ctx, "exec/ok-after-bad-name", db, "insert after")

	// A connection lost inside a transaction. database/sql cannot retry
	// there and returns driver.ErrBadConn. hasql (API.md, Errors) wraps
	// it in ErrTxNotCommitted (nothing was sent), reports a rollback on a dead connection
	// as done (the server rolled back), and ends the session, where
	// database/sql would keep the inner connection if its IsValid allowed.
	rec := r.rec
	r.lost = true
	if tx, err := db.BeginTx(ctx, nil); err == nil {
		r.exec(ctx, "tx/exec-badconn", tx, "insert in-tx badconn-once!")
		r.lost = false
		r.exec(ctx, "tx/exec-after-badconn", tx, "insert in-tx after-badconn")
		r.note("tx/rollback-after-badconn", nil, tx.Rollback())
		r.lost = true
	}
	rec.FailNext("rollback", driver.ErrBadConn)
	if tx, err := db.BeginTx(ctx, nil); err == nil {
		r.note("tx/rollback-badconn", nil, tx.Rollback())
	}
	rec.FailNext("commit", driver.ErrBadConn)
	if tx, err := db.BeginTx(ctx, nil); err == nil {
		r.note("tx/commit-badconn", nil, tx.Commit())
	}
	r.lost = false
	rec.ClearInjections()
	r.exec(ctx, "tx/after-badconn", db, "insert after-tx-badconn")
}

// checkLostOutcomes checks the "!" lines of a hasql transcript against the
// raw driver's: the same, or the driver's error inside one of hasql's loss
// errors, or (a rollback) success.
func checkLostOutcomes(t *testing.T, raw, hq []string) {
	t.Helper()
	if len(raw) != len(hq) {
		return // fidDiff reports it
	}
	for i, line := range hq {
		if !strings.HasPrefix(line, "!") || line == raw[i] {
			continue
		}
		step, _, _ := strings.Cut(line, ":")
		// (hasql keeps driver.ErrBadConn itself out of the chain, so that
		// database/sql does not run the work again: retry.go.)
		wrapped := strings.Contains(line, "driver: bad connection") &&
			(strings.Contains(line, "hasql.ErrTxResolutionUnknown]") || strings.Contains(line, "hasql.ErrTxNotCommitted]") || strings.Contains(line, "hasql.ErrConnectionLost]"))
		rolledBack := strings.Contains(step, "rollback") && strings.HasSuffix(line, ": ok")
		if !strings.Contains(raw[i], "[==ErrBadConn]") || !(wrapped || rolledBack) {
			t.Errorf("lost connection: raw driver %q, hasql %q", raw[i], line)
		}
	}
}

// checkNoUseAfterClose fails if any call reaches a connection (or one of its
// statements, rows or transactions) after the connection was closed.
func checkNoUseAfterClose(t *testing.T, label string, events []string) {
	t.Helper()
	closed := map[string]int{}
	for i, ev := range events {
		id, rest, _ := strings.Cut(ev, " ")
		conn, _, _ := strings.Cut(id, ".")
		if !strings.HasPrefix(conn, "c") {
			continue
		}
		if at, ok := closed[conn]; ok && !strings.HasPrefix(rest, "Result.") {
			// (database/sql reads a Result after it released the
			// connection; a driver must answer from memory.)
			t.Errorf("%s: event %d %q reaches %s, closed at event %d", label, i, ev, conn, at)
		}
		if id == conn && rest == "Close" {
			closed[conn] = i
		}
	}
}

// fidDiff is a line diff of a and b ("" when equal), with a little context.
func fidDiff(a, b []string) string {
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return ""
	}
	// Longest common subsequence, then an edit script.
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var script []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			script = append(script, line{' ', a[i]})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			script = append(script, line{'+', b[j]})
			j++
		default:
			script = append(script, line{'-', a[i]})
			i++
		}
	}
	const ctxLines = 3
	show := make([]bool, len(script))
	for k, l := range script {
		if l.op != ' ' {
			for x := max(0, k-ctxLines); x <= k+ctxLines && x < len(script); x++ {
				show[x] = true
			}
		}
	}
	var out strings.Builder
	for k, l := range script {
		if !show[k] {
			if k > 0 && show[k-1] {
				out.WriteString("    ...\n")
			}
			continue
		}
		fmt.Fprintf(&out, "  %c %s\n", l.op, l.text)
	}
	return out.String()
}
