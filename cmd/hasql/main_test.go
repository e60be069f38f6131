package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pgx:postgres://app:s3cret@h:5432/db?hasql.target=primary", "pgx:postgres://app:xxxxx@h:5432/db?hasql.target=primary"},
		{"pgx:host=h user=app password=s3cret dbname=d", "pgx:host=h user=app password=xxxxx dbname=d"},
		{"pgx:host=h password='s 3\\'cret' dbname=d", "pgx:host=h password=xxxxx dbname=d"},
		{"mysql:app:s3cret@tcp(h:3306)/db?hasql.target=primary", "mysql:app:xxxxx@tcp(h:3306)/db?hasql.target=primary"},
		{"mysql:app@tcp(h:3306)/db", "mysql:app@tcp(h:3306)/db"},
	} {
		if got := redactDSN(tc.in); got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHasqlKeys(t *testing.T) {
	got := hasqlKeys("pgx:postgres://h/db?hasql.target=primary&sslmode=disable&hasql.hosts=a%3A1,b:2")
	if strings.Join(got, " ") != "hasql.hosts=a:1,b:2 hasql.target=primary" {
		t.Fatalf("%q", got)
	}
	if got := hasqlKeys("pgx:host=h hasql.reads='standby' x=y"); strings.Join(got, " ") != "hasql.reads='standby'" {
		t.Fatalf("%q", got)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"check"}, {"status", "x"}, {"check", "-timeout", "soon", "pgx:x"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("run(%q) = %d, stderr %q", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "pgx:postgres://u:pw@h/db?hasql.nosuchkey=1"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "hasql.nosuchkey") || strings.Contains(out.String()+errOut.String(), ":pw@") {
		t.Errorf("bad key: %d %q %q", code, out.String(), errOut.String())
	}
}

// TestCheck: a primary with a standby. With both hosts and target primary the
// check finds both roles and succeeds; with the standby alone it reports the
// primary unreachable and exits 1. The password never shows.
func TestCheck(t *testing.T) {
	prim := testserver.StartPostgres(t)
	stby := prim.StartStandby(t)
	P := "127.0.0.1:" + strconv.Itoa(prim.Port)
	S := "127.0.0.1:" + strconv.Itoa(stby.Port)
	dsn := "pgx:postgres://postgres:s3cret@" + P + "/test?sslmode=disable&hasql.target=primary&hasql.hosts="
	var out, errOut bytes.Buffer
	code := check(dsn+P+","+S, 20*time.Second, &out, &errOut)
	text := out.String()
	t.Logf("\n%s", text)
	if code != 0 || !strings.Contains(text, "target:  primary reachable") ||
		!strings.Contains(text, P) || !strings.Contains(text, S) ||
		!strings.Contains(text, "primary") || !strings.Contains(text, "standby") || !strings.Contains(text, "members: 2") {
		t.Fatalf("both hosts: exit %d\n%s%s", code, text, errOut.String())
	}
	out.Reset()
	code = check(dsn+S, 5*time.Second, &out, &errOut)
	text = out.String()
	t.Logf("\n%s", text)
	if code != 1 || !strings.Contains(text, "NOT reachable") || !strings.Contains(text, "standby") {
		t.Fatalf("standby only: exit %d\n%s", code, text)
	}
	if strings.Contains(text+errOut.String(), "s3cret") {
		t.Fatal("the password shows")
	}
}
