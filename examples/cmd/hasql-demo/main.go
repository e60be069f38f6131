// Command hasql-demo shows what hasql does for an application while its
// database restarts.
//
//	cd examples && go run ./cmd/hasql-demo failover
//
// failover starts a throwaway PostgreSQL server on a free loopback port (as
// root through runuser -u postgres; otherwise directly), then runs the same
// load side by side: -workers goroutines through raw pgx
// (sql.Open("pgx", dsn)) and as many through hasql
// (sql.Open("hasql", "pgx:"+dsn+"&hasql.retry=idempotent")). Each worker
// alternates an INSERT of a new request, keyed by a unique request id with
// ON CONFLICT DO NOTHING so that running it twice is harmless, and a SELECT of
// the request it inserted last; both are marked hasql.Idempotent(ctx). Any
// error either call returns to the application counts as an error. While the
// load runs the server is restarted -restarts times at evenly spaced moments
// (pg_ctl restart -m fast, then -m immediate, alternating).
//
// It prints ops/s and errors per side once a second, a summary table at the
// end (ops, errors, error rate, the longest time without a successful
// operation), and writes an SVG timeline (-out, by default the repository's
// docs/failover.svg; -png also renders a PNG with rsvg-convert). The server
// is stopped and removed at the end, also on Ctrl-C.
//
// Without the PostgreSQL server binaries it says how to install them and
// exits with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: hasql-demo <command> [flags]

commands:
  failover   restart a throwaway PostgreSQL under load, raw pgx next to hasql,
             and chart what the application saw (hasql-demo failover -h)
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "failover":
		return failoverCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "hasql-demo: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func failoverCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasql-demo failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := failoverConfig{Stdout: stdout, Bucket: 250 * time.Millisecond}
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "how long the load runs")
	fs.IntVar(&cfg.Restarts, "restarts", 2, "server restarts during the load, evenly spaced (-m fast, -m immediate, alternating)")
	fs.IntVar(&cfg.Workers, "workers", 4, "workers on each side (raw pgx and hasql)")
	fs.StringVar(&cfg.Out, "out", defaultChartPath(), "SVG chart to write (empty: none)")
	fs.BoolVar(&cfg.PNG, "png", false, "also write a PNG next to the SVG (needs rsvg-convert: apt-get install librsvg2-bin)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: hasql-demo failover [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hasql-demo failover: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.Out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.Out), 0o755); err != nil {
			fmt.Fprintf(stderr, "hasql-demo: %v\n", err)
			return 1
		}
	}
	if f, ok := stdout.(*os.File); ok {
		cfg.TTY = isTerminal(f)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := runFailover(ctx, cfg)
	switch {
	case errors.Is(err, testserver.ErrNoPostgres):
		fmt.Fprintf(stderr, "hasql-demo: %v\n%s\n", err, testserver.PostgresInstallHint)
		return 2
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(stderr, "hasql-demo: interrupted")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "hasql-demo: %v\n", err)
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// defaultChartPath is docs/failover.svg in the hasql repository that holds
// the working directory (found by its go.mod), relative to the working
// directory; failover.svg when there is none.
func defaultChartPath() string {
	wd, err := os.Getwd()
	if err != nil {
		return "failover.svg"
	}
	for dir := wd; ; {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(string(b)) == "github.com/hasqlgo/hasql" {
			p := filepath.Join(dir, "docs", "failover.svg")
			if rel, err := filepath.Rel(wd, p); err == nil {
				return rel
			}
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "failover.svg"
		}
		dir = parent
	}
}

func modulePath(gomod string) string {
	for _, line := range strings.Split(gomod, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
