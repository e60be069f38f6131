package hasqlotel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
	hasqlotel "github.com/hasqlgo/hasql/otel"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var (
	errBoom    = errors.New("boom")
	registered atomic.Int64
)

// traced returns a hasql DB over go-sqlmock with its calls traced into a
// span recorder, and an application tracer of the same provider.
func traced(t *testing.T, opts []hasqlotel.Option, mockOpts ...hasqltest.Option) (*sql.DB, sqlmock.Sqlmock, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	db, mock := hasqltest.NewMock(t, mockOpts...)
	c, _ := hasql.ConnectorOf(db)
	stop, err := hasqlotel.Instrument(c, append([]hasqlotel.Option{hasqlotel.WithTracerProvider(tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	return db, mock, sr, tp.Tracer("app")
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// names lists the ended spans' names, skipping the connects (which happen
// whenever hasql opens a session).
func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		if s.Name() != "hasql.connect" {
			out = append(out, s.Name())
		}
	}
	return out
}

func find(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no span %q among %q", name, names(spans))
	return nil
}

func TestSpansForCalls(t *testing.T) {
	db, mock, sr, app := traced(t, nil)
	ctx, parent := app.Start(context.Background(), "handler")

	mock.ExpectQuery("SELECT name").WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
	mock.ExpectExec("insert into users").WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectPrepare("UPDATE users").ExpectExec().WillReturnResult(sqlmock.NewResult(0, 1))

	var name string
	if err := db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = ?", 1).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "  /* app */ insert into users (name) values ('bob')"); err != nil {
		t.Fatal(err)
	}
	st, err := db.PrepareContext(ctx, "UPDATE users SET n = n + 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans := sr.Ended()
	want := []string{"SELECT", "INSERT", "hasql.prepare", "UPDATE", "hasql.ping", "handler"}
	if got := names(spans); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("spans %q, want %q", got, want)
	}
	ops := map[string]string{"SELECT": "SELECT", "INSERT": "INSERT", "hasql.prepare": "prepare", "UPDATE": "UPDATE", "hasql.ping": "ping", "hasql.connect": "connect"}
	fns := map[string]hasql.Fn{"SELECT": hasql.FnQuery, "INSERT": hasql.FnExec, "hasql.prepare": hasql.FnPrepare, "UPDATE": hasql.FnStmtExec, "hasql.ping": hasql.FnPing, "hasql.connect": hasql.FnConnect}
	for _, s := range spans {
		if s.Name() == "handler" {
			continue
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("%s: parent %v, want the handler span %v", s.Name(), s.Parent().SpanID(), parent.SpanContext().SpanID())
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v", s.Name(), s.SpanKind())
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("%s: status %v", s.Name(), s.Status())
		}
		a := attrs(s)
		if got := a["db.system.name"].AsString(); got != "other_sql" {
			t.Errorf("%s: db.system.name %q", s.Name(), got)
		}
		if got := a["db.operation.name"].AsString(); got != ops[s.Name()] {
			t.Errorf("%s: db.operation.name %q, want %q", s.Name(), got, ops[s.Name()])
		}
		if got := a["hasql.fn"].AsString(); got != fns[s.Name()].String() {
			t.Errorf("%s: hasql.fn %q", s.Name(), got)
		}
		if _, ok := a["db.query.text"]; ok {
			t.Errorf("%s: db.query.text recorded without WithQueryText", s.Name())
		}
		if _, ok := a["server.address"]; ok {
			t.Errorf("%s: server.address for go-sqlmock, which has no host", s.Name())
		}
		if s.InstrumentationScope().Name != hasqlotel.ScopeName {
			t.Errorf("%s: scope %q", s.Name(), s.InstrumentationScope().Name)
		}
	}
	// The first call opened the session: a connect span, under the handler
	// too (the session was opened for the handler's call).
	find(t, spans, "hasql.connect")
}

func TestQueryText(t *testing.T) {
	db, mock, sr, _ := traced(t, []hasqlotel.Option{hasqlotel.WithQueryText(true)})
	const q = "SELECT name FROM users WHERE id = ?"
	mock.ExpectQuery("SELECT name").WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
	var name string
	if err := db.QueryRow(q, 1).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if got := attrs(find(t, sr.Ended(), "SELECT"))["db.query.text"].AsString(); got != q {
		t.Fatalf("db.query.text %q", got)
	}
}

// The span handed to the driver: Call.Ctx carries it past the entry
// callback, to later callbacks and the driver call.
func TestSpanInCallContext(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	db, mock := hasqltest.NewMock(t)
	c, _ := hasql.ConnectorOf(db)
	var seen trace.SpanContext
	c.Callbacks().Register(hasql.FnExec, hasql.Replace, func(call *hasql.Call) error {
		seen = trace.SpanContextFromContext(call.Ctx)
		return hasql.Continue
	})
	if _, err := hasqlotel.Instrument(c, hasqlotel.WithTracerProvider(tp)); err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("DELETE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("DELETE FROM t"); err != nil {
		t.Fatal(err)
	}
	if s := find(t, sr.Ended(), "DELETE"); !seen.IsValid() || seen.SpanID() != s.SpanContext().SpanID() {
		t.Fatalf("the replacement callback saw span %v, want %v", seen.SpanID(), s.SpanContext().SpanID())
	}
}

func TestErrorSpans(t *testing.T) {
	db, mock, sr, _ := traced(t, nil)
	mock.ExpectExec("UPDATE").WillReturnError(errBoom)
	mock.ExpectQuery("SELECT").WillReturnError(&pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: "relation does not exist"})
	mock.ExpectExec("INSERT").WillReturnError(&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"})

	if _, err := db.Exec("UPDATE t SET v = 1"); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if _, err := db.Query("SELECT v FROM nope"); err == nil {
		t.Fatal("query succeeded")
	}
	if _, err := db.Exec("INSERT INTO t VALUES (1)"); err == nil {
		t.Fatal("insert succeeded")
	}
	spans := sr.Ended()
	for _, tc := range []struct {
		name, errType, status, msg string
	}{
		{"UPDATE", "*errors.errorString", "", "boom"},
		{"SELECT", "42P01", "42P01", "relation does not exist"},
		{"INSERT", "1062", "1062", "Duplicate entry"},
	} {
		s := find(t, spans, tc.name)
		if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, tc.msg) {
			t.Errorf("%s: status %+v", tc.name, s.Status())
		}
		a := attrs(s)
		if got := a["error.type"].AsString(); got != tc.errType {
			t.Errorf("%s: error.type %q, want %q", tc.name, got, tc.errType)
		}
		if got := a["db.response.status_code"].AsString(); got != tc.status {
			t.Errorf("%s: db.response.status_code %q, want %q", tc.name, got, tc.status)
		}
		if ev := s.Events(); len(ev) != 1 || ev[0].Name != "exception" {
			t.Errorf("%s: events %+v, want the recorded error", tc.name, ev)
		}
	}
}

// A lost connection hasql recovers from shows as a failed span and the
// retry's successful one; one it cannot recover from as a failed span with
// the driver's error. (Faults attached before Instrument: the tracer's exit
// callback runs after the Faults' and sees its outcome.)
func TestLostConnectionSpans(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock, sr, _ := traced(t, nil, hasqltest.WithFaults(faults))
	faults.LoseBeforeSend("UPDATE", 1)
	faults.LoseAfterSend("DELETE", 1)
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("DELETE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM t"); !errors.Is(err, hasql.ErrConnectionLost) {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sr.Ended() {
		if s.Name() == "hasql.connect" {
			continue
		}
		got = append(got, fmt.Sprintf("%s %v %s", s.Name(), s.Status().Code, attrs(s)["error.type"].AsString()))
	}
	want := []string{"UPDATE Error driver.ErrBadConn", "UPDATE Unset ", "DELETE Error io.ErrUnexpectedEOF"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("spans %q, want %q", got, want)
	}
}

// Commit and rollback run with a background context; their spans are
// parented to the span current at BeginTx.
func TestTransactionSpans(t *testing.T) {
	db, mock, sr, app := traced(t, nil)
	for _, commit := range []bool{true, false} {
		ctx, parent := app.Start(context.Background(), fmt.Sprint("handler ", commit))
		mock.ExpectBegin()
		mock.ExpectExec("INSERT").WillReturnResult(sqlmock.NewResult(1, 1))
		if commit {
			mock.ExpectCommit()
		} else {
			mock.ExpectRollback()
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		end := "hasql.commit"
		if commit {
			err = tx.Commit()
		} else {
			err, end = tx.Rollback(), "hasql.rollback"
		}
		if err != nil {
			t.Fatal(err)
		}
		parent.End()
		spans := sr.Ended()
		for _, name := range []string{"hasql.begin", "INSERT", end} {
			var s sdktrace.ReadOnlySpan
			for _, x := range spans {
				if x.Name() == name && x.SpanContext().TraceID() == parent.SpanContext().TraceID() {
					s = x
				}
			}
			if s == nil || s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("commit %v: span %s not under the handler span", commit, name)
			}
		}
	}
	// Outside a span, a commit is a root span, as its call is.
	mock.ExpectBegin()
	mock.ExpectCommit()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	spans := sr.Ended()
	if s := spans[len(spans)-1]; s.Name() != "hasql.commit" || s.Parent().IsValid() {
		t.Fatalf("last span %s with parent %v, want a root hasql.commit", s.Name(), s.Parent())
	}
}

func TestLostCommitSpan(t *testing.T) {
	faults := hasqltest.NewFaults()
	db, mock, sr, app := traced(t, nil, hasqltest.WithFaults(faults))
	faults.LoseAtCommit(1)
	ctx, parent := app.Start(context.Background(), "handler")
	mock.ExpectBegin()
	mock.ExpectCommit()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, hasql.ErrTxResolutionUnknown) {
		t.Fatal(err)
	}
	parent.End()
	s := find(t, sr.Ended(), "hasql.commit")
	if s.Status().Code != codes.Error || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("commit span: status %v, parent %v", s.Status(), s.Parent().SpanID())
	}
}

func TestWithFnsSystemAttributes(t *testing.T) {
	db, mock, sr, _ := traced(t, []hasqlotel.Option{
		hasqlotel.WithFns(hasql.FnQuery, hasql.FnReset),
		hasqlotel.WithSystem("postgresql"),
		hasqlotel.WithAttributes(attribute.String("app.shard", "7")),
	})
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectQuery("SELECT").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	spans := sr.Ended()
	for _, s := range spans {
		if s.Name() != "SELECT" && s.Name() != "hasql.reset" {
			t.Errorf("span %s traced; only queries and resets should be", s.Name())
		}
		a := attrs(s)
		if a["db.system.name"].AsString() != "postgresql" || a["app.shard"].AsString() != "7" {
			t.Errorf("%s: attributes %v", s.Name(), a)
		}
	}
	find(t, spans, "hasql.reset")
	find(t, spans, "SELECT")
}

func TestInstrumentOff(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	db, mock := hasqltest.NewMock(t)
	c, _ := hasql.ConnectorOf(db)
	stop, err := hasqlotel.Instrument(c, hasqlotel.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	n := len(sr.Ended())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	if len(sr.Ended()) != n {
		t.Fatalf("%d spans after stop, want %d", len(sr.Ended()), n)
	}
	if _, err := hasqlotel.Instrument(nil); err == nil {
		t.Fatal("Instrument(nil) succeeded")
	}
}

func TestRegisterPackage(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	name := fmt.Sprintf("hasqlotel-test-%d", registered.Add(1)) // one per run (-count)
	hasqlotel.Register(name, hasqlotel.WithTracerProvider(tp))
	for i := range 2 { // two connectors load it
		db, mock := hasqltest.NewMock(t, hasqltest.WithDSNParams("hasql.callbacks="+name))
		mock.ExpectQuery("SELECT").WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(i))
		var n int
		if err := db.QueryRow("SELECT n FROM t").Scan(&n); err != nil || n != i {
			t.Fatal(n, err)
		}
	}
	if got := names(sr.Ended()); strings.Join(got, ",") != "SELECT,SELECT" {
		t.Fatalf("spans %q", got)
	}
}
