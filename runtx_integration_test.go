package hasql_test

// RunTx on real servers (issue 13): a real serialization failure on
// PostgreSQL and a real deadlock on MariaDB are run again, through hasql
// and through the raw drivers (RunTx works on any *sql.DB).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hasqlgo/hasql"
	"github.com/jackc/pgx/v5/pgconn"
)

// runTxPair runs two transactions with RunTx at once. first is each one's
// first run, which meets the other at the barrier after its first step so
// that they conflict; later runs go straight through. It returns both
// errors and the number of runs, and the errors the runs themselves saw.
func runTxPair(t *testing.T, db *sql.DB, opts *sql.TxOptions, step1, step2 func(ctx context.Context, tx *sql.Tx, who int) error) (errs [2]error, runs int64, seen []error) {
	t.Helper()
	var barrier sync.WaitGroup
	barrier.Add(2)
	var n atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for who := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			errs[who] = hasql.RunTx(ctx, db, opts, func(ctx context.Context, tx *sql.Tx) error {
				n.Add(1)
				err := step1(ctx, tx, who)
				if first {
					first = false
					barrier.Done()
					barrier.Wait()
				}
				if err == nil {
					err = step2(ctx, tx, who)
				}
				if err != nil {
					mu.Lock()
					seen = append(seen, err)
					mu.Unlock()
				}
				return err
			})
		}()
	}
	wg.Wait()
	return errs, n.Load(), seen
}

func TestRunTxSerializationFailurePostgres(t *testing.T) {
	p := sharedPG(t)
	dsn := p.FreshDB(t)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("create table t (k text primary key)"); err != nil {
		t.Fatal(err)
	}
	hq, _ := foOpen(t, "pgx", dsn)
	for _, tc := range []struct {
		name string
		db   *sql.DB
	}{{"hasql", hq}, {"raw pgx", raw}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := raw.Exec("truncate t"); err != nil {
				t.Fatal(err)
			}
			// Write skew under SERIALIZABLE: each counts the rows, then
			// adds its own; one of the two cannot be serialized (40001,
			// at its insert or its commit) and is run again.
			errs, runs, seen := runTxPair(t, tc.db, &sql.TxOptions{Isolation: sql.LevelSerializable},
				func(ctx context.Context, tx *sql.Tx, who int) error {
					var n int
					return tx.QueryRowContext(ctx, "select count(*) from t").Scan(&n)
				},
				func(ctx context.Context, tx *sql.Tx, who int) error {
					var n int
					if err := tx.QueryRowContext(ctx, "select count(*) from t").Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, "insert into t values ($1)", fmt.Sprintf("w%d-saw%d", who, n))
					return err
				})
			for _, err := range errs {
				if err != nil {
					t.Fatalf("RunTx: %v", err)
				}
			}
			for _, err := range seen {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "40001" {
					t.Errorf("a run failed with %v, want only 40001", err)
				}
			}
			if runs != 3 {
				t.Fatalf("%d runs, want 3: one serialization failure run again once", runs)
			}
			var keys string
			if err := raw.QueryRow("select string_agg(k, ',' order by k) from t").Scan(&keys); err != nil {
				t.Fatal(err)
			}
			// Serial: one saw 0 rows, the other (run again) saw 1.
			if !(keys == "w0-saw0,w1-saw1" || keys == "w0-saw1,w1-saw0") {
				t.Fatalf("rows %s: not a serial outcome", keys)
			}
			t.Logf("runs %d, failures seen by fn %d (a failure at COMMIT is not), rows %s", runs, len(seen), keys)
		})
	}
}

func TestRunTxDeadlockMariaDB(t *testing.T) {
	m := sharedMaria(t)
	dsn := m.FreshDB(t)
	dbName := dsn[strings.LastIndexByte(dsn, '/')+1:]
	if err := m.ExecIn(dbName, "create table acct (id int primary key, n int not null) engine=InnoDB"); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hq, _ := foOpen(t, "mysql", dsn)
	for _, tc := range []struct {
		name string
		db   *sql.DB
	}{{"hasql", hq}, {"raw mysql", raw}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := raw.Exec("replace into acct values (1, 0), (2, 0)"); err != nil {
				t.Fatal(err)
			}
			// Each locks its own row, then the other's: InnoDB finds the
			// deadlock and rolls one back (1213); RunTx runs it again.
			errs, runs, seen := runTxPair(t, tc.db, nil,
				func(ctx context.Context, tx *sql.Tx, who int) error {
					_, err := tx.ExecContext(ctx, "update acct set n = n + 1 where id = ?", who+1)
					return err
				},
				func(ctx context.Context, tx *sql.Tx, who int) error {
					_, err := tx.ExecContext(ctx, "update acct set n = n + 1 where id = ?", 2-who)
					return err
				})
			for _, err := range errs {
				if err != nil {
					t.Fatalf("RunTx: %v", err)
				}
			}
			if len(seen) != 1 || runs != 3 {
				t.Fatalf("runs %d, failures %v; want 3 runs and one deadlock", runs, seen)
			}
			var me *mysql.MySQLError
			if !errors.As(seen[0], &me) || me.Number != 1213 {
				t.Fatalf("the failed run got %v, want 1213", seen[0])
			}
			var n1, n2 int
			if err := raw.QueryRow("select (select n from acct where id = 1), (select n from acct where id = 2)").Scan(&n1, &n2); err != nil {
				t.Fatal(err)
			}
			if n1 != 2 || n2 != 2 {
				t.Fatalf("balances %d, %d; want 2, 2 (each transaction committed once)", n1, n2)
			}
		})
	}
}
