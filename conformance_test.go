package hasql_test

// Side-by-side conformance: the same body of work runs through the raw driver (sql.Open("pgx", dsn),
// sql.Open("mysql", dsn)) and through hasql (sql.Open("hasql", "pgx:"+dsn), …) on the same real
// server, each side in a fresh database of its own. Every observable result — values with their Go
// types, column metadata, errors with their text, type, errors.Is/As classes and driver codes — is
// written to a transcript, and the two transcripts must be identical. Steps that must succeed fail
// the test on both sides, so that two identical failures cannot pass as conformance.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hasqlgo/hasql"
)

// confBody is one topic's work on one backend. It runs twice: once per side.
type confBody func(r *confRec, db *sql.DB)

type confTopic struct {
	name     string
	pg, my   confBody // nil: not applicable to that backend
	pgParams string   // extra DSN parameters, "a=1&b=2" (values URL-encoded)
	myParams string

	// hasqlParams are added to the hasql side's DSN only (confExact).
	hasqlParams string
}

// confExact is hasql's configuration without a statement cache (a closed *sql.Stmt's statement
// is not kept for reuse, so every Prepare asks the server) and without retries on a new session
// (a lost connection is reported, not replaced). There every call is compared on its own; with
// the plain DSN — the default configuration — a Prepare served from the statement cache is
// compared with what its first use gives (see prepQuery in confSchemaChange). In both, hasql may
// survive a failure the raw driver does not survive, and nothing else (see confRec.outcome).
const confExact = "hasql.stmtcache=0&hasql.retry=off"

var confTopics = []confTopic{
	{name: "nulls", pg: confPGNulls, my: confMyNulls},
	{name: "int-limits", pg: confPGIntLimits, my: confMyIntLimits},
	{name: "numeric", pg: confPGNumeric, my: confMyNumeric},
	{name: "floats", pg: confPGFloats, my: confMyFloats},
	{name: "text-multibyte", pg: confPGText, my: confMyText},
	{name: "binary", pg: confPGBinary, my: confMyBinary},
	{name: "time", pg: confPGTime, my: confMyTime,
		pgParams: "timezone=Asia%2FKolkata", myParams: "parseTime=true&loc=Asia%2FTokyo"},
	{name: "json", pg: confPGJSON, my: confMyJSON},
	{name: "pg-arrays", pg: confPGArrays},
	{name: "valuer-scanner", pg: confPGValuerScanner, my: confMyValuerScanner},
	{name: "arg-conversion", pg: confPGArgConversion, my: confMyArgConversion},
	{name: "named-args", pg: confPGNamedArgs, my: confMyNamedArgs},
	{name: "raw-bytes", pg: confPGRawBytes, my: confMyRawBytes},
	{name: "column-types", pg: confPGColumnTypes, my: confMyColumnTypes},
	{name: "exec-result", pg: confPGExecResult, my: confMyExecResult},
	{name: "multi-result-sets", pg: confPGMultiStatements, my: confMyMultiResults, myParams: "multiStatements=true"},
	{name: "tx-isolation", pg: confPGTxIsolation, my: confMyTxIsolation},
	{name: "savepoints", pg: confPGSavepoints, my: confMySavepoints},
	{name: "cancel", pg: confPGCancel, my: confMyCancel},
	{name: "pinned-conn", pg: confPGPinnedConn, my: confMyPinnedConn},
	{name: "stmt-reuse", pg: confPGStmtReuse, my: confMyStmtReuse},
	{name: "errors", pg: confPGErrors, my: confMyErrors},
	{name: "pg-copyfrom", pg: confPGCopyFrom},
	{name: "schema-change", pg: confPGSchemaChange, my: confMySchemaChange},
	{name: "schema-change-exact", pg: confPGSchemaChange, my: confMySchemaChange, hasqlParams: confExact},
	{name: "cancel-exact", pg: confPGCancel, my: confMyCancel, hasqlParams: confExact},
}

func TestConformance(t *testing.T) {
	for _, tc := range confTopics {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.pg != nil {
				t.Run("pgx", func(t *testing.T) {
					t.Parallel()
					confCompare(t, "pgx", tc.pgParams, tc.hasqlParams, tc.pg)
				})
			}
			if tc.my != nil {
				t.Run("mysql", func(t *testing.T) {
					t.Parallel()
					confCompare(t, "mysql", tc.myParams, tc.hasqlParams, tc.my)
				})
			}
		})
	}
}

// confCompare runs body through the raw driver and through hasql, each on a fresh database of the
// same server, and compares the transcripts.
func confCompare(t *testing.T, kind, params, hasqlParams string, body confBody) {
	var fresh func() string
	switch kind {
	case "pgx":
		srv := sharedPG(t)
		fresh = func() string { return srv.FreshDB(t) }
	case "mysql":
		srv := sharedMaria(t)
		fresh = func() string { return srv.FreshDB(t) }
	default:
		t.Fatalf("unknown backend %q", kind)
	}
	rawDSN, hasqlDSN := fresh(), fresh()
	start := time.Now()
	exact := hasqlParams == confExact
	raw := confRunSide(t, "raw", kind, rawDSN, params, exact, body)
	mid := time.Now()
	has := confRunSide(t, "hasql", kind, hasqlDSN, confJoin(params, hasqlParams), exact, body)
	t.Logf("%d transcript lines; raw %v, hasql %v", len(raw), mid.Sub(start).Round(time.Millisecond), time.Since(mid).Round(time.Millisecond))
	if len(raw) < 3 {
		t.Errorf("raw transcript has only %d lines: the topic did not run", len(raw))
	}
	if !reflect.DeepEqual(raw, has) {
		if diff := confDiff(raw, has); diff != "" {
			t.Errorf("hasql differs from raw %s:\n%s", kind, diff)
		}
	}
}

func confJoin(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "&" + b
}

// confRunSide runs body on one side and returns its normalised transcript.
func confRunSide(t *testing.T, side, kind, dsn, params string, exact bool, body confBody) []string {
	t.Helper()
	var dbs []*sql.DB
	open := func(extra string) *sql.DB {
		d := confWithParams(kind, dsn, params)
		d = confWithParams(kind, d, extra)
		name := kind
		if side == "hasql" {
			name, d = "hasql", kind+":"+d
		}
		db, err := sql.Open(name, d)
		if err != nil {
			t.Fatalf("[%s] sql.Open(%q): %v", side, name, err)
		}
		if _, ok := hasql.ConnectorOf(db); ok != (side == "hasql") {
			t.Fatalf("[%s] hasql.ConnectorOf(db) = %v: the side does not use the driver it should", side, ok)
		}
		dbs = append(dbs, db)
		return db
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := &confRec{t: t, side: side, kind: kind, exact: exact, ctx: ctx, open: open}
	db := open("")
	var dbName string
	q := "SELECT current_database()"
	if kind == "mysql" {
		q = "SELECT DATABASE()"
	}
	if err := db.QueryRowContext(ctx, q).Scan(&dbName); err != nil || dbName == "" {
		t.Fatalf("[%s] %s: %q, %v", side, q, dbName, err)
	}
	body(r, db)
	for i := len(dbs) - 1; i >= 0; i-- {
		r.must("close db", dbs[i].Close())
	}
	for i, l := range r.lines {
		l = strings.ReplaceAll(l, dbName, "<db>")
		r.lines[i] = confAddr.ReplaceAllString(l, "(0xADDR)")
	}
	if dir := os.Getenv("HASQL_CONF_DUMP"); dir != "" {
		name := strings.NewReplacer("/", "_").Replace(t.Name()) + "-" + side + ".txt"
		_ = os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(r.lines, "\n")+"\n"), 0o644)
	}
	return r.lines
}

// confAddr matches pointer values that error messages may print.
var confAddr = regexp.MustCompile(`\(0x[0-9a-f]+\)`)

// confWithParams appends "a=1&b=2" parameters (values URL-encoded) to a pgx or mysql DSN.
func confWithParams(kind, dsn, params string) string {
	if params == "" {
		return dsn
	}
	if kind == "mysql" {
		if strings.Contains(dsn[strings.LastIndexByte(dsn, '/')+1:], "?") {
			return dsn + "&" + params
		}
		return dsn + "?" + params
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&" + params
		}
		return dsn + "?" + params
	}
	// libpq key=value form.
	for _, kv := range strings.Split(params, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		dsn += " " + k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return dsn
}

// confDiff shows where two transcripts part, or returns "" when they agree. Lines agree when they
// are equal, or when both are "~" outcome lines with the same label and the raw driver failed
// where hasql succeeded (ARCHITECTURE.md: swapping in hasql "must change nothing an application
// can observe, except that it now survives failures it did not survive before").
func confDiff(a, b []string) string {
	var out strings.Builder
	n := max(len(a), len(b))
	shown := 0
	for i := 0; i < n && shown < 25; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		} else {
			x = "<missing>"
		}
		if i < len(b) {
			y = b[i]
		} else {
			y = "<missing>"
		}
		if x == y || confSurvived(x, y) {
			continue
		}
		fmt.Fprintf(&out, "  line %d\n    raw:   %s\n    hasql: %s\n", i, x, y)
		shown++
	}
	if len(a) != len(b) {
		fmt.Fprintf(&out, "  (raw has %d lines, hasql %d)\n", len(a), len(b))
	}
	return out.String()
}

// confSurvived: raw and hasql are outcome lines of the same step, the raw driver failed and hasql
// succeeded.
func confSurvived(raw, has string) bool {
	rl, rv, ok1 := strings.Cut(raw, ": ")
	hl, hv, ok2 := strings.Cut(has, ": ")
	return ok1 && ok2 && rl == hl && strings.HasPrefix(rl, "~ ") &&
		strings.HasPrefix(rv, "failed ") && strings.HasPrefix(hv, "ok")
}

// ---------------------------------------------------------------------------------------------
// The recorder

// confQ is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type confQ interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// confRec writes one side's transcript.
type confRec struct {
	t     *testing.T
	side  string // "raw" or "hasql"
	kind  string // "pgx" or "mysql"
	exact bool   // the hasql side runs with confExact
	ctx   context.Context
	open  func(params string) *sql.DB // another *sql.DB on this side's database, with extra parameters
	mu    sync.Mutex
	lines []string
}

// add records label with the canonical form of vals.
func (r *confRec) add(label string, vals ...any) {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = r.canon(v)
	}
	if strings.HasPrefix(label, "~ ") && len(vals) > 0 {
		parts[0] = vals[0].(string) // "ok" or "failed <class>", bare for confSurvived
	}
	r.mu.Lock()
	r.lines = append(r.lines, label+": "+strings.Join(parts, " | "))
	r.mu.Unlock()
}

// errorf fails the test, naming the side.
func (r *confRec) errorf(format string, args ...any) {
	r.t.Helper()
	r.t.Errorf("[%s %s] "+format, append([]any{r.kind, r.side}, args...)...)
}

// check fails the test when cond is false.
func (r *confRec) check(cond bool, format string, args ...any) {
	r.t.Helper()
	if !cond {
		r.errorf(format, args...)
	}
}

// must records err and fails the test if it is not nil.
func (r *confRec) must(label string, err error) bool {
	r.t.Helper()
	r.add(label, err)
	if err != nil {
		r.errorf("%s: unexpected error: %v", label, err)
		return false
	}
	return true
}

// mustExec runs a statement that must succeed.
func (r *confRec) mustExec(q confQ, query string, args ...any) {
	r.t.Helper()
	_, err := q.ExecContext(r.ctx, query, args...)
	r.must("exec "+confShort(query), err)
}

// exec runs a statement and records its result or error.
func (r *confRec) exec(label string, q confQ, query string, args ...any) sql.Result {
	res, err := q.ExecContext(r.ctx, query, args...)
	r.recordResult(label, res, err)
	return res
}

func (r *confRec) recordResult(label string, res sql.Result, err error) {
	if err != nil {
		r.add(label, err)
		return
	}
	n, nerr := res.RowsAffected()
	id, iderr := res.LastInsertId()
	r.add(label, "rows", n, nerr, "id", id, iderr)
}

// rows runs a query and records every row scanned into *any.
func (r *confRec) rows(label string, q confQ, query string, args ...any) {
	rows, err := q.QueryContext(r.ctx, query, args...)
	if err != nil {
		r.add(label, err)
		return
	}
	r.drain(label, rows)
}

// drain records the columns and every row of rows (of the current result set and no other).
func (r *confRec) drain(label string, rows *sql.Rows) {
	cols, err := rows.Columns()
	r.add(label+" columns", cols, err)
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		err := rows.Scan(ptrs...)
		r.add(fmt.Sprintf("%s row %d", label, n), vals, err)
		n++
	}
	r.add(label+" rows.Err", rows.Err())
	r.add(label+" rows.Close", rows.Close())
}

// scan runs a one-row query, scans it into dests and records them.
func (r *confRec) scan(label string, q confQ, dests []any, query string, args ...any) error {
	err := q.QueryRowContext(r.ctx, query, args...).Scan(dests...)
	r.add(label, append(dests, err)...)
	return err
}

// scanStmt runs a prepared statement as a one-row query, scans it into dests and records them.
func (r *confRec) scanStmt(label string, st *sql.Stmt, dests []any, args ...any) error {
	err := st.QueryRowContext(r.ctx, args...).Scan(dests...)
	r.add(label, append(dests, err)...)
	return err
}

// multi runs a query and records every result set it returns.
func (r *confRec) multi(label string, q confQ, query string, args ...any) {
	rows, err := q.QueryContext(r.ctx, query, args...)
	if err != nil {
		r.add(label, err)
		return
	}
	for set := 0; ; set++ {
		cols, err := rows.Columns()
		r.add(fmt.Sprintf("%s set %d columns", label, set), cols, err)
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			r.add(fmt.Sprintf("%s set %d row %d", label, set, n), vals, rows.Scan(ptrs...))
			n++
		}
		r.add(fmt.Sprintf("%s set %d err", label, set), rows.Err())
		if !rows.NextResultSet() {
			r.add(fmt.Sprintf("%s no set after %d", label, set), rows.Err())
			break
		}
		if set >= 10 {
			r.errorf("%s: more than 10 result sets", label)
			break
		}
	}
	r.add(label+" close", rows.Close())
}

// colTypes records rows.ColumnTypes() in full.
func (r *confRec) colTypes(label string, rows *sql.Rows) {
	cts, err := rows.ColumnTypes()
	r.add(label+" ColumnTypes", len(cts), err)
	for _, ct := range cts {
		l, lok := ct.Length()
		nl, nok := ct.Nullable()
		p, s, dok := ct.DecimalSize()
		st := "<nil>"
		if typ := ct.ScanType(); typ != nil {
			st = typ.String()
		}
		r.add(label+" column "+ct.Name(),
			"DatabaseTypeName", ct.DatabaseTypeName(), "Length", l, lok, "Nullable", nl, nok,
			"DecimalSize", p, s, dok, "ScanType", st)
	}
}

// canon renders a value with its Go type, deterministically and comparably (NaN, pointers,
// locations and large byte strings included).
func (r *confRec) canon(v any) string {
	if v == nil {
		return "nil"
	}
	if err, ok := v.(error); ok {
		return r.errStr(err)
	}
	return r.canonValue(reflect.ValueOf(v))
}

var confTimeType = reflect.TypeOf(time.Time{})

func (r *confRec) canonValue(rv reflect.Value) string {
	if !rv.IsValid() {
		return "nil"
	}
	t := rv.Type()
	if t == confTimeType && rv.CanInterface() {
		x := rv.Interface().(time.Time)
		name, off := x.Zone()
		return fmt.Sprintf("time.Time(%s zone=%s%+d loc=%s)", x.Format(time.RFC3339Nano), name, off, x.Location())
	}
	if rv.Kind() != reflect.Pointer && rv.Kind() != reflect.Interface && rv.CanInterface() {
		if err, ok := rv.Interface().(error); ok {
			return r.errStr(err)
		}
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "(" + t.String() + ")(nil)"
		}
		return "&" + r.canonValue(rv.Elem())
	case reflect.Interface:
		if rv.IsNil() {
			return "nil"
		}
		return r.canonValue(rv.Elem())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return t.String() + "(nil)"
		}
		if t.Elem().Kind() == reflect.Uint8 && rv.Kind() == reflect.Slice {
			return t.String() + "(" + confQuote(string(rv.Bytes())) + ")"
		}
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = r.canonValue(rv.Index(i))
		}
		return t.String() + "{" + strings.Join(parts, ", ") + "}"
	case reflect.Map:
		if rv.IsNil() {
			return t.String() + "(nil)"
		}
		parts := make([]string, 0, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			parts = append(parts, r.canonValue(it.Key())+": "+r.canonValue(it.Value()))
		}
		sort.Strings(parts)
		return t.String() + "{" + strings.Join(parts, ", ") + "}"
	case reflect.Struct:
		parts := make([]string, t.NumField())
		for i := range parts {
			parts[i] = t.Field(i).Name + ": " + r.canonValue(rv.Field(i))
		}
		return t.String() + "{" + strings.Join(parts, ", ") + "}"
	case reflect.String:
		return t.String() + "(" + confQuote(rv.String()) + ")"
	case reflect.Float32, reflect.Float64:
		return t.String() + "(" + strconv.FormatFloat(rv.Float(), 'g', -1, t.Bits()) + ")"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return t.String() + "(" + strconv.FormatInt(rv.Int(), 10) + ")"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return t.String() + "(" + strconv.FormatUint(rv.Uint(), 10) + ")"
	case reflect.Bool:
		return t.String() + "(" + strconv.FormatBool(rv.Bool()) + ")"
	}
	return t.String() + "(?)"
}

// confQuote quotes s, or summarises it when it is long.
func confQuote(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("len=%d sha256=%x", len(s), sha256.Sum256([]byte(s)))
	}
	return strconv.Quote(s)
}

func confShort(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 60 {
		return q[:60] + "…"
	}
	return q
}

var confSentinels = []struct {
	name string
	err  error
}{
	{"context.Canceled", context.Canceled},
	{"context.DeadlineExceeded", context.DeadlineExceeded},
	{"driver.ErrBadConn", driver.ErrBadConn},
	{"driver.ErrSkip", driver.ErrSkip},
	{"sql.ErrNoRows", sql.ErrNoRows},
	{"sql.ErrTxDone", sql.ErrTxDone},
	{"sql.ErrConnDone", sql.ErrConnDone},
	{"mysql.ErrInvalidConn", mysql.ErrInvalidConn},
	{"pgx.ErrTxClosed", pgx.ErrTxClosed},
	{"pgx.ErrTxCommitRollback", pgx.ErrTxCommitRollback},
}

// errClass is what an application can branch on: the error's type, the sentinels it matches and
// the driver's error code.
func (r *confRec) errClass(err error) string {
	if err == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%T", err)
	for _, s := range confSentinels {
		if errors.Is(err, s.err) {
			b.WriteString(" is:" + s.name)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		fmt.Fprintf(&b, " PgError:%s/%s", pe.Severity, pe.Code)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		fmt.Fprintf(&b, " MySQLError:%d/%s", me.Number, me.SQLState[:])
	}
	return b.String()
}

// errStr is errClass with the message and every field of the driver's error.
func (r *confRec) errStr(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := "error " + r.errClass(err) + " " + strconv.Quote(err.Error())
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		s += fmt.Sprintf(" PgError{Message:%q Detail:%q Hint:%q Schema:%q Table:%q Column:%q DataType:%q Constraint:%q Where:%q Position:%d Routine:%q}",
			pe.Message, pe.Detail, pe.Hint, pe.SchemaName, pe.TableName, pe.ColumnName, pe.DataTypeName, pe.ConstraintName, pe.Where, pe.Position, pe.Routine)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		s += fmt.Sprintf(" MySQLError{Message:%q}", me.Message)
	}
	return s
}

// errKind is the class of err an application tests with errors.Is and errors.As: the sentinels
// of database/sql, context and the drivers it matches and the driver's error code. (hasql may
// wrap an error with its own sentinels, e.g. ErrTxResolutionUnknown; they are not listed.)
func (r *confRec) errKind(err error) string {
	if err == nil {
		return "<nil>"
	}
	k := strings.TrimSpace(strings.TrimPrefix(r.errClass(err), fmt.Sprintf("%T", err)))
	if k == "" {
		return "error"
	}
	return "error " + k
}

// addClass records only the class of err (for outcomes whose message may depend on timing, or
// that follow a lost connection).
func (r *confRec) addClass(label string, err error) {
	r.add(label+" class", r.errKind(err))
}

// outcome records a step that the raw driver may fail and hasql may survive: "failed <class>"
// or "ok <result>". hasql's "ok" matches raw's "failed"; the caller checks that a success is the
// right one.
func (r *confRec) outcome(label string, err error, result ...any) {
	if err != nil {
		r.add("~ "+label, "failed "+r.errKind(err))
		return
	}
	r.add("~ "+label, append([]any{"ok"}, result...)...)
}

// ---------------------------------------------------------------------------------------------
// NULLs

func confPGNulls(r *confRec, db *sql.DB) {
	r.mustExec(db, `CREATE TABLE n (id int PRIMARY KEY, c_smallint smallint, c_int integer, c_bigint bigint,
		c_numeric numeric(10,2), c_real real, c_double double precision, c_bool boolean, c_text text,
		c_varchar varchar(10), c_char char(3), c_bytea bytea, c_date date, c_time time, c_timetz timetz,
		c_ts timestamp, c_tstz timestamptz, c_interval interval, c_json json, c_jsonb jsonb, c_uuid uuid,
		c_int8arr int8[], c_textarr text[], c_inet inet)`)
	r.exec("insert defaults", db, "INSERT INTO n (id) VALUES (1)")
	r.exec("insert null args", db, `INSERT INTO n VALUES (2, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
		$14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
		nil, sql.NullInt32{}, sql.NullInt64{}, sql.NullString{}, (*float32)(nil), sql.NullFloat64{}, sql.NullBool{},
		(*string)(nil), sql.Null[string]{}, sql.NullString{}, []byte(nil), sql.NullTime{}, nil, nil, sql.NullTime{},
		sql.NullTime{}, nil, nil, nil, nil, []int64(nil), nil, nil)
	r.rows("select *", db, "SELECT * FROM n ORDER BY id")
	r.rows("is null", db, `SELECT id, num_nulls(c_smallint, c_int, c_bigint, c_numeric, c_real, c_double, c_bool, c_text,
		c_varchar, c_char, c_bytea, c_date, c_time, c_timetz, c_ts, c_tstz, c_interval, c_json, c_jsonb, c_uuid,
		c_int8arr, c_textarr, c_inet) FROM n ORDER BY id`)
	var (
		i16 sql.NullInt16
		i32 sql.NullInt32
		i64 sql.NullInt64
		f64 sql.NullFloat64
		b   sql.NullBool
		s   sql.NullString
		tm  sql.NullTime
		bs  = []byte("stale")
		g   sql.Null[string]
		by  sql.NullByte
		pi  *int64
		ps      = new(string)
		a   any = "stale"
	)
	for id := 1; id <= 2; id++ {
		r.scan(fmt.Sprintf("typed nulls %d", id), db, []any{&i16, &i32, &i64, &f64, &b, &s, &tm, &bs, &g, &by, &pi, &ps, &a},
			`SELECT c_smallint, c_int, c_bigint, c_double, c_bool, c_text, c_tstz, c_bytea, c_varchar, c_smallint,
			c_bigint, c_text, c_jsonb FROM n WHERE id = $1`, id)
	}
	var plainInt int
	var plainStr string
	var plainTime time.Time
	r.scan("null into int", db, []any{&plainInt}, "SELECT c_int FROM n WHERE id = 1")
	r.scan("null into string", db, []any{&plainStr}, "SELECT c_text FROM n WHERE id = 1")
	r.scan("null into time", db, []any{&plainTime}, "SELECT c_tstz FROM n WHERE id = 1")
	r.rows("typed null literals", db, `SELECT NULL, NULL::int, NULL::text, NULL::bytea, NULL::timestamptz, NULL::jsonb,
		NULL::numeric, NULL::int8[], NULL::bool`)
	r.rows("null args echo", db, "SELECT $1::int, $2::text, $3::bytea, $4::timestamptz", nil, sql.NullString{}, []byte(nil), (*time.Time)(nil))
	r.rows("null comparisons", db, "SELECT NULL = NULL, NULL IS NULL, $1::int IS NULL", nil)
}

func confMyNulls(r *confRec, db *sql.DB) {
	r.mustExec(db, `CREATE TABLE n (id INT PRIMARY KEY, c_tiny TINYINT, c_small SMALLINT, c_medium MEDIUMINT,
		c_int INT, c_big BIGINT, c_ubig BIGINT UNSIGNED, c_dec DECIMAL(10,2), c_float FLOAT, c_double DOUBLE,
		c_bit BIT(8), c_char CHAR(3), c_varchar VARCHAR(10), c_text TEXT, c_binary BINARY(4),
		c_varbinary VARBINARY(10), c_blob BLOB, c_date DATE, c_time TIME, c_datetime DATETIME(6),
		c_timestamp TIMESTAMP(6) NULL DEFAULT NULL, c_year YEAR, c_json JSON, c_enum ENUM('a','b'), c_set SET('x','y'))
		DEFAULT CHARSET=utf8mb4`)
	interp := r.open("interpolateParams=true")
	r.exec("insert defaults", db, "INSERT INTO n (id) VALUES (1)")
	args := []any{nil, sql.NullInt16{}, sql.NullInt32{}, sql.NullInt64{}, (*int64)(nil), sql.Null[uint64]{},
		sql.NullString{}, sql.NullFloat64{}, (*float64)(nil), []byte(nil), sql.NullString{}, (*string)(nil),
		sql.Null[string]{}, []byte(nil), []byte(nil), nil, sql.NullTime{}, nil, sql.NullTime{}, (*time.Time)(nil),
		sql.NullInt64{}, nil, nil, nil}
	ins := "INSERT INTO n VALUES (?, " + strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ") + ")"
	r.exec("insert null args (prepared)", db, ins, append([]any{2}, args...)...)
	r.exec("insert null args (interpolated)", interp, ins, append([]any{3}, args...)...)
	r.rows("select * (text protocol)", db, "SELECT * FROM n ORDER BY id")
	r.rows("select * (binary protocol)", db, "SELECT * FROM n WHERE id > ? ORDER BY id", 0)
	var (
		i16 sql.NullInt16
		i32 sql.NullInt32
		i64 sql.NullInt64
		f64 sql.NullFloat64
		b   sql.NullBool
		s   sql.NullString
		tm  sql.NullTime
		bs  = []byte("stale")
		g   sql.Null[string]
		by  sql.NullByte
		pi  *int64
		ps      = new(string)
		a   any = "stale"
	)
	for id := 1; id <= 3; id++ {
		r.scan(fmt.Sprintf("typed nulls %d", id), db, []any{&i16, &i32, &i64, &f64, &b, &s, &tm, &bs, &g, &by, &pi, &ps, &a},
			`SELECT c_small, c_int, c_big, c_double, c_tiny, c_text, c_datetime, c_blob, c_varchar, c_tiny,
			c_ubig, c_char, c_json FROM n WHERE id = ?`, id)
	}
	var plainInt int
	var plainStr string
	r.scan("null into int", db, []any{&plainInt}, "SELECT c_int FROM n WHERE id = 1")
	r.scan("null into string", db, []any{&plainStr}, "SELECT c_text FROM n WHERE id = 1")
	r.rows("null literals", db, "SELECT NULL, CAST(NULL AS SIGNED), CAST(NULL AS CHAR), CAST(NULL AS DATETIME), NULL IS NULL")
	r.rows("null args echo (prepared)", db, "SELECT ?, ? IS NULL, COALESCE(?, 'dflt')", nil, sql.NullString{}, (*string)(nil))
	r.rows("null args echo (interpolated)", interp, "SELECT ?, ? IS NULL, COALESCE(?, 'dflt')", nil, sql.NullString{}, (*string)(nil))
}

// ---------------------------------------------------------------------------------------------
// Integers at their limits

func confPGIntLimits(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE i (id int PRIMARY KEY, s smallint, n integer, b bigint)")
	r.exec("insert min", db, "INSERT INTO i VALUES (1, $1, $2, $3)", int16(math.MinInt16), int32(math.MinInt32), int64(math.MinInt64))
	r.exec("insert max", db, "INSERT INTO i VALUES (2, $1, $2, $3)", int16(math.MaxInt16), int32(math.MaxInt32), int64(math.MaxInt64))
	r.exec("insert literals", db, "INSERT INTO i VALUES (3, -32768, -2147483648, -9223372036854775808)")
	r.exec("insert zero and -1 as int/uint8", db, "INSERT INTO i VALUES (4, $1, $2, $3)", 0, uint8(255), -1)
	r.rows("select any", db, "SELECT * FROM i ORDER BY id")
	var s16 int16
	var n32 int32
	var b64 int64
	for id := 1; id <= 4; id++ {
		r.scan(fmt.Sprintf("typed %d", id), db, []any{&s16, &n32, &b64}, "SELECT s, n, b FROM i WHERE id = $1", id)
	}
	var i8 int8
	var u64 uint64
	var u16 uint16
	var str string
	var f64 float64
	r.scan("int8 dest overflow", db, []any{&i8}, "SELECT s FROM i WHERE id = 1")
	r.scan("uint16 dest negative", db, []any{&u16}, "SELECT s FROM i WHERE id = 1")
	r.scan("uint64 dest negative", db, []any{&u64}, "SELECT b FROM i WHERE id = 1")
	r.scan("uint64 dest max", db, []any{&u64}, "SELECT b FROM i WHERE id = 2")
	r.scan("string dest", db, []any{&str}, "SELECT b FROM i WHERE id = 1")
	r.scan("float64 dest", db, []any{&f64}, "SELECT b FROM i WHERE id = 2")
	r.exec("smallint overflow", db, "INSERT INTO i VALUES (10, $1, 0, 0)", 32768)
	r.exec("integer overflow", db, "INSERT INTO i VALUES (11, 0, $1, 0)", int64(math.MaxInt32)+1)
	r.scan("bigint overflow", db, []any{&b64}, "SELECT $1::bigint + 1", int64(math.MaxInt64))
	r.exec("uint64 max arg", db, "INSERT INTO i VALUES (12, 0, 0, $1)", uint64(math.MaxUint64))
	r.scan("uint64 arg in range", db, []any{&b64}, "SELECT $1::bigint", uint64(math.MaxInt64))
	r.scan("int64 min as text", db, []any{&str}, "SELECT $1::text", int64(math.MinInt64))
	r.scan("int8 out of range literal", db, []any{&b64}, "SELECT 9223372036854775808::bigint")
	st, err := db.PrepareContext(r.ctx, "SELECT $1::smallint, $2::integer, $3::bigint")
	if r.must("prepare", err) {
		r.scanStmt("prepared min", st, []any{&s16, &n32, &b64}, int16(math.MinInt16), int32(math.MinInt32), int64(math.MinInt64))
		r.scanStmt("prepared max", st, []any{&s16, &n32, &b64}, int16(math.MaxInt16), int32(math.MaxInt32), int64(math.MaxInt64))
		r.scanStmt("prepared overflow", st, []any{&s16, &n32, &b64}, 40000, 0, 0)
		r.must("stmt close", st.Close())
	}
}

func confMyIntLimits(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	for pass, q := range []*sql.DB{db, interp} {
		tbl := fmt.Sprintf("i%d", pass)
		r.add("pass", tbl)
		r.mustExec(q, `CREATE TABLE `+tbl+` (id INT PRIMARY KEY, t TINYINT, tu TINYINT UNSIGNED, s SMALLINT,
			su SMALLINT UNSIGNED, m MEDIUMINT, mu MEDIUMINT UNSIGNED, n INT, nu INT UNSIGNED, b BIGINT,
			bu BIGINT UNSIGNED)`)
		ins := "INSERT INTO " + tbl + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
		r.exec("insert min", q, ins, 1, int8(math.MinInt8), uint8(0), int16(math.MinInt16), uint16(0), -8388608, 0,
			int32(math.MinInt32), uint32(0), int64(math.MinInt64), uint64(0))
		r.exec("insert max", q, ins, 2, int8(math.MaxInt8), uint8(math.MaxUint8), int16(math.MaxInt16),
			uint16(math.MaxUint16), 8388607, 16777215, int32(math.MaxInt32), uint32(math.MaxUint32),
			int64(math.MaxInt64), uint64(math.MaxUint64))
		r.exec("insert literals", q, "INSERT INTO "+tbl+` VALUES (3, -128, 255, -32768, 65535, -8388608, 16777215,
			-2147483648, 4294967295, -9223372036854775808, 18446744073709551615)`)
		r.rows("text protocol", q, "SELECT * FROM "+tbl+" ORDER BY id")
		r.rows("binary protocol", q, "SELECT * FROM "+tbl+" WHERE id > ? ORDER BY id", 0)
		var u64 uint64
		var i64 int64
		var i8 int8
		var str string
		r.scan("ubig into uint64", q, []any{&u64}, "SELECT bu FROM "+tbl+" WHERE id = ?", 2)
		r.scan("ubig into int64", q, []any{&i64}, "SELECT bu FROM "+tbl+" WHERE id = ?", 2)
		r.scan("ubig into string", q, []any{&str}, "SELECT bu FROM "+tbl+" WHERE id = ?", 2)
		r.scan("int into int8 overflow", q, []any{&i8}, "SELECT s FROM "+tbl+" WHERE id = ?", 1)
		r.scan("big min into uint64", q, []any{&u64}, "SELECT b FROM "+tbl+" WHERE id = ?", 1)
		r.exec("tinyint overflow", q, "INSERT INTO "+tbl+" (id, t) VALUES (?, ?)", 10, 128)
		r.exec("unsigned negative", q, "INSERT INTO "+tbl+" (id, tu) VALUES (?, ?)", 11, -1)
		r.exec("int unsigned overflow", q, "INSERT INTO "+tbl+" (id, nu) VALUES (?, ?)", 12, uint64(math.MaxUint32)+1)
		r.rows("unsigned arithmetic overflow", q, "SELECT CAST(18446744073709551615 AS UNSIGNED) + ?", 1)
		r.rows("uint64 echo", q, "SELECT ?, ? + 0", uint64(math.MaxUint64), uint64(math.MaxUint64))
	}
}

// ---------------------------------------------------------------------------------------------
// Numerics

func confPGNumeric(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE d (id int PRIMARY KEY, fixed numeric(38,10), free numeric, money2 numeric(5,2))")
	r.exec("insert strings", db, "INSERT INTO d VALUES (1, $1, $2, $3)", "12345678901234567890.0123456789", "1e-30", "999.99")
	r.exec("insert floats", db, "INSERT INTO d VALUES (2, $1, $2, $3)", 0.1, math.SmallestNonzeroFloat64, 1.005)
	r.exec("insert ints", db, "INSERT INTO d VALUES (3, $1, $2, $3)", int64(math.MinInt64), uint32(math.MaxUint32), -5)
	r.exec("insert NaN", db, "INSERT INTO d VALUES (4, 'NaN', 'NaN', 'NaN')")
	r.exec("insert literals", db, "INSERT INTO d VALUES (5, -0.0000000001, 1234567890123456789012345678901234567890.123, -0.005)")
	r.exec("precision overflow", db, "INSERT INTO d VALUES (6, 0, 0, $1)", 1000)
	r.exec("bad numeric text", db, "INSERT INTO d VALUES (7, $1, 0, 0)", "12,5")
	r.rows("select any", db, "SELECT * FROM d ORDER BY id")
	var s string
	var f float64
	var b []byte
	var i int64
	for id := 1; id <= 5; id++ {
		r.scan(fmt.Sprintf("into string/float/bytes %d", id), db, []any{&s, &f, &b}, "SELECT fixed, fixed, free FROM d WHERE id = $1", id)
	}
	r.scan("into int64", db, []any{&i}, "SELECT fixed FROM d WHERE id = 3")
	r.scan("fractional into int64", db, []any{&i}, "SELECT fixed FROM d WHERE id = 1")
	r.rows("arithmetic", db, "SELECT 1::numeric / 3, 2::numeric ^ 100, round(2.5), round(-2.5), 10::numeric(20,5), sum(fixed) FROM d WHERE id < 4")
	r.rows("numeric args echo", db, "SELECT $1::numeric, $2::numeric, $3::numeric(6,3)", "-0.000", 1e300, 3.14159)
}

func confMyNumeric(r *confRec, db *sql.DB) {
	c, err := db.Conn(r.ctx)
	if !r.must("conn", err) {
		return
	}
	defer c.Close()
	r.mustExec(c, "CREATE TABLE d (id INT PRIMARY KEY, big DECIMAL(65,30), money2 DECIMAL(5,2), u DECIMAL(10,3) UNSIGNED)")
	r.exec("insert strings", c, "INSERT INTO d VALUES (?, ?, ?, ?)", 1, "12345678901234567890123456789012345.012345678901234567890123456789", "999.99", "0.001")
	r.exec("insert floats", c, "INSERT INTO d VALUES (?, ?, ?, ?)", 2, 0.1, 1.005, 1e-10)
	r.rows("warnings after rounding", c, "SHOW WARNINGS")
	r.exec("insert ints", c, "INSERT INTO d VALUES (?, ?, ?, ?)", 3, int64(math.MinInt64), -5, uint32(math.MaxUint32))
	r.exec("insert literals", c, "INSERT INTO d VALUES (4, -0.000000000000000000000000000001, -0.005, 0)")
	r.exec("precision overflow", c, "INSERT INTO d VALUES (?, 0, ?, 0)", 5, 1000)
	r.exec("unsigned negative", c, "INSERT INTO d VALUES (?, 0, 0, ?)", 6, "-1")
	r.exec("bad decimal text", c, "INSERT INTO d VALUES (?, ?, 0, 0)", 7, "12,5")
	r.rows("text protocol", c, "SELECT * FROM d ORDER BY id")
	r.rows("binary protocol", c, "SELECT * FROM d WHERE id > ? ORDER BY id", 0)
	var s string
	var f float64
	var b []byte
	var i int64
	for id := 1; id <= 4; id++ {
		r.scan(fmt.Sprintf("into string/float/bytes %d", id), c, []any{&s, &f, &b}, "SELECT big, big, money2 FROM d WHERE id = ?", id)
	}
	r.scan("into int64", c, []any{&i}, "SELECT CAST(big AS SIGNED) FROM d WHERE id = 3")
	r.scan("fractional into int64", c, []any{&i}, "SELECT big FROM d WHERE id = 1")
	r.rows("arithmetic", c, "SELECT 1 / 3, CAST(1 AS DECIMAL(65,30)) / 3, ROUND(2.5), ROUND(-2.5), SUM(money2) FROM d WHERE id < ?", 4)
}

// ---------------------------------------------------------------------------------------------
// Floats

func confPGFloats(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE f (id int PRIMARY KEY, r real, d double precision)")
	vals := []struct {
		r float32
		d float64
	}{
		{0, 0},
		{float32(math.Copysign(0, -1)), math.Copysign(0, -1)},
		{0.1, 0.1},
		{math.MaxFloat32, math.MaxFloat64},
		{-math.MaxFloat32, -math.MaxFloat64},
		{math.SmallestNonzeroFloat32, math.SmallestNonzeroFloat64},
		{float32(math.NaN()), math.NaN()},
		{float32(math.Inf(1)), math.Inf(1)},
		{float32(math.Inf(-1)), math.Inf(-1)},
		{1.17549435e-38, 2.2250738585072014e-308},
	}
	for i, v := range vals {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO f VALUES ($1, $2, $3)", i, v.r, v.d)
	}
	r.exec("insert literals", db, "INSERT INTO f VALUES (100, 'NaN', '-Infinity'), (101, '3.4e38', '1e-320')")
	r.exec("real overflow", db, "INSERT INTO f VALUES (102, $1, 0)", math.MaxFloat64)
	r.rows("select any", db, "SELECT * FROM f ORDER BY id")
	var f32 float32
	var f64 float64
	var s string
	for i := range vals {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&f32, &f64, &s}, "SELECT r, d, d FROM f WHERE id = $1", i)
	}
	r.scan("double into float32 overflow", db, []any{&f32}, "SELECT d FROM f WHERE id = 3")
	var i64 int64
	r.scan("float into int64", db, []any{&i64}, "SELECT d FROM f WHERE id = 2")
	r.rows("NaN semantics", db, "SELECT 'NaN'::float8 = 'NaN'::float8, 'NaN'::float8 > 'Infinity'::float8, $1::float8 = $1::float8, 1/$2::float8", math.NaN(), math.Inf(1))
	r.rows("float args echo", db, "SELECT $1::float4, $2::float8, $3::float8, $4::text", float32(0.1), float32(0.1), math.Pi, math.Inf(-1))
	r.rows("division by zero", db, "SELECT 1.0::float8 / 0")
}

func confMyFloats(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	for pass, q := range []*sql.DB{db, interp} {
		tbl := fmt.Sprintf("f%d", pass)
		r.add("pass", tbl)
		r.mustExec(q, "CREATE TABLE "+tbl+" (id INT PRIMARY KEY, r FLOAT, d DOUBLE)")
		vals := []struct {
			r float32
			d float64
		}{
			{0, 0},
			{float32(math.Copysign(0, -1)), math.Copysign(0, -1)},
			{0.1, 0.1},
			{math.MaxFloat32, math.MaxFloat64},
			{-math.MaxFloat32, -math.MaxFloat64},
			{math.SmallestNonzeroFloat32, math.SmallestNonzeroFloat64},
			{1.17549435e-38, 2.2250738585072014e-308},
		}
		for i, v := range vals {
			r.exec(fmt.Sprintf("insert %d", i), q, "INSERT INTO "+tbl+" VALUES (?, ?, ?)", i, v.r, v.d)
		}
		r.exec("insert NaN", q, "INSERT INTO "+tbl+" VALUES (?, ?, ?)", 100, float32(math.NaN()), math.NaN())
		r.exec("insert +Inf", q, "INSERT INTO "+tbl+" VALUES (?, ?, ?)", 101, 0, math.Inf(1))
		r.exec("float overflow", q, "INSERT INTO "+tbl+" VALUES (?, ?, ?)", 102, math.MaxFloat64, 0)
		r.rows("text protocol", q, "SELECT * FROM "+tbl+" ORDER BY id")
		r.rows("binary protocol", q, "SELECT * FROM "+tbl+" WHERE id >= ? ORDER BY id", 0)
		var f32 float32
		var f64 float64
		var s string
		for i := range vals {
			r.scan(fmt.Sprintf("typed %d", i), q, []any{&f32, &f64, &s}, "SELECT r, d, d FROM "+tbl+" WHERE id = ?", i)
		}
		r.rows("float args echo", q, "SELECT ?, ?, ?", float32(0.1), math.Pi, -1e300)
		r.rows("division by zero", q, "SELECT 1e0 / ?", 0)
	}
}

// ---------------------------------------------------------------------------------------------
// Text with multibyte characters

var confTexts = []string{
	"", "plain ascii", "héllo wörld", "日本語のテキスト", "中文字符", "한국어", "😀👍🏽🎉", "👨‍👩‍👧‍👦",
	"Ελληνικά עברית العربية", "e\u0301", "tab\tnewline\nquote'\"backslash\\", "\u2028\ufeff\U0010FFFD",
	strings.Repeat("長", 1000),
}

func confPGText(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE t (id int PRIMARY KEY, t text, v varchar(4), c char(4))")
	for i, s := range confTexts {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO t (id, t) VALUES ($1, $2)", i, s)
	}
	r.exec("insert bytes as text", db, "INSERT INTO t (id, t) VALUES ($1, $2)", 100, []byte("bytes 日本"))
	r.rows("select any", db, "SELECT id, t, length(t), octet_length(t), upper(t), md5(t) FROM t ORDER BY id")
	var s string
	var b []byte
	var n int
	for i := range confTexts {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&s, &b, &n}, "SELECT t, t, char_length(t) FROM t WHERE id = $1", i)
	}
	r.exec("varchar(4) four emoji", db, "INSERT INTO t (id, v, c) VALUES (200, $1, $2)", "😀😀😀😀", "日本")
	r.exec("varchar(4) five emoji", db, "INSERT INTO t (id, v) VALUES (201, $1)", "😀😀😀😀😀")
	r.exec("char(4) five CJK", db, "INSERT INTO t (id, c) VALUES (202, $1)", "日本語テキ")
	r.rows("padded char", db, "SELECT v, c, c || '|', octet_length(c) FROM t WHERE id = 200")
	r.exec("NUL in text arg", db, "INSERT INTO t (id, t) VALUES (203, $1)", "a\x00b")
	r.exec("invalid UTF-8 arg", db, "INSERT INTO t (id, t) VALUES (204, $1)", "\xff\xfe")
	r.rows("chr(0)", db, "SELECT 'a' || chr(0)")
	r.rows("literals", db, "SELECT '😀' || $1::text, 'ü' = U&'\\00FC', length('👨‍👩‍👧‍👦'), reverse($2::text)", "日本", "abc日本")
	r.rows("like and collation", db, "SELECT count(*) FROM t WHERE t LIKE $1", "%本%")
}

func confMyText(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	r.mustExec(db, `CREATE TABLE t (id INT PRIMARY KEY, t TEXT, v VARCHAR(4), c CHAR(4), l3 VARCHAR(20) CHARACTER SET utf8mb3)
		DEFAULT CHARSET=utf8mb4`)
	for i, s := range confTexts {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO t (id, t) VALUES (?, ?)", i, s)
		r.exec(fmt.Sprintf("insert interpolated %d", i), interp, "INSERT INTO t (id, t) VALUES (?, ?)", 1000+i, s)
	}
	r.exec("insert bytes as text", db, "INSERT INTO t (id, t) VALUES (?, ?)", 100, []byte("bytes 日本"))
	r.rows("text protocol", db, "SELECT id, t, CHAR_LENGTH(t), LENGTH(t), UPPER(t), MD5(t) FROM t ORDER BY id")
	r.rows("binary protocol", db, "SELECT id, t, CHAR_LENGTH(t), LENGTH(t) FROM t WHERE id >= ? ORDER BY id", 0)
	r.rows("both inserts agree", db, "SELECT COUNT(*) FROM t a JOIN t b ON b.id = a.id + 1000 WHERE BINARY a.t = BINARY b.t")
	var s string
	var b []byte
	var n int
	for i := range confTexts {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&s, &b, &n}, "SELECT t, t, CHAR_LENGTH(t) FROM t WHERE id = ?", i)
	}
	r.exec("varchar(4) four emoji", db, "INSERT INTO t (id, v, c) VALUES (?, ?, ?)", 200, "😀😀😀😀", "日本  ")
	r.exec("varchar(4) five emoji", db, "INSERT INTO t (id, v) VALUES (?, ?)", 201, "😀😀😀😀😀")
	r.exec("emoji into utf8mb3", db, "INSERT INTO t (id, l3) VALUES (?, ?)", 202, "😀")
	r.exec("CJK into utf8mb3", db, "INSERT INTO t (id, l3) VALUES (?, ?)", 203, "日本")
	r.exec("NUL in text arg", db, "INSERT INTO t (id, t) VALUES (?, ?)", 204, "a\x00b")
	r.exec("invalid UTF-8 arg", db, "INSERT INTO t (id, t) VALUES (?, ?)", 205, "\xff\xfe")
	r.exec("invalid UTF-8 arg (interpolated)", interp, "INSERT INTO t (id, t) VALUES (?, ?)", 206, "\xff\xfe")
	r.rows("padded char", db, "SELECT v, c, CONCAT(c, '|'), LENGTH(c), l3 FROM t WHERE id IN (200, 203, 204) ORDER BY id")
	r.rows("literals", db, "SELECT CONCAT('😀', ?), 'ü' = 'u', REVERSE(?), HEX(?)", "日本", "abc日本", "é")
}

// ---------------------------------------------------------------------------------------------
// Binary data

func confBinaries() [][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 100000)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	return [][]byte{nil, {}, {0}, {0, 0, 0}, {0, 1, 2, 0, 255}, []byte("text\x00with\x00nul"), all, big}
}

func confPGBinary(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE b (id int PRIMARY KEY, d bytea)")
	vals := confBinaries()
	for i, v := range vals {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO b VALUES ($1, $2)", i, v)
	}
	r.rows("select any", db, "SELECT id, d, length(d), md5(d), d IS NULL FROM b ORDER BY id")
	var bs []byte
	var s string
	var a any
	for i := range vals {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&bs, &s, &a}, "SELECT d, coalesce(encode(d, 'hex'), 'NULL'), d FROM b WHERE id = $1", i)
	}
	rows, err := db.QueryContext(r.ctx, "SELECT d FROM b ORDER BY id")
	if r.must("rawbytes query", err) {
		for rows.Next() {
			var rb sql.RawBytes
			err := rows.Scan(&rb)
			r.add("rawbytes row", rb, len(rb), rb == nil, err)
		}
		r.add("rawbytes rows.Err", rows.Err())
		rows.Close()
	}
	r.rows("literals", db, `SELECT '\x00ff00'::bytea, decode('00ff', 'hex'), ''::bytea, 'a\000b'::bytea, $1::bytea`, []byte{0, 0xfe})
	r.rows("string arg into bytea", db, "SELECT $1::bytea", "plain")
	r.rows("string arg with NUL into bytea", db, "SELECT $1::bytea", "a\x00b")
	r.rows("bad bytea text", db, `SELECT '\xzz'::bytea`)
}

func confMyBinary(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	r.mustExec(db, "CREATE TABLE b (id INT PRIMARY KEY, d LONGBLOB, vb VARBINARY(300), bn BINARY(4))")
	vals := confBinaries()
	for i, v := range vals {
		short := v
		if len(short) > 300 {
			short = short[:300]
		}
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO b VALUES (?, ?, ?, NULL)", i, v, short)
		r.exec(fmt.Sprintf("insert interpolated %d", i), interp, "INSERT INTO b VALUES (?, ?, ?, NULL)", 1000+i, v, short)
	}
	r.rows("both inserts agree", db, "SELECT COUNT(*) FROM b x JOIN b y ON y.id = x.id + 1000 WHERE x.d <=> y.d AND x.vb <=> y.vb")
	r.rows("text protocol", db, "SELECT id, d, LENGTH(d), MD5(d), vb, d IS NULL FROM b WHERE id < 1000 ORDER BY id")
	r.rows("binary protocol", db, "SELECT id, d, vb FROM b WHERE id < ? ORDER BY id", 1000)
	r.exec("binary(4) short", db, "INSERT INTO b (id, bn) VALUES (?, ?)", 300, []byte{1})
	r.exec("binary(4) long", db, "INSERT INTO b (id, bn) VALUES (?, ?)", 301, []byte{1, 2, 3, 4, 5})
	r.exec("varbinary(300) too long", db, "INSERT INTO b (id, vb) VALUES (?, ?)", 302, make([]byte, 301))
	r.rows("binary(4) padding", db, "SELECT bn, HEX(bn) FROM b WHERE id = 300")
	var bs []byte
	var s string
	var a any
	for i := range vals {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&bs, &s, &a}, "SELECT d, COALESCE(HEX(d), 'NULL'), d FROM b WHERE id = ?", i)
	}
	rows, err := db.QueryContext(r.ctx, "SELECT d FROM b WHERE id < 1000 ORDER BY id")
	if r.must("rawbytes query", err) {
		for rows.Next() {
			var rb sql.RawBytes
			err := rows.Scan(&rb)
			r.add("rawbytes row", rb, len(rb), rb == nil, err)
		}
		r.add("rawbytes rows.Err", rows.Err())
		rows.Close()
	}
	r.rows("literals", db, "SELECT X'00FF00', UNHEX('00ff'), '', CAST('a' AS BINARY(3)), ?", []byte{0, 0xfe})
}

// ---------------------------------------------------------------------------------------------
// Time, dates, timestamps

func confTimes() []time.Time {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET-fallback", 3600)
	}
	return []time.Time{
		time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("M7", -7*3600)),
		time.Date(2021, 3, 28, 2, 30, 0, 0, berlin), // DST gap
		time.Date(2021, 10, 31, 2, 30, 0, 500000, berlin),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC),
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 6, 1, 12, 0, 0, 0, time.Local),
	}
}

func confPGTime(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE tm (id int PRIMARY KEY, d date, t time, tz timetz, ts timestamp, tstz timestamptz, iv interval)")
	for i, tv := range confTimes() {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO tm (id, d, ts, tstz) VALUES ($1, $2, $3, $4)", i, tv, tv, tv)
	}
	r.exec("insert literals", db, `INSERT INTO tm VALUES (100, '2024-02-29', '23:59:59.999999', '12:34:56+05:30',
		'2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+02', '1 year 2 mons 3 days 04:05:06.5'),
		(101, 'infinity', '00:00', '00:00+00', '-infinity', 'infinity', '-1 day'),
		(102, '0044-03-15 BC', '24:00', '23:59:59-12', '0001-01-01 00:00:00', '1900-01-01 00:00:00+00', '0')`)
	r.exec("time args", db, "INSERT INTO tm (id, t, tz) VALUES (103, $1, $2)", "13:14:15.161718", "13:14:15+01")
	r.rows("select any", db, "SELECT * FROM tm ORDER BY id")
	r.rows("as text", db, "SELECT id, d::text, ts::text, tstz::text, current_setting('TimeZone') FROM tm ORDER BY id")
	var tt, tts, ttz time.Time
	var s string
	for i := range confTimes() {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&tt, &tts, &ttz, &s}, "SELECT d, ts, tstz, tstz FROM tm WHERE id = $1", i)
	}
	r.scan("infinity into time.Time", db, []any{&tt}, "SELECT d FROM tm WHERE id = 101")
	r.scan("-infinity into time.Time", db, []any{&tt}, "SELECT ts FROM tm WHERE id = 101")
	r.scan("BC date", db, []any{&tt}, "SELECT d FROM tm WHERE id = 102")
	r.scan("time into time.Time", db, []any{&tt}, "SELECT t FROM tm WHERE id = 100")
	r.scan("interval into string", db, []any{&s}, "SELECT iv FROM tm WHERE id = 100")
	r.rows("session zone semantics", db, "SELECT '2024-06-01 12:00:00'::timestamptz, '2024-06-01 12:00:00'::timestamptz AT TIME ZONE 'UTC', $1::timestamptz::text", time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
	r.rows("string arg as timestamptz", db, "SELECT $1::timestamptz, $2::date", "2024-02-29T12:00:00Z", "2024-02-29")
	r.rows("bad date", db, "SELECT $1::date", "2023-02-29")
	r.rows("time.Time arg as text", db, "SELECT $1::text", time.Date(2024, 2, 29, 1, 2, 3, 4000, time.UTC))
}

func confMyTime(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE tm (id INT PRIMARY KEY, d DATE, t TIME(6), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, y YEAR)")
	interp := r.open("interpolateParams=true")
	for i, tv := range confTimes() {
		r.exec(fmt.Sprintf("insert %d", i), db, "INSERT INTO tm (id, d, dt, ts) VALUES (?, ?, ?, ?)", i, tv, tv, tv)
		r.exec(fmt.Sprintf("insert interpolated %d", i), interp, "INSERT INTO tm (id, d, dt, ts) VALUES (?, ?, ?, ?)", 1000+i, tv, tv, tv)
	}
	r.exec("insert literals", db, `INSERT INTO tm VALUES (100, '2024-02-29', '838:59:59.000000', '2024-02-29 12:34:56.789012',
		'2024-02-29 12:34:56.789012', 2024), (101, '0000-00-00', '-838:59:59', '0000-00-00 00:00:00', '1970-01-01 00:00:01', 1901),
		(102, '1000-01-01', '00:00:00', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 2155)`)
	r.exec("time.Time into TIME", db, "INSERT INTO tm (id, t) VALUES (?, ?)", 103, time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC))
	r.exec("timestamp out of range", db, "INSERT INTO tm (id, ts) VALUES (?, ?)", 104, time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))
	r.exec("bad date string", db, "INSERT INTO tm (id, d) VALUES (?, ?)", 105, "2023-02-29")
	r.rows("text protocol", db, "SELECT * FROM tm ORDER BY id")
	r.rows("binary protocol", db, "SELECT * FROM tm WHERE id >= ? ORDER BY id", 0)
	r.rows("both inserts agree", db, "SELECT COUNT(*) FROM tm a JOIN tm b ON b.id = a.id + 1000 WHERE a.dt <=> b.dt AND a.ts <=> b.ts AND a.d <=> b.d")
	var tt, tdt time.Time
	var s string
	var nt sql.NullTime
	for i := range confTimes() {
		r.scan(fmt.Sprintf("typed %d", i), db, []any{&tt, &tdt, &nt, &s}, "SELECT d, dt, ts, dt FROM tm WHERE id = ?", i)
	}
	r.scan("zero date", db, []any{&tt, &tdt, &nt}, "SELECT d, dt, dt FROM tm WHERE id = 101")
	r.scan("TIME into time.Time", db, []any{&tt}, "SELECT t FROM tm WHERE id = 100")
	r.rows("session zone", db, "SELECT @@session.time_zone, CAST('2024-02-29 12:00:00' AS DATETIME(3)), TIMESTAMP('2024-01-01'), DATE(?)", time.Date(2024, 2, 29, 23, 0, 0, 0, time.UTC))
	noParse := r.open("parseTime=false")
	r.rows("parseTime=false", noParse, "SELECT d, t, dt, ts, y FROM tm WHERE id IN (0, 100, 101) ORDER BY id")
	r.rows("parseTime=false binary", noParse, "SELECT d, t, dt, ts, y FROM tm WHERE id IN (?, ?, ?) ORDER BY id", 0, 100, 101)
	other := r.open("loc=UTC&time_zone=%27%2B02%3A00%27")
	r.rows("time_zone +02:00, loc=UTC", other, "SELECT @@session.time_zone, ts, dt FROM tm WHERE id IN (0, 1, 100) ORDER BY id")
	r.exec("insert via +02:00 session", other, "INSERT INTO tm (id, ts) VALUES (?, ?)", 110, time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC))
	r.rows("read back in Tokyo", db, "SELECT ts FROM tm WHERE id = 110")
}

// ---------------------------------------------------------------------------------------------
// JSON

const confJSONDoc = `{"b": 2, "a": [1, "x", null, true], "ü": "日本 😀", "n": 1.50, "nested": {"k": [{}]}}`

func confPGJSON(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE j (id int PRIMARY KEY, a json, b jsonb)")
	r.exec("insert string", db, "INSERT INTO j VALUES (1, $1, $2)", confJSONDoc, confJSONDoc)
	r.exec("insert bytes", db, "INSERT INTO j VALUES (2, $1, $2)", []byte(confJSONDoc), []byte(confJSONDoc))
	r.exec("insert map", db, "INSERT INTO j VALUES (3, $1, $2)", map[string]any{"k": []any{1, "v"}}, map[string]any{"z": nil, "a": 1.5})
	r.exec("insert RawMessage", db, "INSERT INTO j VALUES (4, $1, $2)", json.RawMessage(`[1, 2]`), json.RawMessage(`[1, 2]`))
	r.exec("insert NULL and JSON null", db, "INSERT INTO j VALUES (5, NULL, 'null'), (6, 'null', NULL)")
	r.exec("insert struct", db, "INSERT INTO j VALUES (7, $1, $2)", struct {
		A int    `json:"a"`
		B string `json:"b,omitempty"`
	}{A: 1}, []string{"x", "y"})
	r.exec("insert invalid", db, "INSERT INTO j VALUES (8, $1, NULL)", `{"bad`)
	r.exec("insert invalid jsonb", db, "INSERT INTO j VALUES (9, NULL, $1)", `{"a":}`)
	r.rows("select any", db, "SELECT id, a, b, b->'a', b->>'ü', jsonb_typeof(b), a::text FROM j ORDER BY id")
	var s string
	var bs []byte
	var raw json.RawMessage
	var m map[string]any
	r.scan("into string/bytes/RawMessage", db, []any{&s, &bs, &raw}, "SELECT a, b, b FROM j WHERE id = 1")
	r.scan("into map", db, []any{&m}, "SELECT b FROM j WHERE id = 1")
	r.scan("via pgtype scanner", db, []any{pgtype.NewMap().SQLScanner(&m)}, "SELECT b FROM j WHERE id = 1")
	r.add("map", m)
	r.rows("operators", db, `SELECT $1::jsonb @> '{"a": 1}', jsonb_build_object('k', $2::text, 'n', $3::int), json_agg(id ORDER BY id) FROM j`, `{"a": 1, "b": 2}`, "日本", 7)
}

func confMyJSON(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	r.mustExec(db, "CREATE TABLE j (id INT PRIMARY KEY, a JSON) DEFAULT CHARSET=utf8mb4")
	r.exec("insert string", db, "INSERT INTO j VALUES (?, ?)", 1, confJSONDoc)
	r.exec("insert bytes", db, "INSERT INTO j VALUES (?, ?)", 2, []byte(confJSONDoc))
	r.exec("insert RawMessage", db, "INSERT INTO j VALUES (?, ?)", 3, json.RawMessage(`[1, 2]`))
	r.exec("insert interpolated", interp, "INSERT INTO j VALUES (?, ?)", 4, confJSONDoc)
	r.exec("insert NULL and JSON null", db, "INSERT INTO j VALUES (5, NULL), (6, 'null')")
	r.exec("insert invalid", db, "INSERT INTO j VALUES (?, ?)", 7, `{"bad`)
	r.exec("insert map", db, "INSERT INTO j VALUES (?, ?)", 8, map[string]any{"k": 1})
	r.rows("text protocol", db, `SELECT id, a, JSON_EXTRACT(a, '$.a'), JSON_UNQUOTE(JSON_EXTRACT(a, '$."ü"')), JSON_TYPE(a), JSON_VALID(a) FROM j ORDER BY id`)
	r.rows("binary protocol", db, "SELECT id, a FROM j WHERE id > ? ORDER BY id", 0)
	var s string
	var bs []byte
	var raw json.RawMessage
	var m map[string]any
	r.scan("into string/bytes/RawMessage", db, []any{&s, &bs, &raw}, "SELECT a, a, a FROM j WHERE id = 1")
	r.scan("into map", db, []any{&m}, "SELECT a FROM j WHERE id = 1")
	r.rows("functions", db, "SELECT JSON_OBJECT('k', ?, 'ü', '日本'), JSON_ARRAY(1, 'a', NULL, ?), JSON_CONTAINS(?, '1', '$.a')", "v", 2.5, `{"a": 1}`)
}

// ---------------------------------------------------------------------------------------------
// pgx arrays

func confPGArrays(r *confRec, db *sql.DB) {
	m := pgtype.NewMap()
	r.mustExec(db, "CREATE TABLE a (id int PRIMARY KEY, i int8[], t text[], n int4[], g int4[][])")
	one, three := int64(1), int64(3)
	r.exec("insert slices", db, "INSERT INTO a VALUES (1, $1, $2, $3, $4)",
		[]int64{1, 2, math.MaxInt64}, []string{"a", "b c", `"q"`, "日本", ""}, []*int64{&one, nil, &three}, [][]int32{{1, 2}, {3, 4}})
	r.exec("insert empty", db, "INSERT INTO a VALUES (2, $1, $2, $3, $4)", []int64{}, []string{}, []int32{}, [][]int32{})
	r.exec("insert nil slices", db, "INSERT INTO a VALUES (3, $1, $2, $3, NULL)", []int64(nil), []string(nil), []int32(nil))
	r.exec("insert literals", db, `INSERT INTO a VALUES (4, '{1,2,3}', '{"x","NULL",NULL}', ARRAY[1,NULL,3], '{{5,6},{7,8}}')`)
	r.exec("ragged 2-D", db, "INSERT INTO a (id, g) VALUES (5, $1)", [][]int32{{1}, {2, 3}})
	r.rows("select any", db, "SELECT * FROM a ORDER BY id")
	for id := 1; id <= 4; id++ {
		var i []int64
		var t []string
		var n []*int32
		var g [][]int32
		r.scan(fmt.Sprintf("pgtype scanners %d", id), db,
			[]any{m.SQLScanner(&i), m.SQLScanner(&t), m.SQLScanner(&n), m.SQLScanner(&g)}, "SELECT i, t, n, g FROM a WHERE id = $1", id)
		r.add("scanned", i, t, n, g)
	}
	var plain []int64
	r.scan("[]int64 without scanner", db, []any{&plain}, "SELECT i FROM a WHERE id = 1")
	var strs []string
	r.scan("NULL element into []string", db, []any{m.SQLScanner(&strs)}, "SELECT t FROM a WHERE id = 4")
	r.rows("array args", db, "SELECT $1::int8[] = ARRAY[1,2,3]::int8[], cardinality($2::text[]), 2 = ANY($1::int8[]), array_length($3::int4[], 1)",
		[]int64{1, 2, 3}, []string{"x", "y"}, []int32{})
	r.rows("array arg echo", db, "SELECT $1::float8[], $2::bool[], $3::bytea[]", []float64{1.5, math.Inf(1)}, []bool{true, false}, [][]byte{{0}, nil})
	r.rows("bad array arg", db, "SELECT $1::int4[]", []int64{math.MaxInt64})
}

// ---------------------------------------------------------------------------------------------
// driver.Valuer arguments and sql.Scanner destinations

type confPoint struct{ X, Y int }

func (p confPoint) Value() (driver.Value, error) { return fmt.Sprintf("(%d,%d)", p.X, p.Y), nil }

func (p *confPoint) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		*p = confPoint{-1, -1}
		return nil
	default:
		return fmt.Errorf("confPoint: cannot scan %T", src)
	}
	_, err := fmt.Sscanf(s, "(%d,%d)", &p.X, &p.Y)
	return err
}

type confPtrValuer struct{ s string }

func (p *confPtrValuer) Value() (driver.Value, error) {
	if p == nil {
		return "ptr:<nil>", nil // pgx calls Value on a nil pointer receiver itself
	}
	return "ptr:" + p.s, nil
}

type confBadValuer struct{}

func (confBadValuer) Value() (driver.Value, error) { return nil, errors.New("confBadValuer: refused") }

type confOddValuer struct{}

func (confOddValuer) Value() (driver.Value, error) { return struct{ A int }{1}, nil }

// confSrcType is a Scanner that records what the driver handed it.
type confSrcType struct{ got string }

func (c *confSrcType) Scan(src any) error {
	c.got = fmt.Sprintf("%T", src)
	if b, ok := src.([]byte); ok {
		c.got += "=" + strconv.Quote(string(b))
	} else {
		c.got += "=" + fmt.Sprint(src)
	}
	return nil
}

type confFailScanner struct{}

func (*confFailScanner) Scan(any) error { return errors.New("confFailScanner: refused") }

func confValuerScanner(r *confRec, db confQ, ph func(int) string) {
	r.mustExec(db, "CREATE TABLE v (id int PRIMARY KEY, p varchar(40), n varchar(40))")
	ins := "INSERT INTO v VALUES (" + ph(1) + ", " + ph(2) + ", " + ph(3) + ")"
	r.exec("value receiver", db, ins, 1, confPoint{1, 2}, &confPoint{3, 4})
	r.exec("pointer receiver", db, ins, 2, &confPtrValuer{"x"}, (*confPtrValuer)(nil))
	r.exec("nil value-receiver pointer", db, ins, 3, (*confPoint)(nil), sql.NullString{String: "v", Valid: true})
	r.exec("valuer error", db, ins, 4, confBadValuer{}, nil)
	r.exec("valuer returns non-driver value", db, ins, 5, confOddValuer{}, nil)
	r.rows("select any", db, "SELECT * FROM v ORDER BY id")
	for id := 1; id <= 3; id++ {
		var p, q confPoint
		var src, src2 confSrcType
		r.scan(fmt.Sprintf("scanners %d", id), db, []any{&p, &q, &src, &src2}, "SELECT p, p, p, n FROM v WHERE id = "+ph(1), id)
	}
	var src confSrcType
	r.scan("scanner sees int", db, []any{&src}, "SELECT 42")
	r.scan("scanner sees NULL", db, []any{&src}, "SELECT NULL")
	r.scan("failing scanner", db, []any{&confFailScanner{}}, "SELECT 1")
	var p confPoint
	r.scan("scanner parse error", db, []any{&p}, "SELECT 'nope'")
}

func confPGValuerScanner(r *confRec, db *sql.DB) {
	confValuerScanner(r, db, func(i int) string { return "$" + strconv.Itoa(i) })
	var p confPoint
	var src confSrcType
	r.scan("point type", db, []any{&p, &src}, "SELECT '(5,6)'::text, point(5,6)")
	r.scan("valuer into point", db, []any{&src}, "SELECT $1::point", confPoint{7, 8})
}

func confMyValuerScanner(r *confRec, db *sql.DB) {
	q := func(int) string { return "?" }
	confValuerScanner(r, db, q)
	interp := r.open("interpolateParams=true")
	r.exec("interpolated valuer", interp, "INSERT INTO v VALUES (?, ?, ?)", 10, confPoint{9, 9}, (*confPtrValuer)(nil))
	r.exec("interpolated valuer error", interp, "INSERT INTO v VALUES (?, ?, ?)", 11, confBadValuer{}, nil)
	var src confSrcType
	r.scan("scanner sees binary-protocol int", db, []any{&src}, "SELECT ? + 1", 41)
	r.scan("scanner sees binary-protocol string", db, []any{&src}, "SELECT CONCAT(?, 'x')", "y")
}

// ---------------------------------------------------------------------------------------------
// Argument conversion (the NamedValueChecker path)

type confMyInt int
type confMyString string
type confMyBytes []byte

func confArgValues() []any {
	s := "p"
	return []any{
		int8(-8), int16(-16), int32(-32), int64(-64), int(-1), uint8(8), uint16(16), uint32(32), uint64(64), uint(1),
		float32(1.5), float64(2.5), true, false, "str", []byte("bytes"), confMyInt(7), confMyString("named"),
		confMyBytes("mb"), &s, uint64(math.MaxUint64),
	}
}

// confPGTypeFor is the parameter type a Go argument is meant for.
func confPGTypeFor(v any) string {
	switch reflect.Indirect(reflect.ValueOf(v)).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int8"
	case reflect.Float32, reflect.Float64:
		return "float8"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		return "bytea"
	}
	return "text"
}

func confPGArgConversion(r *confRec, db *sql.DB) {
	for i, v := range confArgValues() {
		var out any
		typ := confPGTypeFor(v)
		r.scan(fmt.Sprintf("arg %d %T as %s", i, v, typ), db, []any{&out}, "SELECT $1::"+typ, v)
		r.scan(fmt.Sprintf("arg %d %T as text", i, v), db, []any{&out}, "SELECT $1::text", v)
		r.scan(fmt.Sprintf("arg %d %T as numeric", i, v), db, []any{&out}, "SELECT $1::numeric", v)
	}
	var out any
	r.scan("struct arg", db, []any{&out}, "SELECT $1::text", struct{ A int }{1})
	r.scan("chan arg", db, []any{&out}, "SELECT $1::text", make(chan int))
	r.scan("too few args", db, []any{&out}, "SELECT $1::text, $2::text", 1)
	r.scan("too many args", db, []any{&out}, "SELECT $1::text", 1, 2)
	r.scan("untyped parameter", db, []any{&out}, "SELECT $1", "x")
	for _, typ := range []string{"int8", "float8", "bool", "bytea", "text"} {
		st, err := db.PrepareContext(r.ctx, "SELECT $1::"+typ)
		if !r.must("prepare "+typ, err) {
			continue
		}
		for i, v := range confArgValues() {
			r.scanStmt(fmt.Sprintf("stmt %s arg %d %T", typ, i, v), st, []any{&out}, v)
		}
		r.scanStmt("stmt wrong arg count", st, []any{&out}, 1, 2)
		r.must("stmt close", st.Close())
	}
}

func confMyArgConversion(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	for pass, q := range []*sql.DB{db, interp} {
		for i, v := range confArgValues() {
			var out any
			r.scan(fmt.Sprintf("pass %d arg %d %T", pass, i, v), q, []any{&out}, "SELECT ?", v)
		}
		var out any
		r.scan(fmt.Sprintf("pass %d struct arg", pass), q, []any{&out}, "SELECT ?", struct{ A int }{1})
		r.scan(fmt.Sprintf("pass %d chan arg", pass), q, []any{&out}, "SELECT ?", make(chan int))
		r.scan(fmt.Sprintf("pass %d too few args", pass), q, []any{&out}, "SELECT ?, ?", 1)
		r.scan(fmt.Sprintf("pass %d too many args", pass), q, []any{&out}, "SELECT ?", 1, 2)
		r.scan(fmt.Sprintf("pass %d time arg", pass), q, []any{&out}, "SELECT ?", time.Date(2024, 2, 29, 1, 2, 3, 456000, time.UTC))
	}
	st, err := db.PrepareContext(r.ctx, "SELECT ?")
	if r.must("prepare", err) {
		for i, v := range confArgValues() {
			var out any
			r.scanStmt(fmt.Sprintf("stmt arg %d %T", i, v), st, []any{&out}, v)
		}
		var out any
		r.scanStmt("stmt wrong arg count", st, []any{&out}, 1, 2)
		r.must("stmt close", st.Close())
	}
}

// ---------------------------------------------------------------------------------------------
// Named arguments

func confPGNamedArgs(r *confRec, db *sql.DB) {
	var a, b int
	var s string
	r.scan("sql.Named positional", db, []any{&a, &b}, "SELECT $1::int, $2::int", sql.Named("a", 1), sql.Named("b", 2))
	r.scan("sql.Named reversed names", db, []any{&a, &b}, "SELECT $1::int, $2::int", sql.Named("b", 1), sql.Named("a", 2))
	r.scan("sql.Named mixed", db, []any{&a, &b}, "SELECT $1::int, $2::int", 1, sql.Named("b", 2))
	r.scan("sql.Named bad name", db, []any{&a}, "SELECT $1::int", sql.Named("1bad", 1))
	r.scan("pgx.NamedArgs", db, []any{&a, &s}, "SELECT @a::int, @b::text", pgx.NamedArgs{"a": 7, "b": "日本"})
	r.scan("pgx.NamedArgs missing", db, []any{&a, &s}, "SELECT @a::int, @b::text", pgx.NamedArgs{"a": 7})
	r.scan("pgx.StrictNamedArgs missing", db, []any{&a, &s}, "SELECT @a::int, @b::text", pgx.StrictNamedArgs{"a": 7})
	r.exec("exec sql.Named", db, "SELECT $1::int", sql.Named("x", 3))
	st, err := db.PrepareContext(r.ctx, "SELECT $1::int + $2::int")
	if r.must("prepare", err) {
		r.scanStmt("stmt sql.Named", st, []any{&a}, sql.Named("x", 40), sql.Named("y", 2))
		r.scanStmt("stmt sql.Named bad name", st, []any{&a}, sql.Named("_x", 40), 2)
		r.must("stmt close", st.Close())
	}
	tx, err := db.BeginTx(r.ctx, nil)
	if r.must("begin", err) {
		r.scan("tx sql.Named", tx, []any{&a}, "SELECT $1::int * 2", sql.Named("v", 21))
		r.must("rollback", tx.Rollback())
	}
}

func confMyNamedArgs(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	for pass, q := range []*sql.DB{db, interp} {
		var a, b int
		p := fmt.Sprintf("pass %d ", pass)
		r.scan(p+"sql.Named", q, []any{&a, &b}, "SELECT ?, ?", sql.Named("a", 1), sql.Named("b", 2))
		r.scan(p+"sql.Named mixed", q, []any{&a, &b}, "SELECT ?, ?", 1, sql.Named("b", 2))
		r.scan(p+"sql.Named bad name", q, []any{&a}, "SELECT ?", sql.Named("1bad", 1))
		r.exec(p+"exec sql.Named", q, "DO ?", sql.Named("x", 3))
		r.scan(p+"positional still works", q, []any{&a, &b}, "SELECT ?, ?", 1, 2)
		st, err := q.PrepareContext(r.ctx, "SELECT ? + ?")
		if r.must(p+"prepare", err) {
			r.scanStmt(p+"stmt sql.Named", st, []any{&a}, sql.Named("x", 40), sql.Named("y", 2))
			r.scanStmt(p+"stmt positional", st, []any{&a}, 40, 2)
			r.must(p+"stmt close", st.Close())
		}
		tx, err := q.BeginTx(r.ctx, nil)
		if r.must(p+"begin", err) {
			r.scan(p+"tx sql.Named", tx, []any{&a}, "SELECT ? * 2", sql.Named("v", 21))
			r.must(p+"rollback", tx.Rollback())
		}
	}
}

// ---------------------------------------------------------------------------------------------
// sql.RawBytes

func confRawBytes(r *confRec, db *sql.DB, query string, args ...any) {
	rows, err := db.QueryContext(r.ctx, query, args...)
	if !r.must("query", err) {
		return
	}
	var kept [][]byte
	n := 0
	for rows.Next() {
		var a, b sql.RawBytes
		var c any
		err := rows.Scan(&a, &b, &c)
		kept = append(kept, append([]byte(nil), a...), append([]byte(nil), b...))
		r.add(fmt.Sprintf("row %d", n), a, b, c, err)
		n++
	}
	r.add("rows.Err", rows.Err())
	r.add("rows.Close", rows.Close())
	r.add("copies", kept)
	var rb sql.RawBytes
	r.scan("RawBytes in QueryRow", db, []any{&rb}, "SELECT 'x'")
}

func confPGRawBytes(r *confRec, db *sql.DB) {
	confRawBytes(r, db, `SELECT x::text || '日本', CASE WHEN x % 2 = 0 THEN NULL ELSE ('\x00'::bytea || int4send(x)) END, x
		FROM generate_series(1, 6) x`)
	confRawBytes(r, db, "SELECT $1::text, $2::bytea, $3::int", "a😀", []byte{0, 1}, 5)
}

func confMyRawBytes(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE s (x INT PRIMARY KEY)")
	r.mustExec(db, "INSERT INTO s VALUES (1), (2), (3), (4), (5), (6)")
	confRawBytes(r, db, "SELECT CONCAT(x, '日本'), IF(x % 2 = 0, NULL, CONCAT(X'00', x)), x FROM s ORDER BY x")
	confRawBytes(r, db, "SELECT CONCAT(x, ?), IF(x % 2 = 0, NULL, CONCAT(X'00', ?)), x FROM s WHERE x > ? ORDER BY x", "a😀", []byte{0, 1}, 3)
}

// ---------------------------------------------------------------------------------------------
// ColumnTypes

func confColumnTypes(r *confRec, db *sql.DB, label, query string, args ...any) {
	rows, err := db.QueryContext(r.ctx, query, args...)
	if !r.must(label, err) {
		return
	}
	r.colTypes(label, rows)
	for rows.Next() {
	}
	r.add(label+" rows.Err", rows.Err())
	rows.Close()
}

func confPGColumnTypes(r *confRec, db *sql.DB) {
	r.mustExec(db, `CREATE TABLE ct (a smallint NOT NULL, b integer, c bigint, d numeric(10,2), e numeric, f real,
		g double precision, h boolean, i text, j varchar(20), k char(5), l bytea, m date, n time, o timestamp,
		p timestamptz, q interval, r json, s jsonb, t uuid, u int8[], v text[], w inet, x oid, y point, z varchar)`)
	confColumnTypes(r, db, "empty table", "SELECT * FROM ct")
	r.mustExec(db, `INSERT INTO ct VALUES (1, 2, 3, 4.5, 6.7, 8.5, 9.5, true, 'i', 'j', 'k', '\x00', '2024-01-01', '01:02',
		'2024-01-01 01:02', '2024-01-01 01:02+00', '1 day', '{}', '{}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1}', '{a}',
		'127.0.0.1', 1, '(1,2)', 'z')`)
	confColumnTypes(r, db, "with a row", "SELECT * FROM ct")
	confColumnTypes(r, db, "with args", "SELECT * FROM ct WHERE a = $1", 1)
	confColumnTypes(r, db, "expressions", "SELECT 1, 'a', 1.5, NULL, now(), $1::text, $2::numeric(7,3), count(*) OVER () AS win", "x", 1)
	st, err := db.PrepareContext(r.ctx, "SELECT a, d, j, p FROM ct WHERE a > $1")
	if r.must("prepare", err) {
		rows, err := st.QueryContext(r.ctx, 0)
		if r.must("stmt query", err) {
			r.colTypes("stmt", rows)
			rows.Close()
		}
		st.Close()
	}
}

func confMyColumnTypes(r *confRec, db *sql.DB) {
	r.mustExec(db, `CREATE TABLE ct (a TINYINT NOT NULL, b SMALLINT UNSIGNED, c MEDIUMINT, d INT, e BIGINT UNSIGNED NOT NULL,
		f DECIMAL(10,2), g FLOAT, h DOUBLE, i BIT(3), j CHAR(5), k VARCHAR(20), l TEXT, m BINARY(4), n VARBINARY(9),
		o BLOB, p DATE, q TIME(3), r DATETIME(6), s TIMESTAMP(6) NULL, t YEAR, u JSON, v ENUM('x','y'), w SET('p','q'),
		x BOOL, y LONGTEXT, z TINYBLOB) DEFAULT CHARSET=utf8mb4`)
	confColumnTypes(r, db, "empty table (text)", "SELECT * FROM ct")
	confColumnTypes(r, db, "empty table (binary)", "SELECT * FROM ct WHERE a > ?", -1)
	r.mustExec(db, `INSERT INTO ct VALUES (1, 2, 3, 4, 5, 6.5, 7.5, 8.5, b'101', 'j', 'k', 'l', 'm', 'n', 'o', '2024-01-01',
		'01:02:03.456', '2024-01-01 01:02:03', '2024-01-01 01:02:03', 2024, '{}', 'x', 'p,q', 1, 'y', 'z')`)
	confColumnTypes(r, db, "with a row (text)", "SELECT * FROM ct")
	confColumnTypes(r, db, "with a row (binary)", "SELECT * FROM ct WHERE a > ?", -1)
	confColumnTypes(r, db, "expressions", "SELECT 1, 'a', 1.5, NULL, NOW(), ?, CAST(? AS DECIMAL(7,3)), COUNT(*) AS cnt", "x", 1)
	parsed := r.open("parseTime=true")
	confColumnTypes(r, parsed, "parseTime=true", "SELECT p, q, r, s FROM ct")
}

// ---------------------------------------------------------------------------------------------
// Exec results

func confPGExecResult(r *confRec, db *sql.DB) {
	r.exec("create", db, "CREATE TABLE e (id serial PRIMARY KEY, v int)")
	r.exec("insert 3", db, "INSERT INTO e (v) VALUES (1), (2), (3)")
	r.exec("insert arg", db, "INSERT INTO e (v) VALUES ($1)", 4)
	r.exec("update 2", db, "UPDATE e SET v = v + 10 WHERE v > $1", 2)
	r.exec("update same", db, "UPDATE e SET v = v WHERE id = 1")
	r.exec("update none", db, "UPDATE e SET v = 0 WHERE false")
	r.rows("returning", db, "INSERT INTO e (v) VALUES ($1), ($2) RETURNING id, v", 5, 6)
	r.exec("delete", db, "DELETE FROM e WHERE v > 10")
	r.exec("select via exec", db, "SELECT * FROM e")
	r.exec("empty statement", db, "")
	r.exec("set", db, "SET statement_timeout = 0")
	r.add("ping", db.PingContext(r.ctx))
}

func confMyExecResult(r *confRec, db *sql.DB) {
	found := r.open("clientFoundRows=true")
	interp := r.open("interpolateParams=true")
	r.exec("create", db, "CREATE TABLE e (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	r.exec("insert 3", db, "INSERT INTO e (v) VALUES (1), (2), (3)")
	r.exec("insert arg", db, "INSERT INTO e (v) VALUES (?)", 4)
	r.exec("insert arg interpolated", interp, "INSERT INTO e (v) VALUES (?), (?)", 5, 6)
	r.exec("insert explicit id", db, "INSERT INTO e VALUES (100, 7)")
	r.exec("update 2", db, "UPDATE e SET v = v + 10 WHERE v > ? AND v < ?", 2, 5)
	r.exec("update same", db, "UPDATE e SET v = v WHERE id = 1")
	r.exec("update same (clientFoundRows)", found, "UPDATE e SET v = v WHERE id = 1")
	r.exec("upsert", db, "INSERT INTO e VALUES (1, 50) ON DUPLICATE KEY UPDATE v = VALUES(v)")
	r.exec("delete", db, "DELETE FROM e WHERE v > 10")
	r.exec("select via exec", db, "SELECT * FROM e")
	r.exec("empty statement", db, "")
	r.exec("set", db, "SET @x = 1")
	r.add("ping", db.PingContext(r.ctx))
}

// ---------------------------------------------------------------------------------------------
// Multiple result sets

func confMyMultiResults(r *confRec, db *sql.DB) {
	multi := func(label, query string, args ...any) { r.multi(label, db, query, args...) }
	multi("three selects", "SELECT 1 AS a; SELECT 'x' AS b, 2 AS c UNION ALL SELECT '日本', 3; SELECT 3 AS d FROM DUAL WHERE 1 = 0")
	r.exec("multi exec", db, "CREATE TABLE m (id INT AUTO_INCREMENT PRIMARY KEY, v INT); INSERT INTO m (v) VALUES (1), (2); UPDATE m SET v = 5")
	r.rows("after multi exec", db, "SELECT * FROM m ORDER BY id")
	multi("error in second statement", "SELECT 1; SELECT * FROM nosuch; SELECT 3")
	multi("dml between selects", "SELECT COUNT(*) FROM m; INSERT INTO m (v) VALUES (9); SELECT COUNT(*) FROM m")
	r.mustExec(db, "CREATE PROCEDURE two() BEGIN SELECT 1 AS one; SELECT 'two' AS two, 2 AS n; END")
	r.mustExec(db, "CREATE PROCEDURE withargs(IN x INT) BEGIN SELECT x AS x; SELECT x * 2 AS y, 'z' AS z; END")
	r.mustExec(db, "CREATE PROCEDURE noresult() BEGIN UPDATE m SET v = v + 1; END")
	multi("call two", "CALL two()")
	multi("call with arg (prepared)", "CALL withargs(?)", 21)
	multi("call two then select", "CALL two(); SELECT 'after' AS a")
	multi("call noresult", "CALL noresult()")
	r.exec("exec call", db, "CALL two()")
	r.rows("single set helper ignores others", db, "CALL two()")
	// The connection must be clean afterwards.
	var n int
	r.scan("after", db, []any{&n}, "SELECT COUNT(*) FROM m")
	single := r.open("multiStatements=false")
	r.rows("multiStatements=false", single, "SELECT 1; SELECT 2")
	r.rows("call without multiStatements", single, "CALL two()")
}

func confPGMultiStatements(r *confRec, db *sql.DB) {
	r.exec("multi exec (simple protocol)", db, "CREATE TABLE m (id int PRIMARY KEY); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2)")
	r.rows("after", db, "SELECT * FROM m ORDER BY id")
	r.rows("multi query", db, "SELECT 1; SELECT 2")
	r.exec("multi exec with args", db, "INSERT INTO m VALUES ($1); INSERT INTO m VALUES (4)", 3)
	r.multi("single set", db, "SELECT 1 AS a")
	r.multi("multi exec via query", db, "SELECT 1 AS a; SELECT 2 AS b")
}

// ---------------------------------------------------------------------------------------------
// Transactions: isolation levels, read-only

var confLevels = []sql.IsolationLevel{
	sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelWriteCommitted,
	sql.LevelRepeatableRead, sql.LevelSnapshot, sql.LevelSerializable, sql.LevelLinearizable, sql.IsolationLevel(42),
}

func confPGTxIsolation(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE k (id int PRIMARY KEY, v int)")
	r.mustExec(db, "INSERT INTO k VALUES (1, 0)")
	for _, lvl := range confLevels {
		for _, ro := range []bool{false, true} {
			p := fmt.Sprintf("%v ro=%v ", lvl, ro)
			tx, err := db.BeginTx(r.ctx, &sql.TxOptions{Isolation: lvl, ReadOnly: ro})
			r.add(p+"begin", err)
			if err != nil {
				continue
			}
			r.rows(p+"settings", tx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
			r.exec(p+"write", tx, "UPDATE k SET v = v + 1 WHERE id = 1")
			r.add(p+"commit", tx.Commit())
			r.add(p+"commit again", tx.Commit())
			r.add(p+"rollback after commit", tx.Rollback())
		}
	}
	r.rows("writes that committed", db, "SELECT v FROM k")
	// Visibility of a concurrent committed update, per level.
	for _, lvl := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable} {
		p := lvl.String() + " "
		r.mustExec(db, "UPDATE k SET v = 100 WHERE id = 1")
		tx, err := db.BeginTx(r.ctx, &sql.TxOptions{Isolation: lvl})
		if !r.must(p+"begin", err) {
			continue
		}
		var before, after int
		r.scan(p+"first read", tx, []any{&before}, "SELECT v FROM k WHERE id = 1")
		r.exec(p+"concurrent update", db, "UPDATE k SET v = 200 WHERE id = 1")
		r.scan(p+"second read", tx, []any{&after}, "SELECT v FROM k WHERE id = 1")
		r.exec(p+"write after concurrent update", tx, "UPDATE k SET v = v + 1 WHERE id = 1")
		r.add(p+"commit", tx.Commit())
	}
	tx, err := db.BeginTx(r.ctx, nil)
	if r.must("begin for SET TRANSACTION", err) {
		r.exec("SET TRANSACTION inside", tx, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
		r.rows("level after SET", tx, "SHOW transaction_isolation")
		r.add("rollback", tx.Rollback())
	}
	r.rows("session level afterwards", db, "SHOW transaction_isolation")
}

func confMyTxIsolation(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE k (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
	r.mustExec(db, "INSERT INTO k VALUES (1, 0)")
	for _, lvl := range confLevels {
		for _, ro := range []bool{false, true} {
			p := fmt.Sprintf("%v ro=%v ", lvl, ro)
			tx, err := db.BeginTx(r.ctx, &sql.TxOptions{Isolation: lvl, ReadOnly: ro})
			r.add(p+"begin", err)
			if err != nil {
				continue
			}
			r.rows(p+"settings", tx, "SELECT @@in_transaction, @@session.tx_read_only")
			r.exec(p+"write", tx, "UPDATE k SET v = v + 1 WHERE id = 1")
			r.add(p+"commit", tx.Commit())
			r.add(p+"commit again", tx.Commit())
			r.add(p+"rollback after commit", tx.Rollback())
		}
	}
	r.rows("writes that committed", db, "SELECT v FROM k")
	for _, lvl := range []sql.IsolationLevel{sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead} {
		p := lvl.String() + " "
		r.mustExec(db, "UPDATE k SET v = 100 WHERE id = 1")
		tx, err := db.BeginTx(r.ctx, &sql.TxOptions{Isolation: lvl})
		if !r.must(p+"begin", err) {
			continue
		}
		var before, after int
		r.scan(p+"first read", tx, []any{&before}, "SELECT v FROM k WHERE id = 1")
		r.exec(p+"concurrent update", db, "UPDATE k SET v = 200 WHERE id = 1")
		r.scan(p+"second read", tx, []any{&after}, "SELECT v FROM k WHERE id = 1")
		r.add(p+"commit", tx.Commit())
	}
	// A serializable reader takes shared locks: a concurrent writer would wait. Check the read
	// lock by the writer's NOWAIT failure (MariaDB 10.3+), which is immediate.
	tx, err := db.BeginTx(r.ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if r.must("serializable begin", err) {
		var v int
		r.scan("serializable read", tx, []any{&v}, "SELECT v FROM k WHERE id = 1")
		c, err := db.Conn(r.ctx)
		if r.must("second conn", err) {
			r.exec("writer NOWAIT", c, "SELECT v FROM k WHERE id = 1 FOR UPDATE NOWAIT")
			c.Close()
		}
		r.add("serializable commit", tx.Commit())
	}
}

// ---------------------------------------------------------------------------------------------
// Savepoints

func confSavepoints(r *confRec, db *sql.DB, ph func(int) string) {
	r.mustExec(db, "CREATE TABLE sp (id int PRIMARY KEY)")
	ins := "INSERT INTO sp VALUES (" + ph(1) + ")"
	tx, err := db.BeginTx(r.ctx, nil)
	if !r.must("begin", err) {
		return
	}
	r.exec("insert 1", tx, ins, 1)
	r.exec("savepoint s1", tx, "SAVEPOINT s1")
	r.exec("insert 2", tx, ins, 2)
	r.exec("rollback to s1", tx, "ROLLBACK TO SAVEPOINT s1")
	r.exec("insert 3", tx, ins, 3)
	r.exec("savepoint s2", tx, "SAVEPOINT s2")
	r.exec("duplicate", tx, ins, 3)
	r.exec("statement after error", tx, ins, 5)
	r.exec("rollback to s2", tx, "ROLLBACK TO SAVEPOINT s2")
	r.exec("insert 4", tx, ins, 4)
	r.exec("release s2", tx, "RELEASE SAVEPOINT s2")
	r.rows("inside", tx, "SELECT id FROM sp ORDER BY id")
	r.add("commit", tx.Commit())
	r.rows("committed", db, "SELECT id FROM sp ORDER BY id")

	tx, err = db.BeginTx(r.ctx, nil)
	if !r.must("begin 2", err) {
		return
	}
	r.exec("insert 10", tx, ins, 10)
	r.exec("savepoint a", tx, "SAVEPOINT a")
	r.exec("insert 11", tx, ins, 11)
	r.exec("savepoint b", tx, "SAVEPOINT b")
	r.exec("insert 12", tx, ins, 12)
	r.exec("rollback to a (drops b)", tx, "ROLLBACK TO SAVEPOINT a")
	r.exec("insert 13", tx, ins, 13)
	r.exec("savepoint a again", tx, "SAVEPOINT a")
	r.exec("insert 14", tx, ins, 14)
	r.exec("rollback to the newer a", tx, "ROLLBACK TO SAVEPOINT a")
	r.add("commit 2", tx.Commit())
	r.rows("committed 2", db, "SELECT id FROM sp ORDER BY id")

	// Savepoint errors, each in a transaction of its own.
	for _, bad := range []string{"ROLLBACK TO SAVEPOINT nope", "RELEASE SAVEPOINT nope"} {
		tx, err = db.BeginTx(r.ctx, nil)
		if !r.must("begin "+bad, err) {
			return
		}
		r.exec("insert 20", tx, ins, 20)
		r.exec(bad, tx, bad)
		r.add("commit after "+bad, tx.Commit())
		r.rows("committed after "+bad, db, "SELECT id FROM sp WHERE id >= 20 ORDER BY id")
		r.exec("cleanup", db, "DELETE FROM sp WHERE id >= 20")
	}
	tx, err = db.BeginTx(r.ctx, nil)
	if r.must("begin rollback", err) {
		r.exec("savepoint r", tx, "SAVEPOINT r")
		r.exec("insert 30", tx, ins, 30)
		r.add("rollback whole tx", tx.Rollback())
		r.rows("nothing from rolled back tx", db, "SELECT count(*) FROM sp WHERE id = 30")
	}

	c, err := db.Conn(r.ctx)
	if r.must("conn", err) {
		r.exec("savepoint outside tx", c, "SAVEPOINT nowhere")
		r.exec("rollback to outside tx", c, "ROLLBACK TO SAVEPOINT nowhere")
		c.Close()
	}
}

func confPGSavepoints(r *confRec, db *sql.DB) {
	confSavepoints(r, db, func(i int) string { return "$" + strconv.Itoa(i) })
}

func confMySavepoints(r *confRec, db *sql.DB) {
	confSavepoints(r, db, func(int) string { return "?" })
}

// ---------------------------------------------------------------------------------------------
// Context cancellation mid-query

// confCancel runs sleepQuery (which sleeps for 5 s on the server) under contexts that end after
// 250 ms, and checks that the call returns promptly with the same error class on both sides and
// that the database is usable afterwards.
func confCancel(r *confRec, db *sql.DB, sleepQuery string) {
	const limit = 4 * time.Second // the sleep is 5 s: anything under this was cut short
	db.SetMaxOpenConns(4)
	one := func(label string, q confQ) {
		var n int
		err := q.QueryRowContext(r.ctx, "SELECT 1").Scan(&n)
		r.add(label, n, err)
	}
	one("warm up", db)

	timed := func(label string, f func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(r.ctx, 250*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := f(ctx)
		if el := time.Since(start); el > limit {
			r.errorf("%s: took %v: the cancellation did not cut the query short", label, el)
		}
		r.addClass(label, err)
		r.check(err != nil, "%s: no error", label)
	}

	timed("db query deadline", func(ctx context.Context) error {
		var x any
		return db.QueryRowContext(ctx, sleepQuery).Scan(&x)
	})
	timed("db exec deadline", func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, sleepQuery)
		return err
	})
	for i := 0; i < 5; i++ {
		one(fmt.Sprintf("db usable %d", i), db)
	}
	r.add("ping", db.PingContext(r.ctx))

	// context.Canceled, by a cancel from another goroutine while the query runs.
	func() {
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		t := time.AfterFunc(250*time.Millisecond, cancel)
		defer t.Stop()
		start := time.Now()
		var x any
		err := db.QueryRowContext(ctx, sleepQuery).Scan(&x)
		r.check(time.Since(start) < limit, "cancel: not cut short")
		r.addClass("db query canceled", err)
	}()
	one("db usable after cancel", db)

	// A context that is already over.
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	_, err := db.ExecContext(ctx, "SELECT 1")
	r.add("exec with canceled ctx", err)
	ctx, cancel2 := context.WithDeadline(r.ctx, time.Now().Add(-time.Second))
	defer cancel2()
	_, err = db.QueryContext(ctx, "SELECT 1")
	r.add("query with expired ctx", err)
	_, err = db.BeginTx(ctx, nil)
	r.add("begin with expired ctx", err)

	// Pinned connection.
	c, err := db.Conn(r.ctx)
	if r.must("conn", err) {
		one("conn before", c)
		timed("conn query deadline", func(ctx context.Context) error {
			var x any
			return c.QueryRowContext(ctx, sleepQuery).Scan(&x)
		})
		// The raw driver closed the connection when the deadline cut the query short:
		// database/sql reports it and then the Conn is done. hasql may reconnect instead.
		var n int
		err := c.QueryRowContext(r.ctx, "SELECT 1").Scan(&n)
		r.outcome("conn after deadline", err, n)
		r.check(err != nil || n == 1, "conn after deadline: %d", n)
		r.outcome("conn close", c.Close())
	}
	one("db usable after conn", db)

	// Transaction: a query cut short by its context, then Commit and Rollback.
	tctx, tcancel := context.WithTimeout(r.ctx, 2*time.Second)
	tx, err := db.BeginTx(tctx, nil)
	if r.must("begin", err) {
		timed("tx query deadline", func(ctx context.Context) error {
			var x any
			return tx.QueryRowContext(ctx, sleepQuery).Scan(&x)
		})
		r.addClass("tx commit after query deadline", tx.Commit())
		r.addClass("tx rollback after", tx.Rollback())
	}
	tcancel()
	one("db usable after tx", db)

	// The transaction's own context ends between statements: database/sql rolls it back.
	r.mustExec(db, "CREATE TABLE cx (id int)")
	tctx, tcancel = context.WithTimeout(r.ctx, 250*time.Millisecond)
	tx, err = db.BeginTx(tctx, nil)
	if r.must("begin 2", err) {
		r.exec("tx insert", tx, "INSERT INTO cx VALUES (1)")
		// database/sql rolls the transaction back from its own goroutine once the context it
		// derived from tctx ends, which can be a moment after tctx itself: wait for the
		// rollback (the transaction reports ErrTxDone), not just for tctx.
		var err error
		for i := 0; ; i++ {
			if _, err = tx.ExecContext(r.ctx, "SELECT 1"); errors.Is(err, sql.ErrTxDone) || r.ctx.Err() != nil {
				break
			}
		}
		err = tx.Commit()
		ok := errors.Is(err, sql.ErrTxDone)
		r.add("tx commit after its ctx ended is ErrTxDone", ok)
		r.check(ok, "tx commit after its ctx ended: %T %v", err, err)
		r.rows("insert rolled back", db, "SELECT COUNT(*) FROM cx")
	}
	tcancel()
	for i := 0; i < 5; i++ {
		one(fmt.Sprintf("db usable at end %d", i), db)
	}
}

func confPGCancel(r *confRec, db *sql.DB) {
	confCancel(r, db, "SELECT pg_sleep(5)")
}

func confMyCancel(r *confRec, db *sql.DB) {
	confCancel(r, db, "SELECT SLEEP(5)")
}

// ---------------------------------------------------------------------------------------------
// A pinned *sql.Conn keeps its session

func confPGPinnedConn(r *confRec, db *sql.DB) {
	db.SetMaxOpenConns(3)
	r.mustExec(db, "CREATE SCHEMA other")
	r.mustExec(db, "CREATE TABLE other.t (v text)")
	r.mustExec(db, "INSERT INTO other.t VALUES ('in other')")
	c, err := db.Conn(r.ctx)
	if !r.must("conn", err) {
		return
	}
	var pid1, pid2 int
	r.must("pid", c.QueryRowContext(r.ctx, "SELECT pg_backend_pid()").Scan(&pid1))
	r.mustExec(c, "SET application_name = 'conf-pinned'")
	r.mustExec(c, "SET search_path = other, public")
	r.mustExec(c, "CREATE TEMP TABLE tt (x int)")
	r.mustExec(c, "INSERT INTO tt VALUES (1), (2)")
	r.mustExec(c, "PREPARE sq AS SELECT $1::int * 3")
	r.mustExec(c, "SELECT set_config('conf.var', 'v1', false)")
	// Traffic and pool churn on the DB meanwhile.
	for i := 0; i < 10; i++ {
		var n int
		r.must("db traffic", db.QueryRowContext(r.ctx, "SELECT $1::int", i).Scan(&n))
		db.SetMaxIdleConns(i % 2)
	}
	db.SetMaxIdleConns(2)
	r.must("pid again", c.QueryRowContext(r.ctx, "SELECT pg_backend_pid()").Scan(&pid2))
	r.add("same backend", pid1 == pid2)
	r.rows("session state", c, "SELECT current_setting('application_name'), current_setting('search_path'), current_setting('conf.var'), (SELECT v FROM t)")
	r.rows("temp table", c, "SELECT x FROM tt ORDER BY x")
	r.rows("sql-level prepared", c, "EXECUTE sq(5)")
	r.rows("temp table from db", db, "SELECT count(*) FROM pg_tables WHERE tablename = 'tt' AND schemaname LIKE 'pg_temp%'")
	st, err := c.PrepareContext(r.ctx, "SELECT $1::int + (SELECT count(*) FROM tt)")
	if r.must("conn prepare", err) {
		for i := 0; i < 3; i++ {
			var n int
			r.scanStmt(fmt.Sprintf("conn stmt %d", i), st, []any{&n}, i)
		}
		r.must("conn stmt close", st.Close())
	}
	tx, err := c.BeginTx(r.ctx, nil)
	if r.must("conn begin", err) {
		r.rows("temp table in tx", tx, "SELECT count(*) FROM tt")
		r.exec("tx insert", tx, "INSERT INTO tt VALUES (3)")
		r.must("tx commit", tx.Commit())
	}
	r.rows("after tx", c, "SELECT count(*), current_setting('application_name') FROM tt")
	r.must("raw", c.Raw(func(dc any) error {
		inner, ok := hasql.Unwrap(dc).(*stdlib.Conn)
		r.check(ok, "Raw: driver conn is %T", hasql.Unwrap(dc))
		if ok {
			r.add("raw backend is the pinned one", int(inner.Conn().PgConn().PID()) == pid1)
		}
		return nil
	}))
	r.add("close", c.Close())
	r.add("close again", c.Close())
	var n int
	r.add("use after close", c.QueryRowContext(r.ctx, "SELECT 1").Scan(&n))
	// With a single connection, the next user of the DB gets the same session back.
	db.SetMaxOpenConns(1)
	c, err = db.Conn(r.ctx)
	if r.must("conn 2", err) {
		r.mustExec(c, "SET application_name = 'conf-single'")
		r.mustExec(c, "CREATE TEMP TABLE single (x int)")
		r.add("close 2", c.Close())
		r.rows("session kept by the single connection", db, "SELECT current_setting('application_name'), count(*) FROM single")
	}
}

func confMyPinnedConn(r *confRec, db *sql.DB) {
	db.SetMaxOpenConns(3)
	r.mustExec(db, "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	c, err := db.Conn(r.ctx)
	if !r.must("conn", err) {
		return
	}
	var id1, id2 int64
	r.must("connection id", c.QueryRowContext(r.ctx, "SELECT CONNECTION_ID()").Scan(&id1))
	r.mustExec(c, "SET @v = 42, @s = '日本'")
	r.mustExec(c, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	r.mustExec(c, "SET SESSION time_zone = '+03:00'")
	r.mustExec(c, "CREATE TEMPORARY TABLE tt (x INT)")
	r.mustExec(c, "INSERT INTO tt VALUES (1), (2)")
	r.mustExec(c, "INSERT INTO a (v) VALUES (7)")
	r.mustExec(c, "PREPARE sq FROM 'SELECT ? * 3'")
	var lock int
	r.scan("get lock", c, []any{&lock}, "SELECT GET_LOCK(CONCAT(DATABASE(), '.pinned'), 0)")
	for i := 0; i < 10; i++ {
		var n int
		r.must("db traffic", db.QueryRowContext(r.ctx, "SELECT ?", i).Scan(&n))
		db.SetMaxIdleConns(i % 2)
	}
	db.SetMaxIdleConns(2)
	r.must("connection id again", c.QueryRowContext(r.ctx, "SELECT CONNECTION_ID()").Scan(&id2))
	r.add("same connection", id1 == id2)
	r.rows("session state", c, `SELECT @v, @s, @@session.sql_mode, @@session.time_zone, LAST_INSERT_ID()`)
	r.rows("temp table", c, "SELECT x FROM tt ORDER BY x")
	r.exec("set @p", c, "SET @p = 5")
	r.rows("sql-level prepared", c, "EXECUTE sq USING @p")
	r.rows("lock owner seen from db", db, "SELECT IS_USED_LOCK(CONCAT(DATABASE(), '.pinned')) = ?", id1)
	r.rows("temp table from db", db, "SELECT COUNT(*) FROM tt")
	st, err := c.PrepareContext(r.ctx, "SELECT ? + (SELECT COUNT(*) FROM tt)")
	if r.must("conn prepare", err) {
		for i := 0; i < 3; i++ {
			var n int
			r.scanStmt(fmt.Sprintf("conn stmt %d", i), st, []any{&n}, i)
		}
		r.must("conn stmt close", st.Close())
	}
	tx, err := c.BeginTx(r.ctx, nil)
	if r.must("conn begin", err) {
		r.rows("temp table in tx", tx, "SELECT COUNT(*), @v FROM tt")
		r.exec("tx insert", tx, "INSERT INTO tt VALUES (3)")
		r.must("tx commit", tx.Commit())
	}
	r.rows("after tx", c, "SELECT COUNT(*), @v FROM tt")
	r.add("close", c.Close())
	r.add("close again", c.Close())
	var n int
	r.add("use after close", c.QueryRowContext(r.ctx, "SELECT 1").Scan(&n))
	db.SetMaxOpenConns(1)
	c, err = db.Conn(r.ctx)
	if r.must("conn 2", err) {
		r.mustExec(c, "SET @single = 'kept'")
		r.add("close 2", c.Close())
		r.rows("session kept by the single connection", db, "SELECT @single")
	}
}

// ---------------------------------------------------------------------------------------------
// A *sql.Stmt reused concurrently, across connections and pool churn

func confStmtReuse(r *confRec, db *sql.DB, selectQ, insertQ string) {
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	sel, err := db.PrepareContext(r.ctx, selectQ)
	if !r.must("prepare select", err) {
		return
	}
	ins, err := db.PrepareContext(r.ctx, insertQ)
	if !r.must("prepare insert", err) {
		return
	}
	const workers, iters = 8, 40
	var okCount, badCount atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	done := make(chan struct{})
	churn := make(chan struct{})
	go func() { // pool churn while the workers run: database/sql closes and reopens connections
		defer close(churn)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			db.SetMaxIdleConns(i % 3)
			var n int
			_ = db.QueryRowContext(r.ctx, "SELECT 1").Scan(&n)
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				k := int64(w*1000 + i)
				var got int64
				var s string
				err := sel.QueryRowContext(r.ctx, k, fmt.Sprintf("w%d", w)).Scan(&got, &s)
				if err == nil && (got != 2*k || s != fmt.Sprintf("w%dx", w)) {
					err = fmt.Errorf("wrong result for %d: %d %q", k, got, s)
				}
				if err == nil {
					_, err = ins.ExecContext(r.ctx, k, w)
				}
				if err != nil {
					badCount.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					continue
				}
				okCount.Add(1)
				if i%10 == 9 {
					// Also inside a transaction: tx.Stmt prepares on the tx's connection.
					tx, err := db.BeginTx(r.ctx, nil)
					if err == nil {
						var n int64
						err = tx.StmtContext(r.ctx, sel).QueryRowContext(r.ctx, k, "t").Scan(&n, &s)
						if err == nil && n != 2*k {
							err = fmt.Errorf("tx stmt: wrong result %d", n)
						}
						if cerr := tx.Commit(); err == nil {
							err = cerr
						}
					}
					if err != nil {
						badCount.Add(1)
						firstBad.CompareAndSwap(nil, err.Error())
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(done)
	<-churn
	db.SetMaxIdleConns(4) // the churn left it anywhere in 0..2
	r.add("ok", okCount.Load(), "bad", badCount.Load())
	if fb := firstBad.Load(); fb != nil {
		r.errorf("first failure: %v", fb)
	}
	r.rows("inserted", db, "SELECT COUNT(*), SUM(k), COUNT(DISTINCT w) FROM s")
	r.must("close select", sel.Close())
	var n int64
	var s string
	r.add("use closed stmt", sel.QueryRowContext(r.ctx, 1, "x").Scan(&n, &s))
	r.must("close insert", ins.Close())
	// A statement prepared on a *sql.Conn is bound to it.
	c, err := db.Conn(r.ctx)
	if r.must("conn", err) {
		st, err := c.PrepareContext(r.ctx, selectQ)
		if r.must("conn prepare", err) {
			r.scanStmt("conn stmt", st, []any{&n, &s}, 21, "c")
			r.add("conn close", c.Close())
			r.add("conn stmt after conn close", st.QueryRowContext(r.ctx, 21, "c").Scan(&n, &s))
			r.add("conn stmt close", st.Close())
		}
	}
}

func confPGStmtReuse(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE s (k bigint PRIMARY KEY, w int)")
	confStmtReuse(r, db, "SELECT $1::int8 * 2, $2::text || 'x'", "INSERT INTO s VALUES ($1, $2)")
}

func confMyStmtReuse(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE s (k BIGINT PRIMARY KEY, w INT)")
	confStmtReuse(r, db, "SELECT ? * 2, CONCAT(?, 'x')", "INSERT INTO s VALUES (?, ?)")
}

// ---------------------------------------------------------------------------------------------
// Error chains

func confPGErrors(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE u (id int PRIMARY KEY, name text UNIQUE NOT NULL, n int CHECK (n >= 0))")
	r.mustExec(db, "INSERT INTO u VALUES (1, 'a', 0)")
	codeOf := func(label string, err error, want string) {
		var pe *pgconn.PgError
		ok := errors.As(err, &pe)
		r.check(ok && pe.Code == want, "%s: errors.As(*pgconn.PgError) = %v, code %v; want %s (err %v)", label, ok, pe, want, err)
	}
	_, err := db.ExecContext(r.ctx, "INSERT INTO u VALUES ($1, $2, 0)", 1, "b")
	r.add("unique pk", err)
	codeOf("unique pk", err, "23505")
	_, err = db.ExecContext(r.ctx, "INSERT INTO u VALUES (2, 'a', 0)")
	r.add("unique name", err)
	codeOf("unique name", err, "23505")
	_, err = db.ExecContext(r.ctx, "SELEC 1")
	r.add("syntax", err)
	codeOf("syntax", err, "42601")
	_, err = db.QueryContext(r.ctx, "SELECT * FROM nosuch")
	r.add("undefined table", err)
	codeOf("undefined table", err, "42P01")
	var n int
	err = db.QueryRowContext(r.ctx, "SELECT 1 / $1::int", 0).Scan(&n)
	r.add("division by zero", err)
	codeOf("division by zero", err, "22012")
	_, err = db.ExecContext(r.ctx, "INSERT INTO u (id, name) VALUES (3, NULL)")
	r.add("not null", err)
	codeOf("not null", err, "23502")
	_, err = db.ExecContext(r.ctx, "INSERT INTO u VALUES (4, 'd', -1)")
	r.add("check", err)
	codeOf("check", err, "23514")
	_, err = db.ExecContext(r.ctx, `DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'HQ001', MESSAGE = 'custom 日本', DETAIL = 'some detail', HINT = 'a hint'; END $$`)
	r.add("raise", err)
	codeOf("raise", err, "HQ001")
	err = db.QueryRowContext(r.ctx, "SELECT id FROM u WHERE id = 99").Scan(&n)
	r.add("no rows", err)
	r.check(errors.Is(err, sql.ErrNoRows), "no rows: %v", err)
	_, err = db.PrepareContext(r.ctx, "SELECT * FROM nosuch")
	r.add("prepare undefined table", err)
	codeOf("prepare", err, "42P01")
	st, err := db.PrepareContext(r.ctx, "INSERT INTO u VALUES ($1, $2, $3)")
	if r.must("prepare", err) {
		_, err = st.ExecContext(r.ctx, 1, "z", 0)
		r.add("stmt unique", err)
		codeOf("stmt unique", err, "23505")
		_, err = st.ExecContext(r.ctx, "x", "z", 0)
		r.add("stmt bad int text", err)
		r.must("stmt close", st.Close())
	}
	tx, err := db.BeginTx(r.ctx, nil)
	if r.must("begin", err) {
		_, err = tx.ExecContext(r.ctx, "INSERT INTO u VALUES (1, 'a', 0)")
		r.add("tx unique", err)
		codeOf("tx unique", err, "23505")
		_, err = tx.ExecContext(r.ctx, "SELECT 1")
		r.add("tx aborted", err)
		codeOf("tx aborted", err, "25P02")
		r.add("tx commit", tx.Commit())
	}
	c, err := db.Conn(r.ctx)
	if r.must("conn", err) {
		_, err = c.ExecContext(r.ctx, "SELECT * FROM nosuch_either")
		r.add("conn error", err)
		codeOf("conn error", err, "42P01")
		err = c.Raw(func(dc any) error {
			_, err := hasql.Unwrap(dc).(*stdlib.Conn).Conn().Exec(r.ctx, "INSERT INTO u VALUES (1, 'a', 0)")
			return err
		})
		r.add("raw error", err)
		codeOf("raw error", err, "23505")
		c.Close()
	}
	var one int
	r.scan("db usable", db, []any{&one}, "SELECT 1")
}

func confMyErrors(r *confRec, db *sql.DB) {
	interp := r.open("interpolateParams=true")
	r.mustExec(db, "CREATE TABLE u (id INT PRIMARY KEY, name VARCHAR(20) UNIQUE NOT NULL, n INT CHECK (n >= 0))")
	r.mustExec(db, "INSERT INTO u VALUES (1, 'a', 0)")
	numOf := func(label string, err error, want uint16) {
		var me *mysql.MySQLError
		ok := errors.As(err, &me)
		r.check(ok && me.Number == want, "%s: errors.As(*mysql.MySQLError) = %v, %v; want %d (err %v)", label, ok, me, want, err)
	}
	for pass, q := range []*sql.DB{db, interp} {
		p := fmt.Sprintf("pass %d ", pass)
		_, err := q.ExecContext(r.ctx, "INSERT INTO u VALUES (?, ?, 0)", 1, "b")
		r.add(p+"duplicate (args)", err)
		numOf(p+"duplicate", err, 1062)
		_, err = q.ExecContext(r.ctx, "INSERT INTO u VALUES (2, 'a', 0)")
		r.add(p+"duplicate (no args)", err)
		numOf(p+"duplicate name", err, 1062)
		_, err = q.ExecContext(r.ctx, "SELEC 1")
		r.add(p+"syntax", err)
		numOf(p+"syntax", err, 1064)
		_, err = q.ExecContext(r.ctx, "SELEC ?", 1)
		r.add(p+"syntax (args)", err)
		numOf(p+"syntax args", err, 1064)
		_, err = q.QueryContext(r.ctx, "SELECT * FROM nosuch")
		r.add(p+"no table", err)
		numOf(p+"no table", err, 1146)
		_, err = q.ExecContext(r.ctx, "INSERT INTO u (id, name) VALUES (?, ?)", 3, nil)
		r.add(p+"not null", err)
		numOf(p+"not null", err, 1048)
		_, err = q.ExecContext(r.ctx, "INSERT INTO u VALUES (?, 'd', ?)", 4, -1)
		r.add(p+"check", err)
		numOf(p+"check", err, 4025)
		_, err = q.ExecContext(r.ctx, "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom 日本', MYSQL_ERRNO = 1644")
		r.add(p+"signal", err)
		numOf(p+"signal", err, 1644)
		var n int
		err = q.QueryRowContext(r.ctx, "SELECT id FROM u WHERE id = ?", 99).Scan(&n)
		r.add(p+"no rows", err)
		r.check(errors.Is(err, sql.ErrNoRows), "no rows: %v", err)
	}
	_, err := db.PrepareContext(r.ctx, "SELECT * FROM nosuch")
	r.add("prepare no table", err)
	numOf("prepare", err, 1146)
	st, err := db.PrepareContext(r.ctx, "INSERT INTO u VALUES (?, ?, ?)")
	if r.must("prepare", err) {
		_, err = st.ExecContext(r.ctx, 1, "z", 0)
		r.add("stmt duplicate", err)
		numOf("stmt duplicate", err, 1062)
		r.must("stmt close", st.Close())
	}
	tx, err := db.BeginTx(r.ctx, nil)
	if r.must("begin", err) {
		_, err = tx.ExecContext(r.ctx, "INSERT INTO u VALUES (1, 'a', 0)")
		r.add("tx duplicate", err)
		numOf("tx duplicate", err, 1062)
		_, err = tx.ExecContext(r.ctx, "INSERT INTO u VALUES (5, 'e', 0)")
		r.add("tx continues", err)
		r.add("tx commit", tx.Commit())
	}
	r.rows("after tx", db, "SELECT id, name FROM u ORDER BY id")
}

// ---------------------------------------------------------------------------------------------
// pgx CopyFrom through conn.Raw

func confPGCopyFrom(r *confRec, db *sql.DB) {
	r.mustExec(db, "CREATE TABLE cp (id int PRIMARY KEY, name text, data bytea, at timestamptz)")
	c, err := db.Conn(r.ctx)
	if !r.must("conn", err) {
		return
	}
	defer c.Close()
	r.mustExec(c, "SET application_name = 'conf-copy'")
	at := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	var src [][]any
	for i := 1; i <= 1000; i++ {
		src = append(src, []any{i, fmt.Sprintf("名前 %d", i), []byte{0, byte(i), byte(i >> 8)}, at.Add(time.Duration(i) * time.Second)})
	}
	err = c.Raw(func(dc any) error {
		inner, ok := hasql.Unwrap(dc).(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("hasql.Unwrap(%T) = %T, not *stdlib.Conn", dc, hasql.Unwrap(dc))
		}
		var app string
		if err := inner.Conn().QueryRow(r.ctx, "SELECT current_setting('application_name')").Scan(&app); err != nil {
			return err
		}
		r.add("raw conn sees session", app)
		n, err := inner.Conn().CopyFrom(r.ctx, pgx.Identifier{"cp"}, []string{"id", "name", "data", "at"}, pgx.CopyFromRows(src))
		r.add("copied", n, err)
		return err
	})
	r.must("raw copy", err)
	r.rows("rows via db", db, "SELECT count(*), sum(id), min(name), max(at), sum(length(data)) FROM cp")
	r.rows("sample via conn", c, "SELECT * FROM cp WHERE id IN (1, 500, 1000) ORDER BY id")
	// A failing copy: the error chain reaches *pgconn.PgError, and the connection stays usable.
	err = c.Raw(func(dc any) error {
		_, err := hasql.Unwrap(dc).(*stdlib.Conn).Conn().CopyFrom(r.ctx, pgx.Identifier{"cp"}, []string{"id", "name"},
			pgx.CopyFromSlice(2, func(i int) ([]any, error) { return []any{5000 - i*4000, "dup"}, nil }))
		return err
	})
	r.add("duplicate copy", err)
	var pe *pgconn.PgError
	r.check(errors.As(err, &pe) && pe.Code == "23505", "duplicate copy: %v", err)
	r.rows("after failed copy", c, "SELECT count(*), current_setting('application_name') FROM cp")
	// Copy inside a transaction started through database/sql on the same conn.
	tx, err := c.BeginTx(r.ctx, nil)
	if r.must("begin", err) {
		err = c.Raw(func(dc any) error {
			_, err := hasql.Unwrap(dc).(*stdlib.Conn).Conn().CopyFrom(r.ctx, pgx.Identifier{"cp"}, []string{"id", "name"},
				pgx.CopyFromRows([][]any{{2001, "in tx"}}))
			return err
		})
		r.add("copy in tx", err)
		r.rows("visible in tx", tx, "SELECT count(*) FROM cp")
		r.must("rollback", tx.Rollback())
	}
	r.rows("rolled back", db, "SELECT count(*) FROM cp")
}

// ---------------------------------------------------------------------------------------------
// Statements across schema changes: whatever a statement cache keeps must not show.

func confSchemaChange(r *confRec, db *sql.DB, ph func(int) string) {
	db.SetMaxOpenConns(1) // one session: what one step prepares, the next one could find again
	r.mustExec(db, "CREATE TABLE sc (a int)")
	r.mustExec(db, "INSERT INTO sc VALUES (1)")
	all := "SELECT * FROM sc"
	where := "SELECT * FROM sc WHERE a >= " + ph(1)
	// prepQuery prepares, runs and closes a statement. With hasql's statement cache on (the
	// default), a Prepare may be served from the cache without asking the server, so a schema
	// error shows at the statement's first use instead of at Prepare (README: "a prepared
	// statement is prepared once per session and reused"): there, what prepare-and-use gives is
	// compared. In the exact configuration every call is compared.
	prepQuery := func(label string, q confQ, query string, args ...any) {
		st, perr := q.PrepareContext(r.ctx, query)
		var rows *sql.Rows
		var qerr error
		if perr == nil {
			rows, qerr = st.QueryContext(r.ctx, args...)
		}
		if r.exact {
			r.add(label+" prepare", perr)
			if perr == nil {
				r.add(label+" query", qerr)
			}
		} else {
			first := perr
			if first == nil {
				first = qerr
			}
			msg := ""
			if first != nil {
				msg = strconv.Quote(first.Error())
			}
			r.add(label+" prepare and query", r.errKind(first), msg)
		}
		if rows != nil {
			r.drain(label, rows)
		}
		if st != nil {
			if err := st.Close(); err != nil || r.exact {
				r.add(label+" stmt close", err)
			}
		}
	}
	step := func(label string) {
		prepQuery(label+" prepared", db, all)
		prepQuery(label+" prepared with arg", db, where, 0)
		r.rows(label+" ad hoc", db, all)
		r.rows(label+" ad hoc with arg", db, where, 0)
	}
	prepOnly := func(label string) {
		prepQuery(label+" prepare-only", db, "SELECT * FROM sc WHERE a < 100")
	}
	prepOnly("before")
	step("before")
	step("before again")
	r.mustExec(db, "ALTER TABLE sc ADD COLUMN b varchar(10) DEFAULT 'x'")
	prepOnly("after add column")
	step("after add column")
	r.mustExec(db, "ALTER TABLE sc DROP COLUMN b")
	r.mustExec(db, "ALTER TABLE sc ADD COLUMN b int DEFAULT 7")
	step("after column type change")
	r.mustExec(db, "DROP TABLE sc")
	prepOnly("after drop")
	step("after drop")
	r.mustExec(db, "CREATE TABLE sc (z varchar(5), a int)")
	r.mustExec(db, "INSERT INTO sc VALUES ('new', 2)")
	prepOnly("after recreate")
	step("after recreate")

	// A *sql.Stmt kept open across the change.
	st, err := db.PrepareContext(r.ctx, where)
	if r.must("long-lived prepare", err) {
		rows, err := st.QueryContext(r.ctx, 0)
		if r.must("long-lived query", err) {
			r.drain("long-lived before", rows)
		}
		r.mustExec(db, "ALTER TABLE sc ADD COLUMN c int DEFAULT 3")
		// Raw pgx never prepares a live statement again: it fails with 0A000 on every
		// execution. hasql may prepare it afresh and succeed.
		for i := 0; i < 2; i++ {
			rows, err = st.QueryContext(r.ctx, 0)
			var cols []string
			var vals [][]any
			if err == nil {
				cols, _ = rows.Columns()
				for rows.Next() {
					row := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for j := range row {
						ptrs[j] = &row[j]
					}
					if err = rows.Scan(ptrs...); err != nil {
						break
					}
					vals = append(vals, row)
				}
				if err == nil {
					err = rows.Err()
				}
				rows.Close()
			}
			r.outcome(fmt.Sprintf("long-lived after change %d", i), err, cols, vals)
			r.check(err != nil || len(cols) == 3 && len(vals) == 1, "long-lived after change: %v %v", cols, vals)
		}
		r.add("long-lived close", st.Close())
	}

	// Inside transactions.
	step("before tx")
	r.mustExec(db, "ALTER TABLE sc ADD COLUMN d int DEFAULT 4")
	tx, err := db.BeginTx(r.ctx, nil)
	if r.must("begin", err) {
		prepQuery("tx prepared", tx, all)
		prepQuery("tx prepared with arg", tx, where, 0)
		r.rows("tx ad hoc", tx, all)
		r.rows("tx ad hoc with arg", tx, where, 0)
		r.add("tx commit", tx.Commit())
	}
	tx, err = db.BeginTx(r.ctx, nil)
	if r.must("begin 2", err) {
		prepQuery("tx2 prepared before change", tx, where, 0)
		r.exec("tx2 alter", tx, "ALTER TABLE sc ADD COLUMN e int DEFAULT 5")
		prepQuery("tx2 prepared after change", tx, where, 0)
		r.rows("tx2 ad hoc with arg after change", tx, where, 0)
		r.add("tx2 commit", tx.Commit())
	}
	step("at the end")
}

func confPGSchemaChange(r *confRec, db *sql.DB) {
	confSchemaChange(r, db, func(i int) string { return "$" + strconv.Itoa(i) })
}

func confMySchemaChange(r *confRec, db *sql.DB) {
	confSchemaChange(r, db, func(int) string { return "?" })
}
