package main

import (
	"context"
	"fmt"

	"github.com/hasqlgo/hasql/internal/testserver"
)

// target is one throwaway server as the measurement sees it: how to reach
// it, how to restart it, and the workload's SQL in its dialect.
type target struct {
	Key     string   // "postgres" or "mariadb" (the -servers names)
	Label   string   // "PostgreSQL", "MariaDB"
	Driver  string   // the registered inner driver: "pgx" or "mysql"
	DSN     string   // the inner driver's DSN; it has a query part
	Addr    string   // 127.0.0.1:port
	Dir     string   // the instance directory (removed at the end)
	Modes   []string // restart modes, alternated
	Restart func(ctx context.Context, mode string) error
	Destroy func()

	// ModeText describes a restart mode for the report.
	ModeText map[string]string

	Setup     []string // creates and fills the tables
	VersionQ  string
	ReadSQL   string // one argument: an id in 1..kvRows
	WriteSQL  string // arguments: id, side, worker, seq
	RawName   string // "raw pgx", "raw mysql"
	HasqlName string // "hasql pgx", "hasql mysql"
}

// kvRows is how many rows the read workload reads from.
const kvRows = 1000

func newPGTarget(ctx context.Context, maxConns int) (*target, error) {
	p, err := testserver.NewPostgres(ctx, testserver.PostgresOptions{MaxConnections: max(100, maxConns)})
	if err != nil {
		return nil, err
	}
	return &target{
		Key:     "postgres",
		Label:   "PostgreSQL",
		Driver:  "pgx",
		DSN:     p.DSN("postgres") + "&connect_timeout=5", // a query part: hasql.* keys are appended with '&'
		Addr:    fmt.Sprintf("127.0.0.1:%d", p.Port),
		Dir:     p.Dir,
		Modes:   []string{"fast", "immediate"},
		Restart: p.RestartContext,
		Destroy: p.Destroy,
		ModeText: map[string]string{
			"fast":      "pg_ctl restart -m fast",
			"immediate": "pg_ctl restart -m immediate",
		},
		Setup: []string{
			`CREATE TABLE recovery_kv (id int PRIMARY KEY, v text NOT NULL)`,
			fmt.Sprintf(`INSERT INTO recovery_kv SELECT g, 'value ' || g FROM generate_series(1, %d) g`, kvRows),
			`CREATE TABLE recovery_writes (id text PRIMARY KEY, side text NOT NULL, worker int NOT NULL, seq bigint NOT NULL)`,
		},
		VersionQ:  "SHOW server_version",
		ReadSQL:   "SELECT v FROM recovery_kv WHERE id = $1",
		WriteSQL:  "INSERT INTO recovery_writes (id, side, worker, seq) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
		RawName:   "raw pgx",
		HasqlName: "hasql pgx",
	}, nil
}

func newMariaTarget(ctx context.Context, maxConns int) (*target, error) {
	m, err := testserver.NewMariaDB(ctx, testserver.MariaDBOptions{
		MaxConnections: max(151, maxConns),
		// Commits reach the OS at once (a killed mariadbd loses none); a small buffer pool.
		ServerArgs: []string{"--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"},
		// A Ctrl-C in the terminal reaches only us, and we stop the server.
		NewProcessGroup: true,
	})
	if err != nil {
		return nil, err
	}
	values := ""
	for i := 1; i <= kvRows; i++ {
		if i > 1 {
			values += ","
		}
		values += fmt.Sprintf("(%d,'value %d')", i, i)
	}
	return &target{
		Key:    "mariadb",
		Label:  "MariaDB",
		Driver: "mysql",
		DSN:    m.DSN("test") + "?timeout=5s", // a query part: hasql.* keys are appended with '&'
		Addr:   fmt.Sprintf("127.0.0.1:%d", m.Port),
		Dir:    m.Dir,
		Modes:  []string{"sigterm", "sigkill"},
		Restart: func(ctx context.Context, mode string) error {
			stop := m.Stop // SIGTERM, and wait for the exit
			if mode == "sigkill" {
				stop = m.Kill9
			}
			if err := stop(); err != nil {
				return err
			}
			return m.StartContext(ctx) // returns once the server answers queries
		},
		Destroy: m.Destroy,
		ModeText: map[string]string{
			"sigterm": "SIGTERM, wait for exit, start mariadbd",
			"sigkill": "SIGKILL, start mariadbd (InnoDB crash recovery)",
		},
		Setup: []string{
			`CREATE TABLE recovery_kv (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL) ENGINE=InnoDB`,
			`INSERT INTO recovery_kv (id, v) VALUES ` + values,
			`CREATE TABLE recovery_writes (id VARCHAR(64) PRIMARY KEY, side VARCHAR(32) NOT NULL, worker INT NOT NULL, seq BIGINT NOT NULL) ENGINE=InnoDB`,
		},
		VersionQ:  "SELECT VERSION()",
		ReadSQL:   "SELECT v FROM recovery_kv WHERE id = ?",
		WriteSQL:  "INSERT IGNORE INTO recovery_writes (id, side, worker, seq) VALUES (?, ?, ?, ?)",
		RawName:   "raw mysql",
		HasqlName: "hasql mysql",
	}, nil
}
