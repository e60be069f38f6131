// Package hasql is a database/sql driver, registered as "hasql", that wraps
// another driver — pgx v5, go-sql-driver/mysql, go-sqlmock, or any registered
// one — so that a program keeps its *sql.DB and its code, and survives what a
// plain *sql.DB does not: database restarts, failovers and dropped
// connections. When a connection dies, hasql reconnects and runs again the
// work that certainly did not run, or that the caller marked [Idempotent];
// when it cannot know whether the work ran, it says so in a typed error
// ([*LostError]) instead of the inner driver's bare network error.
//
// Swapping
//
//	db, err := sql.Open("mysql", dsn)
//
// for
//
//	import _ "github.com/hasqlgo/hasql"
//
//	db, err := sql.Open("hasql", "mysql:"+dsn)
//
// changes nothing the application can observe, except that it now survives
// failures it did not survive before. Importing hasql registers "pgx" and
// "mysql" too, so "pgx:postgres://…" works with hasql as the only import.
//
// # What it adds
//
// On the way, hasql gives Go programs what Oracle's OCI gives C programs.
// Each of these has a runnable example in this package's documentation, and
// the repository's quickstart (make quickstart) shows all four at work on an
// embedded SQLite database, with no server:
//
//   - Interceptors: entry, replacement and exit callbacks on every driver
//     call, registered on [Connector.Callbacks] or loaded by name as
//     packages ([RegisterPackage]). Examples: Callbacks.Register (timing
//     every query, translating an error, answering from a cache),
//     [Callbacks.Get], [RegisterPackage].
//   - A statement cache per session: a statement prepared on every request
//     is prepared once per session, and ad-hoc work that database/sql would
//     prepare, run and close takes one round trip. Example:
//     [WithStmtCacheSize].
//   - A session pool with tags: the session callback ([WithSessionCallback])
//     sets a session's state once; later requests that ask for the tag
//     ([WithTag], [Acquire]) get that session back, state and all. Example:
//     [Acquire].
//   - Connections that survive: a lost connection ends its session, the
//     work is run again on a new one when that cannot run it twice, and the
//     application's hooks (recovery, failover callback, events) are told. A
//     transaction whose session died before COMMIT was sent fails with
//     [ErrTxNotCommitted], and [RunTx] runs it again. Examples: the package
//     examples "lostConnection" and "idempotentReads" (a fault injected with
//     the hasqltest package).
//
// The sections below are the reference: the DSN and its keys, how sessions
// are bound to the handles database/sql holds, callbacks, the statement
// cache, lost connections and retries, errors, and testing. The README and
// docs/ directory of the repository have the measured figures (restarts
// under load, benchmarks) and the commands that produced them.
//
// # Opening
//
// A hasql DSN is "<inner driver>:<inner DSN>": the name the wrapped driver is
// registered under with database/sql, a colon, and that driver's own DSN.
// hasql's settings ride inside the inner DSN's parameter section as
// hasql.<key>=<value> — a URL's query, a libpq key=value list, or
// go-sql-driver/mysql's '?' section — and are removed before the inner driver
// sees the DSN:
//
//	sql.Open("hasql", "pgx:postgres://app@db1:5432,db2:5432/shop?sslmode=disable&hasql.stmtcache=50")
//	sql.Open("hasql", "pgx:host=db1 dbname=shop hasql.retry=idempotent")
//	sql.Open("hasql", "mysql:app:pw@tcp(db1:3306)/shop?parseTime=true&hasql.hosts=db1:3306,db2:3306")
//	sql.Open("hasql", "sqlmock:my_mock_dsn")
//
// The inner driver must be registered: hasql links pgx's stdlib and
// go-sql-driver/mysql, which register "pgx" and "mysql"; any other driver,
// go-sqlmock included, is registered by the program that imports it.
//
// The keys are hasql.stmtcache, hasql.pool.min, hasql.pool.max,
// hasql.pool.incr, hasql.getmode, hasql.wait_timeout, hasql.idle_timeout,
// hasql.max_lifetime, hasql.cclass, hasql.purity, hasql.callbacks,
// hasql.hosts, hasql.pick, hasql.target, hasql.blacklist,
// hasql.health_interval, hasql.reconnect, hasql.connect_timeout,
// hasql.outage_wait, hasql.retry, hasql.replay, hasql.replay_limit,
// hasql.discover, hasql.discover_url, hasql.discover_interval and
// hasql.tx_retries; each but the last has an [Option] too (see the With functions). Durations take Go syntax ("500ms") or plain seconds ("0.5");
// lists take ',' or ';'. Three environment variables are read when a
// connector is created: HASQL_CALLBACK_PACKAGES ("a;b"),
// HASQL_RECONNECT_TIMEOUT ("5,10,20,40,80", seconds) and
// HASQL_CONNECT_TIMEOUT (seconds). Options win over DSN keys, which win over
// the environment. A missing ':', an unregistered inner driver, an unknown or
// repeated key and a bad value are errors wrapping [ErrDSN] that name the key
// or the problem; no error hasql returns contains a password from the DSN.
//
// [Open] wraps a registered driver by name with options; [NewConnector] and
// [OpenDB] wrap a [driver.Connector] the application built itself; several
// hosts and [WithUser] need a DSN to point at other hosts and users, so they
// work only through sql.Open and Open. Each sql.Open,
// Open, OpenDB or NewConnector makes one [Connector]: one session pool, one
// callback registry, one set of background goroutines, ended by
// [Connector.Close] or by closing the *sql.DB. [ConnectorOf] finds the
// Connector behind a *sql.DB.
//
// # Virtual handles and physical sessions
//
// database/sql pools driver connections and cannot be told which one to hand
// out, so hasql gives it virtual handles, which own no socket, and keeps the
// real connections of the inner driver — physical sessions, or sessions — in
// a pool of its own. A handle is bound to a session when database/sql checks
// it out: in Connector.Connect, in ResetSession (which database/sql calls
// with the next caller's context when it hands a connection out again), or,
// if it is still unbound, on the first call that carries a context.
// Everything database/sql does on one checkout — a *sql.Tx, a *sql.Conn
// until it is closed, a *sql.Rows until it is closed — runs on that one
// session. IsValid, which database/sql calls on every release, is the release
// point: the session goes back to hasql's pool, or is closed if it died, and
// the handle stays valid for its next checkout.
//
// database/sql's SetMaxIdleConns, SetMaxOpenConns, SetConnMaxLifetime and
// SetConnMaxIdleTime act on handles, and the sessions follow them as real
// connections do without hasql: when database/sql closes a handle, the
// session it had last closes too, unless another handle has it now or hasql
// keeps it for its own settings (a tagged session, a connection class or
// user, up to hasql.pool.min sessions); and below hasql.pool.max a handle
// takes no idle session opened before the handle was made (unless hasql
// keeps it, or it was opened in the background and never used), so a
// session is never older at a checkout than SetConnMaxLifetime allows. With
// SetMaxIdleConns(0) every checkout opens a real connection.
// hasql.idle_timeout and hasql.max_lifetime bound every session besides.
// Session state (SET, temporary tables) lives as long as its session.
//
// A released session stays parked on its handle while it is idle in the
// pool: the handle's next checkout that asks for the same session takes it
// back with one atomic swap instead of the pool's lock. A parked session
// belongs to the pool like any idle one; another checkout, a waiter, the
// reaper or a purge may take it first, and the handle then gets another.
//
// A checkout asks for a session with the selectors in its context:
// [WithTag], [WithMatchAnyTag], [WithPurity], [WithClass] and [WithUser].
// Sessions are partitioned by user and connection class and never cross
// either. Within its partition a checkout gets the most recently released
// idle session with exactly the requested tag, else an untagged one, else,
// with WithMatchAnyTag, the one sharing the most tag properties, else a new
// one; [PurityNew] always gets a new one. The session callback
// ([WithSessionCallback]) runs when a checkout gets a session that is new or
// whose tag differs from the one requested: it sets the state with
// [Session.Exec] and records it with [Session.SetTag]. [Acquire] checks out a
// *sql.Conn by these rules at once (OCISessionGet), [SessionOf] shows the
// session behind a *sql.Conn, and [Release] keeps a tag on the session and
// gives it back (OCISessionRelease).
//
// [PoolConfig] sizes the pool: Min sessions are kept open, opened in the
// background; at most Max are open (0: no limit); Incr are opened per growth
// step. When the pool is full a checkout waits ([GetWait]), fails at once or
// after WaitTimeout with [ErrPoolExhausted] ([GetNoWait], [GetTimedWait]),
// or opens a session beyond Max ([GetForce]). [Connector.Reconfigure]
// changes the sizing while the pool runs.
//
// # Callbacks
//
// Every driver call can be intercepted (OCI user callbacks). [Fn] names the
// call, [When] the point: an Entry callback runs before the driver call and
// may rewrite the query and arguments, a Replace callback runs instead of
// it, an Exit callback after it and may replace the outcome. Callbacks are
// registered on [Connector.Callbacks] or, as a named package loaded by
// hasql.callbacks, through [RegisterPackage]; [Callbacks] gives the order in
// which they run and what each return value means. A callback returns
// [Continue] to leave the outcome alone. Work a callback does through
// [Session.Exec] or [Session.Unwrap] runs no callbacks. With no callback
// registered for a call, hasql reads its callback registry with one atomic
// load and calls the inner driver directly, allocating nothing the inner
// driver does not.
//
// # Statement cache
//
// Each session keeps an LRU cache of prepared statements, keyed by SQL text
// and statement tag ([WithStmtTag]), of hasql.stmtcache entries (20 by
// default; 0 turns it off; [Session.SetStmtCacheSize] changes one session's).
// Closing a *sql.Stmt gives its statement back to the cache; evicting it
// closes it on the server (as does the end of its session). A statement in
// use is never evicted. Ad-hoc work for which the inner driver has no direct
// path (driver.ErrSkip: go-sql-driver/mysql without interpolateParams) runs
// on a cached statement, one round trip instead of database/sql's prepare,
// execute and close. A *sql.Stmt run on a handle bound to another session is
// prepared there through that session's cache. A statement the server
// reports stale after a schema change (PostgreSQL 26000 and 0A000 "cached
// plan must not change result type", MySQL 1243 and 1615) did not run: it is
// prepared again and run once more, except inside a PostgreSQL transaction,
// which the error has aborted, and with hasql.retry=off.
//
// # Lost connections and retries
//
// An error shows a lost connection when the inner driver's dialect says the
// connection is dead (driver.ErrBadConn, io.EOF, a network error, a fatal
// server error); the end of the caller's context never does. A lost
// connection ends its session and purges its host: the host's idle sessions
// are closed at once, its busy ones when released, and [HostDown] and
// [SessionsPurged] events are sent once per failure of the host, not once per
// session. A pooled session that turns out dead when it is reset at checkout
// is replaced before the caller sees it, up to 16 times per checkout.
//
// Work is run again on a new session only outside a transaction, only while
// the caller's context lasts, at most three times per call, and only when
// running it again cannot run it twice: when the error proves the work never
// reached the server, when the call changes no data (Ping, Prepare, Begin),
// or, with hasql.retry=idempotent ([RetryIdempotent]), when its context is
// marked with [Idempotent]. hasql.retry=off ([RetryOff]) re-runs nothing and
// lets database/sql's own retry on driver.ErrBadConn work as without hasql.
// Work lost after it may have reached the server, and any loss inside a
// transaction or at its commit, is never run again: the caller gets the
// error and decides. The *sql.Conn or handle stays usable; its next call gets
// a new session with the same user, class and tag. A connection lost at
// Rows.Close, after the rows were read, re-runs the query only when it is
// marked Idempotent under hasql.retry=idempotent.
//
// With a target role (hasql.target), a write refused by a server that has
// become read-only (PostgreSQL 25006; MySQL 1290, 1792, 1836) marks that
// host a standby and purges its sessions, unless the application's own
// transaction is read-only; the write never ran, so outside a transaction it
// is run again on another host, and inside one the caller gets the server's
// error.
//
// After every loss (unless the caller's context has ended) the recovery
// function runs, as QNX runs it on any operation that fails on a lost
// connection: the one attached to the session with [Session.Attach], else
// the connector's ([WithRecovery]). Outside a transaction it may rebuild
// state with [Session.Reconnect] and [Session.Exec]; nil means recovered,
// and the work is run again if the rules above allow it. Inside a
// transaction and while rows stream no new session is bound (the
// transaction or the rows end first). Whatever the function returns, what
// reaches the application is still decided by the rules above; an error it
// returns comes joined with the loss, so that errors.Is reaches both.
// Every loss of a session in use also starts a failover that the failover
// callback ([WithFailoverCallback]) is told step by step (OCI TAF):
// [FoBegin]; then [FoEnd], and [FoReauth] for a tagged session, when a new
// session is bound; or, for each failed attempt, [FoError], to which it
// answers [ErrFoRetry] to try again (at most 64 times); and [FoAbort] when
// hasql gives up or binds no new session now (inside a transaction, while
// rows stream, or when the work is not run again and no recovery function
// asks for one: the handle's next call then binds one).
//
// When no new session can be opened, after the connector has had sessions
// before, for a reason that waiting may mend (not a bad password or an
// unknown database), the connector enters an outage ([OutageBegin]): every
// session is purged, one background prober reconnects on the back-off
// schedule ([Backoff]: hasql.reconnect, else 50ms for the first second, then
// doubling up to 5s, jittered), and checkouts wait at the gate, up to
// hasql.outage_wait (30s) or the end of their context, then fail with an
// error wrapping [ErrNoHosts] and the last connect error. A connector that
// never connected fails fast instead: that is a misconfiguration, not an
// outage. [WithEvents] receives these events in order, from a goroutine that
// holds no lock of hasql's.
//
// With several hosts (hasql.hosts, [WithHosts], or a pgx multi-host DSN) a
// new session goes to a host chosen by the picker (hasql.pick) that has the
// target role (hasql.target); a host that fails to connect is blacklisted
// for hasql.blacklist, doubling on repeated failure. With the latency picker
// the sessions already open are balanced too (OCI runtime load balancing): an
// idle session on the healthiest, fastest host is handed out first. A host
// found down closes its idle sessions ([SessionsPurged]).
// [Connector.MarkHostDown] takes an outside notice that a host is down (OCI
// FAN): its idle sessions close at once, and so do the sockets of those in
// use (pgx, go-sql-driver/mysql), so that calls in flight there end now.
//
// # Reads on standbys
//
// With hasql.reads=standby or prefer-standby ([WithReads]), work marked
// [ReadOnly] (or [ReadAfter]), and a transaction begun with
// sql.TxOptions{ReadOnly: true}, runs on a standby; the rest on the target.
// Under hasql.consistency=session (the default) such a read sees every write
// committed through the connector before it: hasql keeps the latest write's
// replication position (one small query after a write) and uses a standby
// only once it has replayed that far, known from the background check or
// found by one statement that waits on the standby up to hasql.lag_wait, else
// reads on the primary. [Connector.Position] hands the position to another
// process. hasql.max_lag keeps lagging standbys out; [HostStats] shows each
// host's Role and Lag. hasql.durability=replicated ([WithDurability]) makes
// Commit wait until a standby has the commit. See docs/clusters.md.
//
// # Clusters
//
// With hasql.discover=patroni, galera or mysql-replicas ([WithDiscovery]) a
// connector learns the cluster's members and roles from one host in the DSN
// (Patroni's REST API, Galera's wsrep_incoming_addresses, SHOW SLAVE HOSTS),
// in a background goroutine, every hasql.discover_interval and at once after
// any failure; new members are used and departed ones dropped without a
// restart, and with a target role a session is only opened where the
// server and the cluster agree on the role. [Connector.Drain] takes a host
// out of use before planned maintenance; [Connector.Undrain] puts it back.
// A Galera node outside the primary component (error 1047) is not used, and
// a transaction the server rolled back on a conflict (1213) commits as
// [ErrTxNotCommitted]. See docs/clusters.md.
//
// # Errors
//
// Every error hasql itself creates starts with "hasql: ", wraps one of the
// sentinel errors of this package (ErrConnectionLost, ErrDSN, ErrNoHosts, ...)
// so that callers test it with [errors.Is], and keeps its cause, so that
// [errors.As] reaches the inner driver's own error (*pgconn.PgError,
// *mysql.MySQLError). The exceptions are the few errors that reproduce
// database/sql's own word for word (a wrong argument count, an isolation
// level the inner driver cannot set), as fidelity demands. The inner
// driver's errors that hasql does not handle reach the caller as they came;
// driver.ErrSkip passes bare, since database/sql compares it with ==.
//
// A call whose session died under it fails with a [*LostError] (under
// hasql.retry=off a driver.ErrBadConn, which proves nothing was sent, is
// left to database/sql's own retry instead). Its Host is
// the session's host:port, its Err the driver's error, InTx says the loss
// happened inside a transaction or at its commit, and Sent says the work
// may have reached the server; SafeToRetry reports !Sent, the work certainly
// did not run (pgconn.SafeToRetry's meaning). A LostError wraps Err and the
// sentinel that says what the caller may conclude: [ErrConnectionLost], the
// work may or may not have run; [ErrTxResolutionUnknown], whether the
// transaction committed is unknown; or [ErrTxNotCommitted], the transaction
// certainly did not commit, so running it again is safe. A loss inside a
// transaction before its COMMIT was sent is ErrTxNotCommitted (the server
// rolls back what it loses; a later Commit says so again, a Rollback
// succeeds); only a loss at COMMIT is ErrTxResolutionUnknown, unless the
// commit-outcome guard (hasql.txguard) resolves it. The error never
// wraps driver.ErrBadConn, so that database/sql does not run again work that
// hasql has already run again or reported.
//
// With hasql.txguard=on ([WithTxGuard]) each write transaction also writes a
// guard record, in the COMMIT's round trip on PostgreSQL; after a lost COMMIT
// hasql asks a new session whether the record is there, so Commit returns
// nil or ErrTxNotCommitted instead of ErrTxResolutionUnknown. With
// hasql.txguard=all autocommit writes are guarded too: one found not applied
// runs again like work never sent; one found applied returns a nil error and
// a Result whose RowsAffected and LastInsertId return [ErrResultUnknown].
//
// With hasql.replay=on ([WithReplay]) such a loss before COMMIT is not
// reported at all when it can be helped: hasql records each call of the
// transaction with a digest of every result the application was given,
// begins the transaction again on a new session, replays the calls and
// compares; when every result matches the application goes on (a Rows being
// read continues from its next row), and otherwise it gets
// [ErrReplayDiverged] wrapping the loss. Stats.Replays and
// Stats.ReplaysDiverged count them; docs/transactions.md says what a replay
// cannot cover.
//
// A panic in a function of the application's that hasql calls — a callback,
// the session callback, a recovery function, the failover callback, the
// event receiver — fails only the call it served, with an error wrapping
// [ErrCallbackPanic] and naming the panic's value; the process keeps running
// and no panic is dropped unreported: Stats.CallbackPanics counts them all,
// including the event receiver's, which serves no call.
//
// # Testing
//
// Package github.com/hasqlgo/hasql/hasqltest opens hasql over go-sqlmock for
// an application's own tests and injects faults — a connection lost before
// or after the work was sent, or at commit; latency; errors — over any inner
// driver, real or mock. With the statement cache on, go-sqlmock sees one
// prepare per session for a statement prepared many times, and its
// WillBeClosed is met when the statement leaves the cache, not at
// *sql.Stmt.Close; hasql.stmtcache=0 gives go-sqlmock's own behaviour.
package hasql
