package hasql_test

// Transparent replay on real servers: a transaction whose backend is ended
// in the middle (pg_terminate_backend, MariaDB KILL) commits with the right
// data and no error reaches the application; the Rows being read at the
// loss continue from the next row.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// replayDBName is the database a testserver DSN names.
func replayDBName(dsn string) string {
	s := dsn[strings.LastIndexByte(dsn, '/')+1:]
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return s
}

type replayServer struct {
	driver string
	dsn    string // with hasql.replay=on
	admin  func(sql string) error
	kill   func(t *testing.T) // ends every client session of the database
	q      func(s string) string
}

func replayServers(t *testing.T) []replayServer {
	var out []replayServer
	p := sharedPG(t)
	pdsn := p.FreshDB(t)
	pdb := replayDBName(pdsn)
	out = append(out, replayServer{
		driver: "pgx", dsn: pdsn + "&hasql.replay=on",
		admin: func(s string) error { return p.ExecIn(pdb, s) },
		kill: func(t *testing.T) {
			if err := p.Exec("select pg_terminate_backend(pid) from pg_stat_activity where datname = '" + pdb + "' and pid <> pg_backend_pid()"); err != nil {
				t.Fatal(err)
			}
		},
		q: func(s string) string {
			for i := 1; strings.Contains(s, "?"); i++ {
				s = strings.Replace(s, "?", fmt.Sprintf("$%d", i), 1)
			}
			return s
		},
	})
	m := sharedMaria(t)
	mdsn := m.FreshDB(t)
	mdb := replayDBName(mdsn)
	out = append(out, replayServer{
		driver: "mysql", dsn: mdsn + "?hasql.replay=on",
		admin: func(s string) error { return m.ExecIn(mdb, s) },
		kill: func(t *testing.T) {
			ids, err := m.Query("select id from information_schema.processlist where db = '" + mdb + "' and id <> connection_id()")
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range strings.Fields(ids) {
				_ = m.Exec("KILL " + id) // one may have ended meanwhile
			}
		},
		q: func(s string) string { return s },
	})
	return out
}

func TestReplayOnRealServers(t *testing.T) {
	for _, srv := range replayServers(t) {
		t.Run(srv.driver, func(t *testing.T) {
			if err := srv.admin("create table acct (id int primary key, bal int not null)"); err != nil {
				t.Fatal(err)
			}
			if err := srv.admin("insert into acct values (1, 100), (2, 100), (3, 100)"); err != nil {
				t.Fatal(err)
			}
			db, hc := foOpen(t, srv.driver, srv.dsn)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for round := 0; round < 3; round++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				var bal int
				if err := tx.QueryRowContext(ctx, srv.q("select bal from acct where id = ?"), 1).Scan(&bal); err != nil {
					t.Fatalf("round %d: read: %v", round, err)
				}
				if _, err := tx.ExecContext(ctx, srv.q("update acct set bal = bal - 10 where id = ?"), 1); err != nil {
					t.Fatalf("round %d: debit: %v", round, err)
				}
				srv.kill(t) // the session dies inside the transaction
				if _, err := tx.ExecContext(ctx, srv.q("update acct set bal = bal + 10 where id = ?"), 2); err != nil {
					t.Fatalf("round %d: credit after the loss: %v", round, err)
				}
				rows, err := tx.QueryContext(ctx, "select id, bal from acct order by id")
				if err != nil {
					t.Fatalf("round %d: list: %v", round, err)
				}
				var got []string
				for rows.Next() {
					var id, b int
					if err := rows.Scan(&id, &b); err != nil {
						t.Fatal(err)
					}
					got = append(got, fmt.Sprintf("%d=%d", id, b))
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("round %d: rows: %v", round, err)
				}
				rows.Close()
				srv.kill(t) // and again before the last statement
				if _, err := tx.ExecContext(ctx, srv.q("update acct set bal = bal where id = ?"), 3); err != nil {
					t.Fatalf("round %d: last statement after the second loss: %v", round, err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatalf("round %d: commit: %v", round, err)
				}
				want := fmt.Sprintf("1=%d 2=%d 3=100", 100-10*(round+1), 100+10*(round+1))
				if g := strings.Join(got, " "); g != want {
					t.Fatalf("round %d: the transaction read %q, want %q", round, g, want)
				}
				if bal != 100-10*round {
					t.Fatalf("round %d: read balance %d, want %d", round, bal, 100-10*round)
				}
			}
			// Committed exactly once per round.
			var b1, b2 int
			if err := db.QueryRowContext(ctx, "select (select bal from acct where id = 1), (select bal from acct where id = 2)").Scan(&b1, &b2); err != nil {
				t.Fatal(err)
			}
			if b1 != 70 || b2 != 130 {
				t.Errorf("balances %d and %d after three transfers, want 70 and 130", b1, b2)
			}
			st := hc.Stats()
			if st.Replays < 6 || st.ReplaysDiverged != 0 {
				t.Errorf("Replays %d, ReplaysDiverged %d; want at least 6 (two per round) and 0", st.Replays, st.ReplaysDiverged)
			}
			t.Logf("%s: %d replays", srv.driver, st.Replays)
		})
	}
}

// TestReplayRowsContinueOnRealServers: the session dies while the
// application reads a large result inside a transaction; the rows continue
// from the next row on a new session, every row once, no error.
func TestReplayRowsContinueOnRealServers(t *testing.T) {
	// 50000 rows of 500 bytes: far more than the socket buffers hold, so
	// that the server is still sending when its session is killed.
	const n = 50000
	for _, srv := range replayServers(t) {
		t.Run(srv.driver, func(t *testing.T) {
			q := fmt.Sprintf("select n, repeat('x', 500) from generate_series(1, %d) n", n)
			if srv.driver == "mysql" {
				q = fmt.Sprintf("select seq, repeat('x', 500) from seq_1_to_%d", n)
			}
			db, hc := foOpen(t, srv.driver, srv.dsn)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			count, sum := 0, 0
			for rows.Next() {
				var v int
				var pad string
				if err := rows.Scan(&v, &pad); err != nil {
					t.Fatal(err)
				}
				if v != count+1 {
					t.Fatalf("row %d is %d: a row skipped or repeated", count+1, v)
				}
				count++
				sum += v
				if count == 1000 {
					srv.kill(t)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("after %d rows: %v", count, err)
			}
			rows.Close()
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if count != n || sum != n*(n+1)/2 {
				t.Fatalf("%d rows, sum %d; want %d and %d", count, sum, n, n*(n+1)/2)
			}
			if st := hc.Stats(); st.Replays != 1 {
				t.Errorf("Replays %d, want 1 (the session was killed under the rows)", st.Replays)
			}
		})
	}
}
