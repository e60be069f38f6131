// Package hasqlotel instruments hasql with OpenTelemetry: a span for every
// driver call, following the OpenTelemetry semantic conventions for
// database client spans (semconv v1.39.0), and the connector's pool and
// failure figures (hasql.Stats) as metrics.
//
// Spans, on one connector:
//
//	c, _ := hasql.ConnectorOf(db)
//	stop, err := hasqlotel.Instrument(c, hasqlotel.WithTracerProvider(tp))
//
// or as a callback package, for every connector that loads it:
//
//	hasqlotel.Register("otel", hasqlotel.WithTracerProvider(tp))
//	db, err := sql.Open("hasql", "pgx:postgres://db/app?hasql.callbacks=otel")
//
// Metrics:
//
//	unregister, err := hasqlotel.RegisterMetrics(c, mp)
//
// # Spans
//
// Each call is a client span, started by an entry callback as a child of
// the span in the call's context and ended by an exit callback. The span is
// put into hasql.Call.Ctx, so the inner driver's own instrumentation (a pgx
// tracer, say) sees it as its parent. Its name is the query's operation —
// the first keyword of the query, upper-cased: "SELECT", "INSERT", "WITH" —
// for ad-hoc and prepared work, and "hasql.<operation>" for the other calls:
// "hasql.connect", "hasql.ping", "hasql.prepare", "hasql.begin",
// "hasql.commit", "hasql.rollback" (and, when enabled with WithFns,
// "hasql.stmt.close", "hasql.reset", "hasql.close").
//
// Attributes: db.system.name ("postgresql" for pgx and lib/pq, "mysql" for
// go-sql-driver/mysql, "sqlite", "microsoft.sql_server", "clickhouse", else
// "other_sql"; WithSystem overrides it), db.operation.name (the span's
// operation: "SELECT", "prepare", "commit", ...), server.address and
// server.port (the host of the physical session, hasql.Session.Host, when
// hasql knows it), hasql.fn (the hasql.Fn, e.g. "FnQuery"), and, only with
// WithQueryText(true), db.query.text. A failed call has status Error, the
// error recorded as an event, error.type, and, for a server error
// (*pgconn.PgError, *mysql.MySQLError), db.response.status_code (SQLSTATE
// or MySQL error number).
//
// A span records the call as the driver saw it: a lost connection shows
// the driver's error (io.ErrUnexpectedEOF, driver.ErrBadConn, ...), which
// hasql classifies afterwards (hasql.ErrConnectionLost). Work hasql runs
// again on a new session is a new span, so a transparent retry shows as a
// failed span followed by a successful one.
//
// Commit and rollback: hasql calls their callbacks with a background
// context (database/sql's Tx.Commit has none), so the span of a commit or
// rollback is parented to the span that was current when the transaction
// began, remembered per session.
//
// Callbacks run in the order hasql defines; a span shows the outcome of the
// callbacks that ran before the tracer's exit callback (see
// hasql.Callbacks). Instrument chains around the callbacks already on the
// connector, so install it last to see their effect (a hasqltest.Faults
// attached earlier, for instance). A call that ends in driver.ErrSkip runs
// no exit callbacks (hasql hands ErrSkip to database/sql, which then
// prepares, executes and closes a statement, each traced on its own): its
// span is never ended, and so never exported.
package hasqlotel

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/hasqlgo/hasql/otel"

// numFn is the number of hasql Fns.
const numFn = int(hasql.FnClose) + 1

// Option configures the tracing and the metrics.
type Option func(*config)

type config struct {
	tp        trace.TracerProvider
	queryText bool
	fns       [numFn]bool
	system    string
	attrs     []attribute.KeyValue
	poolName  string
}

func newConfig(opts []Option) config {
	cfg := config{}
	for fn := hasql.FnConnect; int(fn) < numFn; fn++ {
		cfg.fns[fn] = true
	}
	cfg.fns[hasql.FnReset], cfg.fns[hasql.FnStmtClose], cfg.fns[hasql.FnClose] = false, false, false
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithTracerProvider sets the TracerProvider; the default is the global one
// (otel.GetTracerProvider) at the time the callbacks are installed.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithQueryText records the query text as db.query.text. It is off by
// default: queries with literals in them may carry data that must not leave
// the process.
func WithQueryText(on bool) Option {
	return func(c *config) { c.queryText = on }
}

// WithFns limits the traced calls to these Fns. The default is every Fn but
// FnReset (each checkout of a session), FnStmtClose and FnClose.
func WithFns(fns ...hasql.Fn) Option {
	return func(c *config) {
		c.fns = [numFn]bool{}
		for _, fn := range fns {
			if int(fn) < numFn {
				c.fns[fn] = true
			}
		}
	}
}

// WithSystem sets db.system.name instead of detecting it from the inner
// driver's connection type (e.g. "mariadb" for a MariaDB server reached with
// go-sql-driver/mysql). It also adds db.system.name to the metrics.
func WithSystem(name string) Option {
	return func(c *config) { c.system = name }
}

// WithAttributes adds attributes to every span and every metric.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// WithPoolName sets the metrics' db.client.connection.pool.name. The
// default is the connector's hosts, comma-separated, or "hasql" when hasql
// does not know them (go-sqlmock, a connector made with NewConnector).
// Name each pool when an application has several.
func WithPoolName(name string) Option {
	return func(c *config) { c.poolName = name }
}

// Register makes the tracing available as the hasql callback package name,
// for connectors that load it (hasql.callbacks=name, or
// hasql.WithCallbackPackages). It panics, like hasql.RegisterPackage, if
// name is taken.
func Register(name string, opts ...Option) {
	hasql.RegisterPackage(name, Setup(opts...))
}

// Setup returns a setup function that installs the tracing on the
// Callbacks it is given — a connector's own, or a package's — chaining to
// the callbacks already registered there.
func Setup(opts ...Option) func(*hasql.Callbacks) error {
	cfg := newConfig(opts)
	return func(r *hasql.Callbacks) error {
		newTracer(cfg).install(r)
		return nil
	}
}

// Instrument installs the tracing on the connector's own callbacks,
// chaining to those already registered. The function it returns turns the
// tracing off again (the callbacks stay registered and pass calls on to the
// ones they chain to).
func Instrument(c *hasql.Connector, opts ...Option) (func() error, error) {
	if c == nil {
		return nil, errors.New("hasqlotel: Instrument needs a connector")
	}
	tr := newTracer(newConfig(opts))
	tr.install(c.Callbacks())
	return func() error {
		tr.off.Store(true)
		tr.txParents.Clear()
		return nil
	}, nil
}

// tracer is the tracing of one connector (one setup).
type tracer struct {
	cfg    config
	t      trace.Tracer
	system atomic.Pointer[attribute.KeyValue] // db.system.name, once known
	off    atomic.Bool

	// txParents holds, per session, the span context that was current when
	// its transaction began, for the commit or rollback (whose Call.Ctx is a
	// background context).
	txParents sync.Map // *hasql.Session → trace.SpanContext
}

func newTracer(cfg config) *tracer {
	tp := cfg.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tr := &tracer{cfg: cfg, t: tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))}
	if cfg.system != "" {
		kv := semconv.DBSystemNameKey.String(cfg.system)
		tr.system.Store(&kv)
	}
	return tr
}

func (tr *tracer) install(r *hasql.Callbacks) {
	for fn := hasql.FnConnect; int(fn) < numFn; fn++ {
		if !tr.cfg.fns[fn] {
			continue
		}
		prevEntry, prevExit := r.Get(fn, hasql.Entry), r.Get(fn, hasql.Exit)
		r.Register(fn, hasql.Entry, func(c *hasql.Call) error {
			tr.start(c)
			if prevEntry != nil {
				return prevEntry(c)
			}
			return hasql.Continue
		})
		r.Register(fn, hasql.Exit, func(c *hasql.Call) error {
			ret := hasql.Continue
			if prevExit != nil {
				ret = prevExit(c)
			}
			err := c.Err
			if ret != hasql.Continue {
				err = ret
			}
			tr.end(c, err)
			return ret
		})
	}
}

// spanKey holds a call's *callSpan in Call.Ctx.
type spanKey struct{ tr *tracer }

type callSpan struct {
	span   trace.Span
	parent trace.SpanContext // the current span when the call began
}

func (tr *tracer) start(c *hasql.Call) {
	if tr.off.Load() {
		return
	}
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	parent := trace.SpanContextFromContext(ctx)
	if !parent.IsValid() && (c.Fn == hasql.FnCommit || c.Fn == hasql.FnRollback) && c.Session != nil {
		if sc, ok := tr.txParents.Load(c.Session); ok {
			parent = sc.(trace.SpanContext)
			ctx = trace.ContextWithSpanContext(ctx, parent)
		}
	}
	op, name := operation(c.Fn, c.Query)
	attrs := make([]attribute.KeyValue, 0, 8+len(tr.cfg.attrs))
	if sys := tr.systemOf(c.Session); sys != nil {
		attrs = append(attrs, *sys)
	}
	attrs = append(attrs, semconv.DBOperationName(op), attribute.String("hasql.fn", c.Fn.String()))
	if tr.cfg.queryText && c.Query != "" && c.Fn != hasql.FnReset {
		attrs = append(attrs, semconv.DBQueryText(c.Query))
	}
	if c.Session != nil {
		attrs = append(attrs, hostAttrs(c.Session.Host())...)
	}
	attrs = append(attrs, tr.cfg.attrs...)
	ctx, span := tr.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	c.Ctx = context.WithValue(ctx, spanKey{tr}, &callSpan{span: span, parent: parent})
}

func (tr *tracer) end(c *hasql.Call, err error) {
	if c.Ctx == nil {
		return
	}
	cs, _ := c.Ctx.Value(spanKey{tr}).(*callSpan)
	if cs == nil {
		return
	}
	span := cs.span
	if c.Fn == hasql.FnConnect && c.Session != nil {
		// The session exists only now.
		if sys := tr.systemOf(c.Session); sys != nil {
			span.SetAttributes(*sys)
		}
		span.SetAttributes(hostAttrs(c.Session.Host())...)
	}
	if err != nil {
		span.SetAttributes(errorAttrs(err)...)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	switch c.Fn {
	case hasql.FnBegin:
		if err == nil && c.Session != nil && cs.parent.IsValid() && !tr.off.Load() &&
			(tr.cfg.fns[hasql.FnCommit] || tr.cfg.fns[hasql.FnRollback]) {
			tr.txParents.Store(c.Session, cs.parent)
		}
	case hasql.FnCommit, hasql.FnRollback:
		if c.Session != nil {
			tr.txParents.Delete(c.Session)
		}
	}
}

// systemOf returns db.system.name: set by WithSystem, or detected from the
// inner connection of the first session seen. It is nil until known.
func (tr *tracer) systemOf(s *hasql.Session) *attribute.KeyValue {
	if kv := tr.system.Load(); kv != nil {
		return kv
	}
	if s == nil {
		return nil
	}
	inner := s.Unwrap()
	if inner == nil {
		return nil
	}
	kv := semconv.DBSystemNameKey.String(SystemOf(inner))
	tr.system.CompareAndSwap(nil, &kv)
	return tr.system.Load()
}

// SystemOf returns the db.system.name for an inner driver connection (or
// any value of the driver's package), judged by the package that defines
// its type: "postgresql", "mysql", "sqlite", "microsoft.sql_server",
// "clickhouse", or "other_sql".
func SystemOf(inner any) string {
	t := reflect.TypeOf(inner)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "other_sql"
	}
	p := t.PkgPath()
	switch {
	case strings.HasPrefix(p, "github.com/jackc/pgx"), p == "github.com/lib/pq":
		return "postgresql"
	case p == "github.com/go-sql-driver/mysql":
		return "mysql"
	case strings.Contains(p, "sqlite"):
		return "sqlite"
	case strings.HasPrefix(p, "github.com/microsoft/go-mssqldb"), strings.HasPrefix(p, "github.com/denisenkom/go-mssqldb"):
		return "microsoft.sql_server"
	case strings.HasPrefix(p, "github.com/ClickHouse/clickhouse-go"):
		return "clickhouse"
	}
	return "other_sql"
}

var fnOps = [numFn]string{
	hasql.FnConnect:   "connect",
	hasql.FnPing:      "ping",
	hasql.FnPrepare:   "prepare",
	hasql.FnExec:      "exec",
	hasql.FnQuery:     "query",
	hasql.FnStmtExec:  "stmt.exec",
	hasql.FnStmtQuery: "stmt.query",
	hasql.FnStmtClose: "stmt.close",
	hasql.FnBegin:     "begin",
	hasql.FnCommit:    "commit",
	hasql.FnRollback:  "rollback",
	hasql.FnReset:     "reset",
	hasql.FnClose:     "close",
}

// operation returns a call's db.operation.name and span name: the query's
// first keyword for work (ad-hoc or prepared), else the Fn's operation.
func operation(fn hasql.Fn, query string) (op, name string) {
	switch fn {
	case hasql.FnExec, hasql.FnQuery, hasql.FnStmtExec, hasql.FnStmtQuery:
		if kw := Keyword(query); kw != "" {
			return kw, kw
		}
	}
	if int(fn) < numFn {
		op = fnOps[fn]
	} else {
		op = fn.String()
	}
	return op, "hasql." + op
}

// maxKeyword bounds the length of an operation name taken from a query.
const maxKeyword = 32

// Keyword returns the first keyword of an SQL text, upper-cased — "SELECT"
// for "  /* hint */ select 1" — skipping blanks, comments and opening
// parentheses; "" when the text does not start with a word.
func Keyword(query string) string {
	q := query
	for len(q) > 0 {
		switch {
		case q[0] == ' ' || q[0] == '\t' || q[0] == '\n' || q[0] == '\r' || q[0] == '\f' || q[0] == '(':
			q = q[1:]
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[i+4:]
		default:
			n := 0
			for n < len(q) && n < maxKeyword && (q[n] >= 'a' && q[n] <= 'z' || q[n] >= 'A' && q[n] <= 'Z' || q[n] == '_') {
				n++
			}
			return strings.ToUpper(q[:n])
		}
	}
	return ""
}

// hostAttrs returns server.address and server.port for a host:port ("" →
// none).
func hostAttrs(host string) []attribute.KeyValue {
	if host == "" {
		return nil
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(host)}
	}
	attrs := []attribute.KeyValue{semconv.ServerAddress(h)}
	if port, err := strconv.Atoi(p); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// hasqlErrors name hasql's sentinel errors for error.type.
var hasqlErrors = []struct {
	err  error
	name string
}{
	{hasql.ErrTxNotCommitted, "hasql.ErrTxNotCommitted"},
	{hasql.ErrTxResolutionUnknown, "hasql.ErrTxResolutionUnknown"},
	{hasql.ErrConnectionLost, "hasql.ErrConnectionLost"},
	{hasql.ErrNoHosts, "hasql.ErrNoHosts"},
	{hasql.ErrPoolExhausted, "hasql.ErrPoolExhausted"},
	{hasql.ErrClosed, "hasql.ErrClosed"},
	{hasql.ErrCallbackPanic, "hasql.ErrCallbackPanic"},
	{hasql.ErrCallbackOutcome, "hasql.ErrCallbackOutcome"},
	{context.Canceled, "context.Canceled"},
	{context.DeadlineExceeded, "context.DeadlineExceeded"},
	{driver.ErrBadConn, "driver.ErrBadConn"},
	{io.ErrUnexpectedEOF, "io.ErrUnexpectedEOF"},
	{io.EOF, "io.EOF"},
}

// errorAttrs returns error.type and, for a server error,
// db.response.status_code.
func errorAttrs(err error) []attribute.KeyValue {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code != "" {
		return []attribute.KeyValue{semconv.DBResponseStatusCode(pe.Code), semconv.ErrorTypeKey.String(pe.Code)}
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		code := strconv.Itoa(int(me.Number))
		return []attribute.KeyValue{semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code)}
	}
	for _, e := range hasqlErrors {
		if errors.Is(err, e.err) {
			return []attribute.KeyValue{semconv.ErrorTypeKey.String(e.name)}
		}
	}
	return []attribute.KeyValue{semconv.ErrorTypeKey.String(fmt.Sprintf("%T", err))}
}
