package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// mysqlHelper is added to the rewritten copy of go-sql-driver/mysql's package (package mysql,
// module path peersuite.example/mysql, its own driver registered as "mysqlpeercopy"): the driver
// "hasqlmysql" the tests open (driverNameTest), which opens "mysql:"+dsn through hasql, that is the
// real go-sql-driver/mysql from the module cache behind hasql; and the Register* functions the
// rewrite calls instead of the copy's, which register in both packages so that the real driver
// sees the tests' dialers, TLS configs, files, readers and keys. PEERSUITE_HASQL_PARAMS holds hasql
// settings ("hasql.stmtcache=0") added to the DSN.
const mysqlHelper = `package mysql

import (
	"crypto/rsa"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"io"
	"os"
	"strings"

	realmysql "github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
)

type peerDriver struct{}

func peerDSN(dsn string) string {
	for _, p := range strings.Fields(os.Getenv("PEERSUITE_HASQL_PARAMS")) {
		if strings.Contains(dsn[strings.LastIndexByte(dsn, '/')+1:], "?") {
			dsn += "&" + p
		} else {
			dsn += "?" + p
		}
	}
	return dsn
}

func (peerDriver) Open(dsn string) (driver.Conn, error) {
	return (&hasql.Driver{}).Open("mysql:" + peerDSN(dsn))
}

func (peerDriver) OpenConnector(dsn string) (driver.Connector, error) {
	return (&hasql.Driver{}).OpenConnector("mysql:" + peerDSN(dsn))
}

func init() { sql.Register("hasqlmysql", peerDriver{}) }

func peerRegisterDialContext(net string, dial DialContextFunc) {
	RegisterDialContext(net, dial)
	realmysql.RegisterDialContext(net, realmysql.DialContextFunc(dial))
}

func peerRegisterLocalFile(path string) {
	RegisterLocalFile(path)
	realmysql.RegisterLocalFile(path)
}

func peerRegisterReaderHandler(name string, h func() io.Reader) {
	RegisterReaderHandler(name, h)
	realmysql.RegisterReaderHandler(name, h)
}

func peerRegisterTLSConfig(key string, c *tls.Config) error {
	if err := RegisterTLSConfig(key, c); err != nil {
		return err
	}
	return realmysql.RegisterTLSConfig(key, c)
}

// peerMySQLError stands for err.(*MySQLError): the error of the real driver behind hasql is the
// real package's *MySQLError, converted here to the copy's type; a wrapped error stays no match.
func peerMySQLError(err error) (*MySQLError, bool) {
	switch e := err.(type) {
	case *MySQLError:
		return e, true
	case *realmysql.MySQLError:
		return (*MySQLError)(e), true
	}
	return nil, false
}

func peerRegisterServerPubKey(name string, k *rsa.PublicKey) {
	RegisterServerPubKey(name, k)
	realmysql.RegisterServerPubKey(name, k)
}
`

var (
	registerCall   = regexp.MustCompile(`\bRegister(DialContext|LocalFile|ReaderHandler|TLSConfig|ServerPubKey)\(`)
	mysqlErrAssert = regexp.MustCompile(`\b(\w+)\.\(\*MySQLError\)`)
)

// rewriteMySQLTest makes a test file of the copy call the peer Register* functions, and
// peerMySQLError for a type assertion to *MySQLError.
func rewriteMySQLTest(s string) (string, error) {
	s = registerCall.ReplaceAllString(s, "peerRegister$1(")
	return mysqlErrAssert.ReplaceAllString(s, "peerMySQLError($1)"), nil
}

// rewriteMySQLDriver renames the copy's driver and points the tests at "hasqlmysql".
func rewriteMySQLDriver(s string) (string, error) {
	return replaceAll(s, `var driverName = "mysql"`, `var driverName = "mysqlpeercopy"`)
}

func rewriteMySQLDriverTest(s string) (string, error) {
	s, err := replaceAll(s, "var driverNameTest string\n", "var driverNameTest = \"hasqlmysql\"\n")
	if err != nil {
		return "", err
	}
	return rewriteMySQLTest(s)
}

// prepareMySQL builds go-sql-driver/mysql's package tests raw (the module as it is) and rewritten
// (a copy under another module path whose tests open "hasqlmysql") in dir, and starts a MariaDB
// server.
func prepareMySQL(ctx context.Context, repo, dir string) (*suite, error) {
	version, myDir, err := moduleDir(ctx, repo, "github.com/go-sql-driver/mysql")
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(myDir)
	if err != nil {
		return nil, err
	}
	rawDir, hqDir := filepath.Join(dir, "raw"), filepath.Join(dir, "hasql")
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") && name != "go.mod" && name != "go.sum" {
			continue
		}
		src := filepath.Join(myDir, name)
		if err := copyFile(src, filepath.Join(rawDir, name), nil); err != nil {
			return nil, err
		}
		var edit func(string) (string, error)
		switch {
		case name == "go.mod" || name == "go.sum":
			continue
		case name == "driver.go":
			edit = rewriteMySQLDriver
		case name == "driver_test.go":
			edit = rewriteMySQLDriverTest
		case strings.HasSuffix(name, "_test.go"):
			edit = rewriteMySQLTest
		}
		if err := copyFile(src, filepath.Join(hqDir, name), edit); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(hqDir, "peer_test.go"), []byte(mysqlHelper), 0o644); err != nil {
		return nil, err
	}
	gomod := fmt.Sprintf("module peersuite.example/mysql\n\ngo 1.24.0\n\nrequire (\n\tgithub.com/go-sql-driver/mysql %s\n\tgithub.com/hasqlgo/hasql v0.0.0\n)\n\nreplace github.com/hasqlgo/hasql => %s\n", version, repo)
	if err := os.WriteFile(filepath.Join(hqDir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return nil, err
	}
	if err := buildIn(ctx, repo, rawDir, filepath.Join(dir, "raw.test")); err != nil {
		return nil, err
	}
	if err := buildIn(ctx, repo, hqDir, filepath.Join(dir, "hasql.test")); err != nil {
		return nil, err
	}
	raw := filepath.Join(dir, "raw.test")
	tests, err := listTests(ctx, raw, rawDir)
	if err != nil {
		return nil, err
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// TestLongData sends packets up to max_allowed_packet as the server reports it; the default
	// (16M) fails raw. go-sql-driver/mysql's own CI uses 48M.
	m, err := testserver.NewMariaDB(sctx, testserver.MariaDBOptions{ServerArgs: []string{"--max-allowed-packet=48M"}})
	if err != nil {
		return nil, fmt.Errorf("starting MariaDB: %w", err)
	}
	hasqlBin := filepath.Join(dir, "hasql.test")
	s := &suite{
		name:  fmt.Sprintf("go-sql-driver/mysql %s", version),
		tests: tests,
		configs: []config{
			{name: "raw", bin: raw},
			{name: "hasql", bin: hasqlBin, hasql: true},
			{name: "stmtcache=0", bin: hasqlBin, env: []string{"PEERSUITE_HASQL_PARAMS=hasql.stmtcache=0"}, hasql: true},
		},
		dir: rawDir,
		env: []string{
			"MYSQL_TEST_USER=root", "MYSQL_TEST_PASS=", "MYSQL_TEST_PROT=tcp",
			fmt.Sprintf("MYSQL_TEST_ADDR=127.0.0.1:%d", m.Port),
		},
		cleanup: m.Destroy,
	}
	// A database per configuration, so that the configurations can run side by side.
	for i := range s.configs {
		db := configDB(s.configs[i].name)
		if err := m.Exec("CREATE DATABASE " + db); err != nil {
			m.Destroy()
			return nil, err
		}
		s.configs[i].env = append(s.configs[i].env, "MYSQL_TEST_DBNAME="+db)
	}
	// The tests share the table "test" and drop it as they end; one that panics leaves it behind.
	s.reset = func(c config) error {
		db := configDB(c.name)
		return m.Exec("DROP DATABASE IF EXISTS " + db + "; CREATE DATABASE " + db)
	}
	return s, nil
}
