package hasql_test

// The ledger chaos test (issue 13, point 5): a ledger whose total must stay
// constant, under 8 workers per run mode, while the harness ends backends,
// restarts or kills the server, cuts connections at COMMIT and promotes a
// standby. Every mode runs at the same time against the same server (each on
// tables of its own), so one fault hits them all alike:
//
//	raw       the inner driver alone (database/sql's own retries)
//	defaults  hasql with its defaults (and hasql.outage_wait=15s)
//	guard     + hasql.txguard=on (when this build has the guard)
//	replay    plain BeginTx/Commit with hasql.replay=on (+ hasql.txguard=on when available)
//	runtx     hasql.RunTx
//
// A transfer inserts a row keyed by a unique request id and moves an amount
// between two accounts, in one transaction. After each scenario, for each
// mode, read without hasql:
//   - the total of the balances is unchanged;
//   - every account's balance is its start plus what the transfers present
//     moved (so each present transfer applied exactly once, and no absent
//     one applied at all);
//   - every transfer the application was told committed is present; every
//     one told ErrTxNotCommitted (or ErrReplayDiverged) is absent; no
//     request id is there twice or was never attempted.
//
// The per-scenario table (errors to the application, what was told, what
// hasql resolved, replays, divergences) is printed with -v:
//
//	go test -race -count=1 -v -run 'TestChaosLedger' . | grep '^ *chaos_ledger_test.go.*|'

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

const (
	ledgerAccounts = 8
	ledgerStart    = 1000
	ledgerWorkers  = 8
	ledgerMaxSeq   = 5000 // transfers per worker, at most
	ledgerSettle   = 250 * time.Millisecond
)

// ledgerRunTx is how the runtx mode runs a transfer (a variable so that a
// build without it can set it to nil: the mode is then skipped and the
// report says so).
var ledgerRunTx = hasql.RunTx

// ledgerServer is one server under test, as the modes see it.
type ledgerServer struct {
	driver string
	dsn    string // the database's DSN, without hasql keys
	raw    string // the raw driver's DSN where it differs (a host list)
	admin  func(sql string) error
	query  func(sql string) (string, error)
	ph     func(i int) string // placeholder i (1-based)
	modes  map[string]bool    // the modes to run; nil: all
	// rawLoses: the raw driver's acknowledged commits may be lost (a crash failover to an
	// asynchronous standby); its missing transfers are logged, not failed.
	rawLoses bool
}

func (s *ledgerServer) sep() string {
	if strings.Contains(s.dsn, "?") {
		return "&"
	}
	return "?"
}

// ledgerRun is one mode's run in one scenario.
type ledgerRun struct {
	mode   string
	srv    *ledgerServer
	db     *sql.DB
	hc     *hasql.Connector // nil for raw
	acct   string
	xfer   string
	useRun bool

	stop atomic.Bool
	wg   sync.WaitGroup
	ok   atomic.Int64

	mu           sync.Mutex
	attempted    map[string]bool
	committed    map[string]bool
	notCommitted map[string]bool
	unknown      map[string]bool
	errKinds     map[string]int
	errs         int
	sample       []string
}

// ledgerErrKind names an error the application got, for the report.
func ledgerErrKind(err error) string {
	switch {
	case errors.Is(err, hasql.ErrReplayDiverged):
		return "ReplayDiverged"
	case errors.Is(err, hasql.ErrTxNotCommitted):
		return "TxNotCommitted"
	case errors.Is(err, hasql.ErrTxResolutionUnknown):
		return "TxResolutionUnknown"
	case errors.Is(err, hasql.ErrConnectionLost):
		return "ConnectionLost"
	case errors.Is(err, hasql.ErrNoHosts):
		return "NoHosts"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return "driver"
}

func (r *ledgerRun) transfer(ctx context.Context, tx *sql.Tx, req string, a, b, amt int) error {
	p := r.srv.ph
	if _, err := tx.ExecContext(ctx, "insert into "+r.xfer+" (req, src, dst, amt) values ("+p(1)+", "+p(2)+", "+p(3)+", "+p(4)+")", req, a, b, amt); err != nil {
		return err
	}
	// Accounts in id order: two transfers never wait for each other in a
	// cycle (no deadlocks to tell apart from the faults).
	lo, hi, dlo, dhi := a, b, -amt, amt
	if b < a {
		lo, hi, dlo, dhi = b, a, amt, -amt
	}
	upd := "update " + r.acct + " set bal = bal + " + p(1) + " where id = " + p(2)
	if _, err := tx.ExecContext(ctx, upd, dlo, lo); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, upd, dhi, hi)
	return err
}

func (r *ledgerRun) once(req string, a, b, amt int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r.useRun {
		return ledgerRunTx(ctx, r.db, nil, func(ctx context.Context, tx *sql.Tx) error {
			return r.transfer(ctx, tx, req, a, b, amt)
		})
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := r.transfer(ctx, tx, req, a, b, amt); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (r *ledgerRun) worker(w int, scen string) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(w), uint64(len(scen))))
	for seq := 0; seq < ledgerMaxSeq && !r.stop.Load(); seq++ {
		req := fmt.Sprintf("%s-%d-%d", r.mode, w, seq)
		a := 1 + rng.IntN(ledgerAccounts)
		b := 1 + (a+rng.IntN(ledgerAccounts-1))%ledgerAccounts
		amt := 1 + rng.IntN(9)
		r.mu.Lock()
		r.attempted[req] = true
		r.mu.Unlock()
		err := r.once(req, a, b, amt)
		r.mu.Lock()
		switch {
		case err == nil:
			r.committed[req] = true
			r.ok.Add(1)
		default:
			r.errs++
			k := ledgerErrKind(err)
			r.errKinds[k]++
			if len(r.sample) < 3 {
				r.sample = append(r.sample, err.Error())
			}
			if k == "TxNotCommitted" || k == "ReplayDiverged" {
				r.notCommitted[req] = true
			} else {
				r.unknown[req] = true
			}
		}
		r.mu.Unlock()
		if err != nil {
			time.Sleep(5 * time.Millisecond) // an application's pause before the next request
		}
	}
}

// verify checks the ledger's invariants (read without hasql) and returns
// the report row.
func (r *ledgerRun) verify(t *testing.T, scen string, query func(string) (string, error)) string {
	t.Helper()
	one := func(q string) string {
		out, err := query(q)
		if err != nil {
			t.Fatalf("%s/%s: %s: %v", scen, r.mode, q, err)
		}
		return strings.TrimSpace(out)
	}
	if got := one("select sum(bal) from " + r.acct); got != strconv.Itoa(ledgerAccounts*ledgerStart) {
		t.Errorf("%s/%s: total %s, want %d", scen, r.mode, got, ledgerAccounts*ledgerStart)
	}
	if got := one("select count(*) from " + r.acct + " a where a.bal <> " + strconv.Itoa(ledgerStart) +
		" - coalesce((select sum(amt) from " + r.xfer + " x where x.src = a.id), 0)" +
		" + coalesce((select sum(amt) from " + r.xfer + " x where x.dst = a.id), 0)"); got != "0" {
		t.Errorf("%s/%s: %s accounts do not match the transfers present", scen, r.mode, got)
	}
	present := map[string]bool{}
	for _, req := range strings.Fields(one("select req from " + r.xfer)) {
		if present[req] {
			t.Errorf("%s/%s: request %s is there twice", scen, r.mode, req)
		}
		present[req] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	missing, wrong, landed := 0, 0, 0
	for req := range r.committed {
		if !present[req] {
			missing++
			if r.hc == nil && r.srv.rawLoses {
				if missing <= 3 {
					t.Logf("%s/%s: transfer %s was told committed and is absent (asynchronous failover)", scen, r.mode, req)
				}
				continue
			}
			if missing <= 3 {
				t.Errorf("%s/%s: transfer %s was told committed and is absent", scen, r.mode, req)
			}
		}
	}
	for req := range r.notCommitted {
		if present[req] {
			wrong++
			if wrong <= 3 {
				t.Errorf("%s/%s: transfer %s was told not committed and is present", scen, r.mode, req)
			}
		}
	}
	for req := range present {
		if !r.attempted[req] {
			t.Errorf("%s/%s: request %s present but never attempted", scen, r.mode, req)
		}
		if r.unknown[req] {
			landed++
		}
	}
	var kinds []string
	for k, n := range r.errKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	var st hasql.Stats
	if r.hc != nil {
		st = r.hc.Stats()
	}
	detail := strings.Join(kinds, ", ")
	if detail == "" {
		detail = "—"
	}
	for _, s := range r.sample {
		t.Logf("%s/%s: error sample: %s", scen, r.mode, s)
	}
	if r.hc == nil {
		return fmt.Sprintf("| %s | %s | %d | %d | %s | %d | %d (%d) | — | — | — |",
			scen, r.mode, len(r.committed), r.errs, detail, len(r.notCommitted), len(r.unknown), landed)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %s | %d | %d (%d) | %d / %d | %d | %d |",
		scen, r.mode, len(r.committed), r.errs, detail, len(r.notCommitted), len(r.unknown), landed,
		st.TxCommittedAfterLoss, st.TxNotCommitted, st.Replays, st.ReplaysDiverged)
}

// ledgerModes opens every mode's *sql.DB for a scenario on srv (dsnFor
// gives the DSN to use: the server's, or a proxy's, or a host list).
func ledgerModes(t *testing.T, srv *ledgerServer, scen, dsn, extra string) []*ledgerRun {
	t.Helper()
	guard := ""
	// The guard's key exists once the guard branch has landed: probe it.
	if db, err := hasql.Open(srv.driver, dsn+srv.sep()+"hasql.txguard=on"); err == nil {
		db.Close()
		guard = "&hasql.txguard=on"
	}
	base := srv.sep() + "hasql.outage_wait=15s&hasql.connect_timeout=2s" + extra
	type spec struct {
		mode   string
		dsn    string // "" for raw
		useRun bool
	}
	specs := []spec{{"raw", "", false}, {"defaults", base, false}}
	if guard != "" {
		specs = append(specs, spec{"guard", base + guard, false})
	}
	specs = append(specs, spec{"replay", base + "&hasql.replay=on" + guard, false})
	if ledgerRunTx != nil {
		specs = append(specs, spec{"runtx", base + guard, true})
	}
	var runs []*ledgerRun
	var ddl []string // every mode's tables, in one round trip of the admin client
	for _, sp := range specs {
		if srv.modes != nil && !srv.modes[sp.mode] {
			continue
		}
		r := &ledgerRun{mode: sp.mode, srv: srv, useRun: sp.useRun,
			acct: "l_" + scen + "_" + sp.mode + "_acct", xfer: "l_" + scen + "_" + sp.mode + "_xfer",
			attempted: map[string]bool{}, committed: map[string]bool{}, notCommitted: map[string]bool{},
			unknown: map[string]bool{}, errKinds: map[string]int{}}
		r.acct = strings.ReplaceAll(r.acct, "-", "_")
		r.xfer = strings.ReplaceAll(r.xfer, "-", "_")
		var vals []string
		for i := 1; i <= ledgerAccounts; i++ {
			vals = append(vals, fmt.Sprintf("(%d, %d)", i, ledgerStart))
		}
		ddl = append(ddl,
			"create table "+r.acct+" (id int primary key, bal int not null)",
			"insert into "+r.acct+" values "+strings.Join(vals, ", "),
			"create table "+r.xfer+" (req varchar(64) primary key, src int not null, dst int not null, amt int not null)")
		var err error
		if sp.dsn == "" {
			rdsn := dsn
			if srv.raw != "" {
				rdsn = srv.raw
			}
			r.db, err = sql.Open(srv.driver, rdsn)
		} else {
			r.db, err = hasql.Open(srv.driver, dsn+sp.dsn)
			if err == nil {
				r.hc, _ = hasql.ConnectorOf(r.db)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	if err := srv.admin(strings.Join(ddl, "; ")); err != nil {
		t.Fatalf("creating the ledgers: %v", err)
	}
	t.Cleanup(func() {
		for _, r := range runs {
			r.db.Close()
		}
	})
	return runs
}

// ledgerScenario runs every mode through one fault and returns the report
// rows.
func ledgerScenario(t *testing.T, srv *ledgerServer, scen, dsn, extra string, fault func(t *testing.T), query func(string) (string, error)) []string {
	t.Helper()
	var rows []string
	t.Run(scen, func(t *testing.T) {
		start := time.Now()
		runs := ledgerModes(t, srv, scen, dsn, extra)
		for _, r := range runs {
			for w := 0; w < ledgerWorkers; w++ {
				r.wg.Add(1)
				go r.worker(w, scen)
			}
		}
		stopAll := func() {
			for _, r := range runs {
				r.stop.Store(true)
			}
			for _, r := range runs {
				r.wg.Wait()
			}
		}
		defer stopAll()
		flowing := func(since []int64, min int64) bool {
			for i, r := range runs {
				if r.ok.Load() < since[i]+min {
					return false
				}
			}
			return true
		}
		counts := func() []int64 {
			c := make([]int64, len(runs))
			for i, r := range runs {
				c[i] = r.ok.Load()
			}
			return c
		}
		zero := make([]int64, len(runs))
		for d := time.Now().Add(15 * time.Second); !flowing(zero, 1); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(d) {
				t.Fatalf("%s: no load before the fault", scen)
			}
		}
		time.Sleep(ledgerSettle)
		faultAt := time.Now()
		fault(t)
		before := counts()
		faultEnd := time.Now()
		for d := time.Now().Add(20 * time.Second); !flowing(before, ledgerWorkers); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(d) {
				t.Errorf("%s: the load did not come back in every mode within 20s of the fault", scen)
				break
			}
		}
		t.Logf("%s: fault %v, load back in every mode %v after it", scen, faultEnd.Sub(faultAt).Round(time.Millisecond), time.Since(faultEnd).Round(time.Millisecond))
		time.Sleep(ledgerSettle)
		stopAll()
		verifyAt := time.Now()
		for _, r := range runs {
			r.db.Close()
			rows = append(rows, r.verify(t, scen, query))
		}
		t.Logf("%s: verified in %v", scen, time.Since(verifyAt).Round(time.Millisecond))
		t.Logf("%s took %v", scen, time.Since(start).Round(time.Millisecond))
	})
	return rows
}

func ledgerReport(t *testing.T, server string, rows []string) {
	t.Logf("ledger chaos, %s (%d workers per mode; columns: scenario, mode, committed, errors to the application, their kinds, told not committed, unknown to the application (landed), resolved committed / not committed by hasql, replays, divergences):", server, ledgerWorkers)
	t.Log("| scenario | mode | committed | errors | kinds | told not committed | unknown (landed) | resolved c / nc | replays | diverged |")
	t.Log("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		t.Log(r)
	}
	if ledgerRunTx == nil {
		t.Log("mode runtx not run: ledgerRunTx is not wired to hasql.RunTx in this build")
	}
}

func TestChaosLedgerPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: real servers")
	}
	p := startPostgres(t)
	pgAddr := "127.0.0.1:" + strconv.Itoa(p.Port)
	dsn := p.DSN("test")
	srv := &ledgerServer{driver: "pgx", dsn: dsn,
		admin: func(s string) error { return p.ExecIn("test", s) },
		query: func(s string) (string, error) { return p.QueryIn("test", s) },
		ph:    func(i int) string { return "$" + strconv.Itoa(i) },
	}
	var rows []string
	add := func(scen string, fault func(t *testing.T)) {
		rows = append(rows, ledgerScenario(t, srv, scen, dsn, "", fault, srv.query)...)
	}
	add("terminate-all", func(t *testing.T) {
		if err := p.Exec("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'test' and pid <> pg_backend_pid()"); err != nil {
			t.Fatal(err)
		}
	})
	add("kill9-backend", func(t *testing.T) {
		out, err := p.Query("select pid from pg_stat_activity where datname = 'test' and backend_type = 'client backend' and state <> 'idle' and pid <> pg_backend_pid()")
		if err != nil {
			t.Fatal(err)
		}
		pids := strings.Fields(out)
		if len(pids) == 0 {
			t.Fatal("no busy client backend to kill")
		}
		pid, _ := strconv.Atoi(pids[len(pids)/2])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	})
	add("restart-fast", func(t *testing.T) {
		if err := p.Restart("fast"); err != nil {
			t.Fatal(err)
		}
	})
	add("restart-immediate", func(t *testing.T) {
		if err := p.Restart("immediate"); err != nil {
			t.Fatal(err)
		}
	})
	for _, before := range []bool{false, true} {
		scen := "cut-after-commit"
		if before {
			scen = "cut-before-commit"
		}
		fp := newFaultProxy(t, pgAddr)
		pdsn := strings.Replace(dsn, pgAddr, fp.Addr(), 1)
		rows = append(rows, ledgerScenario(t, srv, scen, pdsn, "", func(t *testing.T) {
			// One cut per mode's worker, on average.
			cut := fp.Cut("commit", !before, ledgerWorkers*4)
			deadline := time.Now().Add(5 * time.Second)
			for cut.Made() < ledgerWorkers*4 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cut.Stop()
			t.Logf("%s: %d connections cut at COMMIT", scen, cut.Made())
		}, srv.query)...)
		fp.Close()
	}
	ledgerReport(t, "PostgreSQL", rows)
}

// TestChaosLedgerPgBouncer is the ledger workload through PgBouncer in
// transaction mode (issue 14, point 7) with hasql.pooler=transaction, in
// the modes that promise no error: RunTx, and replay with the guard. The
// backends PgBouncer holds are terminated, then PostgreSQL restarts.
func TestChaosLedgerPgBouncer(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: real servers")
	}
	p := startPostgres(t)
	// Eight server connections for the two modes' sixteen workers; after a
	// failed server login (the restart) PgBouncer tries again after 1 s,
	// not its default 15 s.
	b := testserver.StartPgBouncer(t, p, testserver.PgBouncerOptions{DefaultPoolSize: 8, ServerLoginRetry: 1})
	dsn := b.DSN("test")
	srv := &ledgerServer{driver: "pgx", dsn: dsn,
		admin: func(s string) error { return p.ExecIn("test", s) },
		query: func(s string) (string, error) { return p.QueryIn("test", s) },
		ph:    func(i int) string { return "$" + strconv.Itoa(i) },
		modes: map[string]bool{"replay": true, "runtx": true},
	}
	var rows []string
	add := func(scen string, fault func(t *testing.T)) {
		rows = append(rows, ledgerScenario(t, srv, scen, dsn, "&hasql.pooler=transaction", fault, srv.query)...)
	}
	add("pgb-terminate-all", func(t *testing.T) {
		if err := p.Exec("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'test' and pid <> pg_backend_pid()"); err != nil {
			t.Fatal(err)
		}
	})
	add("pgb-restart-fast", func(t *testing.T) {
		if err := p.Restart("fast"); err != nil {
			t.Fatal(err)
		}
	})
	ledgerReport(t, "PostgreSQL through PgBouncer", rows)
}

func TestChaosLedgerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: real servers")
	}
	prim := startPostgres(t)
	stby := prim.StartStandby(t)
	P := "127.0.0.1:" + strconv.Itoa(prim.Port)
	S := "127.0.0.1:" + strconv.Itoa(stby.Port)
	dsn := prim.DSN("test")
	srv := &ledgerServer{driver: "pgx", dsn: dsn,
		admin: func(s string) error { return prim.ExecIn("test", s) },
		query: func(s string) (string, error) { return stby.QueryIn("test", s) },
		ph:    func(i int) string { return "$" + strconv.Itoa(i) },
	}
	// The raw driver gets the host list the way pgx takes it.
	srv.raw = strings.Replace(dsn, P, P+","+S, 1) + "&target_session_attrs=read-write"
	rows := ledgerScenario(t, srv, "promote-standby", dsn, "&hasql.target=primary&hasql.hosts="+P+","+S, func(t *testing.T) {
		// Stop the primary (fast: it ships its last WAL to the standby)
		// and promote the standby.
		if err := prim.Stop("fast"); err != nil {
			t.Fatal(err)
		}
		if err := stby.Promote(); err != nil {
			t.Fatal(err)
		}
	}, srv.query)
	ledgerReport(t, "PostgreSQL failover", rows)
}

func TestChaosLedgerMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: real servers")
	}
	m := startMariaDB(t)
	// As in TestChaosMariaDB: commits must survive a kill -9 of the server.
	if err := m.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 2"); err != nil {
		t.Fatal(err)
	}
	dsn := m.DSN("test")
	srv := &ledgerServer{driver: "mysql", dsn: dsn,
		admin: func(s string) error { return m.ExecIn("test", s) },
		query: func(s string) (string, error) { return m.QueryIn("test", s) },
		ph:    func(int) string { return "?" },
	}
	var rows []string
	rows = append(rows, ledgerScenario(t, srv, "kill9-start", dsn, "", func(t *testing.T) {
		if err := m.Kill9(); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}, srv.query)...)
	rows = append(rows, ledgerScenario(t, srv, "kill-connections", dsn, "", func(t *testing.T) {
		out, err := m.Query("select id from information_schema.processlist where db = 'test' and id <> connection_id()")
		if err != nil {
			t.Fatal(err)
		}
		var kills []string
		for _, id := range strings.Fields(out) {
			kills = append(kills, "KILL "+id)
		}
		// One client run: a KILL of a connection that ended meanwhile
		// stops the rest, as in TestChaosMariaDB.
		_ = m.Exec(strings.Join(kills, "; "))
	}, srv.query)...)
	ledgerReport(t, "MariaDB", rows)
}
