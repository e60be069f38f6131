// Command hasql shows what hasql sees of a DSN, for an operator:
//
//	go run github.com/hasqlgo/hasql/cmd/hasql check '<dsn>'
//
// The DSN is what sql.Open("hasql", dsn) takes: "<driver>:<driver's DSN>",
// e.g. 'pgx:postgres://app:secret@db1:5432/app?hasql.hosts=db1:5432,db2:5432&hasql.target=primary'
// or 'mysql:app:secret@tcp(db1:3306)/app?hasql.target=primary'. check prints
// the DSN with its password redacted, the hasql.* keys it sets (the others
// are at their defaults), every host with its state, role and replication
// lag as one look finds them now, and whether the target role can be
// reached. It exits 0 when a session of the target role opened, 1 when it
// did not, 2 on a usage or DSN error. Nothing is written to the database.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hasqlgo/hasql"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: hasql check '<driver>:<dsn>'   (e.g. 'pgx:postgres://u:p@host/db?hasql.target=primary')
       flags after check: -timeout 10s`

// run is the command without the process around it, for the test.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "check" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	timeout := 10 * time.Second
	rest := args[1:]
	if len(rest) == 3 && rest[0] == "-timeout" {
		d, err := time.ParseDuration(rest[1])
		if err != nil {
			fmt.Fprintf(stderr, "hasql: -timeout %q: %v\n", rest[1], err)
			return 2
		}
		timeout, rest = d, rest[2:]
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return check(rest[0], timeout, stdout, stderr)
}

func check(dsn string, timeout time.Duration, out, errOut io.Writer) int {
	fmt.Fprintf(out, "dsn:     %s\n", redactDSN(dsn))
	keys := hasqlKeys(dsn)
	if len(keys) == 0 {
		fmt.Fprintln(out, "keys:    (no hasql.* key: every setting at its default)")
	} else {
		fmt.Fprintf(out, "keys:    %s\n", strings.Join(keys, " "))
	}
	fmt.Fprintf(out, "pooler:  %s\n", keyOr(keys, "hasql.pooler", "none (default)"))
	fmt.Fprintf(out, "guard:   %s\n", keyOr(keys, "hasql.guard", "not set"))
	db, err := sql.Open("hasql", dsn)
	if err != nil {
		fmt.Fprintf(errOut, "%v\n", err) // hasql's DSN errors carry no password
		return 2
	}
	defer db.Close()
	c, _ := hasql.ConnectorOf(db)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The target first: a session of the target role, as the application
	// would get it. Then every host, on connections of the check's own.
	pingErr := db.PingContext(ctx)
	hosts := c.CheckHosts(ctx)
	fmt.Fprintf(out, "members: %d\n", len(hosts))
	for _, h := range hosts {
		addr := h.Addr
		if addr == "" {
			addr = "(the DSN's host)"
		}
		role := h.Role
		if role == "" {
			role = "role unknown"
		}
		line := fmt.Sprintf("  %-24s %-12s %-8s", addr, role, h.State)
		if h.Role == "standby" {
			line += fmt.Sprintf(" lag %v", h.Lag)
		}
		if h.LastError != nil && h.State != hasql.HostStateUp {
			line += "  last error: " + h.LastError.Error()
		}
		fmt.Fprintln(out, strings.TrimRight(line, " "))
	}
	target := keyOr(keys, "hasql.target", "any")
	if pingErr != nil {
		fmt.Fprintf(out, "target:  %s NOT reachable: %v\n", target, pingErr)
		return 1
	}
	fmt.Fprintf(out, "target:  %s reachable\n", target)
	return 0
}

// keyPattern finds hasql.* settings in either DSN form (URL query or
// key=value pairs; values may be quoted in the key=value form).
var keyPattern = regexp.MustCompile(`hasql\.[A-Za-z0-9_.]+=('(?:[^'\\]|\\.)*'|[^&\s]*)`)

// hasqlKeys lists the hasql.* settings of dsn, sorted, values unescaped.
func hasqlKeys(dsn string) []string {
	var keys []string
	for _, m := range keyPattern.FindAllString(dsn, -1) {
		k, v, _ := strings.Cut(m, "=")
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return keys
}

func keyOr(keys []string, key, def string) string {
	for _, kv := range keys {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return def
}

var (
	urlPassword = regexp.MustCompile(`(://[^:/@]*:)[^@]*@`)
	kvPassword  = regexp.MustCompile(`(password=)('(?:[^'\\]|\\.)*'|\S*)`)
	myPassword  = regexp.MustCompile(`^([A-Za-z0-9_/]+:[^:@/]*:)[^@]*(@)`)
)

// redactDSN replaces the password of dsn, in any of the drivers' forms,
// with xxxxx.
func redactDSN(dsn string) string {
	dsn = urlPassword.ReplaceAllString(dsn, "${1}xxxxx@")
	dsn = kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
	if !strings.Contains(dsn, "://") {
		dsn = myPassword.ReplaceAllString(dsn, "${1}xxxxx${2}")
	}
	return dsn
}
