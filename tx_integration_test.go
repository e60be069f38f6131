package hasql_test

// Transactions whose session dies, on real servers (issue 13): a loss
// before COMMIT was sent is definite (ErrTxNotCommitted).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// The backend of a transaction is ended (pg_terminate_backend, MariaDB
// KILL) after its first insert: the next statement and Commit report
// ErrTxNotCommitted wrapping the driver's error, Rollback succeeds, and the
// rows are absent.
func TestTxLossBeforeCommitReal(t *testing.T) {
	ctx := context.Background()
	for _, driverName := range []string{"pgx", "mysql"} {
		t.Run(driverName, func(t *testing.T) {
			var dsn string
			var kill func(id int64)
			var count func(id string) int
			ins := "insert into t values ($1)"
			switch driverName {
			case "pgx":
				p := sharedPG(t)
				dsn = p.FreshDB(t)
				admin, err := sql.Open("pgx", dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer admin.Close()
				if _, err := admin.Exec("create table t (id text primary key)"); err != nil {
					t.Fatal(err)
				}
				kill = func(pid int64) { foTerminate(t, p, pid) }
				count = func(id string) int {
					var n int
					if err := admin.QueryRow("select count(*) from t where id = $1", id).Scan(&n); err != nil {
						t.Fatal(err)
					}
					return n
				}
			case "mysql":
				m := sharedMaria(t)
				dsn = m.FreshDB(t)
				dbName := dsn[strings.LastIndexByte(dsn, '/')+1:]
				if err := m.ExecIn(dbName, "create table t (id varchar(40) primary key)"); err != nil {
					t.Fatal(err)
				}
				ins = "insert into t values (?)"
				kill = func(id int64) {
					if err := m.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
						t.Fatal(err)
					}
					foWaitFor(t, 10*time.Second, "the killed connection to go", func() bool {
						out, err := m.Query(fmt.Sprintf("select count(*) from information_schema.processlist where id = %d", id))
						return err == nil && strings.TrimSpace(out) == "0"
					})
				}
				count = func(id string) int {
					out, err := m.QueryIn(dbName, fmt.Sprintf("select count(*) from t where id = '%s'", id))
					if err != nil {
						t.Fatal(err)
					}
					var n int
					fmt.Sscan(out, &n)
					return n
				}
			}
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			db, hc := foOpen(t, driverName, dsn+sep+"hasql.retry=idempotent")
			for _, end := range []string{"commit", "rollback"} {
				t.Run(end, func(t *testing.T) {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					first, second := end+"-1", end+"-2"
					if _, err := tx.ExecContext(ctx, ins, first); err != nil {
						t.Fatal(err)
					}
					pid, err := foPID(ctx, tx, driverName)
					if err != nil {
						t.Fatal(err)
					}
					notCommitted := hc.Stats().TxNotCommitted
					kill(pid)
					_, err = tx.ExecContext(ctx, ins, second)
					if !foWraps(err, hasql.ErrTxNotCommitted) || errors.Is(err, hasql.ErrTxResolutionUnknown) {
						t.Fatalf("insert after the backend ended: %v, want ErrTxNotCommitted wrapping the driver's error", err)
					}
					var lost *hasql.LostError
					if !errors.As(err, &lost) || !lost.InTx {
						t.Fatalf("%v: not a *LostError with InTx", err)
					}
					if end == "commit" {
						err = tx.Commit()
						if !foWraps(err, hasql.ErrTxNotCommitted) || errors.Is(err, hasql.ErrTxResolutionUnknown) {
							t.Fatalf("commit after the loss: %v, want ErrTxNotCommitted", err)
						}
					} else if err := tx.Rollback(); err != nil {
						t.Fatalf("rollback after the loss: %v, want nil (the server rolled back)", err)
					}
					if n := count(first) + count(second); n != 0 {
						t.Fatalf("%d rows of a transaction reported not committed are in the table", n)
					}
					if got := hc.Stats().TxNotCommitted - notCommitted; got != 1 {
						t.Errorf("Stats.TxNotCommitted grew by %d, want 1", got)
					}
					// The pool goes on.
					if _, err := db.ExecContext(ctx, ins, end+"-after"); err != nil {
						t.Fatalf("insert after the loss: %v", err)
					}
				})
			}
		})
	}
}
