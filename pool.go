package hasql

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// session is one real connection of the inner driver: a session session.
// At most one virtual handle owns it at a time; only the owner touches inner.
type session struct {
	pool    *pool
	inner   driver.Conn
	key     poolKey
	host    string // host:port it is connected to, where known
	hostRef *host
	hostGen uint64 // hostRef's purge generation when the session was opened

	// The inner connection's optional interfaces, looked up once.
	execerCtx  driver.ExecerContext
	queryerCtx driver.QueryerContext
	execer     driver.Execer
	queryer    driver.Queryer
	prepCtx    driver.ConnPrepareContext
	beginTx    driver.ConnBeginTx
	pinger     driver.Pinger
	resetter   driver.SessionResetter
	checker    driver.NamedValueChecker

	created  time.Time
	retireAt int64 // created + jittered MaxLifetime, in Unix nanoseconds; 0: never

	// idle is set while the session is in the pool's idle list and nobody
	// holds it: whoever swaps it from true to false owns the session. Only
	// that swap hands a listed session over, so the handle that parked it
	// (see pool.put) can take it back without the pool's lock.
	idle   atomic.Bool
	idleAt atomic.Int64 // the pool's stamp when last parked or listed

	// listed: the session has an entry in the pool's idle list. Changed
	// under pool.mu, by its holder or by whoever won it with idle; so the
	// holder may read it without the lock. A held session can stay listed
	// (its handle took it back without the lock); the list's readers skip
	// entries that are not idle.
	listed bool

	// Owned by whoever holds the session (the pool's lock hands it over).
	tag           string // normalised; "" = untagged
	used          bool   // handed out before, so the next checkout resets it
	forced        bool   // opened beyond Max by GetForce
	stmtCacheSize int

	bad atomic.Bool // never pool again: terminate on release

	cache stmtCache // owned like the fields above

	sessionTraits // what the dialect knows about the inner connection; fixed at open

	mu      sync.Mutex
	pending []*cachedStmt // statement releases deferred until the session is next owned

	// hasPending is set with pending non-empty, so that a checkout with
	// nothing deferred skips mu; spare is pending's previous backing array,
	// owned like the fields above, so that deferring allocates nothing.
	hasPending atomic.Bool
	spare      []*cachedStmt

	view Session // a view of this session alone, for FnConnect and FnClose callbacks
}

// poolKey partitions the pool: sessions never cross users (with their
// passwords: a wrong password never gets a session another caller
// authenticated) or connection classes.
type poolKey struct{ user, pass, class string }

func newPhysical(p *pool, inner driver.Conn, key poolKey) *session {
	ph := &session{pool: p, inner: inner, key: key, created: p.now()}
	ph.execerCtx, _ = inner.(driver.ExecerContext)
	ph.queryerCtx, _ = inner.(driver.QueryerContext)
	ph.execer, _ = inner.(driver.Execer)   //nolint:staticcheck // fidelity with database/sql's fallbacks
	ph.queryer, _ = inner.(driver.Queryer) //nolint:staticcheck
	ph.prepCtx, _ = inner.(driver.ConnPrepareContext)
	ph.beginTx, _ = inner.(driver.ConnBeginTx)
	ph.pinger, _ = inner.(driver.Pinger)
	ph.resetter, _ = inner.(driver.SessionResetter)
	ph.checker, _ = inner.(driver.NamedValueChecker)
	ph.sessionTraits = p.c.dialect.sessionTraits(inner)
	ph.view.p = ph
	return ph
}

// deferRelease queues a statement release for the session's next owner: a
// statement can be closed by database/sql while its session is in another
// handle's hands, and neither the inner connection nor the statement cache
// is safe for concurrent use.
func (ph *session) deferRelease(cs *cachedStmt) {
	ph.mu.Lock()
	ph.pending = append(ph.pending, cs)
	ph.hasPending.Store(true)
	ph.mu.Unlock()
}

// drainPending runs the deferred statement releases; the caller owns ph.
func (ph *session) drainPending() {
	if !ph.hasPending.Load() {
		return
	}
	ph.mu.Lock()
	pending := ph.pending
	ph.pending, ph.spare = ph.spare[:0], nil
	ph.hasPending.Store(false)
	ph.mu.Unlock()
	for _, cs := range pending {
		if err := ph.releaseStmt(cs); ph.pool.c.dialect.connDead(err) {
			ph.bad.Store(true)
		}
	}
	clear(pending)
	ph.spare = pending[:0]
}

// pool is the physical session pool: LIFO per (user, class), bounded by Max,
// with FIFO waiters when it is full.
type pool struct {
	c   *Connector
	now func() time.Time

	mu      sync.Mutex
	cfg     PoolConfig
	idle    map[poolKey][]*session // most recently listed last; entries not idle are skipped
	all     map[*session]struct{}  // every open session, for purges
	open    int                    // open or being opened; counts toward Max
	busy    int                    // held and not listed, or a slot being opened by a caller (listed and held: see stats)
	waiters []*waiter
	closed  bool

	// contended is set while the pool has waiters, is closed or is above
	// Max: a release then goes through the lock (offerLocked) rather than
	// park its session. unlock keeps it up to date.
	contended atomic.Bool

	// clock is the time parking and listing stamp on sessions, in Unix
	// nanoseconds: set by the maintainer at each of its wake-ups, so that a
	// release does not read the system clock. It lags by at most the
	// maintainer's interval, a quarter of IdleTimeout and MaxLifetime.
	// fakeClock (tests) makes stamp read now instead.
	clock     atomic.Int64
	fakeClock bool

	// Background work (poolsize.go).
	bgCtx    context.Context
	bgCancel context.CancelFunc
	kickCh   chan struct{}
	wg       sync.WaitGroup

	created, closedN, terminated atomic.Int64
	waits, waitTimeouts          atomic.Int64
	waitTime                     atomic.Int64 // nanoseconds
	tagHits, tagMisses           atomic.Int64
}

// waiter is a checkout waiting for a full pool. It is granted either a
// released session of its key or a slot in which to open a new one.
type waiter struct {
	key       poolKey
	tag       string     // normalised; a released session must fit it (fits)
	matchAny  bool       // any tag will do
	purityNew bool       // purity NEW: only a slot will do
	ch        chan grant // buffered: granting never blocks
	enqueued  time.Time
}

// grant is a released session, or (ph nil) a slot in which to open a new
// session, or word that the pool closed.
type grant struct {
	ph     *session
	closed bool
}

func newPool(c *Connector, cfg PoolConfig) *pool {
	p := &pool{c: c, now: time.Now, cfg: cfg, idle: make(map[poolKey][]*session), all: make(map[*session]struct{})}
	p.clock.Store(time.Now().UnixNano())
	return p
}

// stamp is the time idle and lifetime decisions take at a release.
func (p *pool) stamp() int64 {
	if p.fakeClock {
		return p.now().UnixNano()
	}
	return p.clock.Load()
}

// unlock unlocks p.mu, first recording in contended whether a release must
// take the lock.
func (p *pool) unlock() {
	p.contended.Store(p.closed || len(p.waiters) > 0 || p.cfg.Max > 0 && p.open > p.cfg.Max)
	p.mu.Unlock()
}

// expired reports whether ph is past its lifetime at stamp now.
func (ph *session) expired(now int64) bool {
	return ph.retireAt != 0 && now >= ph.retireAt
}

// checkout is the result of a get: the session and how it was found.
type checkout struct {
	ph       *session
	opened   bool // opened for this checkout
	tagFound bool // the requested tag matched exactly
}

// get returns a session for the selector: a pooled one that fits, else a new
// one, waiting or failing as the get mode says when the pool is full.
func (p *pool) get(ctx context.Context, key poolKey, tag string, sel selector, purityNew bool) (checkout, error) {
	announced := false
	p.mu.Lock()
	for {
		if p.closed {
			p.unlock()
			return checkout{}, ErrClosed
		}
		if !purityNew {
			if ph, exact := p.takeIdleLocked(key, tag, sel.matchAny); ph != nil {
				p.busy++
				p.unlock()
				p.countTag(tag, exact)
				return checkout{ph: ph, tagFound: exact}, nil
			}
		}
		if p.cfg.Max == 0 || p.open < p.cfg.Max {
			p.open++
			p.busy++
			p.growLocked(key)
			p.unlock()
			return p.openInSlot(ctx, key, tag, sel, false)
		}
		// Full. An idle session nobody here can use gives up its slot.
		if victim := p.takeAnyIdleLocked(); victim != nil {
			p.busy++
			p.unlock()
			if !purityNew && !victim.bad.Load() && victim.key == key && (victim.tag == tag || victim.tag == "" || sel.matchAny) {
				// Parked by its handle (without the lock) after the look
				// above: it fits after all.
				exact := tag != "" && victim.tag == tag
				p.countTag(tag, exact)
				return checkout{ph: victim, tagFound: exact}, nil
			}
			victim.close(victim.bad.Load())
			return p.openInSlot(ctx, key, tag, sel, false)
		}
		switch p.cfg.GetMode {
		case GetNoWait:
			p.unlock()
			return checkout{}, newError(ErrPoolExhausted, "every session is busy and the pool is at its maximum (getmode nowait)", nil)
		case GetForce:
			p.open++
			p.busy++
			p.unlock()
			return p.openInSlot(ctx, key, tag, sel, true)
		}
		if err := ctx.Err(); err != nil {
			p.unlock() // an ended context does not wait (nor count a wait)
			return checkout{}, err
		}
		if !announced {
			// Mark the pool contended, then look at the idle lists once
			// more, all under the lock: a session its handle parks (put)
			// after this comes through the lock to the waiter queue, and
			// one parked before it is found here.
			announced = true
			p.contended.Store(true)
			continue
		}
		g, err := p.waitLocked(ctx, key, tag, sel.matchAny, purityNew)
		if err != nil {
			return checkout{}, err
		}
		if g.closed {
			return checkout{}, ErrClosed
		}
		if g.ph == nil {
			return p.openInSlot(ctx, key, tag, sel, false)
		}
		exact := tag != "" && g.ph.tag == tag
		p.countTag(tag, exact)
		return checkout{ph: g.ph, tagFound: exact}, nil
	}
}

func (p *pool) countTag(tag string, exact bool) {
	if tag == "" {
		return
	}
	if exact {
		p.tagHits.Add(1)
	} else {
		p.tagMisses.Add(1)
	}
}

// openInSlot opens a session in a slot already counted in open and busy.
func (p *pool) openInSlot(ctx context.Context, key poolKey, tag string, sel selector, forced bool) (checkout, error) {
	ph, err := p.c.openPhysical(ctx, sel, key)
	if err != nil {
		p.mu.Lock()
		p.open--
		p.busy--
		p.grantSlotLocked()
		p.unlock()
		if tag != "" {
			p.tagMisses.Add(1)
		}
		return checkout{}, err
	}
	ph.forced = forced
	p.created.Add(1)
	p.mu.Lock()
	p.setLifetime(ph)
	p.all[ph] = struct{}{}
	p.unlock()
	if tag != "" {
		p.tagMisses.Add(1)
	}
	return checkout{ph: ph, opened: true}, nil
}

// waitLocked queues the caller until a session or slot is granted, the
// context ends, or (timedwait) the wait timeout passes. It unlocks p.mu.
func (p *pool) waitLocked(ctx context.Context, key poolKey, tag string, matchAny, purityNew bool) (grant, error) {
	w := &waiter{key: key, tag: tag, matchAny: matchAny, purityNew: purityNew, ch: make(chan grant, 1), enqueued: p.now()}
	p.waiters = append(p.waiters, w)
	mode, wait := p.cfg.GetMode, p.cfg.WaitTimeout // read under p.mu: Reconfigure may change them
	p.unlock()
	p.waits.Add(1)

	var timeout <-chan time.Time
	if mode == GetTimedWait {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case g := <-w.ch:
		p.waitTime.Add(int64(p.now().Sub(w.enqueued)))
		return g, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		p.waitTimeouts.Add(1)
		err = newError(ErrPoolExhausted, "no session freed within the wait timeout (getmode timedwait)", nil)
	}
	p.waitTime.Add(int64(p.now().Sub(w.enqueued)))
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.unlock()
			return grant{}, err
		}
	}
	p.unlock()
	// Granted while giving up: hand the grant back.
	if g := <-w.ch; g.ph != nil {
		p.put(g.ph)
	} else if !g.closed {
		p.mu.Lock()
		p.open--
		p.busy--
		p.grantSlotLocked()
		p.unlock()
	}
	return grant{}, err
}

// takeIdleLocked pops the idle session that best fits the request: the most
// recently listed with exactly the tag; else an untagged one; else, with
// matchAny, the one sharing most tag properties, else any. exact reports an
// exact tag match (always false for an untagged request).
func (p *pool) takeIdleLocked(key poolKey, tag string, matchAny bool) (ph *session, exact bool) {
	for {
		list := p.idle[key]
		pick := -1
		exact = false
		if tag != "" {
			for i := len(list) - 1; i >= 0; i-- {
				if list[i].tag == tag && list[i].usable() {
					pick, exact = i, true
					break
				}
			}
		}
		if pick < 0 {
			for i := len(list) - 1; i >= 0; i-- {
				if list[i].tag == "" && list[i].usable() {
					pick = i
					break
				}
			}
		}
		if pick < 0 && matchAny {
			best := -1
			for i := len(list) - 1; i >= 0; i-- {
				if n := sharedProperties(list[i].tag, tag); n > best && list[i].usable() {
					pick, best = i, n
				}
			}
		}
		if pick < 0 {
			return nil, false
		}
		if ph = list[pick]; p.unlistIdleLocked(key, pick) {
			return ph, exact
		}
		// Its handle took it back as we looked: look again.
	}
}

// usable reports whether a listed session may be handed out: idle, and not
// marked bad (a purge marks the sessions it cannot take, and a handle may
// park one just before the mark; the reaper closes those).
func (ph *session) usable() bool {
	return ph.idle.Load() && !ph.bad.Load()
}

// unlistIdleLocked takes the session at index i of key's idle list if it is
// idle, removing its entry, and reports whether it did.
func (p *pool) unlistIdleLocked(key poolKey, i int) bool {
	list := p.idle[key]
	ph := list[i]
	if !ph.idle.CompareAndSwap(true, false) {
		return false
	}
	p.removeEntryLocked(key, i)
	return true
}

// removeEntryLocked removes entry i of key's idle list.
func (p *pool) removeEntryLocked(key poolKey, i int) {
	list := p.idle[key]
	list[i].listed = false
	copy(list[i:], list[i+1:])
	list[len(list)-1] = nil
	p.idle[key] = list[:len(list)-1]
}

// unlistLocked removes the entry of ph, which the caller holds, from its
// idle list.
func (p *pool) unlistLocked(ph *session) {
	list := p.idle[ph.key]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i] == ph {
			p.removeEntryLocked(ph.key, i)
			return
		}
	}
}

// takeIdleWhereLocked takes every idle session for which doom reports true,
// removing their entries. doom is called once per idle session, in list
// order.
func (p *pool) takeIdleWhereLocked(doom func(*session) bool) []*session {
	var taken []*session
	for key, list := range p.idle {
		kept := list[:0]
		for _, ph := range list {
			// Held while doom looks, so that its handle cannot take it
			// back meanwhile; given back if spared.
			if ph.idle.CompareAndSwap(true, false) {
				if doom(ph) {
					ph.listed = false
					taken = append(taken, ph)
					continue
				}
				ph.idle.Store(true)
			}
			kept = append(kept, ph)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = kept
		}
	}
	return taken
}

// takeAnyIdleLocked pops the oldest idle session of any key.
func (p *pool) takeAnyIdleLocked() *session {
	for {
		var oldest *session
		var okey poolKey
		oi := -1
		for k, list := range p.idle {
			for i, ph := range list {
				if ph.idle.Load() {
					if oldest == nil || ph.created.Before(oldest.created) {
						oldest, okey, oi = ph, k, i
					}
					break
				}
			}
		}
		if oldest == nil {
			return nil
		}
		if p.unlistIdleLocked(okey, oi) {
			return oldest
		}
	}
}

// sharedProperties counts the k=v properties two normalised tags share.
func sharedProperties(a, b string) int {
	if a == "" || b == "" {
		return 0
	}
	n := 0
	for _, pa := range strings.Split(a, ";") {
		for _, pb := range strings.Split(b, ";") {
			if pa == pb {
				n++
			}
		}
	}
	return n
}

// put returns a session from its holder. A session that is still listed
// (its handle took it back with reclaim) and that nothing else wants is
// parked: marked idle where it stands, without the lock, so that the same
// handle's next checkout can reclaim it just as cheaply. Otherwise the
// session goes through offerLocked.
func (p *pool) put(ph *session) {
	ph.used = true
	now := p.stamp()
	if ph.listed {
		if !ph.bad.Load() && !p.contended.Load() && !ph.expired(now) {
			if ph.idleAt.Load() != now { // the stamp moves a few times a minute
				ph.idleAt.Store(now)
			}
			ph.idle.Store(true)
			if !p.contended.Load() {
				return
			}
			// A checkout began to wait, or the pool closed or shrank, as
			// the session was parked: unless a checkout took it already,
			// it goes where offerLocked says.
			p.mu.Lock()
			if !ph.idle.CompareAndSwap(true, false) {
				p.unlock()
				return
			}
		} else {
			p.mu.Lock()
		}
		p.unlistLocked(ph)
	} else {
		p.mu.Lock()
		p.busy--
	}
	p.offerLocked(ph, now)
}

// reclaim takes back, without the pool's lock, the session a handle held at
// its last checkout, if it is idle and still carries tag (a session another
// handle took meanwhile may have been retagged). It counts a tag hit as get
// would for the exact match. It costs one atomic compare-and-swap.
func (p *pool) reclaim(ph *session, tag string) bool {
	if !ph.idle.CompareAndSwap(true, false) {
		return false
	}
	if ph.tag != tag || ph.bad.Load() {
		p.put(ph) // parked again, or if bad retired
		return false
	}
	p.countTag(tag, true)
	return true
}

// offerLocked places a session nobody holds and that is not listed: with a
// waiter of its key, in the idle list, or — if it is bad, past its lifetime,
// above the pool's maximum, or the pool is closed — to its end, its slot
// going to the first waiter. It unlocks p.mu.
func (p *pool) offerLocked(ph *session, now int64) {
	retire := p.closed || ph.bad.Load() ||
		(p.cfg.Max > 0 && p.open > p.cfg.Max) || ph.expired(now)
	if !retire {
		for i, w := range p.waiters {
			if w.fits(ph) {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				p.busy++
				w.ch <- grant{ph: ph}
				p.unlock()
				return
			}
		}
		// Someone waits for a session this one cannot be: give them its slot.
		retire = len(p.waiters) > 0
	}
	if retire {
		p.open--
		p.grantSlotLocked()
		p.unlock()
		ph.close(ph.bad.Load())
		p.kick()
		return
	}
	ph.idleAt.Store(now)
	p.idle[ph.key] = append(p.idle[ph.key], ph)
	ph.listed = true
	ph.idle.Store(true)
	p.unlock()
}

// fits reports whether a released session may be handed to the waiter: by
// the selection rules of takeIdleLocked, the same key, and exactly the tag,
// else no tag, else (matchAny) any tag; never to a purity NEW waiter.
func (w *waiter) fits(ph *session) bool {
	return w.key == ph.key && !w.purityNew && (ph.tag == w.tag || ph.tag == "" || w.matchAny)
}

// grantSlotLocked gives a free slot to the first waiter, if any; the slot is
// counted in open and busy on its behalf.
func (p *pool) grantSlotLocked() {
	if len(p.waiters) == 0 || (p.cfg.Max > 0 && p.open >= p.cfg.Max) {
		return
	}
	w := p.waiters[0]
	p.waiters = p.waiters[1:]
	p.open++
	p.busy++
	w.ch <- grant{}
}

// terminate ends a session its owner found dead, freeing its slot.
func (p *pool) terminate(ph *session) {
	ph.bad.Store(true)
	p.put(ph)
}

// close closes every idle session, stops the background work and waits for
// it; busy sessions are closed as they are released.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	waiters := p.waiters
	p.waiters = nil
	p.unlock()
	for _, w := range waiters {
		w.ch <- grant{closed: true}
	}
	if p.bgCancel != nil {
		p.bgCancel()
		p.wg.Wait()
	}
	p.mu.Lock()
	idle := p.takeIdleWhereLocked(func(*session) bool { return true })
	p.open -= len(idle)
	p.unlock()
	for _, ph := range idle {
		ph.close(false)
	}
}

// close closes the inner connection, running FnClose callbacks. terminated
// says it ends after an error rather than by choice.
func (ph *session) close(terminated bool) {
	p := ph.pool
	if terminated {
		p.terminated.Add(1)
	}
	p.closedN.Add(1)
	p.mu.Lock()
	delete(p.all, ph)
	p.unlock()
	if !terminated && !ph.keepStmtsAtClose {
		// As database/sql closes a connection's statements before the
		// connection (a driver may hold resources per statement; sqlmock
		// checks WillBeClosed). A dead connection's go with it, and so do
		// pgx's, where each close would be a round trip for nothing.
		ph.drainPending()
		ph.closeStmts()
	}
	p.c.closePhysical(ph)
}

// stats fills the pool's part of Stats.
func (p *pool) stats(s *Stats) {
	p.mu.Lock()
	// A listed session is idle or held by the handle that took it back;
	// each is counted once, as one or the other, so Busy+Idle is exact even
	// while handles park and take back without the lock.
	s.Open, s.Busy = p.open, p.busy
	for _, list := range p.idle {
		for _, ph := range list {
			if ph.idle.Load() {
				s.Idle++
			} else {
				s.Busy++
			}
		}
	}
	p.unlock()
	s.Created = p.created.Load()
	s.Closed = p.closedN.Load()
	s.Terminated = p.terminated.Load()
	s.Waits = p.waits.Load()
	s.WaitTimeouts = p.waitTimeouts.Load()
	s.WaitTime = time.Duration(p.waitTime.Load())
	s.TagHits = p.tagHits.Load()
	s.TagMisses = p.tagMisses.Load()
}
