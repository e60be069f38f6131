package hasql

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"
)

// Tests of the pool's sizing (pool_size.go) on fakedb and a fake clock: min opened in the
// background and kept, growth by incr, reaping of idle and old sessions, Reconfigure.

func TestPoolMinOpenedInBackgroundAndKept(t *testing.T) {
	d := newTPDriver()
	clk := newTPClock()
	pc := tpPC(3, 10, 1)
	pc.IdleTimeout = time.Minute
	db, c := tpOpen(t, d, pc, clk)
	p := c.pool

	// Nobody asked for a session: the three are opened in the background.
	tpEventually(t, "3 idle sessions", func() bool { return c.Stats().Idle == 3 })
	tpCheckStats(t, c, tpStatsWant{Open: 3, Idle: 3, Created: 3})
	tpCheckDriver(t, c, d)

	// Idle far beyond the timeout: never below min.
	p.reap(clk.Now().Add(time.Hour))
	tpCheckStats(t, c, tpStatsWant{Open: 3, Idle: 3, Created: 3})

	// Five at once: two more are opened.
	ctx := context.Background()
	var conns []*sql.Conn
	for i := 0; i < 5; i++ {
		cn, _ := tpAcquire(t, ctx, db)
		conns = append(conns, cn)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 5, Busy: 5, Created: 5})
	for _, cn := range conns {
		cn.Close()
	}
	tpCheckStats(t, c, tpStatsWant{Open: 5, Idle: 5, Created: 5})

	// Not idle long enough yet.
	p.reap(clk.Now().Add(time.Minute - time.Nanosecond))
	tpCheckStats(t, c, tpStatsWant{Open: 5, Idle: 5, Created: 5})

	// Idle long enough: back down to min, not below.
	p.reap(clk.Now().Add(time.Minute))
	tpCheckStats(t, c, tpStatsWant{Open: 3, Idle: 3, Created: 5, Closed: 2})
	tpCheckDriver(t, c, d)
	if n := len(d.LiveIDs()); n != 3 {
		t.Errorf("driver has %d connections open, want 3", n)
	}

	// The longest idle go first: use one session, let time pass, reap with min lowered.
	cn, used := tpAcquire(t, ctx, db)
	clk.Advance(30 * time.Second)
	cn.Close()
	if err := c.Reconfigure(PoolConfig{Min: 1, Max: 10, Incr: 1, IdleTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	p.reap(clk.Now().Add(31 * time.Second)) // the two others idle 61s, the used one 31s
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 5, Closed: 4})
	if !d.LiveIDs()[used] {
		t.Errorf("reap closed the recently used session %d; open now: %v", used, d.LiveIDs())
	}
}

func TestPoolGrowByIncrCallerWaitsOnlyForFirst(t *testing.T) {
	d := newTPDriver()
	gate := make(chan struct{})
	d.OnConnect = func(ctx context.Context, n int64) error {
		if tpIsCaller(ctx) {
			return nil // the caller's own session
		}
		select { // the background ones wait for the gate
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	db, c := tpOpen(t, d, tpPC(0, 5, 3), nil)
	ctx := tpCaller(context.Background())

	// The caller gets its session although the other two of the step are still being opened.
	c1, _ := tpAcquire(t, ctx, db)
	tpEventually(t, "two background opens started", func() bool { return d.Started.Load() == 3 })
	if n := d.Opens.Load(); n != 1 {
		t.Fatalf("%d connects finished; want only the caller's", n)
	}
	if s := c.Stats(); s.Open != 3 || s.Busy != 1 || s.Idle != 0 || s.Created != 1 {
		t.Errorf("while growing: %+v; want Open 3 (1 busy, 2 opening), Created 1", s)
	}
	close(gate)
	tpEventually(t, "two idle sessions", func() bool { return c.Stats().Idle == 2 })
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 1, Idle: 2, Created: 3})

	// No growth while an idle session fits.
	c2, _ := tpAcquire(t, ctx, db)
	c3, _ := tpAcquire(t, ctx, db)
	if n := d.Started.Load(); n != 3 {
		t.Errorf("%d connects started, want 3: the idle sessions should have been used", n)
	}
	// All busy: grow again by up to incr, capped by max (5): one for the caller, one more.
	c4, _ := tpAcquire(t, ctx, db)
	tpEventually(t, "Open 5", func() bool { return c.Stats().Open == 5 && c.Stats().Idle == 1 })
	tpCheckStats(t, c, tpStatsWant{Open: 5, Busy: 4, Idle: 1, Created: 5})
	for _, cn := range []*sql.Conn{c1, c2, c3, c4} {
		cn.Close()
	}
	tpCheckStats(t, c, tpStatsWant{Open: 5, Idle: 5, Created: 5})
	tpCheckDriver(t, c, d)
}

func TestPoolMaxLifetimeJitteredAndRetired(t *testing.T) {
	d := newTPDriver()
	clk := newTPClock()
	pc := tpPC(0, 0, 1)
	pc.MaxLifetime = time.Hour
	db, c := tpOpen(t, d, pc, clk)
	p := c.pool
	ctx := context.Background()
	t0 := clk.Now()

	const n = 20
	var conns []*sql.Conn
	for i := 0; i < n; i++ {
		cn, _ := tpAcquire(t, ctx, db)
		conns = append(conns, cn)
	}
	for _, cn := range conns {
		cn.Close()
	}
	p.mu.Lock()
	distinct := map[time.Time]bool{}
	for _, list := range p.idle {
		for _, ph := range list {
			at := time.Unix(0, ph.retireAt)
			distinct[at] = true
			if lo, hi := t0.Add(54*time.Minute), t0.Add(time.Hour); at.Before(lo) || at.After(hi) {
				t.Errorf("retireAt %v not within [%v, %v] (max_lifetime less at most a tenth)", at, lo, hi)
			}
		}
	}
	p.mu.Unlock()
	if len(distinct) < 2 {
		t.Errorf("all %d sessions retire at the same moment: no jitter", n)
	}

	p.reap(t0.Add(54*time.Minute - time.Nanosecond))
	tpCheckStats(t, c, tpStatsWant{Open: n, Idle: n, Created: n})
	p.reap(t0.Add(time.Hour))
	tpCheckStats(t, c, tpStatsWant{Open: 0, Idle: 0, Created: n, Closed: n})

	// Busy past its lifetime: retired when released.
	cn, id := tpAcquire(t, ctx, db)
	clk.Advance(2 * time.Hour)
	cn.Close()
	if d.Conn(id) != nil {
		t.Errorf("session %d outlived its lifetime after release", id)
	}
	tpCheckStats(t, c, tpStatsWant{Created: n + 1, Closed: n + 1})

	// With a min, retired sessions are replaced in the background.
	if err := c.Reconfigure(PoolConfig{Min: 2, MaxLifetime: time.Hour, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	tpEventually(t, "2 idle", func() bool { return c.Stats().Idle == 2 })
	before := d.LiveIDs()
	p.reap(clk.Now().Add(time.Hour))
	tpCheckStats(t, c, tpStatsWant{Created: n + 3, Closed: n + 3})
	p.fillMin()
	tpEventually(t, "2 new idle", func() bool { return c.Stats().Idle == 2 })
	for id := range d.LiveIDs() {
		if before[id] {
			t.Errorf("session %d survived its lifetime", id)
		}
	}
	tpCheckDriver(t, c, d)
}

func TestReconfigureShrinkClosesIdleFirstThenBusyOnRelease(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 4, 1), nil)
	ctx := context.Background()
	var conns []*sql.Conn
	for i := 0; i < 4; i++ {
		cn, _ := tpAcquire(t, ctx, db)
		conns = append(conns, cn)
	}
	conns[0].Close()
	tpCheckStats(t, c, tpStatsWant{Open: 4, Busy: 3, Idle: 1, Created: 4})

	if err := c.Reconfigure(PoolConfig{Max: 1, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	tpCheckStats(t, c, tpStatsWant{Open: 3, Busy: 3, Created: 4, Closed: 1})
	conns[1].Close()
	tpCheckStats(t, c, tpStatsWant{Open: 2, Busy: 2, Created: 4, Closed: 2})
	conns[2].Close()
	tpCheckStats(t, c, tpStatsWant{Open: 1, Busy: 1, Created: 4, Closed: 3})
	conns[3].Close()
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 4, Closed: 3})
	tpCheckDriver(t, c, d)

	// Invalid: refused, and the pool keeps its config.
	if err := c.Reconfigure(PoolConfig{Min: 5, Max: 2}); !errors.Is(err, ErrDSN) {
		t.Errorf("Reconfigure min > max: %v, want ErrDSN", err)
	}
	if err := c.Reconfigure(PoolConfig{GetMode: GetTimedWait}); err == nil {
		t.Errorf("Reconfigure timedwait without a wait timeout succeeded")
	}
	c.pool.mu.Lock()
	if c.pool.cfg.Max != 1 {
		t.Errorf("a refused Reconfigure changed the pool: %+v", c.pool.cfg)
	}
	c.pool.mu.Unlock()
}

func TestReconfigureGrowWakesWaitersAndMin(t *testing.T) {
	d := newTPDriver()
	db, c := tpOpen(t, d, tpPC(0, 1, 1), nil)
	ctx := context.Background()
	a, ida := tpAcquire(t, ctx, db)
	defer a.Close()
	got := make(chan int64, 1)
	go func() {
		cn, err := Acquire(ctx, db)
		if err != nil {
			got <- -1
			return
		}
		id := tpIDOf(t, cn)
		cn.Close()
		got <- id
	}()
	tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
	if err := c.Reconfigure(PoolConfig{Max: 2, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	if id := <-got; id < 0 || id == ida {
		t.Fatalf("waiter got session %d after the pool grew; want a new one", id)
	}
	// Raising min opens sessions in the background.
	if err := c.Reconfigure(PoolConfig{Min: 4, Max: 6, Incr: 1}); err != nil {
		t.Fatal(err)
	}
	tpEventually(t, "4 open and settled", func() bool { s := c.Stats(); return s.Open == 4 && s.Idle == 3 })
	tpCheckDriver(t, c, d)
}

func TestReconfigureRaceWithWaiters(t *testing.T) {
	d := newTPDriver()
	pc := tpPC(0, 2, 1)
	pc.GetMode = GetTimedWait
	pc.WaitTimeout = time.Second
	pc.MaxLifetime = time.Hour
	db, c := tpOpen(t, d, pc, nil)
	ctx := context.Background()
	configs := []PoolConfig{
		{Max: 1, Incr: 1, GetMode: GetTimedWait, WaitTimeout: time.Second, MaxLifetime: time.Hour},
		{Max: 3, Incr: 2, GetMode: GetWait, MaxLifetime: 2 * time.Hour},
		{Max: 2, Incr: 1, GetMode: GetForce, MaxLifetime: time.Minute},
		{Min: 1, Max: 2, Incr: 1, GetMode: GetTimedWait, WaitTimeout: 2 * time.Second, IdleTimeout: time.Hour},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.Reconfigure(configs[i%len(configs)]); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var workers sync.WaitGroup
	for g := 0; g < 6; g++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; i < 150; i++ {
				cn, err := Acquire(ctx, db)
				if err != nil {
					if !errors.Is(err, ErrPoolExhausted) {
						t.Error(err)
					}
					continue
				}
				cn.Close()
			}
		}()
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	tpEventually(t, "quiet", func() bool { s := c.Stats(); return s.Busy == 0 && s.Open == s.Idle })
	tpCheckDriver(t, c, d)
}

// TestPoolProbeFailureHandsSlotToWaiter: the outage prober opens in a slot of its own; a
// checkout that found the pool full because of that slot gets it when the probe fails.
func TestPoolProbeFailureHandsSlotToWaiter(t *testing.T) {
	d := newTPDriver()
	probing, fail := make(chan struct{}), make(chan struct{})
	d.OnConnect = func(ctx context.Context, n int64) error {
		if n != 1 {
			return nil
		}
		close(probing)
		<-fail
		return errors.New("tp: the database is still down")
	}
	db, c := tpOpen(t, d, tpPC(0, 1, 1), newTPClock())
	probed := make(chan error, 1)
	go func() {
		_, err := c.pool.openProbe()
		probed <- err
	}()
	<-probing

	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cn, err := Acquire(ctx, db)
		if err == nil {
			cn.Close()
		}
		got <- err
	}()
	tpEventually(t, "a waiter", func() bool { return c.Stats().Waits == 1 })
	close(fail)
	if err := <-probed; err == nil {
		t.Fatal("openProbe succeeded; want the hook's error")
	}
	if err := <-got; err != nil {
		t.Fatalf("the waiter got %v; want the slot the failed probe freed", err)
	}
	tpEventually(t, "the waiter's release", func() bool { return c.Stats().Busy == 0 })
	tpCheckStats(t, c, tpStatsWant{Open: 1, Idle: 1, Created: 1})
	tpCheckDriver(t, c, d)
}
