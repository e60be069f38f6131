package hasql

// Tests of transparent replay (replay.go) on fakedb. A small key-value
// "server" in the hooks keeps each session's uncommitted writes apart, so
// that a session that dies loses its transaction as a real server's would,
// and a replay has to rebuild it.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
)

// kvServer is the fake server's state: committed values, and each open
// transaction's writes (dropped when its session dies or rolls back).
type kvServer struct {
	mu        sync.Mutex
	committed map[string]int64
	pending   map[*FakeConn]map[string]int64
	inTx      map[*FakeConn]bool
	seq       int64 // "nextval": a different answer every time
	begins    int
	// killAtRow kills the session reading "list" when it is about to
	// deliver row killAtRow (1-based), once per entry.
	killAtRow []int
}

func newKVDB(t *testing.T, caps FakeCaps) (*FakeDB, *kvServer, string) {
	db := NewQuietFakeDB(t)
	s := &kvServer{committed: map[string]int64{"a": 100, "b": 100, "c": 100, "d": 100}, pending: map[*FakeConn]map[string]int64{}, inTx: map[*FakeConn]bool{}}
	db.OnBegin = func(c *FakeConn) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.begins++
		s.inTx[c] = true
		s.pending[c] = map[string]int64{}
		return nil
	}
	end := func(c *FakeConn, commit bool) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.dead.Load() {
			return driver.ErrBadConn
		}
		if commit {
			for k, v := range s.pending[c] {
				s.committed[k] = v
			}
		}
		delete(s.pending, c)
		delete(s.inTx, c)
		return nil
	}
	db.OnCommit = func(c *FakeConn) error { return end(c, true) }
	db.OnClose = func(c *FakeConn) {
		// The server rolls back the transaction of a session that ends.
		s.mu.Lock()
		delete(s.pending, c)
		delete(s.inTx, c)
		s.mu.Unlock()
	}
	db.OnRollback = func(c *FakeConn) error { return end(c, false) }
	db.OnExec = func(c *FakeConn, _ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		// "add": add args[1] to key args[0].
		if !strings.HasPrefix(q, "add") || len(args) != 2 {
			return nil, &FakeError{Code: 1, Msg: "unknown statement " + q}
		}
		k, _ := args[0].Value.(string)
		d, _ := args[1].Value.(int64)
		if _, ok := s.committed[k]; !ok {
			return driver.RowsAffected(0), nil
		}
		w := s.pending[c]
		if w == nil { // autocommit
			s.committed[k] += d
			return driver.RowsAffected(1), nil
		}
		if _, ok := w[k]; !ok {
			w[k] = s.committed[k]
		}
		w[k] += d
		return driver.RowsAffected(1), nil
	}
	db.OnQuery = func(c *FakeConn, _ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		val := func(k string) int64 {
			if w := s.pending[c]; w != nil {
				if v, ok := w[k]; ok {
					return v
				}
			}
			return s.committed[k]
		}
		switch {
		case strings.HasPrefix(q, "get"):
			k, _ := args[0].Value.(string)
			return FakeOneRow(val(k)), nil
		case strings.HasPrefix(q, "nextval"):
			s.seq++
			return FakeOneRow(s.seq), nil
		case strings.HasPrefix(q, "list"):
			keys := make([]string, 0, len(s.committed))
			for k := range s.committed {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			r := &killRows{c: c}
			for _, k := range keys {
				r.vals = append(r.vals, []driver.Value{k, val(k)})
			}
			if len(s.killAtRow) > 0 {
				r.killAt, s.killAtRow = s.killAtRow[0], s.killAtRow[1:]
			}
			return r, nil
		}
		return nil, &FakeError{Code: 1, Msg: "unknown query " + q}
	}
	name := fmt.Sprintf("kv-%s", strings.ReplaceAll(t.Name(), "/", "-"))
	sql.Register(name, &FakeDriver{Caps: caps, DB: db})
	return db, s, name
}

// killRows delivers vals and kills its session before row killAt.
type killRows struct {
	c      *FakeConn
	vals   [][]driver.Value
	i      int
	killAt int
}

func (r *killRows) Columns() []string { return []string{"k", "v"} }
func (r *killRows) Close() error      { return nil }
func (r *killRows) Next(dest []driver.Value) error {
	if r.killAt > 0 && r.i+1 == r.killAt {
		r.c.Kill()
		return io.ErrUnexpectedEOF
	}
	if r.c.dead.Load() {
		return io.ErrUnexpectedEOF
	}
	if r.i >= len(r.vals) {
		return io.EOF
	}
	copy(dest, r.vals[r.i])
	r.i++
	return nil
}

func (s *kvServer) value(k string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed[k]
}

func openKV(t *testing.T, name, params string) (*sql.DB, *Connector) {
	t.Helper()
	db, err := sql.Open("hasql", name+":x?"+params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	c, _ := ConnectorOf(db)
	return db, c
}

// transfer is the application: move 10 from a to b reading both balances,
// then list every account. It returns what it read.
func transfer(ctx context.Context, db *sql.DB, mid func(tx *sql.Tx)) (seen []string, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var bal int64
	if err := tx.QueryRowContext(ctx, "get", "a").Scan(&bal); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	seen = append(seen, fmt.Sprint("a=", bal))
	if _, err := tx.ExecContext(ctx, "add", "a", int64(-10)); err != nil {
		return seen, fmt.Errorf("add a: %w", err)
	}
	if mid != nil {
		mid(tx)
	}
	if _, err := tx.ExecContext(ctx, "add", "b", int64(10)); err != nil {
		return seen, fmt.Errorf("add b: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "list")
	if err != nil {
		return seen, fmt.Errorf("list: %w", err)
	}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return seen, err
		}
		seen = append(seen, fmt.Sprint(k, "=", v))
	}
	if err := rows.Err(); err != nil {
		return seen, fmt.Errorf("list rows: %w", err)
	}
	rows.Close()
	return seen, tx.Commit()
}

var transferSeen = "a=100 a=90 b=110 c=100 d=100"

func TestReplayContinuesTransactionAfterLoss(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault *FakeFault
		kill  []int // rows of "list" before which the session dies
	}{
		{"exec lost before it was sent", &FakeFault{Kind: "exec", Nth: 2, Kill: true}, nil},
		{"exec lost after it was sent", &FakeFault{Kind: "exec", Nth: 2, Sent: true, Kill: true, Err: io.ErrUnexpectedEOF}, nil},
		{"query lost", &FakeFault{Kind: "query", Match: "list", Nth: 1, Sent: true, Kill: true, Err: io.ErrUnexpectedEOF}, nil},
		{"rows continue from the next row", nil, []int{3}},
		{"rows lost twice", nil, []int{2, 4}},
		{"commit lost before it was sent", &FakeFault{Kind: "commit", Nth: 1, Kill: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb, srv, name := newKVDB(t, FakeCapsContext)
			if tc.fault != nil {
				fdb.Inject(*tc.fault)
			}
			srv.killAtRow = tc.kill
			db, c := openKV(t, name, "hasql.replay=on")
			seen, err := transfer(context.Background(), db, nil)
			if err != nil {
				t.Fatalf("transfer: %v", err)
			}
			if got := strings.Join(seen, " "); got != transferSeen {
				t.Errorf("the application read %q, want %q", got, transferSeen)
			}
			if a, b := srv.value("a"), srv.value("b"); a != 90 || b != 110 {
				t.Errorf("committed a=%d b=%d, want 90 and 110 (once)", a, b)
			}
			st := c.Stats()
			want := int64(1)
			if len(tc.kill) > 1 {
				want = int64(len(tc.kill))
			}
			if st.Replays != want || st.ReplaysDiverged != 0 {
				t.Errorf("Replays %d, ReplaysDiverged %d; want %d and 0", st.Replays, st.ReplaysDiverged, want)
			}
		})
	}
}

func TestReplayOffReportsTheLoss(t *testing.T) {
	fdb, srv, name := newKVDB(t, FakeCapsContext)
	fdb.Inject(FakeFault{Kind: "exec", Nth: 2, Kill: true})
	db, c := openKV(t, name, "")
	_, err := transfer(context.Background(), db, nil)
	var lost *LostError
	if !errors.As(err, &lost) {
		t.Fatalf("transfer: %v, want a *LostError", err)
	}
	if a := srv.value("a"); a != 100 {
		t.Errorf("a=%d after a lost transaction, want 100", a)
	}
	if st := c.Stats(); st.Replays != 0 {
		t.Errorf("Replays %d with replay off", st.Replays)
	}
}

func TestReplayDivergesOnADifferentResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		mid  func(tx *sql.Tx)
		// change makes the replay see something else, between the first
		// run and the loss.
		change func(s *kvServer)
	}{
		{"a row read differs", nil, func(s *kvServer) { s.committed["a"] = 500 }},
		{"rows affected differ", nil, func(s *kvServer) { delete(s.committed, "a") }},
		{"a non-deterministic result", func(tx *sql.Tx) {
			var n int64
			tx.QueryRow("nextval").Scan(&n)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb, srv, name := newKVDB(t, FakeCapsContext)
			db, c := openKV(t, name, "hasql.replay=on")
			fdb.Inject(FakeFault{Kind: "exec", Nth: 2, Kill: true})
			if tc.change != nil {
				prev := fdb.OnBegin
				fdb.OnBegin = func(c *FakeConn) error {
					srv.mu.Lock()
					if srv.begins == 1 { // the replay's begin: the data changed meanwhile
						tc.change(srv)
					}
					srv.mu.Unlock()
					return prev(c)
				}
			}
			_, err := transfer(context.Background(), db, tc.mid)
			if !errors.Is(err, ErrReplayDiverged) {
				t.Fatalf("transfer: %v, want ErrReplayDiverged", err)
			}
			var lost *LostError
			if !errors.As(err, &lost) || !errors.Is(err, driver.ErrBadConn) && !errors.Is(err, ErrTxResolutionUnknown) && !errors.Is(err, ErrTxNotCommitted) {
				t.Errorf("the divergence does not wrap the loss: %v", err)
			}
			st := c.Stats()
			if st.ReplaysDiverged != 1 || st.Replays != 0 {
				t.Errorf("Replays %d, ReplaysDiverged %d; want 0 and 1", st.Replays, st.ReplaysDiverged)
			}
			srv.mu.Lock()
			open := len(srv.inTx)
			srv.mu.Unlock()
			if open != 0 {
				t.Errorf("%d transactions left open on the server after the divergence", open)
			}
			// The *sql.DB goes on.
			if _, err := transfer(context.Background(), db, nil); err != nil {
				t.Fatalf("next transfer: %v", err)
			}
		})
	}
}

func TestReplayNotAttempted(t *testing.T) {
	unwrapper := func(dc any) error {
		dc.(interface{ Unwrap() driver.Conn }).Unwrap()
		return nil
	}
	for _, tc := range []struct {
		name   string
		params string
		around func(ctx context.Context, conn *sql.Conn) error // between the two writes
	}{
		{"over replay_limit", "hasql.replay=on&hasql.replay_limit=40", nil},
		{"Conn.Raw", "hasql.replay=on", func(_ context.Context, conn *sql.Conn) error { return conn.Raw(unwrapper) }},
		{"Session.Exec", "hasql.replay=on", func(ctx context.Context, conn *sql.Conn) error {
			s, err := SessionOf(conn)
			if err != nil {
				return err
			}
			return s.Exec(ctx, "add", "c", int64(1))
		}},
		{"Session.Unwrap", "hasql.replay=on", func(_ context.Context, conn *sql.Conn) error {
			s, err := SessionOf(conn)
			if err != nil {
				return err
			}
			s.Unwrap()
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdb, srv, name := newKVDB(t, FakeCapsContext)
			fdb.Inject(FakeFault{Kind: "exec", Match: "second", Nth: 1, Kill: true})
			db, c := openKV(t, name, tc.params)
			ctx := context.Background()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "add", "a", int64(-10)); err != nil {
				t.Fatal(err)
			}
			if tc.around != nil {
				if err := tc.around(ctx, conn); err != nil {
					t.Fatal(err)
				}
			}
			_, err = tx.ExecContext(ctx, "add -- second", "b", int64(10))
			var lost *LostError
			if !errors.As(err, &lost) || errors.Is(err, ErrReplayDiverged) {
				t.Fatalf("second write: %v, want the loss itself", err)
			}
			if err := tx.Commit(); err == nil {
				t.Fatal("Commit of a lost transaction succeeded")
			}
			if a := srv.value("a"); a != 100 {
				t.Errorf("a=%d, want 100", a)
			}
			if st := c.Stats(); st.Replays != 0 || st.ReplaysDiverged != 0 {
				t.Errorf("Replays %d, ReplaysDiverged %d; want none", st.Replays, st.ReplaysDiverged)
			}
		})
	}
}

func TestReplaySelectFailoverContinuesRows(t *testing.T) {
	for _, tc := range []struct {
		name    string
		params  string
		idem    bool
		wantErr error // nil: every row, no error
		replays int64
	}{
		{"idempotent query continues from the next row", "hasql.replay=on&hasql.retry=idempotent", true, nil, 1},
		{"query not marked idempotent reports the loss", "hasql.replay=on&hasql.retry=idempotent", false, ErrConnectionLost, 0},
		{"replay off reports the loss", "hasql.retry=idempotent", true, ErrConnectionLost, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv, name := newKVDB(t, FakeCapsContext)
			srv.killAtRow = []int{3}
			db, c := openKV(t, name, tc.params)
			ctx := context.Background()
			if tc.idem {
				ctx = Idempotent(ctx)
			}
			rows, err := db.QueryContext(ctx, "list")
			if err != nil {
				t.Fatal(err)
			}
			var seen []string
			for rows.Next() {
				var k string
				var v int64
				if err := rows.Scan(&k, &v); err != nil {
					t.Fatal(err)
				}
				seen = append(seen, k)
			}
			err = rows.Err()
			rows.Close()
			if tc.wantErr == nil {
				if err != nil || strings.Join(seen, "") != "abcd" {
					t.Fatalf("rows %v, error %v; want a b c d and no error", seen, err)
				}
			} else if !errors.Is(err, tc.wantErr) || strings.Join(seen, "") != "ab" {
				t.Fatalf("rows %v, error %v; want a b then %v", seen, err, tc.wantErr)
			}
			if st := c.Stats(); st.Replays != tc.replays {
				t.Errorf("Replays %d, want %d", st.Replays, tc.replays)
			}
		})
	}
}

func TestReplaySelectFailoverDiverges(t *testing.T) {
	fdb, srv, name := newKVDB(t, FakeCapsContext)
	srv.killAtRow = []int{3}
	fdb.OnConnect = func(_ context.Context, n int64) error {
		if n == 2 { // the new session sees other data
			srv.mu.Lock()
			srv.committed["a"] = 7
			srv.mu.Unlock()
		}
		return nil
	}
	db, c := openKV(t, name, "hasql.replay=on&hasql.retry=idempotent")
	rows, err := db.QueryContext(Idempotent(context.Background()), "list")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	err = rows.Err()
	rows.Close()
	if !errors.Is(err, ErrReplayDiverged) || !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("rows error %v, want ErrReplayDiverged wrapping ErrConnectionLost", err)
	}
	if st := c.Stats(); st.ReplaysDiverged != 1 {
		t.Errorf("ReplaysDiverged %d, want 1", st.ReplaysDiverged)
	}
}

// Replays are bounded: a server whose every new session dies during the
// replay ends with the loss after maxReplays attempts, and a cancelled
// context stops the replay.
func TestReplayBounded(t *testing.T) {
	t.Run("every new session dies", func(t *testing.T) {
		fdb, _, name := newKVDB(t, FakeCapsContext)
		fdb.Inject(FakeFault{Kind: "exec", Nth: 2, Kill: true})
		fdb.Inject(FakeFault{Kind: "query", Match: "get", Nth: 2, Kill: true})
		fdb.Inject(FakeFault{Kind: "query", Match: "get", Nth: 1, Kill: true})
		fdb.Inject(FakeFault{Kind: "query", Match: "get", Nth: 1, Kill: true})
		db, c := openKV(t, name, "hasql.replay=on")
		_, err := transfer(context.Background(), db, nil)
		var lost *LostError
		if !errors.As(err, &lost) {
			t.Fatalf("transfer: %v, want the loss", err)
		}
		if st := c.Stats(); st.Replays != 0 {
			t.Errorf("Replays %d, want 0", st.Replays)
		}
		if n := fdb.Opens.Load(); n != 1+maxReplays {
			t.Errorf("%d sessions opened, want %d (the first and one per replay)", n, 1+maxReplays)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		fdb, srv, name := newKVDB(t, FakeCapsContext)
		fdb.Inject(FakeFault{Kind: "exec", Nth: 2, Kill: true})
		db, c := openKV(t, name, "hasql.replay=on")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fdb.OnConnect = func(_ context.Context, n int64) error {
			if n == 2 {
				cancel() // the replay's bind sees the context end
			}
			return nil
		}
		_, err := transfer(ctx, db, nil)
		if err == nil {
			t.Fatal("transfer succeeded after its context ended")
		}
		if st := c.Stats(); st.Replays != 0 {
			t.Errorf("Replays %d, want 0", st.Replays)
		}
		if a := srv.value("a"); a != 100 {
			t.Errorf("a=%d, want 100", a)
		}
	})
}

// BenchmarkReplayRecording is what recording costs hasql itself: a
// transaction of three writes and a one-row read on the no-op fake driver,
// replay off and on (the driver costs next to nothing, so the difference is
// the recorder's).
//
//	go test -run '^$' -bench 'BenchmarkReplayRecording' -benchmem -count 5 .
func BenchmarkReplayRecording(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("replay=%v", on), func(b *testing.B) {
			c, err := NewConnector((&FakeDriver{Caps: FakeCapsContext, DB: NoopFakeDB()}).Connector(), WithReplay(on))
			if err != nil {
				b.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for j := 0; j < 3; j++ {
					if _, err := tx.ExecContext(ctx, "UPDATE t SET v = ? WHERE id = ?", j, int64(i)); err != nil {
						b.Fatal(err)
					}
				}
				var id, v int64
				if err := tx.QueryRowContext(ctx, "SELECT id, v FROM t WHERE id = ?", 1).Scan(&id, &v); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
