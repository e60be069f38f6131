package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgxDialect is PostgreSQL through pgx v5's database/sql driver (stdlib),
// registered as "pgx" and "pgx/v5". Importing stdlib registers both, so
// sql.Open("hasql", "pgx:...") works with hasql as the only import.
type pgxDialect struct{}

func (pgxDialect) name() string { return "pgx" }

func (pgxDialect) recognises(name string, d driver.Driver) bool {
	if _, ok := d.(*stdlib.Driver); ok {
		return true
	}
	return d == nil && (name == "pgx" || name == "pgx/v5")
}

// form: pgx takes a URL ("postgres://h/db?a=1") or libpq's key=value list.
func (pgxDialect) form(inner string) dsnForm {
	if isPgURL(inner) {
		return formQuery
	}
	return formKeyValue
}

func isPgURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// checkDSN: pgx parses its DSN on every connect; one its parser panics on
// must fail once, when the connector is made, not crash the program later.
func (pgxDialect) checkDSN(dsn string) error {
	if _, err := pgxParseConfig(dsn); errors.Is(err, errPgxPanic) {
		return err
	}
	return nil
}

// errPgxPanic is the error pgxParseConfig reports for a DSN that makes pgx's
// parser panic.
var errPgxPanic = errors.New("pgx's DSN parser panics on it (check the quoting of key=value pairs, e.g. a quoted value ending in a backslash)")

// pgxParseConfig is pgconn.ParseConfig, with a panic (pgx v5.8 panics on a
// key=value DSN whose quoted value ends in a backslash: a='\ ) turned into
// errPgxPanic.
func pgxParseConfig(dsn string) (cfg *pgconn.Config, err error) {
	defer func() {
		if recover() != nil {
			cfg, err = nil, errPgxPanic
		}
	}()
	return pgconn.ParseConfig(dsn)
}

func (pgxDialect) host(dsn string) string {
	if cfg, err := pgxParseConfig(dsn); err == nil {
		return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	}
	return ""
}

func (pgxDialect) hosts(dsn string) []string { return pgxHosts(dsn) }

// pgxHosts lists the hosts of a pgx multi-host DSN ("host=a,b" or
// "postgres://a:5432,b:5433/db"), in order; nil for a Unix socket.
func pgxHosts(dsn string) []string {
	cfg, err := pgxParseConfig(dsn)
	if err != nil || strings.HasPrefix(cfg.Host, "/") {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(h string, p uint16) {
		a := net.JoinHostPort(h, strconv.Itoa(int(p)))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	add(cfg.Host, cfg.Port)
	for _, f := range cfg.Fallbacks {
		add(f.Host, f.Port)
	}
	return out
}

// pointAt replaces a URL's host list, keeping its user information, or
// appends host and port to a key=value list, where a later key wins.
func (pgxDialect) pointAt(dsn, addr string) (string, error) {
	if isPgURL(dsn) {
		i := strings.Index(dsn, "://") + 3
		rest := dsn[i:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		auth := rest[:end]
		userinfo := ""
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			userinfo = auth[:at+1]
		}
		return dsn[:i] + userinfo + addr + rest[end:], nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", newError(ErrDSN, fmt.Sprintf("host %s is not host:port", quoteValue(addr)), nil)
	}
	return dsn + " host=" + kvQuote(host) + " port=" + port, nil
}

// withUser appends the credentials: in a URL, query parameters override
// the user information; in a key=value list a later key wins.
func (pgxDialect) withUser(dsn, user, password string) (string, error) {
	if isPgURL(dsn) {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(password), nil
	}
	return dsn + " user=" + kvQuote(user) + " password=" + kvQuote(password), nil
}

// kvQuote quotes a libpq key=value value.
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// classify reads pgx's errors. A server error (*pgconn.PgError) is judged by
// its SQLSTATE and severity: FATAL and PANIC end the session, class 08 is a
// connection exception and class 57P an operator intervention (shutdown,
// terminated backend, server starting up). Any other error pgconn marks as
// safe to retry was never sent, and a connection that reports it is closed.
func (pgxDialect) classify(err error) errClass {
	var c errClass
	if pgconn.SafeToRetry(err) {
		c |= classNotSent
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" ||
			strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") {
			c |= classDead
		}
		switch pe.Code {
		case "26000": // invalid_sql_statement_name: the prepared statement is gone
			c |= classStaleStmt
		case "0A000": // feature_not_supported, raised for a plan whose result type a DDL changed
			if strings.Contains(pe.Message, "cached plan must not change result type") {
				c |= classStaleStmt
			}
		case "25006": // read_only_sql_transaction: a standby, or a primary set read-only
			c |= classWrongRole
		case "40001", "40P01": // serialization_failure, deadlock_detected
			c |= classTxConflict
		}
		return c
	}
	var ce *pgconn.ConnectError
	if c&classNotSent != 0 || errors.As(err, &ce) {
		c |= classDead
	}
	return c
}

// connectVerdict: a server's refusal is retryable unless it is about the
// configuration: class 28 (authentication), 3D000 (no such database), 42501
// (no privilege to connect). A connect error without a server's answer is.
func (pgxDialect) connectVerdict(err error) (retry, known bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"), pe.Code == "3D000", pe.Code == "42501":
			return false, true
		}
		return true, true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true, true
	}
	return false, false
}

// startingUp: SQLSTATE 57P03 (cannot_connect_now) is the postmaster
// refusing while it starts up, recovers or is not yet consistent; it also
// says "shutting down", which is no reason to hurry.
func (pgxDialect) startingUp(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57P03" && !strings.Contains(pe.Message, "shutting down")
}

// watchAddr: pgx dials host:port over TCP unless the host is a Unix socket
// directory; a DSN whose fallbacks name other hosts is pgx's own host list.
func (pgxDialect) watchAddr(dsn string) string {
	cfg, err := pgxParseConfig(dsn)
	if err != nil || cfg.Host == "" || strings.HasPrefix(cfg.Host, "/") {
		return ""
	}
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host || f.Port != cfg.Port {
			return ""
		}
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// roleQuery: read-only by default counts as a standby, as libpq's
// target_session_attrs=read-write sees it: a primary switched to read-only
// (a switchover under way) takes no writes either.
func (pgxDialect) roleQuery() string {
	return "select pg_is_in_recovery() or current_setting('transaction_read_only') = 'on'"
}

// roleReport: in_hot_standby (PostgreSQL 14+), "on" on a standby, turned
// "off" by the promotion in the answer to the next statement.
func (pgxDialect) roleReport(inner driver.Conn) string {
	if c, ok := inner.(*stdlib.Conn); ok {
		return c.Conn().PgConn().ParameterStatus("in_hot_standby")
	}
	return ""
}

func (pgxDialect) remoteAddr(inner driver.Conn) string {
	if c, ok := inner.(*stdlib.Conn); ok {
		if nc := c.Conn().PgConn().Conn(); nc != nil && nc.RemoteAddr() != nil {
			return nc.RemoteAddr().String()
		}
	}
	return ""
}

// traits: pgx's connection says itself whether it closed, names prepared
// statements by their SQL text, and frees them on the server when it closes.
func (pgxDialect) traits(inner driver.Conn) sessionTraits {
	t := sessionTraits{keepStmtsAtClose: true}
	if c, ok := inner.(*stdlib.Conn); ok {
		t.live, t.namesBySQL = pgxLive{c}, true
		if nc := c.Conn().PgConn().Conn(); nc != nil {
			t.wire = nc
		}
	} else {
		t.live, _ = inner.(driver.Validator)
	}
	return t
}

// stmtErrAbortsTx: PostgreSQL aborts a transaction at its first error.
func (pgxDialect) stmtErrAbortsTx() bool { return true }

// pgxLive is pgx's closed flag as a driver.Validator. One pointer wide, so
// storing it in an interface does not allocate.
type pgxLive struct{ c *stdlib.Conn }

func (l pgxLive) IsValid() bool { return !l.c.Conn().IsClosed() }

// pgxPidMax is Linux's PID_MAX_LIMIT: no PostgreSQL backend on Linux has a
// higher process ID, while PgBouncer fills the cancel key it gives each
// client (whose first half pgx reports as the PID) with random bytes.
const pgxPidMax = 1 << 22

// poolerDetect: PgBouncer 1.18 names itself in no ParameterStatus (it passes
// the server's through) and answers SHOW VERSION only on its admin console,
// but the process ID of the cancel key it hands out is made up. A key PID
// above pgxPidMax shows a pooler without a round trip; otherwise, when
// probe allows, the server's own pg_backend_pid() is compared with it (a
// pooler's random PID matches it by chance with odds of about 1 in 4e9).
func (pgxDialect) poolerDetect(ctx context.Context, inner driver.Conn, probe bool) (bool, error) {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return false, nil
	}
	pc := c.Conn().PgConn()
	if pc.PID() > pgxPidMax {
		return true, nil
	}
	if !probe || pc.PID() == 0 {
		return false, nil
	}
	var pid uint32
	if err := c.Conn().QueryRow(ctx, "select pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, err
	}
	return pid != pc.PID(), nil
}

// poolerCheck: an empty simple query would be answered by PgBouncer
// itself; "select 1" needs a server connection.
func (pgxDialect) poolerCheck(ctx context.Context, inner driver.Conn) error {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return nil
	}
	_, err := c.Conn().Exec(ctx, "select 1", pgx.QueryExecModeSimpleProtocol)
	return err
}

// pgxSafeMode maps a query execution mode to one that works through a
// transaction pooler: no named statement (cache_statement would leave
// stmtcache_* statements on server connections other clients then reuse:
// 42P05/26000), and no unnamed statement kept from one round trip to the
// next (describe_exec's Bind can land on another server connection than
// its Parse and run that connection's unnamed statement: wrong results).
// cache_describe keeps the parameter and result types the server
// described, as the two modes it replaces do; exec where the description
// cache is off.
func pgxSafeMode(m pgx.QueryExecMode, descCache bool) pgx.QueryExecMode {
	switch m {
	case pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol:
		return m
	}
	if descCache {
		return pgx.QueryExecModeCacheDescribe
	}
	return pgx.QueryExecModeExec
}

// poolerMode: the connection's default mode made safe, worked out once per
// session (pgx's Config() copies the whole configuration).
func (pgxDialect) poolerMode(inner driver.Conn) any {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return nil
	}
	cfg := c.Conn().Config()
	return pgxSafeMode(cfg.DefaultQueryExecMode, cfg.DescriptionCacheCapacity > 0)
}

// poolerArgs puts the session's safe mode in front of the arguments, as a
// pgx option (stdlib passes argument values through to pgx, whose option
// loop reads a leading QueryExecMode), and maps a mode the caller passed
// the same way: the later one wins in pgx's loop.
func (pgxDialect) poolerArgs(mode any, args []driver.NamedValue) []driver.NamedValue {
	m, ok := mode.(pgx.QueryExecMode)
	if !ok {
		return args
	}
	descCache := m == pgx.QueryExecModeCacheDescribe
	out := make([]driver.NamedValue, 0, len(args)+1)
	out = append(out, driver.NamedValue{Value: m})
	for i, a := range args {
		if am, ok := a.Value.(pgx.QueryExecMode); ok {
			a.Value = pgxSafeMode(am, descCache)
		}
		a.Ordinal = i + 2
		out = append(out, a)
	}
	return out
}

// describe: Parse into the unnamed statement and Describe it, in one round
// trip; the next Parse on that server connection replaces it.
func (pgxDialect) describe(ctx context.Context, inner driver.Conn, query string) (int, error) {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return -1, nil
	}
	sd, err := c.Conn().PgConn().Prepare(ctx, "", query, nil)
	if err != nil {
		return 0, err
	}
	return len(sd.ParamOIDs), nil
}

// localState: SET [SESSION] name {TO | =} value (ROLE and SESSION
// AUTHORIZATION included) becomes SET LOCAL, keyed by the parameter's name.
// SET LOCAL, SET TRANSACTION, SET SESSION CHARACTERISTICS and SET
// CONSTRAINTS are not session state and are left alone, as is a statement
// with a semicolon (several statements, or a quoted one hasql will not
// split).
func (pgxDialect) localState(query string) (local, key string, ok bool) {
	q := strings.TrimSpace(query)
	q = strings.TrimRight(q, "; \t\r\n")
	f := strings.Fields(q)
	if len(f) < 2 || !strings.EqualFold(f[0], "set") || strings.ContainsAny(q, ";") {
		return "", "", false
	}
	rest := f[1:]
	if strings.EqualFold(rest[0], "session") {
		if len(rest) > 1 && strings.EqualFold(rest[1], "characteristics") {
			return "", "", false
		}
		if len(rest) > 1 && strings.EqualFold(rest[1], "authorization") {
			key = "session authorization"
		} else {
			rest = rest[1:]
		}
	}
	if len(rest) < 2 && !strings.Contains(rest[0], "=") {
		return "", "", false
	}
	switch strings.ToLower(rest[0]) {
	case "local", "transaction", "constraints":
		return "", "", false
	}
	if key == "" {
		key = strings.ToLower(rest[0])
		if i := strings.IndexByte(key, '='); i >= 0 {
			key = key[:i]
		}
	}
	return "SET LOCAL " + strings.Join(rest, " "), key, true
}

// pgxReplication: positions are WAL LSNs ("16/B374D848"). After a write the
// session's own pg_current_wal_lsn() is at or past the end of its commit
// record (PostgreSQL has no function that returns a transaction's commit
// LSN; this upper bound can only make a read wait a little longer). The
// waits poll on the server in one statement (a recursive query that sleeps
// between looks, bounded by the statement's own start time), so a wait costs
// one round trip however long it lasts. pg_sleep rounds up to whole
// milliseconds, so the looks are a millisecond apart; looking without a
// pause (tried: the first hundred looks at once) gained nothing measurable
// here and burns the standby's CPU. Whatever is
// looked at again in each round must be evaluated again: an uncorrelated
// subquery would be an InitPlan, evaluated once for the whole statement, and
// a function in FROM (pg_stat_replication's pg_stat_get_wal_senders()) is
// kept in a tuplestore and only rewound on a rescan; called in the select
// list it runs each round.
var pgxReplication = &replication{
	writePos:   "select pg_current_wal_lsn()::text",
	primaryPos: "select pg_current_wal_lsn()::text",
	replayPos:  "select coalesce(pg_last_wal_replay_lsn(), '0/0')::text",
	waitReplay: `with recursive w(i, ok) as (
  select 0, coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)
  union all
  select i + 1, (select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) from pg_sleep(0.0005 + 0 * i))
  from w where not ok and clock_timestamp() < statement_timestamp() + $2::float8 * interval '1 second'
) select ok from w order by i desc limit 1`,
	waitReplicated: `with recursive w(i, ok) as (
  select 0, (select coalesce(bool_or(f >= $1::pg_lsn), false) from (select (pg_stat_get_wal_senders()).flush_lsn as f) s)
  union all
  select i + 1, (select coalesce(bool_or(f >= $1::pg_lsn), false) from (select (pg_stat_get_wal_senders()).flush_lsn as f from pg_sleep(0.0005 + 0 * i)) s)
  from w where not ok and clock_timestamp() < statement_timestamp() + $2::float8 * interval '1 second'
) select ok from w order by i desc limit 1`,
	reached: func(v driver.Value) bool {
		b, ok := v.(bool)
		return ok && b
	},
	atLeast: func(have, want string) (bool, error) {
		h, err := parseLSN(have)
		if err != nil {
			return false, err
		}
		w, err := parseLSN(want)
		if err != nil {
			return false, err
		}
		return h >= w, nil
	},
	merge: func(a, b string) string {
		x, errA := parseLSN(a)
		y, errB := parseLSN(b)
		switch {
		case errA != nil:
			return b
		case errB != nil || x >= y:
			return a
		}
		return b
	},
}

func (pgxDialect) replication() *replication { return pgxReplication }

// parseLSN parses PostgreSQL's text form of an LSN, "hi/lo" in hex.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("hasql: %q is not a PostgreSQL LSN", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("hasql: %q is not a PostgreSQL LSN", s)
	}
	return h<<32 | l, nil
}

// The commit-outcome guard on PostgreSQL (see txguard.go). The record is
// written in the same simple-protocol message as COMMIT, so a guarded
// commit costs no extra round trip.

func (pgxDialect) quoteTable(name string) string { return quoteIdents(name, `"`) }

func (pgxDialect) guardDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (id text PRIMARY KEY, tomb boolean NOT NULL DEFAULT false, at timestamptz NOT NULL DEFAULT now())"
}

func (pgxDialect) guardProbe(table string) string { return "SELECT 1 FROM " + table + " WHERE false" }

// guardCommit sends the record's INSERT (a statement prepared once per
// connection) and COMMIT in one pipeline: one round trip, and the INSERT is
// not parsed and planned again each time. Behind a transaction-mode pooler
// (pooled) the INSERT is an unnamed statement, parsed in the same round
// trip: a named one would exist on one server connection only. A
// transaction already failed (status 'E') has nothing to guard: pgx's own
// Commit answers it (ErrTxCommitRollback).
func (pgxDialect) guardCommit(ctx context.Context, inner driver.Conn, itx driver.Tx, pooled bool, table, id string) (sent bool, err error) {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return true, itx.Commit()
	}
	pc := c.Conn().PgConn()
	if pc.TxStatus() != 'T' {
		return true, itx.Commit()
	}
	insert := "INSERT INTO " + table + " (id) VALUES ($1)"
	var sd *pgconn.StatementDescription
	if !pooled {
		// pgx prepares it once per connection and remembers it by name.
		if sd, err = c.Conn().Prepare(ctx, "hasql_txguard_insert", insert); err != nil {
			return false, err
		}
	}
	// COMMIT is not bound by the transaction's context, as with pgx's
	// own stdlib Commit (context.Background). It also keeps pgconn from
	// watching a context here: a pipeline whose read fails marks itself
	// closed without ending the watch, and Close then returns early, so the
	// watching goroutine would outlive the connection.
	pl := pc.StartPipeline(context.WithoutCancel(ctx))
	if sd != nil {
		pl.SendQueryPrepared(sd.Name, [][]byte{[]byte(id)}, nil, nil)
	} else {
		pl.SendQueryParams(insert, [][]byte{[]byte(id)}, nil, nil, nil)
	}
	// The id in a comment: pg_stat_activity shows it while COMMIT runs
	// (guardEndOld), which a bind parameter would not.
	pl.SendQueryParams("COMMIT /* hasql.txguard "+id+" */", nil, nil, nil, nil)
	if err := pl.Sync(); err != nil {
		pl.Close()
		return true, err
	}
	var tag string
	var first error
	for !pc.IsClosed() {
		res, err := pl.GetResults()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			ct, err := rr.Close()
			if err != nil && first == nil {
				first = err
			}
			tag = ct.String()
			continue
		}
		if _, ok := res.(*pgconn.PipelineSync); ok || res == nil {
			break
		}
	}
	if err := pl.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		// The INSERT failed and the server skipped COMMIT: the
		// transaction is still open, failed; the caller rolls it back.
		return pc.TxStatus() != 'E', first
	}
	if tag != "COMMIT" {
		return true, pgx.ErrTxCommitRollback
	}
	return true, nil
}

// guardExec (hasql.txguard=all) sends an autocommit write and the guard
// record's INSERT as one pgx batch: one pipeline ending in one Sync, which
// PostgreSQL runs as one implicit transaction (both take effect or
// neither), in one round trip once pgx has both statements in its cache.
// Arguments that are pgx options (a QueryExecMode, result formats) are not
// batch arguments: such work takes the general way (ok false).
func (pgxDialect) guardExec(ctx context.Context, inner driver.Conn, query string, args []driver.NamedValue, table, id string) (driver.Result, bool, bool, error) {
	c, ok := inner.(*stdlib.Conn)
	if !ok {
		return nil, false, false, nil
	}
	vals := make([]any, len(args))
	for i, a := range args {
		switch a.Value.(type) {
		case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
			return nil, false, false, nil
		}
		vals[i] = a.Value
	}
	conn := c.Conn()
	if conn.IsClosed() {
		return nil, true, false, driver.ErrBadConn
	}
	if err := ctx.Err(); err != nil {
		return nil, true, false, err
	}
	var b pgx.Batch
	b.Queue(query, vals...)
	b.Queue("INSERT INTO "+table+" (id) VALUES ($1)", id)
	// The batch runs without ctx, as the guarded COMMIT does (a pgconn
	// pipeline whose read fails leaves its context watch running); ctx
	// ending asks the server to cancel the statement instead, which rolls
	// the implicit transaction back.
	pc := conn.PgConn()
	cancelled := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelled)
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pc.CancelRequest(cctx)
	})
	br := conn.SendBatch(context.Background(), &b)
	ct, err := br.Exec()
	if err == nil {
		if _, gerr := br.Exec(); gerr != nil {
			err = gerr
			if !pgconn.SafeToRetry(gerr) && !pc.IsClosed() {
				err = newError(ErrTxGuard, fmt.Sprintf("the commit-outcome guard could not write its record in %s; the statement was rolled back", table), gerr)
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if !stop() {
		<-cancelled
	}
	if err != nil {
		return nil, true, !pgconn.SafeToRetry(err), err
	}
	return driver.RowsAffected(ct.RowsAffected()), true, true, nil
}

// guardInline writes the record in a data-modifying CTE of the statement
// itself — WITH hasql_txguard_record AS (INSERT ...) <the statement> — so
// that a write query (INSERT ... RETURNING) and its record are one
// statement: one implicit transaction, one round trip, the driver's own
// rows. For an INSERT, UPDATE or DELETE, or a WITH (the CTE joins its
// list); not for a statement in parentheses or a MERGE (PostgreSQL 15 has
// no WITH for it), nor with pgx options among the arguments (they are not
// parameters: the numbering would not be the statement's).
func (pgxDialect) guardInline(query string, args []driver.NamedValue, table string) (string, bool) {
	for _, a := range args {
		switch a.Value.(type) {
		case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID, pgx.QueryRewriter:
			return "", false
		}
	}
	q := skipLeading(query, false)
	cte := "hasql_txguard_record AS (INSERT INTO " + table + " (id) VALUES ($" + strconv.Itoa(len(args)+1) + "))"
	switch kw := leadingWord(q); {
	case strings.EqualFold(kw, "INSERT"), strings.EqualFold(kw, "UPDATE"), strings.EqualFold(kw, "DELETE"):
		return "WITH " + cte + " " + q, true
	case strings.EqualFold(kw, "WITH"):
		rest := skipLeading(q[len(kw):], false)
		if w := leadingWord(rest); strings.EqualFold(w, "RECURSIVE") {
			return "WITH RECURSIVE " + cte + ", " + skipLeading(rest[len(w):], false), true
		}
		return "WITH " + cte + ", " + rest, true
	}
	return "", false
}

// inlineRefused: a table with rules that turn the statement into several
// (DO ALSO, multi-action DO INSTEAD) refuses a WITH at rewrite time, before
// anything runs (0A000).
func (pgxDialect) inlineRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "0A000" && strings.Contains(pe.Message, "WITH cannot be used in a query that is rewritten by rules")
}

// guardEndOld terminates the backend still running the guarded commit of
// the id (its COMMIT's comment; the id appears literally in no other
// query). Only an active one: an idle backend has finished that COMMIT, and
// behind a pooler it may serve another client by now.
func (pgxDialect) guardEndOld() (string, func(int64) string) {
	return "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND strpos(query, $1) > 0", nil
}

// guardResolve: the INSERT waits for a transaction that holds the record;
// DO UPDATE returns the row that is there, whoever wrote it, so running it
// again gives the same answer.
func (pgxDialect) guardResolve(table string) []string {
	return []string{"INSERT INTO " + table + " AS g (id, tomb) VALUES ($1, true) ON CONFLICT (id) DO UPDATE SET tomb = g.tomb RETURNING tomb"}
}

func (pgxDialect) guardPurge(table string) string {
	return "DELETE FROM " + table + " WHERE id IN (SELECT id FROM " + table + " WHERE at < now() - make_interval(secs => $1) LIMIT $2)"
}
