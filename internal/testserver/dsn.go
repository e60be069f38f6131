package testserver

// DSNs of external servers (HASQL_TEST_PG_DSN, HASQL_TEST_MYSQL_DSN).

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// pgWithDB points a libpq/pgx DSN (URL or key=value form) at database db.
func pgWithDB(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path, u.RawPath = "/"+db, ""
			return u.String()
		}
	}
	re := regexp.MustCompile(`(^|\s)dbname\s*=\s*('(\\.|[^'])*'|\S*)`)
	if re.MatchString(dsn) {
		return re.ReplaceAllString(dsn, "${1}dbname="+db)
	}
	return strings.TrimSpace(dsn + " dbname=" + db)
}

// mysqlWithDB points a go-sql-driver/mysql DSN at database db.
func mysqlWithDB(dsn, db string) string {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return dsn + "/" + db
	}
	rest := dsn[slash+1:]
	params := ""
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params = rest[q:]
	}
	return dsn[:slash+1] + db + params
}

// mysqlClientArgs turns user:pass@net(addr)/db?params into mariadb client arguments.
func mysqlClientArgs(dsn string) (args []string, password string, err error) {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return nil, "", fmt.Errorf("testserver: HASQL_TEST_MYSQL_DSN %q: want user:password@tcp(host:port)/dbname", dsn)
	}
	head := dsn[:slash]
	userinfo, netaddr := "", head
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		userinfo, netaddr = head[:at], head[at+1:]
	}
	usr := userinfo
	if c := strings.IndexByte(userinfo, ':'); c >= 0 {
		usr, password = userinfo[:c], userinfo[c+1:]
	}
	if usr == "" {
		usr = "root"
	}
	args = []string{"-u", usr}
	proto, addr := "tcp", ""
	if open := strings.IndexByte(netaddr, '('); open >= 0 && strings.HasSuffix(netaddr, ")") {
		proto, addr = netaddr[:open], netaddr[open+1:len(netaddr)-1]
	} else if netaddr != "" {
		proto = netaddr
	}
	switch proto {
	case "unix":
		if addr == "" {
			addr = "/tmp/mysql.sock"
		}
		args = append(args, "--protocol=SOCKET", "-S", addr)
	default:
		host, port := "127.0.0.1", "3306"
		if addr != "" {
			if h, p, err := net.SplitHostPort(addr); err == nil {
				host, port = h, p
			} else {
				host = addr
			}
		}
		args = append(args, "--protocol=TCP", "-h", host, "-P", port)
	}
	return args, password, nil
}
