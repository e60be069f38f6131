package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/internal/testserver"
)

// failoverConfig is what the failover subcommand's flags set.
type failoverConfig struct {
	Duration time.Duration // how long the load runs
	Restarts int           // server restarts, evenly spaced; odd ones -m fast, even ones -m immediate
	Workers  int           // workers per side
	Bucket   time.Duration // chart resolution
	Out      string        // SVG to write; "" writes none
	PNG      bool          // also write a PNG next to the SVG with rsvg-convert
	Stdout   io.Writer     // progress and summary
	TTY      bool          // Stdout is a terminal: progress is one line rewritten in place
}

const (
	// opTimeout bounds one operation. It is well above the time a restart
	// takes and below hasql's outage_wait (30s): an operation that hangs
	// this long is an error on either side.
	opTimeout = 15 * time.Second
	// errorPause is how long a worker pauses after an error, as a client
	// that backs off a little would; without it the raw side would count
	// thousands of "connection refused" per second while the server is down.
	errorPause = 20 * time.Millisecond
)

// sideStats is the outcome of one side's load.
type sideStats struct {
	Name         string
	Ops          int64         // operations attempted
	OK           int64         // operations that succeeded
	Errors       int64         // operations that returned an error to the application
	MaxGap       time.Duration // longest time without a successful operation
	GapAt        time.Duration // when that gap began
	OKPerBucket  []int
	ErrPerBucket []int
	ErrorTexts   []errorText // distinct error messages, most frequent first
}

// ErrorRate is Errors/Ops.
func (s *sideStats) ErrorRate() float64 {
	if s.Ops == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Ops)
}

type errorText struct {
	Text  string
	Count int
	First time.Duration // since the load started
}

// restartMark is one server restart: when it began and how long pg_ctl took.
type restartMark struct {
	Mode     string
	At, Took time.Duration
	Err      string
}

// failoverResult is everything the summary and the chart show.
type failoverResult struct {
	Workers    int
	Duration   time.Duration // the load's length as run
	Bucket     time.Duration
	Raw, Hasql sideStats
	Restarts   []restartMark
	// From hasql's connector: sessions re-established and operations it ran again.
	HasqlReconnects, HasqlRetries int64
	ServerVersion                 string
}

// side is one half of the comparison: a *sql.DB and its workers' records.
type side struct {
	name, key string
	db        *sql.DB
	ok, errs  atomic.Int64 // for the live progress line
	mu        sync.Mutex
	errTexts  map[string]*errorText
	events    [][]event // per worker; each worker appends to its own
}

type event struct {
	at time.Duration
	ok bool
}

var clientPort = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+->`)

func (s *side) noteError(at time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Client ports differ from one connection to the next: group by the rest.
	text := clientPort.ReplaceAllString(err.Error(), "${1}:*->")
	e := s.errTexts[text]
	if e == nil {
		e = &errorText{Text: text, First: at}
		s.errTexts[text] = e
	}
	e.Count++
}

// runFailover starts a throwaway PostgreSQL, runs the same workload through
// raw pgx and through hasql while restarting the server, prints progress and
// a summary, writes the chart and removes the server.
func runFailover(ctx context.Context, cfg failoverConfig) (res *failoverResult, err error) {
	if cfg.Duration <= 0 || cfg.Workers <= 0 || cfg.Restarts < 0 {
		return nil, fmt.Errorf("duration and workers must be positive and restarts not negative")
	}
	if cfg.Bucket <= 0 {
		cfg.Bucket = 250 * time.Millisecond
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	out := &printer{w: cfg.Stdout, tty: cfg.TTY}

	out.line("starting a throwaway PostgreSQL server ...")
	srv, err := testserver.NewPostgres(ctx, testserver.PostgresOptions{MaxConnections: 100})
	if err != nil {
		return nil, err
	}
	defer func() {
		srv.Destroy()
		out.line("stopped the server and removed %s", srv.Dir)
	}()
	dsn := srv.DSN("postgres") + "&connect_timeout=5" // a query part: hasql.* keys are appended with '&'
	rawDB, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	defer rawDB.Close()
	haDB, err := sql.Open("hasql", "pgx:"+dsn+"&hasql.retry=idempotent")
	if err != nil {
		return nil, err
	}
	defer haDB.Close()
	for _, db := range []*sql.DB{rawDB, haDB} {
		db.SetMaxOpenConns(cfg.Workers)
		db.SetMaxIdleConns(cfg.Workers)
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var version string
	if err := rawDB.QueryRowContext(setupCtx, "SHOW server_version").Scan(&version); err != nil {
		return nil, fmt.Errorf("connecting to the throwaway server: %w", err)
	}
	if _, err := rawDB.ExecContext(setupCtx, `CREATE TABLE demo_requests (
	id         text PRIMARY KEY,
	side       text NOT NULL,
	worker     int NOT NULL,
	seq        bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating the table: %w", err)
	}
	if err := haDB.PingContext(setupCtx); err != nil {
		return nil, fmt.Errorf("connecting through hasql: %w", err)
	}
	out.line("PostgreSQL %s on 127.0.0.1:%d; %d workers through raw pgx and %d through hasql (retry=idempotent) for %v, %d restarts",
		version, srv.Port, cfg.Workers, cfg.Workers, cfg.Duration, cfg.Restarts)

	sides := []*side{
		{name: "raw pgx", key: "raw", db: rawDB},
		{name: "hasql", key: "hasql", db: haDB},
	}
	for _, s := range sides {
		s.errTexts = map[string]*errorText{}
		s.events = make([][]event, cfg.Workers)
	}

	start := time.Now()
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for _, s := range sides {
		for w := 0; w < cfg.Workers; w++ {
			workers.Add(1)
			go func() {
				defer workers.Done()
				work(ctx, s, w, start, stop)
			}()
		}
	}

	// The restarts, at fixed times: evenly spaced over the run.
	var (
		restartMu sync.Mutex
		restarts  []restartMark
		current   atomic.Pointer[string] // the restart under way, for the progress line
		restarter sync.WaitGroup
	)
	restarter.Add(1)
	go func() {
		defer restarter.Done()
		for k := 1; k <= cfg.Restarts; k++ {
			at := cfg.Duration * time.Duration(k) / time.Duration(cfg.Restarts+1)
			t := time.NewTimer(time.Until(start.Add(at)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
			mode := "fast"
			if k%2 == 0 {
				mode = "immediate"
			}
			label := "restarting (-m " + mode + ")"
			current.Store(&label)
			began := time.Since(start)
			out.note("%5.1fs  pg_ctl restart -m %s", began.Seconds(), mode)
			err := srv.RestartContext(ctx, mode)
			m := restartMark{Mode: mode, At: began, Took: time.Since(start) - began}
			current.Store(nil)
			if err != nil {
				m.Err = err.Error()
				out.note("%5.1fs  restart failed: %v", time.Since(start).Seconds(), err)
			} else {
				out.note("%5.1fs  server is back (the restart took %.2fs)", time.Since(start).Seconds(), m.Took.Seconds())
			}
			restartMu.Lock()
			restarts = append(restarts, m)
			restartMu.Unlock()
		}
	}()

	// Live progress once per second until the load ends.
	end := time.NewTimer(cfg.Duration)
	tick := time.NewTicker(time.Second)
	var lastOK, lastErr [2]int64
	sec := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-tick.C:
			sec++
			var b strings.Builder
			fmt.Fprintf(&b, "%3ds", sec)
			for i, s := range sides {
				ok, errs := s.ok.Load(), s.errs.Load()
				fmt.Fprintf(&b, " | %-7s %6d ops/s %5d err", s.name, ok-lastOK[i], errs-lastErr[i])
				lastOK[i], lastErr[i] = ok, errs
			}
			fmt.Fprintf(&b, " | errors so far: raw %d, hasql %d", lastErr[0], lastErr[1])
			if l := current.Load(); l != nil {
				b.WriteString(" | " + *l)
			}
			out.progress(b.String())
		}
	}
	tick.Stop()
	end.Stop()
	loadEnd := time.Since(start)
	close(stop)
	workers.Wait()
	restarter.Wait()
	out.endProgress()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res = &failoverResult{
		Workers:       cfg.Workers,
		Duration:      loadEnd,
		Bucket:        cfg.Bucket,
		Restarts:      restarts,
		ServerVersion: version,
	}
	res.Raw = summarize(sides[0], loadEnd, cfg.Bucket)
	res.Hasql = summarize(sides[1], loadEnd, cfg.Bucket)
	if c, ok := hasql.ConnectorOf(haDB); ok {
		st := c.Stats()
		res.HasqlReconnects, res.HasqlRetries = st.Reconnects, st.Retries
	}
	printSummary(cfg.Stdout, res)
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, renderSVG(res), 0o644); err != nil {
			return res, err
		}
		fmt.Fprintf(cfg.Stdout, "chart: %s\n", cfg.Out)
		if cfg.PNG {
			png := strings.TrimSuffix(cfg.Out, ".svg") + ".png"
			if err := writePNG(ctx, cfg.Out, png); err != nil {
				return res, err
			}
			fmt.Fprintf(cfg.Stdout, "chart: %s\n", png)
		}
	}
	for _, m := range restarts {
		if m.Err != "" {
			return res, fmt.Errorf("a restart failed: %s", m.Err)
		}
	}
	return res, nil
}

// work is one worker: it alternates an insert of a new request and a read of
// the last one it inserted, until stop closes. Every operation is marked
// Idempotent (a no-op for raw pgx): the insert is keyed by the request id
// with ON CONFLICT DO NOTHING, so running it twice is harmless.
func work(ctx context.Context, s *side, w int, start time.Time, stop <-chan struct{}) {
	var lastID string
	evs := s.events[w][:0]
	defer func() { s.events[w] = evs }()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		opCtx = hasql.Idempotent(opCtx)
		var err error
		if seq%2 == 1 && lastID != "" {
			err = read(opCtx, s.db, lastID)
		} else {
			id := fmt.Sprintf("%s-%d-%d", s.key, w, seq)
			_, err = s.db.ExecContext(opCtx,
				"INSERT INTO demo_requests (id, side, worker, seq) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
				id, s.key, w, seq)
			if err == nil {
				lastID = id
			} else {
				err = fmt.Errorf("insert: %w", err)
			}
		}
		cancel()
		at := time.Since(start)
		if ctx.Err() != nil {
			return // interrupted: not the database's doing
		}
		evs = append(evs, event{at: at, ok: err == nil})
		if err == nil {
			s.ok.Add(1)
			continue
		}
		s.errs.Add(1)
		s.noteError(at, err)
		time.Sleep(errorPause)
	}
}

// read reads request id back. It does what QueryRowContext(...).Scan does —
// Next, Scan, then Close, whose error counts — step by step, so that an
// error says which step it came from.
func read(ctx context.Context, db *sql.DB, id string) error {
	rows, err := db.QueryContext(ctx, "SELECT seq FROM demo_requests WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("read, query: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read, first row: %w", err)
		}
		return fmt.Errorf("read: request %s was inserted but is missing", id)
	}
	var seq int64
	if err := rows.Scan(&seq); err != nil {
		return fmt.Errorf("read, scan: %w", err)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read, rows.Close: %w", err)
	}
	return nil
}

// summarize turns one side's records into its totals, buckets and gaps.
func summarize(s *side, loadEnd, bucket time.Duration) sideStats {
	st := sideStats{Name: s.name}
	// Whole buckets; the few milliseconds past the last go into it.
	n := max(1, int((loadEnd+bucket/2)/bucket))
	st.OKPerBucket = make([]int, n)
	st.ErrPerBucket = make([]int, n)
	var oks []time.Duration
	for _, evs := range s.events {
		for _, e := range evs {
			st.Ops++
			i := min(int(e.at/bucket), n-1)
			if e.ok {
				st.OK++
				st.OKPerBucket[i]++
				oks = append(oks, e.at)
			} else {
				st.Errors++
				st.ErrPerBucket[i]++
			}
		}
	}
	sort.Slice(oks, func(i, j int) bool { return oks[i] < oks[j] })
	prev := time.Duration(0)
	for _, t := range append(oks, loadEnd) {
		if g := t - prev; g > st.MaxGap {
			st.MaxGap, st.GapAt = g, prev
		}
		prev = max(prev, t)
	}
	for _, e := range s.errTexts {
		st.ErrorTexts = append(st.ErrorTexts, *e)
	}
	sort.Slice(st.ErrorTexts, func(i, j int) bool {
		a, b := st.ErrorTexts[i], st.ErrorTexts[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.First < b.First
	})
	return st
}

func printSummary(w io.Writer, r *failoverResult) {
	fmt.Fprintf(w, "\n%-8s %9s %9s %8s %11s   %s\n", "", "ops", "ok", "errors", "error rate", "max gap without a successful op")
	for _, s := range []*sideStats{&r.Raw, &r.Hasql} {
		fmt.Fprintf(w, "%-8s %9d %9d %8d %10.3f%%   %.2fs (from %.2fs)\n",
			s.Name, s.Ops, s.OK, s.Errors, 100*s.ErrorRate(), s.MaxGap.Seconds(), s.GapAt.Seconds())
	}
	fmt.Fprintln(w)
	for _, m := range r.Restarts {
		fmt.Fprintf(w, "restart -m %-9s at %5.2fs, pg_ctl took %.2fs\n", m.Mode, m.At.Seconds(), m.Took.Seconds())
	}
	fmt.Fprintf(w, "hasql: %d sessions re-established, %d operations run again\n", r.HasqlReconnects, r.HasqlRetries)
	for _, s := range []*sideStats{&r.Raw, &r.Hasql} {
		if len(s.ErrorTexts) == 0 {
			continue
		}
		fmt.Fprintf(w, "errors %s returned to the application:\n", s.Name)
		for i, e := range s.ErrorTexts {
			if i == 8 {
				fmt.Fprintf(w, "  ... and %d more distinct messages\n", len(s.ErrorTexts)-i)
				break
			}
			fmt.Fprintf(w, "  %6d x (first at %.2fs) %s\n", e.Count, e.First.Seconds(), e.Text)
		}
	}
}

// writePNG renders the SVG with rsvg-convert (Debian: apt-get install librsvg2-bin).
func writePNG(ctx context.Context, svg, png string) error {
	bin, err := exec.LookPath("rsvg-convert")
	if err != nil {
		return fmt.Errorf("-png needs rsvg-convert: apt-get install librsvg2-bin (%v)", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-b", "white", "-z", "2", "-o", png, svg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	return nil
}

// printer serialises the progress line and the notes between ticks. On a
// terminal the progress line is rewritten in place; elsewhere each is a line.
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	pending bool // a progress line without a newline is on screen
	last    string
}

func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// note prints a line between progress updates and puts the progress line back.
func (p *printer) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
	if p.tty && p.last != "" {
		fmt.Fprint(p.w, p.last)
		p.pending = true
	}
}

func (p *printer) progress(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = s
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+s)
		p.pending = true
		return
	}
	fmt.Fprintln(p.w, s)
}

func (p *printer) endProgress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
	p.last = ""
}

func (p *printer) clearLocked() {
	if p.pending {
		fmt.Fprint(p.w, "\r\033[K")
		p.pending = false
	}
}
