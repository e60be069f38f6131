package hasql

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pool is hasql's pool of physical sessions: LIFO per key (user, password,
// class), bounded by PoolConfig.Max, with FIFO waiters when it is full.
//
// The boundary. The files pool*.go are the only code that takes mu or
// changes open, busy, idle, waiters or all. The rest of hasql goes through
// get, reclaim, put, terminate (checkout and release), closeThrough (a handle
// database/sql closed; pool_handles.go), retag and borrowIdle
// (a session's tag and its statements), purgeHost, purgeIdleOfHost and
// purgeAll, addWorker and openProbe (the outage gate), Reconfigure, stats
// and close.
//
// Session states. Each session is in one state at a time; the table gives
// the counts each state is in (all: the set purges walk).
//
//	state        reached by                                  open  busy  listed  all
//	opening      a slot taken for it (get, Min, Incr, probe) yes   (1)   no      no
//	idle         listed by offerLocked, or parked by put     yes   no    yes     yes
//	held-listed  taken back by its handle (reclaim)          yes   (2)   yes     yes
//	busy         handed out by get or to a waiter            yes   yes   no      yes
//	retiring     taken out of the counts under mu, closing   no    no    no      until closed
//	closed       session.close done                          no    no    no      no
//
// (1) In busy while a checkout opens it for itself (get, GetForce, a slot
// granted to a waiter); not when it is opened in the background (Min,
// Incr) or by the outage prober, which offer it to the pool once open.
//
// (2) Not in busy, which only the lock may change; stats counts it as busy
// by scanning the lists.
//
// An opening session is adopted into all (and into Created) under mu once
// its connect succeeds; a failed open frees its slot.
//
// bad is a mark, not a state: a session whose connection died, whose reset
// or session callback failed, or that a purge marked, is never handed out
// again. Held, it retires when released (offerLocked); idle (parked just as
// a purge marked it), checkouts skip it and the reaper retires it. Every
// session leaves through retiring: its slot is given up under mu, handed to
// the first waiter (freeSlotsLocked), and the session closed outside mu.
//
// Ownership. While a session is listed, its idle flag is its ownership
// token: whoever swaps it from true to false holds the session (a checkout
// or scanner under mu, or its handle's reclaim without mu). A listed
// session whose flag is false is held by someone; list readers skip it.
// Fields of a session other than the atomics belong to its holder.
//
// Parking. put releases a listed session by parking it: one atomic store
// of true to its idle flag, no lock, so that the handle's next checkout
// takes it back with one compare-and-swap (reclaim). A checkout about to
// wait for a full pool must not sleep beside a session parked as it looked.
// Two sequentially consistent atomics (Go's sync/atomic) form a Dekker pair
// that rules it out:
//
//	put, parking                        get, about to wait, holding mu throughout
//	idle.Store(true)                    contended.Store(true)
//	if contended.Load() {               scan the idle lists (idle.CompareAndSwap)
//	    lock mu                         queue a waiter; unlock
//	    CAS idle true→false, or return  (unlock keeps contended true: a waiter)
//	    offerLocked: to the waiter
//	}
//
// Every store to contended is made under mu (by unlock, and by get's
// announcement), so from get's store until its waiter is served it stays
// true. In the single total order of the four operations one store comes
// first.
// If put's store does, get's scan, which follows get's store, sees the flag
// and takes the session. If get's store does, put's load, which follows
// put's store, sees contended and goes to the lock; it gets it only after
// get has queued (scan and queueing are one critical section), so either
// get's scan took the session (put's CAS fails: nothing to do) or
// offerLocked hands it to the waiter. No wake-up is lost. Every unlock
// recomputes contended from the state under mu (waiters, closed, above
// Max); a stale true only sends a release through the lock.
//
// Lock order: outage.mu → pool.mu (outage.enter registers its prober with
// addWorker holding the gate's lock). Otherwise mu is a leaf: holding it,
// the pool takes no other lock (hostSet.mu, session.mu, the callback
// registry's and event queue's locks are taken only outside it), calls no
// user code (FnConnect and FnClose callbacks, session callbacks, event
// receivers) and emits no events. Sessions are opened and closed outside
// mu: a slot is counted first, the connect runs without the lock. Under mu
// the pool sends only on waiters' channels, buffered and each granted once,
// so a send never blocks.
//
// Background goroutines (the maintainer, background opens, the outage
// prober, the host health checker) are counted in wg before they start:
// by start before the pool is in use, under mu while the pool is not closed
// (addWorker, growLocked), or by the maintainer, itself counted, so that
// the count is above zero. close sets closed under mu, cancels bgCtx and
// waits on wg: it waits for every one of them, and none starts after.
type pool struct {
	c   *Connector
	now func() time.Time

	// rlb: hand out idle sessions on the best-ranked host first (runtime
	// load balancing; see hostSet.rlb). Fixed at creation.
	rlb bool

	mu      sync.Mutex
	cfg     PoolConfig
	idle    map[poolKey][]*session // listed sessions, most recently listed last; entries not idle are held
	all     map[*session]struct{}  // every session adopted and not yet closed, for purges
	open    int                    // slots: sessions open or being opened; counts toward Max
	busy    int                    // held and not listed, or being opened by a checkout for itself
	waiters []*waiter              // FIFO
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

	// Background work (pool_size.go).
	bgCtx    context.Context
	bgCancel context.CancelFunc
	kickCh   chan struct{}
	wg       sync.WaitGroup

	// handleIDs numbers the connector's handles (handle.id).
	handleIDs atomic.Uint64

	// Counters for Stats (pool_stats.go), changed without the lock.
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
	p.rlb = c.hosts != nil && c.hosts.rlb
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

// checkout is the result of a get: the session and how it was found.
type checkout struct {
	ph       *session
	opened   bool // opened for this checkout
	tagFound bool // the requested tag matched exactly
}

// get returns a session for the selector: a pooled one that fits, else a new
// one, waiting or failing as the get mode says when the pool is full. Below
// Max, a pooled session must also be able to serve a handle made at born
// (session.serves); at Max, where another cannot be opened, any that fits
// will do.
func (p *pool) get(ctx context.Context, key poolKey, tag string, sel selector, purityNew bool, born time.Time) (checkout, error) {
	announced := false
	p.mu.Lock()
	for {
		if p.closed {
			p.unlock()
			return checkout{}, ErrClosed
		}
		full := p.cfg.Max > 0 && p.open >= p.cfg.Max
		if !purityNew {
			from := born
			if full {
				from = time.Time{} // no age rule: see pool_handles.go
			}
			if ph, exact := p.takeIdleLocked(key, tag, sel.matchAny, from); ph != nil {
				p.busy++
				p.unlock()
				p.countTag(tag, exact)
				return checkout{ph: ph, tagFound: exact}, nil
			}
		}
		if !full {
			p.open++
			p.busy++
			p.growLocked(key)
			p.unlock()
			return p.openInSlot(ctx, key, tag, sel, false)
		}
		// Full. An idle session nobody here can use gives up its slot.
		if victim := p.takeAnyIdleLocked(); victim != nil {
			p.busy++
			fits := !purityNew && !victim.bad.Load() && victim.key == key &&
				(victim.tag == tag || victim.tag == "" || sel.matchAny)
			p.unlock()
			if fits {
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
	ph, err := p.c.openSession(ctx, sel, key)
	if err != nil {
		p.mu.Lock()
		p.busy--
		p.freeSlotsLocked(1)
		p.unlock()
		if tag != "" {
			p.tagMisses.Add(1)
		}
		return checkout{}, err
	}
	ph.forced = forced
	p.mu.Lock()
	p.adoptLocked(ph)
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
		p.busy--
		p.freeSlotsLocked(1)
		p.unlock()
	}
	return grant{}, err
}

// takeIdleLocked pops the idle session that best fits the request: the most
// recently listed with exactly the tag; else an untagged one; else, with
// matchAny, the one sharing most tag properties, else any; each one able to
// serve a handle made at born (the zero time: any). exact reports an exact
// tag match (always false for an untagged request).
func (p *pool) takeIdleLocked(key poolKey, tag string, matchAny bool, born time.Time) (ph *session, exact bool) {
	for {
		list := p.idle[key]
		pick := -1
		exact = false
		if tag != "" {
			if pick = p.pickLocked(list, tag, born); pick >= 0 {
				exact = true
			}
		}
		if pick < 0 {
			pick = p.pickLocked(list, "", born)
		}
		if pick < 0 && matchAny {
			best := -1
			for i := len(list) - 1; i >= 0; i-- {
				if n := sharedProperties(list[i].tag, tag); n > best && list[i].usable() && list[i].serves(born) {
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

// pickLocked returns the index in list of the session to hand out among the
// usable ones tagged tag that may serve a handle made at born, or -1: the
// most recently listed (LIFO), or with runtime load balancing the most
// recently listed on the best-ranked host.
func (p *pool) pickLocked(list []*session, tag string, born time.Time) int {
	pick, best := -1, int32(0)
	for i := len(list) - 1; i >= 0; i-- {
		ph := list[i]
		if ph.tag != tag || !ph.usable() || !ph.serves(born) {
			continue
		}
		if !p.rlb {
			return i
		}
		if r := ph.rank(); pick < 0 || r < best {
			pick, best = i, r
			if r == 0 {
				break
			}
		}
	}
	return pick
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
	if !ph.used {
		// Written only when it changes, while ph is unlisted: checkouts
		// read it under mu on listed sessions (session.serves).
		ph.used = true
	}
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
// would for the exact match. It costs one atomic compare-and-swap. With
// runtime load balancing a session on any host but the best is not taken
// back (the pool picks instead).
func (p *pool) reclaim(ph *session, tag string) bool {
	if p.rlb && ph.rank() != 0 {
		// Runtime load balancing: a session on a worse host than the
		// best goes the pool's way, which prefers the best host.
		return false
	}
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
		p.freeSlotsLocked(1)
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
// else no tag, else (matchAny) any tag; never to a purity NEW waiter. (A
// checkout waits only at Max, where the age rule does not apply: see get.)
func (w *waiter) fits(ph *session) bool {
	return w.key == ph.key && !w.purityNew && (ph.tag == w.tag || ph.tag == "" || w.matchAny)
}

// adoptLocked makes a session just opened in a slot the pool's: counted in
// Created, given its lifetime, and put in all, where purges find it.
func (p *pool) adoptLocked(ph *session) {
	p.created.Add(1)
	p.setLifetime(ph)
	p.all[ph] = struct{}{}
}

// freeSlotsLocked gives up n slots counted in open whose sessions are gone
// or on their way out (failed to open, retiring, purged), handing each to
// the first waiter while there are waiters and the pool is below Max. Every
// path that frees a slot goes through here, so no waiter sleeps beside a
// free slot.
func (p *pool) freeSlotsLocked(n int) {
	p.open -= n
	for ; n > 0 && len(p.waiters) > 0; n-- {
		p.grantSlotLocked()
	}
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

// retag sets the tag of ph, which the caller holds. A listed session's tag
// is read by checkouts scanning the idle lists under mu whether the entry is
// held or not, so it changes under the lock; an unlisted one's is the
// holder's alone.
func (p *pool) retag(ph *session, tag string) {
	if !ph.listed {
		ph.tag = tag
		return
	}
	p.mu.Lock()
	ph.tag = tag
	p.unlock()
}

// borrowIdle takes ph out of the pool's idle list, if it is there and idle,
// so that the caller owns it until it hands it back with put: a statement
// closed while its session is idle is released at once, as database/sql
// closes its statement at once (with the cache off, or evicting, a close on
// the server that cannot wait for the session's next checkout).
func (p *pool) borrowIdle(ph *session) bool {
	p.mu.Lock()
	defer p.unlock()
	list := p.idle[ph.key]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i] == ph {
			if !p.unlistIdleLocked(ph.key, i) {
				return false
			}
			p.busy++
			return true
		}
	}
	return false
}

// addWorker counts a background goroutine in wg, unless the pool is closed,
// and reports whether it did; the goroutine calls p.wg.Done when it ends.
// Counting under mu after seeing the pool open is what lets close wait for
// it.
func (p *pool) addWorker() bool {
	p.mu.Lock()
	defer p.unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
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
	p.freeSlotsLocked(len(idle)) // no waiters are left: only the count changes
	p.unlock()
	for _, ph := range idle {
		ph.close(false)
	}
}
