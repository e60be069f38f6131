package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasqlgo/hasql"
)

// config is what the flags set.
type config struct {
	Restarts   int           // restarts per server
	Workers    int           // workers per side
	Steady     time.Duration // steady load before the first restart and after each recovery
	Timeout    time.Duration // overall deadline
	ErrorPause time.Duration // how long a worker pauses after an error
	OpTimeout  time.Duration // bound on one operation
	Poll       time.Duration // the poller's interval
	Servers    []string      // "postgres", "mariadb"
	Writes     bool          // also run the write workload
	Trace      bool          // record hasql's HA events and connect attempts (observation only) in the JSON
	Raw        bool          // run the raw-driver sides (off: hasql sides only, no reconnect storm)
	JSON       string        // raw data: a path, "-" for stdout
}

// recoverWait bounds how long the restart loop waits for every side to
// succeed again after the server is back: above hasql's outage_wait (30s).
const recoverWait = 40 * time.Second

// Records of one side's operations, relative to the phase's start.
type opEvent struct {
	start, end time.Duration
	ok         bool
}

type errEvent struct {
	at   time.Duration
	text string
}

// side is one *sql.DB and its workers under one workload.
type side struct {
	Name     string // "hasql pgx"
	Hasql    bool
	Workload string // "read" or "write"
	key      string // for write ids
	db       *sql.DB
	ops      [][]opEvent // per worker
	errs     [][]errEvent
	lastOK   atomic.Int64 // latest end of a successful op, ns since the phase start
	nErrs    atomic.Int64

	evMu   sync.Mutex
	events []eventRec

	// Every physical connect attempt's start, since the phase start: for
	// the raw sides from a counting connector, for the hasql sides from a
	// FnConnect entry callback that only observes.
	atMu     sync.Mutex
	attempts []time.Duration
	// hasql sides: Stats().PortChecks at each restart's start (portChecks
	// reads it; 0 for a hasql without it).
	portAt []int64
}

func (s *side) noteAttempt(at time.Duration) {
	s.atMu.Lock()
	s.attempts = append(s.attempts, at)
	s.atMu.Unlock()
}

// attemptsIn counts the connect attempts that started in [from, to).
func (s *side) attemptsIn(from, to time.Duration) int {
	s.atMu.Lock()
	defer s.atMu.Unlock()
	n := 0
	for _, a := range s.attempts {
		if a >= from && a < to {
			n++
		}
	}
	return n
}

// portChecks reads the hasql side's Stats().PortChecks by name, so that
// the tool also builds against a hasql from before the port watch (then 0).
func (s *side) portChecks() int64 {
	if !s.Hasql {
		return 0
	}
	c, ok := hasql.ConnectorOf(s.db)
	if !ok {
		return 0
	}
	f := reflect.ValueOf(c.Stats()).FieldByName("PortChecks")
	if !f.IsValid() {
		return 0
	}
	return f.Int()
}

// countingConnector counts a raw driver's connect attempts.
type countingConnector struct {
	driver.Connector
	note func()
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.note()
	return c.Connector.Connect(ctx)
}

func (s *side) label() string { return s.Name + " " + s.Workload + "s" }

func (s *side) noteOK(end time.Duration) {
	for {
		old := s.lastOK.Load()
		if int64(end) <= old || s.lastOK.CompareAndSwap(old, int64(end)) {
			return
		}
	}
}

// eventRec is one hasql HA event or connect attempt (with -trace).
type eventRec struct {
	AtMs     float64 `json:"at_ms"` // since the phase start (in outage records: since the restart began)
	Kind     string  `json:"kind"`  // an EventKind, or "connect" (AtMs is its start)
	DurMs    float64 `json:"dur_ms,omitempty"`
	By       string  `json:"by,omitempty"` // for connects: "worker" or "background" (the outage prober, pool growth)
	Sessions int     `json:"sessions,omitempty"`
	Err      string  `json:"err,omitempty"`
}

// workerKey marks a worker's context, so that a traced connect can tell a
// worker's own from hasql's background ones (the outage prober).
type workerKey struct{}

func (s *side) record(e eventRec) {
	s.evMu.Lock()
	s.events = append(s.events, e)
	s.evMu.Unlock()
}

// Results, as printed and as written with -json. Times are milliseconds.

type textCount struct {
	Text    string  `json:"text"`
	Count   int     `json:"count"`
	FirstMs float64 `json:"first_ms"`
}

type sideResult struct {
	Side           string     `json:"side"`
	Hasql          bool       `json:"hasql"`
	Workload       string     `json:"workload"`
	Ops            int        `json:"ops"`
	OK             int        `json:"ok"`
	Errors         int        `json:"errors"`
	BaselineErrors int        `json:"baseline_errors"` // before the first restart
	Reconnects     int64      `json:"hasql_reconnects,omitempty"`
	Retries        int64      `json:"hasql_retries,omitempty"`
	Events         []eventRec `json:"hasql_events,omitempty"`
}

type pollRec struct {
	Attempts    int                                  `json:"attempts"`
	FirstFailMs float64                              `json:"first_fail_ms"` // start of the first failed connect after the restart began
	LastFailMs  float64                              `json:"last_fail_ms"`  // the latest start of a failed connect before the server was back
	UpStartMs   float64                              `json:"up_start_ms"`   // start of the first successful connect after that
	UpMs        float64                              `json:"up_ms"`         // its end: "the server accepts connections again"
	Failures    []textCount                          `json:"failures"`      // what the failed connects said
	Err         string                               `json:"err,omitempty"` // the poller gave up
	Log         []pollTry                            `json:"log,omitempty"` // the attempts from the first failed one on (at most 400)
	abs         struct{ lastFail, up time.Duration } // since the phase start
}

// pollTry is one attempt of the poller, in ms since the restart began.
type pollTry struct {
	StartMs float64 `json:"start_ms"`
	EndMs   float64 `json:"end_ms"`
	Err     string  `json:"err,omitempty"`
}

type outageSide struct {
	Side         string      `json:"side"`
	Workload     string      `json:"workload"`
	Errors       int         `json:"errors"`
	FirstErrMs   *float64    `json:"first_error_ms,omitempty"`
	LastErrMs    *float64    `json:"last_error_ms,omitempty"`
	RecoveryMs   *float64    `json:"recovery_ms"` // first success after the restart − up_ms; null: none
	FirstOKStart *float64    `json:"first_ok_start_ms,omitempty"`
	FirstOKEnd   *float64    `json:"first_ok_end_ms,omitempty"`
	ErrorTexts   []textCount `json:"error_texts,omitempty"`
	Events       []eventRec  `json:"hasql_events,omitempty"`
	// While the server was down (the poller's first failed connect → the
	// server back): physical connect attempts of this side, and (hasql)
	// the prober's bare TCP port checks, which reach no server process
	// while nothing listens. Per second: divided by down_ms.
	ConnectsDown int `json:"connects_down"`
	// With -trace (hasql sides): hasql's first connect attempt made in the
	// background (the outage prober) after the port opened again (the
	// poller's first attempt after its last "connection refused") − that
	// moment. How long the prober's timing let a listening server wait.
	ProbeAfterOpenMs *float64 `json:"probe_after_open_ms,omitempty"`
	PortChecksDown   int64    `json:"port_checks_outage"` // in the whole outage window (Stats is cumulative)
}

type outageRec struct {
	N       int          `json:"n"`
	Mode    string       `json:"mode"`
	Command string       `json:"command"`
	T0Ms    float64      `json:"t0_ms"`  // when the restart began, since the phase start; other times since t0
	CmdMs   float64      `json:"cmd_ms"` // when the restart command returned (the server was ready)
	Poll    pollRec      `json:"poll"`
	DownMs  *float64     `json:"down_ms,omitempty"` // first failed connect → up
	Sides   []outageSide `json:"sides"`
	Err     string       `json:"err,omitempty"`
	t0      time.Duration
}

type serverResult struct {
	Key        string       `json:"server"`
	Label      string       `json:"label"`
	Version    string       `json:"version"`
	Addr       string       `json:"addr"`
	LoadMs     float64      `json:"load_ms"`
	Sides      []sideResult `json:"sides"`
	Outages    []outageRec  `json:"outages"`
	Incomplete string       `json:"incomplete,omitempty"`
	Restarts   []string     `json:"restart_modes"` // how each mode restarts the server, in the order used
	// Stalls are the times a goroutine sleeping 1 ms woke more than
	// stallMin late: the process (or the machine) was not running us.
	Stalls []stall `json:"stalls,omitempty"`
}

type stall struct {
	AtMs  float64 `json:"at_ms"` // since the phase start: when the late wake-up happened
	GapMs float64 `json:"gap_ms"`
}

const stallMin = 15 * time.Millisecond

// watchStalls records scheduling stalls until stop closes.
func watchStalls(start time.Time, stop <-chan struct{}) (done func() []stall) {
	var out []stall
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			now := time.Now()
			if gap := now.Sub(last); gap > stallMin {
				out = append(out, stall{AtMs: ms(now.Sub(start)), GapMs: ms(gap)})
			}
			last = now
		}
	}()
	return func() []stall {
		<-fin
		return out
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func msp(d time.Duration) *float64 {
	v := ms(d)
	return &v
}

var clientPort = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+->`)

// errText groups errors that differ only in a client port or a pid.
func errText(err error) string {
	s := clientPort.ReplaceAllString(err.Error(), "${1}:*->")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// runServer runs the load on one server's four sides and restarts it
// cfg.Restarts times. On ctx's end it returns what it measured so far with
// Incomplete set.
func runServer(ctx context.Context, t *target, cfg config, say func(string, ...any)) (*serverResult, error) {
	res := &serverResult{Key: t.Key, Label: t.Label, Addr: t.Addr}
	for _, m := range t.Modes {
		res.Restarts = append(res.Restarts, t.ModeText[m])
	}
	hasqlDSN := t.DSN + "&hasql.retry=idempotent"
	workloads := []string{"read"}
	if cfg.Writes {
		workloads = append(workloads, "write")
	}
	var sides []*side
	defer func() {
		for _, s := range sides {
			s.db.Close()
		}
	}()
	phaseStart := time.Now() // reset when the load starts (events before it have negative times)
	var startMu sync.Mutex
	sinceStart := func(at time.Time) time.Duration {
		startMu.Lock()
		defer startMu.Unlock()
		return at.Sub(phaseStart)
	}
	for _, wl := range workloads {
		if cfg.Raw {
			ic, err := connectorFor(t.Driver, t.DSN)
			if err != nil {
				return nil, err
			}
			rs := &side{Name: t.RawName, Workload: wl, key: "raw-" + wl}
			rs.db = sql.OpenDB(countingConnector{ic, func() { rs.noteAttempt(sinceStart(time.Now())) }})
			sides = append(sides, rs)
		}
		hs := &side{Name: t.HasqlName, Hasql: true, Workload: wl, key: "hasql-" + wl}
		var err error
		if cfg.Trace {
			// hasql.Open is sql.Open("hasql", driver+":"+dsn) with options;
			// WithEvents only observes.
			hs.db, err = hasql.Open(t.Driver, hasqlDSN, hasql.WithEvents(func(e hasql.Event) {
				r := eventRec{AtMs: ms(sinceStart(e.Time)), Kind: e.Kind.String(), Sessions: e.Sessions}
				if e.Err != nil {
					r.Err = shortErr(e.Err)
				}
				hs.record(r)
			}))
			if err == nil {
				traceConnects(hs, sinceStart)
			}
		} else {
			hs.db, err = sql.Open("hasql", t.Driver+":"+hasqlDSN)
		}
		if err != nil {
			return nil, err
		}
		if !cfg.Trace {
			countConnects(hs, sinceStart) // traceConnects counts them too (one entry callback per Fn)
		}
		sides = append(sides, hs)
	}
	for _, s := range sides {
		s.db.SetMaxOpenConns(cfg.Workers)
		s.db.SetMaxIdleConns(cfg.Workers)
		s.ops = make([][]opEvent, cfg.Workers)
		s.errs = make([][]errEvent, cfg.Workers)
	}

	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sides[0].db.QueryRowContext(setupCtx, t.VersionQ).Scan(&res.Version); err != nil {
		return nil, fmt.Errorf("%s: connecting: %w", t.Label, err)
	}
	for _, q := range t.Setup {
		if _, err := sides[0].db.ExecContext(setupCtx, q); err != nil {
			return nil, fmt.Errorf("%s: setting up: %w", t.Label, err)
		}
	}
	for _, s := range sides {
		// Warm up: the pools hold their connections before the clock starts.
		var wg sync.WaitGroup
		errs := make([]error, cfg.Workers)
		for w := 0; w < cfg.Workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var v string
				errs[w] = s.db.QueryRowContext(setupCtx, t.ReadSQL, 1+w%kvRows).Scan(&v)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", t.Label, s.label(), err)
		}
	}
	poller, err := connectorFor(t.Driver, t.DSN)
	if err != nil {
		return nil, err
	}
	say("%s %s on %s: %d sides × %d workers, %d restarts", t.Label, res.Version, t.Addr, len(sides), cfg.Workers, cfg.Restarts)

	startMu.Lock()
	phaseStart = time.Now()
	start := phaseStart
	startMu.Unlock()
	stop := make(chan struct{})
	stalls := watchStalls(start, stop)
	var workers sync.WaitGroup
	for _, s := range sides {
		for w := 0; w < cfg.Workers; w++ {
			workers.Add(1)
			go func() {
				defer workers.Done()
				work(ctx, s, w, t, cfg, start, stop)
			}()
		}
	}
	stopLoad := func() time.Duration {
		end := time.Since(start)
		close(stop)
		workers.Wait()
		return end
	}

	var outages []*outageRec
	sleep := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-tm.C:
			return true
		}
	}
	ok := sleep(cfg.Steady)
	for k := 0; ok && k < cfg.Restarts; k++ {
		mode := t.Modes[k%len(t.Modes)]
		o := &outageRec{N: k + 1, Mode: mode, Command: t.ModeText[mode]}
		errsBefore := make([]int64, len(sides))
		for i, s := range sides {
			errsBefore[i] = s.nErrs.Load()
		}
		pollCtx, pollCancel := context.WithCancel(ctx)
		pollDone := make(chan pollRec, 1)
		for _, s := range sides {
			s.portAt = append(s.portAt, s.portChecks())
		}
		o.t0 = time.Since(start)
		go func() { pollDone <- pollServer(pollCtx, poller, start, o.t0, cfg.Poll) }()
		err := t.Restart(ctx, mode)
		cmdEnd := time.Since(start)
		o.CmdMs = ms(cmdEnd - o.t0)
		if err != nil {
			o.Err = err.Error()
		}
		// The poller stops by itself once it has seen the server down and
		// up again; if the restart failed it may never.
		var pr pollRec
		if err != nil {
			pollCancel()
			pr = <-pollDone
		} else {
			select {
			case pr = <-pollDone:
			case <-time.After(30 * time.Second):
				pollCancel()
				pr = <-pollDone
			}
		}
		pollCancel()
		o.Poll = pr
		outages = append(outages, o)
		if pr.Err != "" || o.Err != "" {
			say("%s restart %d/%d (%s): %s%s", t.Label, k+1, cfg.Restarts, o.Command, o.Err, pr.Err)
			if ctx.Err() != nil || o.Err != "" {
				break // a server that did not restart measures nothing more
			}
			ok = sleep(cfg.Steady)
			continue
		}
		// Wait until every side has succeeded since the server came back,
		// then give the load cfg.Steady before the next restart.
		var waitErr string
		deadline := time.Now().Add(recoverWait)
		for _, s := range sides {
			for time.Duration(s.lastOK.Load()) <= pr.abs.lastFail {
				if ctx.Err() != nil {
					break
				}
				if time.Now().After(deadline) {
					waitErr = fmt.Sprintf("%s did not succeed within %v of the server coming back", s.label(), recoverWait)
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s restart %d/%d (%s): server down %.0f ms (poller), restart command %.0f ms; errors:",
			t.Label, k+1, cfg.Restarts, o.Command, ms(pr.abs.up-(o.t0+time.Duration(pr.FirstFailMs*1e6))), o.CmdMs)
		for i, s := range sides {
			fmt.Fprintf(&b, " %s %d,", s.label(), s.nErrs.Load()-errsBefore[i])
		}
		s := strings.TrimSuffix(b.String(), ",")
		if waitErr != "" {
			s += "; " + waitErr
		}
		say("%s", s)
		if ctx.Err() != nil {
			break
		}
		ok = sleep(cfg.Steady)
	}
	loadEnd := stopLoad()
	for _, s := range sides {
		s.portAt = append(s.portAt, s.portChecks())
	}
	res.LoadMs = ms(loadEnd)
	res.Stalls = stalls()
	if err := ctx.Err(); err != nil {
		res.Incomplete = fmt.Sprintf("stopped after %d of %d restarts: %v", len(outages), cfg.Restarts, context.Cause(ctx))
	}
	analyze(res, sides, outages, loadEnd)
	return res, nil
}

// countConnects notes the start of every physical connect of a hasql side
// (a FnConnect entry callback that leaves the outcome alone).
func countConnects(s *side, since func(time.Time) time.Duration) {
	c, ok := hasql.ConnectorOf(s.db)
	if !ok {
		return
	}
	c.Callbacks().Register(hasql.FnConnect, hasql.Entry, func(*hasql.Call) error {
		s.noteAttempt(since(time.Now()))
		return hasql.Continue
	})
}

// traceConnects records every physical connect of a hasql side, with
// entry and exit callbacks on FnConnect that leave the outcome alone.
func traceConnects(s *side, since func(time.Time) time.Duration) {
	c, ok := hasql.ConnectorOf(s.db)
	if !ok {
		return
	}
	var mu sync.Mutex
	began := map[*hasql.Call]time.Time{}
	c.Callbacks().Register(hasql.FnConnect, hasql.Entry, func(call *hasql.Call) error {
		now := time.Now()
		s.noteAttempt(since(now))
		mu.Lock()
		began[call] = now
		mu.Unlock()
		return hasql.Continue
	})
	c.Callbacks().Register(hasql.FnConnect, hasql.Exit, func(call *hasql.Call) error {
		now := time.Now()
		mu.Lock()
		t0, ok := began[call]
		delete(began, call)
		mu.Unlock()
		if !ok {
			t0 = now
		}
		r := eventRec{AtMs: ms(since(t0)), Kind: "connect", DurMs: ms(now.Sub(t0)), By: "background"}
		if call.Ctx.Value(workerKey{}) != nil {
			r.By = "worker"
		}
		if call.Err != nil {
			r.Err = shortErr(call.Err)
		}
		s.record(r)
		return hasql.Continue
	})
}

// work is one worker: idempotent operations, marked hasql.Idempotent (a
// no-op for the raw drivers), back to back; after an error it pauses
// cfg.ErrorPause, as a client that backs off a little would.
func work(ctx context.Context, s *side, w int, t *target, cfg config, start time.Time, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(len(s.key))))
	ops := s.ops[w][:0]
	errs := s.errs[w][:0]
	defer func() { s.ops[w], s.errs[w] = ops, errs }()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		begin := time.Since(start)
		opCtx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		opCtx = hasql.Idempotent(context.WithValue(opCtx, workerKey{}, w))
		var err error
		if s.Workload == "read" {
			var v string
			err = s.db.QueryRowContext(opCtx, t.ReadSQL, 1+rng.IntN(kvRows)).Scan(&v)
		} else {
			_, err = s.db.ExecContext(opCtx, t.WriteSQL, fmt.Sprintf("%s-%d-%d", s.key, w, seq), s.key, w, seq)
		}
		cancel()
		end := time.Since(start)
		if ctx.Err() != nil {
			return // the deadline or Ctrl-C, not the database
		}
		ops = append(ops, opEvent{start: begin, end: end, ok: err == nil})
		if err == nil {
			s.noteOK(end)
			continue
		}
		s.nErrs.Add(1)
		errs = append(errs, errEvent{at: end, text: errText(err)})
		if cfg.ErrorPause > 0 {
			time.Sleep(cfg.ErrorPause)
		}
	}
}

// pollServer is the independent judge of "the server accepts connections
// again": from t0 on, every interval, it opens a fresh connection of the raw
// driver, pings it and closes it. Attempts start on the interval whether or
// not the previous one has finished (at most maxInflight at once): while a
// restarting server is slow to answer, one slow attempt must not blind the
// poller. The server is down from the end of the first failed attempt; it is
// back at the end of the first successful attempt that started after that.
func pollServer(ctx context.Context, c driver.Connector, start time.Time, t0, interval time.Duration) (r pollRec) {
	const maxInflight = 8
	type result struct {
		begin, end time.Duration
		err        error
	}
	pctx, cancel := context.WithCancel(ctx)
	results := make(chan result, maxInflight)
	inflight := 0
	launch := func() {
		inflight++
		begin := time.Since(start)
		go func() {
			err := probeOnce(pctx, c, time.Second)
			results <- result{begin, time.Since(start), err}
		}()
	}
	fails := map[string]*textCount{}
	var order []string
	var down bool
	var firstFailEnd time.Duration
	defer func() {
		cancel()
		for ; inflight > 0; inflight-- {
			if res := <-results; down && len(r.Log) < 400 {
				r.Log = append(r.Log, pollTry{StartMs: ms(res.begin - t0), EndMs: ms(res.end - t0), Err: "abandoned (the server was already back)"})
			}
		}
		for _, k := range order {
			r.Failures = append(r.Failures, *fails[k])
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	launch()
	for {
		select {
		case <-ctx.Done():
			r.Err = "the poller stopped before the server was back: " + ctx.Err().Error()
			if !down {
				r.Err = "the poller never saw the server down"
			}
			return r
		case <-tick.C:
			if inflight < maxInflight {
				launch()
			}
			continue
		case res := <-results:
			inflight--
			r.Attempts++
			if ctx.Err() != nil {
				continue
			}
			after := down && res.begin >= firstFailEnd
			if (res.err != nil || after) && len(r.Log) < 400 {
				t := pollTry{StartMs: ms(res.begin - t0), EndMs: ms(res.end - t0)}
				if res.err != nil {
					t.Err = shortErr(res.err)
				}
				r.Log = append(r.Log, t)
			}
			if res.err != nil {
				if !down {
					down, firstFailEnd = true, res.end
					r.FirstFailMs = ms(res.begin - t0)
				}
				if res.begin > r.abs.lastFail {
					r.abs.lastFail = res.begin
					r.LastFailMs = ms(res.begin - t0)
				}
				text := errText(res.err)
				if fails[text] == nil {
					fails[text] = &textCount{Text: text, FirstMs: ms(res.begin - t0)}
					order = append(order, text)
				}
				fails[text].Count++
				continue
			}
			if after {
				r.UpStartMs, r.UpMs = ms(res.begin-t0), ms(res.end-t0)
				r.abs.up = res.end
				return r
			}
		}
	}
}

// portOpened finds in the poller's log when the server's port opened again:
// the start of the first attempt after the last one refused ("connection
// refused": nothing listened), and that last refused attempt's start.
func portOpened(log []pollTry) (open, lastRefused float64, ok bool) {
	found := false
	for _, t := range log {
		if strings.Contains(t.Err, "connection refused") && (!found || t.StartMs > lastRefused) {
			lastRefused, found = t.StartMs, true
		}
	}
	if !found {
		return 0, 0, false
	}
	for _, t := range log {
		if t.StartMs > lastRefused && (!ok || t.StartMs < open) {
			open, ok = t.StartMs, true
		}
	}
	return open, lastRefused, ok
}

// shortErr is the end of an error's text, where drivers say what happened.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i > 12 {
		s = s[i+2:]
	}
	return s
}

// analyze turns the workers' records into the per-outage and per-side
// figures. Outage k's window runs from its restart's start to the next
// restart's start (or the end of the load): every error in it is counted
// against it. Recovery is the end of the first successful operation that
// ended after the poller's last failed connect, minus the end of the
// poller's first successful connect.
func analyze(res *serverResult, sides []*side, outages []*outageRec, loadEnd time.Duration) {
	for i, o := range outages {
		winEnd := loadEnd
		if i+1 < len(outages) {
			winEnd = outages[i+1].t0
		}
		o.T0Ms = ms(o.t0)
		if o.Poll.Err == "" && o.Err == "" {
			o.DownMs = msp(o.Poll.abs.up - (o.t0 + time.Duration(o.Poll.FirstFailMs*1e6)))
		}
		for _, s := range sides {
			od := outageSide{Side: s.Name, Workload: s.Workload}
			texts := map[string]*textCount{}
			var order []string
			for _, errs := range s.errs {
				for _, e := range errs {
					if e.at < o.t0 || e.at >= winEnd {
						continue
					}
					od.Errors++
					rel := e.at - o.t0
					if od.FirstErrMs == nil || ms(rel) < *od.FirstErrMs {
						od.FirstErrMs = msp(rel)
					}
					if od.LastErrMs == nil || ms(rel) > *od.LastErrMs {
						od.LastErrMs = msp(rel)
					}
					if texts[e.text] == nil {
						texts[e.text] = &textCount{Text: e.text, FirstMs: ms(rel)}
						order = append(order, e.text)
					}
					tc := texts[e.text]
					tc.Count++
					tc.FirstMs = min(tc.FirstMs, ms(rel))
				}
			}
			for _, k := range order {
				od.ErrorTexts = append(od.ErrorTexts, *texts[k])
			}
			sort.SliceStable(od.ErrorTexts, func(a, b int) bool { return od.ErrorTexts[a].Count > od.ErrorTexts[b].Count })
			if i+1 < len(s.portAt) {
				od.PortChecksDown = s.portAt[i+1] - s.portAt[i]
			}
			if o.DownMs != nil {
				od.ConnectsDown = s.attemptsIn(o.t0+time.Duration(o.Poll.FirstFailMs*1e6), o.Poll.abs.up)
				var first *opEvent
				for _, ops := range s.ops {
					for j := range ops {
						e := &ops[j]
						if e.ok && e.end > o.Poll.abs.lastFail && e.end < winEnd && (first == nil || e.end < first.end) {
							first = e
						}
					}
				}
				if first != nil {
					od.RecoveryMs = msp(first.end - o.Poll.abs.up)
					od.FirstOKStart, od.FirstOKEnd = msp(first.start-o.t0), msp(first.end-o.t0)
				}
			}
			s.evMu.Lock()
			for _, e := range s.events {
				at := time.Duration(e.AtMs * 1e6)
				if at >= o.t0 && at < winEnd {
					e.AtMs = ms(at - o.t0)
					od.Events = append(od.Events, e)
				}
			}
			s.evMu.Unlock()
			if open, lastRefused, ok := portOpened(o.Poll.Log); ok && s.Hasql {
				for _, e := range od.Events {
					if e.Kind == "connect" && e.By == "background" && e.AtMs >= lastRefused {
						v := e.AtMs - open
						if od.ProbeAfterOpenMs == nil || v < *od.ProbeAfterOpenMs {
							od.ProbeAfterOpenMs = &v
						}
					}
				}
			}
			o.Sides = append(o.Sides, od)
		}
		res.Outages = append(res.Outages, *o)
	}
	var firstT0 time.Duration = loadEnd
	if len(outages) > 0 {
		firstT0 = outages[0].t0
	}
	for _, s := range sides {
		sr := sideResult{Side: s.Name, Hasql: s.Hasql, Workload: s.Workload}
		for w := range s.ops {
			for _, e := range s.ops[w] {
				sr.Ops++
				if e.ok {
					sr.OK++
				} else {
					sr.Errors++
				}
			}
			for _, e := range s.errs[w] {
				if e.at < firstT0 {
					sr.BaselineErrors++
				}
			}
		}
		if s.Hasql {
			if c, ok := hasql.ConnectorOf(s.db); ok {
				st := c.Stats()
				sr.Reconnects, sr.Retries = st.Reconnects, st.Retries
			}
			s.evMu.Lock()
			sr.Events = append([]eventRec(nil), s.events...)
			s.evMu.Unlock()
		}
		res.Sides = append(res.Sides, sr)
	}
}
