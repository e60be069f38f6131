package cbslog_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/cbslog"
)

var seq atomic.Int64

// lockedBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines decodes the JSON lines written so far and clears the buffer.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if ln == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("bad log line %q: %v", ln, err)
		}
		out = append(out, m)
	}
	l.b.Reset()
	return out
}

func newLogger(level slog.Level) (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

func openMock(t *testing.T, params string) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	name := fmt.Sprintf("cbslog%d", seq.Add(1))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mdb.Close() })
	db, err := sql.Open("hasql", "sqlmock:"+name+params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, mock
}

func TestCallbackLogOneLinePerCall(t *testing.T) {
	logger, buf := newLogger(slog.LevelDebug)
	name := fmt.Sprintf("cbslog_pkg%d", seq.Add(1))
	cbslog.Register(name, logger, cbslog.Options{Fns: []hasql.Fn{hasql.FnExec, hasql.FnQuery}})
	db, mock := openMock(t, "?hasql.callbacks="+name)
	ctx := context.Background()

	mock.ExpectExec("UPDATE t SET v = ? WHERE id = ?").WithArgs("secret", 7).WillReturnResult(sqlmock.NewResult(0, 3))
	if _, err := db.ExecContext(ctx, "UPDATE t SET v = ? WHERE id = ?", "secret", 7); err != nil {
		t.Fatal(err)
	}
	lines := buf.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines for one exec: %v", len(lines), lines)
	}
	l := lines[0]
	if l["msg"] != cbslog.Message || l["level"] != "INFO" || l["fn"] != "FnExec" ||
		l["query"] != "UPDATE t SET v = ? WHERE id = ?" || l["rows_affected"] != float64(3) || l["args"] != "[2 redacted]" {
		t.Fatalf("exec line %v", l)
	}
	if d, ok := l["duration"].(float64); !ok || d < 0 {
		t.Fatalf("exec line has no duration: %v", l)
	}
	if _, ok := l["error"]; ok {
		t.Fatalf("successful call logged an error: %v", l)
	}
	if strings.Contains(fmt.Sprint(l), "secret") {
		t.Fatalf("argument value leaked: %v", l)
	}

	errDriver := errors.New("relation t does not exist")
	mock.ExpectQuery("SELECT v FROM t").WillReturnError(errDriver)
	if _, err := db.QueryContext(ctx, "SELECT v FROM t"); !errors.Is(err, errDriver) {
		t.Fatalf("query err %v", err)
	}
	lines = buf.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines for one query: %v", len(lines), lines)
	}
	l = lines[0]
	if l["level"] != "ERROR" || l["fn"] != "FnQuery" || l["error"] != errDriver.Error() {
		t.Fatalf("query line %v", l)
	}
	if _, ok := l["args"]; ok {
		t.Fatalf("a call without arguments logged args: %v", l)
	}

	// FnPing is not in Fns: no line.
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if lines := buf.lines(t); len(lines) != 0 {
		t.Fatalf("unlisted Fn logged: %v", lines)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestCallbackLogEveryFnByDefault(t *testing.T) {
	logger, buf := newLogger(slog.LevelInfo)
	db, mock := openMock(t, "")
	c, _ := hasql.ConnectorOf(db)
	if err := cbslog.Package(logger, cbslog.Options{})(c.Callbacks()); err != nil {
		t.Fatal(err)
	}
	mock.ExpectBegin()
	mock.ExpectCommit()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var fns []string
	for _, l := range buf.lines(t) {
		fns = append(fns, l["fn"].(string))
	}
	if got, want := strings.Join(fns, ","), "FnConnect,FnReset,FnBegin,FnCommit"; got != want {
		t.Fatalf("logged %s, want %s", got, want)
	}
}

func TestCallbackLogOptions(t *testing.T) {
	logger, buf := newLogger(slog.LevelDebug)
	db, mock := openMock(t, "")
	c, _ := hasql.ConnectorOf(db)
	opts := cbslog.Options{Level: slog.LevelDebug, LogArgs: true, OmitQuery: true, Fns: []hasql.Fn{hasql.FnExec}}
	if err := cbslog.Package(logger, opts)(c.Callbacks()); err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("DELETE FROM t WHERE id = ?").WithArgs(42).WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.ExecContext(context.Background(), "DELETE FROM t WHERE id = ?", 42); err != nil {
		t.Fatal(err)
	}
	lines := buf.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines: %v", len(lines), lines)
	}
	l := lines[0]
	if _, ok := l["query"]; ok {
		t.Fatalf("OmitQuery logged the query: %v", l)
	}
	if l["level"] != "DEBUG" || fmt.Sprint(l["args"]) != "[42]" {
		t.Fatalf("line %v", l)
	}

	// Below the handler's level: nothing.
	quiet, qbuf := newLogger(slog.LevelInfo)
	db2, mock2 := openMock(t, "")
	c2, _ := hasql.ConnectorOf(db2)
	cbslog.Package(quiet, cbslog.Options{Level: slog.LevelDebug})(c2.Callbacks())
	mock2.ExpectExec("DELETE FROM t").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db2.ExecContext(context.Background(), "DELETE FROM t"); err != nil {
		t.Fatal(err)
	}
	if lines := qbuf.lines(t); len(lines) != 0 {
		t.Fatalf("disabled level logged: %v", lines)
	}
}

// Installed on a connector's own callbacks, the package chains to what was
// there: the earlier callbacks still run, and the line shows the outcome
// they produced.
func TestCallbackLogChainsToEarlierCallbacks(t *testing.T) {
	logger, buf := newLogger(slog.LevelInfo)
	db, mock := openMock(t, "")
	c, _ := hasql.ConnectorOf(db)
	own := c.Callbacks()
	errDup := errors.New("duplicate key")
	var entries atomic.Int64
	own.Register(hasql.FnExec, hasql.Entry, func(*hasql.Call) error { entries.Add(1); return hasql.Continue })
	own.Register(hasql.FnExec, hasql.Exit, func(c *hasql.Call) error {
		if errors.Is(c.Err, errDup) {
			c.Result = driver.RowsAffected(0)
			return nil // insert-or-ignore
		}
		return hasql.Continue
	})
	cbslog.Package(logger, cbslog.Options{Fns: []hasql.Fn{hasql.FnExec}})(own)

	mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnError(errDup)
	if _, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("err %v: the earlier exit should have cleared it", err)
	}
	if entries.Load() != 1 {
		t.Fatalf("earlier entry ran %d times", entries.Load())
	}
	lines := buf.lines(t)
	if len(lines) != 1 || lines[0]["level"] != "INFO" || lines[0]["rows_affected"] != float64(0) {
		t.Fatalf("lines %v", lines)
	}
	if _, ok := lines[0]["error"]; ok {
		t.Fatalf("logged the cleared error: %v", lines[0])
	}
}
