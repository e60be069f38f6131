// Command hasql-recovery measures the README's recovery figures: what an
// application sees while its database restarts, through the raw driver and
// through hasql.
//
//	cd examples && go run ./cmd/hasql-recovery
//
// It starts a throwaway PostgreSQL and a throwaway MariaDB on free loopback
// ports (as root the servers run as the postgres and mysql users), then, one
// server after the other, runs four sides concurrently, each with -workers
// goroutines and its own *sql.DB (max open = max idle = -workers):
//
//   - raw reads:    sql.Open("pgx", dsn) / sql.Open("mysql", dsn)
//   - hasql reads:  sql.Open("hasql", "pgx:"+dsn+"&hasql.retry=idempotent")
//     (likewise "mysql:"): hasql's default settings plus retry=idempotent
//   - raw writes and hasql writes likewise (-writes=false leaves them out)
//
// Reads are point SELECTs by primary key, writes are INSERTs keyed by a
// unique id (ON CONFLICT DO NOTHING / INSERT IGNORE), so running one twice is
// harmless; every operation's context is marked hasql.Idempotent (a no-op for
// the raw drivers). A worker that gets an error pauses -error-pause and goes
// on.
//
// Under that load the server is restarted -restarts times: PostgreSQL with
// pg_ctl restart -m fast and -m immediate alternating, MariaDB with SIGTERM
// (clean shutdown) and SIGKILL (crash) alternating, each followed by a new
// mariadbd on the same port. Restarts are spaced by -steady of steady load,
// counted from the moment every side has succeeded again.
//
// For each restart an independent poller opens a fresh connection of the
// raw driver (its driver.Connector, no pool) and pings it, starting an
// attempt every -poll (5 ms) from the moment the restart begins, whether or
// not earlier attempts have finished (at most 8 in flight: a restarting
// server answers some attempts slowly, and one slow attempt must not blind
// the poller). The server is down from the end of the first failed attempt;
// it "accepts connections again" at the end of the first successful attempt
// started after that. Per side and restart:
//
//   - errors: operations that returned an error to the application between
//     this restart's start and the next one's (or the end of the load);
//   - recovery: end of the first successful operation that ended after the
//     poller's last failed attempt began − the moment the poller saw the
//     server back. It can be slightly negative: the poller's resolution is
//     one poll (the interval plus one connect).
//
// Every physical connect attempt is counted: for the raw sides by a counting
// driver.Connector, for the hasql sides by a FnConnect entry callback that
// leaves the outcome alone; "connects/s while down" is the attempts started
// between the poller's first failed connect and the server being back, per
// second of that time. hasql's port checks (Stats().PortChecks: bare TCP
// dials by its outage prober to a port that refused) are shown beside them.
//
// It prints, as markdown, the command line, the machine's nproc, a summary
// (per server and workload: raw and hasql recovery median and p90, errors
// returned to the application, connects/s while down, hasql port checks/s;
// with -trace also how soon after the port opened again hasql's prober made
// its first connect), the table server × side → outages, errors per outage (mean, max), recovery median
// and p95 (linear interpolation between ranks) and max, a line per restart,
// and how often the process itself was not scheduled for over 15 ms (a
// goroutine sleeping 1 ms woke late): on a small machine under this load
// that is part of every figure. -json writes the raw data (- for stdout, the
// tables then go to stderr), including every failed poll. -trace also
// records, per hasql side, its HA events (hasql.WithEvents) and every
// physical connect with its duration and whether a worker or hasql's
// background prober made it (FnConnect entry and exit callbacks that leave
// the outcome alone): the timeline that explains a slow recovery.
// -raw=false runs the hasql sides alone, without the raw clients' reconnect
// storm. Everything is bounded by -timeout; the servers are stopped and their
// directories removed at the end, on error and on Ctrl-C.
//
// Without the server binaries it says how to install them and exits with
// status 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// report is everything the tool prints and writes with -json.
type report struct {
	Command   string          `json:"command"`
	Nproc     int             `json:"nproc"`
	GoVersion string          `json:"go_version"`
	Platform  string          `json:"platform"`
	Workers   int             `json:"workers"`
	Restarts  int             `json:"restarts"`
	SteadyMs  float64         `json:"steady_ms"`
	PauseMs   float64         `json:"error_pause_ms"`
	PollMs    float64         `json:"poll_ms"`
	Servers   []*serverResult `json:"servers"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasql-recovery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{OpTimeout: 15 * time.Second}
	var servers string
	fs.IntVar(&cfg.Restarts, "restarts", 10, "restarts per server (PostgreSQL: -m fast / -m immediate alternating; MariaDB: SIGTERM / SIGKILL alternating)")
	fs.IntVar(&cfg.Workers, "workers", 4, "workers on each side")
	fs.DurationVar(&cfg.Steady, "steady", 1500*time.Millisecond, "steady load before the first restart and after each recovery")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "overall deadline")
	fs.DurationVar(&cfg.ErrorPause, "error-pause", 5*time.Millisecond, "a worker's pause after an error")
	fs.DurationVar(&cfg.Poll, "poll", 5*time.Millisecond, "the independent poller's interval")
	fs.StringVar(&servers, "servers", "postgres,mariadb", "servers to measure, comma-separated")
	fs.BoolVar(&cfg.Writes, "writes", true, "also measure idempotent writes (a second row per driver)")
	fs.BoolVar(&cfg.Trace, "trace", false, "record hasql's HA events (hasql.WithEvents) and physical connects (FnConnect callbacks that only observe) in the JSON")
	fs.BoolVar(&cfg.Raw, "raw", true, "run the raw-driver sides (false: hasql sides only, without the raw clients' reconnect storm)")
	fs.StringVar(&cfg.JSON, "json", "", "write the raw data as JSON to this file (- for stdout)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: hasql-recovery [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hasql-recovery: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.Restarts < 0 || cfg.Workers <= 0 || cfg.Steady < 0 || cfg.Timeout <= 0 || cfg.Poll <= 0 || cfg.ErrorPause < 0 {
		fmt.Fprintln(stderr, "hasql-recovery: -workers, -timeout and -poll must be positive, the others not negative")
		return 2
	}
	for _, s := range strings.Split(servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case "postgres", "mariadb":
			cfg.Servers = append(cfg.Servers, s)
		case "":
		default:
			fmt.Fprintf(stderr, "hasql-recovery: unknown server %q (postgres, mariadb)\n", s)
			return 2
		}
	}
	if len(cfg.Servers) == 0 {
		fmt.Fprintln(stderr, "hasql-recovery: no server to measure")
		return 2
	}
	out := stdout
	if cfg.JSON == "-" {
		out = stderr
	}
	var progMu sync.Mutex
	say := func(format string, a ...any) {
		progMu.Lock()
		defer progMu.Unlock()
		fmt.Fprintf(stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("the overall deadline (-timeout %v) passed", cfg.Timeout))
	defer cancel()

	rep := &report{
		Command:   commandLine(args),
		Nproc:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Workers:   cfg.Workers,
		Restarts:  cfg.Restarts,
		SteadyMs:  ms(cfg.Steady),
		PauseMs:   ms(cfg.ErrorPause),
		PollMs:    ms(cfg.Poll),
	}
	err := measure(ctx, cfg, rep, say)
	if len(rep.Servers) > 0 {
		printReport(out, rep)
		if cfg.JSON != "" {
			if jerr := writeJSON(cfg.JSON, stdout, rep); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	switch {
	case errors.Is(err, testserver.ErrNoPostgres):
		fmt.Fprintf(stderr, "hasql-recovery: %v\n%s\n", err, testserver.PostgresInstallHint)
		return 2
	case errors.Is(err, testserver.ErrNoMariaDB):
		fmt.Fprintf(stderr, "hasql-recovery: %v\n%s\n", err, testserver.MariaDBInstallHint)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "hasql-recovery: %v\n", err)
		return 1
	}
	for _, s := range rep.Servers {
		if s.Incomplete != "" {
			fmt.Fprintf(stderr, "hasql-recovery: %s: %s\n", s.Label, s.Incomplete)
			return 1
		}
		for _, o := range s.Outages {
			if o.Err != "" || o.Poll.Err != "" {
				return 1
			}
		}
	}
	return 0
}

// measure starts the servers (concurrently), measures them one after the
// other and destroys them.
func measure(ctx context.Context, cfg config, rep *report, say func(string, ...any)) error {
	maxConns := 4*cfg.Workers + 20
	targets := make([]*target, len(cfg.Servers))
	errs := make([]error, len(cfg.Servers))
	var wg sync.WaitGroup
	say("starting throwaway servers: %s", strings.Join(cfg.Servers, ", "))
	for i, name := range cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch name {
			case "postgres":
				targets[i], errs[i] = newPGTarget(ctx, maxConns)
			case "mariadb":
				targets[i], errs[i] = newMariaTarget(ctx, maxConns)
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, t := range targets {
			if t != nil {
				t.Destroy()
				say("stopped %s and removed %s", t.Label, t.Dir)
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, t := range targets {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		res, err := runServer(ctx, t, cfg, say)
		if res != nil {
			rep.Servers = append(rep.Servers, res)
		}
		if err != nil {
			return err
		}
		if res.Incomplete != "" {
			return nil
		}
	}
	return nil
}

// commandLine is how this run can be repeated: go run when the binary is
// go run's temporary one.
func commandLine(args []string) string {
	name := os.Args[0]
	if strings.Contains(name, "go-build") || strings.HasSuffix(name, ".test") {
		name = "go run ./cmd/hasql-recovery"
	}
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func writeJSON(path string, stdout io.Writer, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// figures is one row of the main table.
type figures struct {
	Outages      int
	ErrMean      float64
	ErrMax       int
	Recovered    int
	RecMedian    float64
	RecP95       float64
	RecMax       float64
	TotalErrors  int
	BaselineErrs int
	RecP90       float64
	// While down (summed over the outages with a down time): connect
	// attempts and port checks per second of down time.
	ConnPerSec, PortPerSec float64
}

func sideFigures(s *serverResult, i int) figures {
	var f figures
	var recs []float64
	var downMs float64
	var conns int
	var ports int64
	for _, o := range s.Outages {
		if i >= len(o.Sides) {
			continue
		}
		f.Outages++
		od := o.Sides[i]
		if o.DownMs != nil {
			downMs += *o.DownMs
			conns += od.ConnectsDown
			ports += od.PortChecksDown
		}
		f.TotalErrors += od.Errors
		f.ErrMax = max(f.ErrMax, od.Errors)
		if od.RecoveryMs != nil {
			recs = append(recs, *od.RecoveryMs)
		}
	}
	if f.Outages > 0 {
		f.ErrMean = float64(f.TotalErrors) / float64(f.Outages)
	}
	f.Recovered = len(recs)
	f.RecMedian, f.RecP95, f.RecMax = percentile(recs, 0.5), percentile(recs, 0.95), maxOr(recs)
	f.RecP90 = percentile(recs, 0.9)
	f.ConnPerSec, f.PortPerSec = nan(), nan()
	if downMs > 0 {
		f.ConnPerSec = float64(conns) / (downMs / 1000)
		f.PortPerSec = float64(ports) / (downMs / 1000)
	}
	if i < len(s.Sides) {
		f.BaselineErrs = s.Sides[i].BaselineErrors
	}
	return f
}

// percentile interpolates linearly between the closest ranks; NaN for none.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return nan()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	x := p * float64(len(s)-1)
	lo := int(x)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (x-float64(lo))*(s[lo+1]-s[lo])
}

func slicesMax(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

func nan() float64 {
	var zero float64
	return zero / zero
}

func fmtMs(v float64) string {
	if v != v {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\n## hasql recovery figures\n\n")
	fmt.Fprintf(w, "- command: `%s`\n", rep.Command)
	fmt.Fprintf(w, "- machine: nproc %d, %s, %s\n", rep.Nproc, rep.Platform, rep.GoVersion)
	for _, s := range rep.Servers {
		fmt.Fprintf(w, "- %s %s on %s; restarts: %s (alternating)\n", s.Label, s.Version, s.Addr, strings.Join(s.Restarts, " / "))
	}
	fmt.Fprintf(w, "- load: %d workers per side, each side its own *sql.DB; reads: point SELECT by primary key; writes: INSERT of a unique id (ON CONFLICT DO NOTHING / INSERT IGNORE); every context hasql.Idempotent; %v of steady load between restarts; a worker pauses %v after an error\n",
		rep.Workers, time.Duration(rep.SteadyMs*1e6), time.Duration(rep.PauseMs*1e6))
	fmt.Fprintf(w, "- hasql sides: `sql.Open(\"hasql\", \"<driver>:\"+dsn+\"&hasql.retry=idempotent\")`, all other settings default\n")
	fmt.Fprintf(w, "- recovery = end of the first successful operation after the restart − end of the first successful connect+ping of an independent poller (a fresh raw connection started every %v, up to 8 in flight); resolution ≈ one poll, so values slightly below 0 occur\n", time.Duration(rep.PollMs*1e6))
	fmt.Fprintf(w, "- errors per outage: errors returned to the application from the restart's start to the next restart's (raw: depends on the %v pause after an error)\n\n", time.Duration(rep.PauseMs*1e6))

	printSummary(w, rep)

	fmt.Fprintf(w, "| server | workload | side | outages | errors/outage mean | errors/outage max | recovery median (ms) | recovery p95 (ms) | recovery max (ms) |\n")
	fmt.Fprintf(w, "|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Servers {
		for i, sd := range s.Sides {
			f := sideFigures(s, i)
			rec := ""
			if f.Recovered < f.Outages {
				rec = fmt.Sprintf(" (%d of %d recovered)", f.Recovered, f.Outages)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %.1f | %d | %s%s | %s | %s |\n",
				s.Label, sd.Workload, sd.Side, f.Outages, f.ErrMean, f.ErrMax,
				fmtMs(f.RecMedian), rec, fmtMs(f.RecP95), fmtMs(f.RecMax))
		}
	}
	fmt.Fprintln(w)
	for _, s := range rep.Servers {
		var downs []float64
		for _, o := range s.Outages {
			if o.DownMs != nil {
				downs = append(downs, *o.DownMs)
			}
		}
		fmt.Fprintf(w, "%s: server down (poller: first failed connect → first successful one) median %s ms, max %s ms", s.Label, fmtMs(percentile(downs, 0.5)), fmtMs(maxOr(downs)))
		for _, sd := range s.Sides {
			if sd.BaselineErrors > 0 {
				fmt.Fprintf(w, "; %s %ss: %d errors before the first restart", sd.Side, sd.Workload, sd.BaselineErrors)
			}
			if sd.Hasql {
				fmt.Fprintf(w, "; %s %ss: %d sessions re-established, %d operations run again", sd.Side, sd.Workload, sd.Reconnects, sd.Retries)
			}
		}
		if n := len(s.Stalls); n > 0 {
			worst := 0.0
			for _, st := range s.Stalls {
				worst = max(worst, st.GapMs)
			}
			fmt.Fprintf(w, "; %d scheduling stalls over %v (a 1 ms sleep woke late; worst %.0f ms)", n, stallMin, worst)
		}
		fmt.Fprintln(w)
		if s.Incomplete != "" {
			fmt.Fprintf(w, "%s: INCOMPLETE: %s\n", s.Label, s.Incomplete)
		}
	}

	fmt.Fprintf(w, "\n### per restart (errors / recovery ms)\n\n")
	for _, s := range rep.Servers {
		if len(s.Outages) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | mode | down (ms) |", s.Label)
		for _, sd := range s.Sides {
			fmt.Fprintf(w, " %s %ss |", sd.Side, sd.Workload)
		}
		fmt.Fprintf(w, "\n|---:|---|---:|%s\n", strings.Repeat("---:|", len(s.Sides)))
		for _, o := range s.Outages {
			down := "–"
			if o.DownMs != nil {
				down = fmtMs(*o.DownMs)
			}
			fmt.Fprintf(w, "| %d | %s | %s |", o.N, o.Mode, down)
			for _, od := range o.Sides {
				rec := "–"
				if od.RecoveryMs != nil {
					rec = fmtMs(*od.RecoveryMs)
				}
				fmt.Fprintf(w, " %d / %s |", od.Errors, rec)
			}
			fmt.Fprintln(w)
			if o.Err != "" || o.Poll.Err != "" {
				fmt.Fprintf(w, "\nrestart %d: %s %s\n\n", o.N, o.Err, o.Poll.Err)
			}
		}
		fmt.Fprintln(w)
	}
	// The errors hasql let through, if any: the thing to look at.
	for _, s := range rep.Servers {
		for _, o := range s.Outages {
			for _, od := range o.Sides {
				if !strings.HasPrefix(od.Side, "hasql") || od.Errors == 0 {
					continue
				}
				fmt.Fprintf(w, "%s restart %d (%s), %s %ss, errors returned to the application:\n", s.Label, o.N, o.Mode, od.Side, od.Workload)
				for i, e := range od.ErrorTexts {
					if i == 5 {
						fmt.Fprintf(w, "  … %d more distinct messages\n", len(od.ErrorTexts)-i)
						break
					}
					fmt.Fprintf(w, "  %5d × (first %.1f ms after the restart began) %s\n", e.Count, e.FirstMs, e.Text)
				}
			}
		}
	}
}

// printSummary prints the table of the recovery figures the README quotes:
// per server and workload, the raw driver's and hasql's recovery (median and
// p90) with the errors they returned to the application, and the connect
// attempts per second each made while the server was down.
func printSummary(w io.Writer, rep *report) {
	fmt.Fprintf(w, "### summary\n\n")
	fmt.Fprintf(w, "| server | workload | raw recovery median / p90 (ms) | raw errors to the app (per outage) | hasql recovery median / p90 (ms) | hasql errors to the app | connects/s while down: raw | connects/s while down: hasql | hasql port checks/s |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Servers {
		for _, wl := range []string{"read", "write"} {
			raw, hq := -1, -1
			for i, sd := range s.Sides {
				if sd.Workload != wl {
					continue
				}
				if sd.Hasql {
					hq = i
				} else {
					raw = i
				}
			}
			if hq < 0 {
				continue
			}
			h := sideFigures(s, hq)
			rawRec, rawErr, rawConn := "–", "–", "–"
			if raw >= 0 {
				r := sideFigures(s, raw)
				rawRec = fmtMs(r.RecMedian) + " / " + fmtMs(r.RecP90)
				rawErr = fmt.Sprintf("%d (%.0f)", r.TotalErrors, r.ErrMean)
				rawConn = fmtRate(r.ConnPerSec)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s | %d | %s | %s | %s |\n",
				s.Label, wl, rawRec, rawErr, fmtMs(h.RecMedian), fmtMs(h.RecP90), h.TotalErrors,
				rawConn, fmtRate(h.ConnPerSec), fmtRate(h.PortPerSec))
		}
	}
	var probe []string
	for _, s := range rep.Servers {
		for i, sd := range s.Sides {
			var v []float64
			for _, o := range s.Outages {
				if i < len(o.Sides) && o.Sides[i].ProbeAfterOpenMs != nil {
					v = append(v, *o.Sides[i].ProbeAfterOpenMs)
				}
			}
			if len(v) > 0 {
				probe = append(probe, fmt.Sprintf("| %s | %s | %d | %s | %s | %s |", s.Label, sd.Workload, len(v), fmtMs(percentile(v, 0.5)), fmtMs(percentile(v, 0.9)), fmtMs(maxOr(v))))
			}
		}
	}
	if len(probe) > 0 {
		fmt.Fprintf(w, "\nhasql's first background connect after the port opened again (-trace; the poller's first attempt after its last refused one), ms:\n\n| server | workload | outages | median | p90 | max |\n|---|---|---:|---:|---:|---:|\n%s\n", strings.Join(probe, "\n"))
	}
	fmt.Fprintf(w, "\nrecovery: first successful operation − the server accepting connections again (poller); connects: physical connect attempts started while the server was down (poller's first failed connect → server back), per second of down time; port checks: hasql's bare TCP dials to a port that refused (Stats().PortChecks, counted over each outage's window), which reach no server process while nothing listens\n\n")
}

func fmtRate(v float64) string {
	if v != v {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func maxOr(v []float64) float64 {
	if len(v) == 0 {
		return nan()
	}
	return slicesMax(v)
}
