// Command peersuite runs the database drivers' own test suites through hasql ("peer-suite runs"):
// pgx's stdlib tests (stdlib/sql_test.go) and go-sql-driver/mysql's package tests, taken from the
// module cache at the versions in hasql's go.mod. Nothing of those drivers is copied into this
// repository: at run time their test files are copied into a temporary directory, rewritten
// mechanically so that every database they open is opened through hasql, and compiled there; the
// unmodified files are compiled too, for a raw run with the real driver.
//
// Each top-level test runs in a process of its own (-test.run '^TestX$'), once raw and once per
// hasql configuration (defaults, and hasql.stmtcache=0), against a throwaway server started with
// internal/testserver on a loopback port. The configurations run side by side, each on a database
// of its own; the tests of one configuration run one after the other. The result is a markdown
// table on stdout: per configuration the tests passing, skipped and failing, the tests failing raw
// (not compared), and the tests that pass raw and fail through hasql with the first lines of their
// failure.
//
// The mysql package's tests are internal to package mysql, and hasql imports go-sql-driver/mysql,
// so the rewritten copy takes another module path and registers its own driver under another name;
// its tests open "hasqlmysql", which is "mysql:"+dsn through hasql over the real driver.
//
// The exit status is 1 when a test that passes raw fails through hasql and is not listed in the
// expected-differences file (expected.txt beside this file), 2 when the run itself failed, else 0.
//
// Run it from the repository:
//
//	go run ./internal/peersuite              # both suites
//	go run ./internal/peersuite -suite pgx   # one suite
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	flagSuite    = flag.String("suite", "all", "suite to run: pgx, mysql or all")
	flagRun      = flag.String("run", "", "only the top-level tests whose name matches this substring")
	flagExpected = flag.String("expected", "", "expected-differences file (default internal/peersuite/expected.txt in the repository)")
	// pgx's TestConnConcurrency opens and closes about 1,500 connections (50 goroutines under
	// database/sql's default MaxIdleConns of 2), raw and through hasql alike, whose sessions
	// follow database/sql's knobs; three configurations side by side on a loaded two-core
	// machine took over two minutes for it.
	flagTimeout = flag.Duration("timeout", 5*time.Minute, "limit for one test process")
	flagKeep    = flag.Bool("keep", false, "keep the temporary directory")
	flagVerbose = flag.Bool("v", false, "print each test's result to stderr as it comes")
	flagSerial  = flag.Bool("serial", false, "run the configurations one after the other, not side by side")
)

// config is one way of running a suite's tests: raw, or through hasql with some settings.
type config struct {
	name  string   // column title
	bin   string   // test binary
	env   []string // added to the environment
	hasql bool     // through hasql (compared with raw)
}

// result is the outcome of one test in one configuration.
type result struct {
	status string // "pass", "fail", "skip"
	out    string // failure excerpt
}

// suite is a prepared suite: its test binaries built, its tests listed.
type suite struct {
	name    string
	tests   []string
	configs []config
	dir     string // working directory for the test processes
	env     []string
	cleanup func()
	reset   func(config) error // when not nil, run before each test process: a fresh database
}

func main() {
	flag.Parse()
	os.Exit(run())
}

func run() int {
	start := time.Now()
	repo, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peersuite:", err)
		return 2
	}
	expPath := *flagExpected
	if expPath == "" {
		expPath = filepath.Join(repo, "internal", "peersuite", "expected.txt")
	}
	expected, err := readExpected(expPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peersuite:", err)
		return 2
	}
	tmp, err := os.MkdirTemp("", "hasql-peersuite-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "peersuite:", err)
		return 2
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "peersuite: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var names []string
	switch *flagSuite {
	case "all":
		names = []string{"pgx", "mysql"}
	case "pgx", "mysql":
		names = []string{*flagSuite}
	default:
		fmt.Fprintln(os.Stderr, "peersuite: -suite must be pgx, mysql or all")
		return 2
	}
	status := 0
	fmt.Println("# hasql peer-suite runs")
	for _, name := range names {
		t0 := time.Now()
		var s *suite
		var err error
		switch name {
		case "pgx":
			s, err = preparePgx(ctx, repo, filepath.Join(tmp, "pgx"))
		case "mysql":
			s, err = prepareMySQL(ctx, repo, filepath.Join(tmp, "mysql"))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "peersuite: %s: %v\n", name, err)
			status = 2
			continue
		}
		res := runSuite(ctx, s)
		s.cleanup()
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "peersuite: interrupted")
			return 2
		}
		if report(s, res, expected[name], time.Since(t0)) && status == 0 {
			status = 1
		}
	}
	fmt.Printf("\nTotal time: %s\n", time.Since(start).Round(time.Second))
	return status
}

// runSuite runs every test of s in every configuration, one process each: the configurations side
// by side (each on a database of its own), the tests of one configuration one after the other.
func runSuite(ctx context.Context, s *suite) map[string]map[string]result {
	res := map[string]map[string]result{}
	for _, c := range s.configs {
		res[c.name] = map[string]result{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.configs {
		runConfig := func() {
			for _, t := range s.tests {
				if ctx.Err() != nil {
					return
				}
				var r result
				if err := resetDB(s, c); err != nil {
					r = result{status: "fail", out: "peersuite: resetting the database: " + err.Error()}
				} else {
					r = runOne(ctx, s, c, t)
				}
				mu.Lock()
				res[c.name][t] = r
				if *flagVerbose {
					fmt.Fprintf(os.Stderr, "%s %-11s %-4s %s\n", s.name, c.name, r.status, t)
				}
				mu.Unlock()
			}
		}
		if *flagSerial {
			runConfig()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runConfig()
		}()
	}
	wg.Wait()
	return res
}

func resetDB(s *suite, c config) error {
	if s.reset == nil {
		return nil
	}
	return s.reset(c)
}

// runOne runs test t of suite s in configuration c, in a process of its own.
func runOne(ctx context.Context, s *suite, c config, t string) result {
	ctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, "-test.run", "^"+t+"$", "-test.count=1", "-test.v",
		"-test.timeout", (*flagTimeout - 5*time.Second).String())
	cmd.Dir = s.dir
	cmd.Env = append(append(os.Environ(), s.env...), c.env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case err == nil && strings.Contains(text, "--- SKIP: "+t+" "):
		return result{status: "skip"}
	case err == nil && strings.Contains(text, "--- PASS: "+t+" "):
		return result{status: "pass"}
	case err == nil:
		return result{status: "fail", out: "no PASS line for the test:\n" + text}
	}
	if ctx.Err() == context.DeadlineExceeded {
		return result{status: "fail", out: fmt.Sprintf("timed out after %s\n%s", *flagTimeout, text)}
	}
	return result{status: "fail", out: text}
}

// report prints the table for suite s and reports whether a test that passes raw fails through
// hasql without being listed in expected.
func report(s *suite, res map[string]map[string]result, expected map[string]string, took time.Duration) bool {
	raw := s.configs[0]
	fmt.Printf("\n## %s (%d top-level tests, %s)\n\n", s.name, len(s.tests), took.Round(time.Second))
	fmt.Println("| configuration | pass | skip | fail | pass raw, fail here | of which not expected |")
	fmt.Println("|---|---|---|---|---|---|")
	type diff struct {
		cfg, test, excerpt, reason string
	}
	var diffs []diff
	unexpected := false
	for _, c := range s.configs {
		var pass, skip, fail, differ, unexp int
		for _, t := range s.tests {
			r := res[c.name][t]
			switch r.status {
			case "pass":
				pass++
			case "skip":
				skip++
			default:
				fail++
			}
			if c.hasql && res[raw.name][t].status == "pass" && r.status != "pass" {
				differ++
				reason, ok := expected[t]
				if !ok {
					reason, ok = expected[t+"@"+c.name]
				}
				if !ok {
					unexp++
					unexpected = true
					reason = "NOT EXPECTED"
				}
				diffs = append(diffs, diff{c.name, t, excerpt(r.out), reason})
			}
		}
		d, u := fmt.Sprint(differ), fmt.Sprint(unexp)
		if !c.hasql {
			d, u = "-", "-"
		}
		fmt.Printf("| %s | %d | %d | %d | %s | %s |\n", c.name, pass, skip, fail, d, u)
	}
	var rawFail []string
	for _, t := range s.tests {
		if res[raw.name][t].status == "fail" {
			rawFail = append(rawFail, t)
		}
	}
	if len(rawFail) > 0 {
		fmt.Printf("\nFailing raw (not compared):\n\n")
		for _, t := range rawFail {
			fmt.Printf("- %s: %s\n", t, cell(excerpt(res[raw.name][t].out)))
		}
	}
	// Other configurations without hasql (the raw driver through PgBouncer): what fails there,
	// for comparison with the hasql configuration beside them.
	for _, c := range s.configs[1:] {
		if c.hasql {
			continue
		}
		var failing []string
		for _, t := range s.tests {
			if res[c.name][t].status == "fail" {
				failing = append(failing, fmt.Sprintf("- %s: %s", t, cell(excerpt(res[c.name][t].out))))
			}
		}
		if len(failing) > 0 {
			fmt.Printf("\nFailing in %s (raw driver, not compared):\n\n%s\n", c.name, strings.Join(failing, "\n"))
		}
	}
	if len(diffs) > 0 {
		fmt.Printf("\nTests that pass raw and fail through hasql:\n\n")
		fmt.Println("| configuration | test | expected? | first lines of the failure |")
		fmt.Println("|---|---|---|---|")
		sort.SliceStable(diffs, func(i, j int) bool { return diffs[i].test < diffs[j].test })
		for _, d := range diffs {
			fmt.Printf("| %s | %s | %s | %s |\n", d.cfg, d.test, cell(d.reason), cell(d.excerpt))
		}
	}
	// Tests listed as expected that no longer differ: worth removing from the list.
	var fixed []string
	for t := range expected {
		name, cfgName, _ := strings.Cut(t, "@")
		if _, ran := res[raw.name][name]; !ran {
			continue
		}
		differs := false
		for _, c := range s.configs {
			if !c.hasql || cfgName != "" && c.name != cfgName {
				continue
			}
			if res[raw.name][name].status == "pass" && res[c.name][name].status != "pass" {
				differs = true
			}
		}
		if !differs {
			fixed = append(fixed, t)
		}
	}
	if len(fixed) > 0 {
		sort.Strings(fixed)
		fmt.Printf("\nListed in the expected-differences file but not differing in this run: %s\n", strings.Join(fixed, ", "))
	}
	return unexpected
}

// excerpt returns the first interesting lines of a test's output: the lines after its RUN line,
// without the RUN/PASS bookkeeping, at most 6.
func excerpt(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- PASS") || l == "FAIL" || l == "PASS" ||
			strings.HasPrefix(l, "Error Trace:") || strings.HasPrefix(l, "/") {
			continue
		}
		lines = append(lines, l)
		if len(lines) == 6 {
			break
		}
	}
	return strings.Join(lines, " / ")
}

// cell makes s safe for one markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// readExpected reads the expected-differences file: lines "<suite> <Test>[@<configuration>] <reason>",
// '#' comments and blank lines ignored.
func readExpected(path string) (map[string]map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]map[string]string{}
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want \"<suite> <Test>[@<configuration>] <reason>\"", path, i+1)
		}
		if m[f[0]] == nil {
			m[f[0]] = map[string]string{}
		}
		m[f[0]][f[1]] = strings.Join(f[2:], " ")
	}
	return m, nil
}

// repoRoot finds the directory of the module github.com/hasqlgo/hasql from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/hasqlgo/hasql\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run it inside the hasql repository (no go.mod of github.com/hasqlgo/hasql above the working directory)")
		}
		dir = parent
	}
}

// goCmd runs the go command in dir, bounded, and returns its combined output.
func goCmd(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// moduleDir returns the version of module path in hasql's go.mod and its directory in the module
// cache (downloading it if needed).
func moduleDir(ctx context.Context, repo, path string) (version, dir string, err error) {
	out, err := goCmd(ctx, repo, nil, "list", "-m", "-f", "{{.Version}} {{.Dir}}", path)
	if err != nil {
		return "", "", err
	}
	version, dir, _ = strings.Cut(out, " ")
	if dir == "" {
		if _, err := goCmd(ctx, repo, nil, "mod", "download", path); err != nil {
			return "", "", err
		}
		return moduleDir(ctx, repo, path)
	}
	return version, dir, nil
}

// copyFile copies src to dst (writable), applying edit to its text when edit is not nil.
func copyFile(src, dst string, edit func(string) (string, error)) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	text := string(data)
	if edit != nil {
		if text, err = edit(text); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(src), err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, []byte(text), 0o644)
}

// replaceAll replaces every old by new in s, failing when old does not occur: the upstream file
// changed and the rewrite needs a look.
func replaceAll(s, old, new string) (string, error) {
	if !strings.Contains(s, old) {
		return "", fmt.Errorf("rewrite: %q not found", old)
	}
	return strings.ReplaceAll(s, old, new), nil
}

// listTests returns the top-level tests of a test binary.
func listTests(ctx context.Context, bin, dir string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.list", "^Test")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -test.list: %v", bin, err)
	}
	var tests []string
	for _, l := range strings.Fields(string(out)) {
		if *flagRun == "" || strings.Contains(l, *flagRun) {
			tests = append(tests, l)
		}
	}
	return tests, nil
}
