package hasql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

// Helpers shared by the cluster tests (Patroni, Galera): opening a DB and a bounded mixed load.

// clusterOpen opens a hasql *sql.DB closed at the end of the test.
func clusterOpen(t *testing.T, drv, dsn string, opts ...hasql.Option) (*sql.DB, *hasql.Connector) {
	t.Helper()
	db, err := hasql.Open(drv, dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, _ := hasql.ConnectorOf(db)
	return db, c
}

// loadKind selects the work of a mixed load.
type loadKind uint8

const (
	loadRead  loadKind = 1 << iota // SELECT count(*)
	loadWrite                      // autocommit INSERT
	loadTx                         // BEGIN; INSERT; UPDATE; COMMIT
)

// loadResult is what a mixed load saw.
type loadResult struct {
	ops       atomic.Int64
	mu        sync.Mutex
	errs      []string
	firstOK   time.Time // first success after mark (see markAt)
	markAt    time.Time
	lastOKAt  time.Time
	kindCount [3]atomic.Int64
}

func (r *loadResult) fail(worker int, what string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf("worker %d %s: %v", worker, what, err))
	}
}

func (r *loadResult) ok() {
	r.ops.Add(1)
	r.mu.Lock()
	now := time.Now()
	if !r.markAt.IsZero() && r.firstOK.IsZero() && now.After(r.markAt) {
		r.firstOK = now
	}
	r.lastOKAt = now
	r.mu.Unlock()
}

// mark starts waiting for the first success after now.
func (r *loadResult) mark() {
	r.mu.Lock()
	r.markAt, r.firstOK = time.Now(), time.Time{}
	r.mu.Unlock()
}

func (r *loadResult) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// runLoad runs workers until stop is closed (or at most limit), each doing the kinds in turn on
// table tbl (columns w int, i int, v int). q converts $n placeholders for the dialect. Every
// statement runs under hasql.Idempotent when idem is set. It returns once every worker stopped.
func runLoad(ctx context.Context, db *sql.DB, tbl string, workers int, kinds loadKind, idem bool, mysql bool, stop <-chan struct{}, limit time.Duration, res *loadResult) {
	q := func(s string) string {
		if mysql {
			for i := 1; i <= 3; i++ {
				s = strings.ReplaceAll(s, fmt.Sprintf("$%d", i), "?")
			}
		}
		return s
	}
	var list []loadKind
	for _, k := range []loadKind{loadRead, loadWrite, loadTx} {
		if kinds&k != 0 {
			list = append(list, k)
		}
	}
	if idem {
		ctx = hasql.Idempotent(ctx)
	}
	deadline := time.After(limit)
	done := make(chan struct{})
	var stopAll sync.Once
	go func() {
		select {
		case <-stop:
		case <-deadline:
		}
		stopAll.Do(func() { close(done) })
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 45*time.Second)
				var err error
				k := list[(i+w)%len(list)]
				switch k {
				case loadRead:
					var n int
					err = db.QueryRowContext(cctx, q("select count(*) from "+tbl+" where w = $1"), w).Scan(&n)
					res.kindCount[0].Add(1)
				case loadWrite:
					_, err = db.ExecContext(cctx, q("insert into "+tbl+" (w, i, v) values ($1, $2, 0)"), w, i)
					res.kindCount[1].Add(1)
				case loadTx:
					var tx *sql.Tx
					if tx, err = db.BeginTx(cctx, nil); err == nil {
						if _, err = tx.ExecContext(cctx, q("insert into "+tbl+" (w, i, v) values ($1, $2, 1)"), w, -i); err == nil {
							_, err = tx.ExecContext(cctx, q("update "+tbl+" set v = v + 1 where w = $1 and i = $2"), w, -i)
						}
						if err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					}
					res.kindCount[2].Add(1)
				}
				cancel()
				if err != nil {
					res.fail(w, fmt.Sprint([]string{"", "read", "write", "", "tx"}[k]), err)
				} else {
					res.ok()
				}
			}
		}()
	}
	wg.Wait()
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// waitUntil polls cond every 20ms up to limit; it fails the test with what when it never holds.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostRoles maps each host of the connector's stats to its role.
func hostRoles(c *hasql.Connector) map[string]string {
	m := map[string]string{}
	for _, h := range c.Stats().Hosts {
		m[h.Addr] = h.Role
	}
	return m
}

func TestDiscoveryDSNKeys(t *testing.T) {
	for _, tc := range []struct {
		dsn, want string
	}{
		{"hasql.discover=zookeeper", "hasql.discover"},
		{"hasql.discover=patroni&hasql.discover_interval=0s", "hasql.discover_interval"},
		{"hasql.discover=galera&hasql.discover_url=http://x:8008", "hasql.discover_url"},
		{"hasql.discover=patroni&hasql.discover_url=ftp://x", "hasql.discover_url"},
		{"hasql.consistency=strong", "hasql.consistency"},
	} {
		_, err := hasql.Open("pgx", "postgres://u@127.0.0.1:1/db?"+tc.dsn)
		if !errors.Is(err, hasql.ErrDSN) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrDSN naming %s", tc.dsn, err, tc.want)
		}
	}
	for _, dsn := range []string{
		"hasql.discover=patroni&hasql.discover_url=http://127.0.0.1:8008&hasql.discover_interval=5s",
		"hasql.discover=galera", "hasql.discover=mysql-replicas", "hasql.discover=off", "hasql.consistency=eventual",
	} {
		db, err := hasql.Open("pgx", "postgres://u@127.0.0.1:1/db?"+dsn)
		if err != nil {
			t.Errorf("%s: %v", dsn, err)
			continue
		}
		db.Close()
	}
	if _, err := hasql.NewConnector((&hasql.FakeDriver{Caps: hasql.FakeCapsContext, DB: hasql.NewFakeDB(t)}).Connector(), hasql.WithDiscovery(hasql.Discovery{Source: hasql.DiscoverGalera, Interval: time.Second})); !errors.Is(err, hasql.ErrDSN) {
		t.Errorf("NewConnector with discovery: %v, want ErrDSN (discovery needs a DSN)", err)
	}
}

func TestDiscoveryParsers(t *testing.T) {
	t.Run("patroni", func(t *testing.T) {
		body := `{"members":[
			{"name":"n1","role":"leader","state":"running","host":"10.0.0.1","port":5432,"api_url":"http://10.0.0.1:8008/patroni"},
			{"name":"n2","role":"replica","state":"streaming","host":"10.0.0.2","port":5432},
			{"name":"n3","role":"sync_standby","state":"running","host":"10.0.0.3","port":5433},
			{"name":"n4","role":"replica","state":"starting","host":"10.0.0.4","port":5432},
			{"name":"n5","role":"replica","state":"running","host":"","port":0}]}`
		got, err := hasql.ParsePatroniCluster([]byte(body))
		want := []string{"10.0.0.1:5432 primary true", "10.0.0.2:5432 standby true", "10.0.0.3:5433 standby true", "10.0.0.4:5432 standby false"}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, %v; want %v", got, err, want)
		}
		for _, bad := range []string{`{"members":[]}`, `not json`} {
			if _, err := hasql.ParsePatroniCluster([]byte(bad)); err == nil {
				t.Errorf("%s: no error", bad)
			}
		}
	})
	t.Run("galera", func(t *testing.T) {
		st := map[string]string{"wsrep_ready": "ON", "wsrep_cluster_status": "Primary", "wsrep_local_state_comment": "Synced",
			"wsrep_incoming_addresses": "127.0.0.1:3306,,127.0.0.1:3307,AUTO,127.0.0.1:3308"}
		got, err := hasql.GaleraMembers(st)
		want := []string{"127.0.0.1:3306 any true", "127.0.0.1:3307 any true", "127.0.0.1:3308 any true"}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, %v; want %v", got, err, want)
		}
		// A node outside the primary component lists only itself: its view is not taken.
		st["wsrep_cluster_status"], st["wsrep_ready"] = "non-Primary", "OFF"
		if _, err := hasql.GaleraMembers(st); err == nil {
			t.Fatal("non-Primary node's view taken")
		}
	})
	t.Run("mysql-replicas", func(t *testing.T) {
		got := hasql.ReplicaMembers("10.0.0.1:3306", [][]string{{"2", "10.0.0.2", "3306", "1"}, {"3", "", "3306", "1"}, {"4", "10.0.0.4", "0", "1"}})
		want := []string{"10.0.0.1:3306 primary true", "10.0.0.2:3306 standby true"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}
