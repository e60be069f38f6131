package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The host set: where new physical sessions go. Several hosts come from
// hasql.hosts / WithHosts or pgx's own multi-host DSN; a picker orders them
// for each new session; a host that fails to connect is blacklisted for a
// while (doubling on repeated failure, Droplet's rule) and the next one is
// tried; when every host is blacklisted all are tried anyway. With a target
// role, a host whose server has the wrong role is skipped.

// role is a server's role as last seen.
type role uint8

const (
	roleUnknown role = iota
	rolePrimary
	roleStandby
)

// String names the role for HostStats: "primary", "standby" or "".
func (r role) String() string {
	switch r {
	case rolePrimary:
		return "primary"
	case roleStandby:
		return "standby"
	}
	return ""
}

// preferRole returns order with the hosts last seen in role r first, the
// others after them in the same order.
func (hs *hostSet) preferRole(order []*host, r role) []*host {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]*host, 0, len(order))
	for _, h := range order {
		if h.role == r {
			out = append(out, h)
		}
	}
	for _, h := range order {
		if h.role != r {
			out = append(out, h)
		}
	}
	return out
}

// host is one database address.
type host struct {
	addr string
	dsn  string // the inner DSN pointed at addr; "" = the connector's own

	// guarded by hostSet.mu
	state     HostState
	failures  int64 // consecutive connect failures
	total     int64 // all failures
	until     time.Time
	penalty   time.Duration // current blacklist length
	lastErr   error
	role      role
	latency   time.Duration // moving average of connect time
	open      int
	connector map[poolKey]driver.Connector

	// rank is the host's place in the runtime load balancing of sessions
	// already open (hasql.pick=latency over several hosts): 0 for the
	// healthiest, fastest host. Written under hostSet.mu, read by the pool
	// under its own lock without taking this one (pool.mu is a leaf).
	rank atomic.Int32

	// gen counts the purges of the host's sessions. A session remembers the
	// generation it was opened in; its loss is news only if no purge has
	// happened since (else that purge already dealt with it), so that the
	// many sessions one restart kills cause one HostDown and one purge, and a
	// late-noticed old session never purges the new ones.
	gen uint64

	given bool       // named in the DSN or hasql.hosts (not only discovered)
	disc  memberView // discovery's view of it (hasql.discover); guarded by hostSet.mu
}

type hostSet struct {
	c     *Connector
	mu    sync.Mutex
	hosts []*host
	next  int // round-robin position

	// rlb: the latency picker over several hosts also balances the
	// sessions already open (OCI runtime load balancing): the pool hands
	// out an idle session on the best-ranked host first. Fixed at creation.
	rlb bool

	drained map[string]bool // hosts under Connector.Drain: no new sessions
}

// newHostSet builds the host list from the configuration and the DSN. A
// single host with no DSN to point elsewhere uses the connector's own inner
// connector.
func newHostSet(c *Connector) (*hostSet, error) {
	hs := &hostSet{c: c}
	addrs := c.cfg.hosts
	if len(addrs) == 0 && c.dsn != "" {
		addrs = c.dialect.hosts(c.dsn)
	}
	if len(addrs) <= 1 && len(c.cfg.hosts) == 0 {
		hs.hosts = []*host{{addr: c.host, given: true}}
		return hs, nil
	}
	if c.innerDrv == nil {
		return nil, newError(ErrDSN, "several hosts need a connector opened from a DSN (sql.Open or hasql.Open), not NewConnector/OpenDB", nil)
	}
	for _, a := range addrs {
		dsn, err := c.dialect.pointAt(c.dsn, a)
		if err != nil {
			return nil, err
		}
		hs.hosts = append(hs.hosts, &host{addr: a, dsn: dsn, given: true})
	}
	hs.rlb = c.cfg.picker == PickLatency && len(hs.hosts) > 1
	return hs, nil
}

// rerankLocked sets each host's rank for runtime load balancing: hosts up
// before hosts down or blacklisted, then by measured connect latency
// (unmeasured last: nothing is known of them). hs.mu is held.
func (hs *hostSet) rerankLocked() {
	if !hs.rlb {
		return
	}
	ranked := append([]*host(nil), hs.hosts...)
	worse := func(a, b *host) bool { // a ranks below b
		if (a.state == HostStateUp) != (b.state == HostStateUp) {
			return b.state == HostStateUp
		}
		if (a.latency == 0) != (b.latency == 0) {
			return a.latency == 0
		}
		return a.latency > b.latency
	}
	sortStable(ranked, func(a, b *host) bool { return worse(b, a) })
	for i, h := range ranked {
		h.rank.Store(int32(i))
	}
}

// order returns the hosts to try for a new session, best first: the
// picker's order among hosts not blacklisted, then the blacklisted ones
// (tried anyway when nothing else is left).
func (hs *hostSet) order(now time.Time) []*host {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := len(hs.hosts)
	var ok, bl []*host
	switch hs.c.cfg.picker {
	case PickRandom:
		for _, i := range rand.Perm(n) {
			ok = append(ok, hs.hosts[i])
		}
	case PickOrdered, PickLatency:
		ok = append(ok, hs.hosts...)
	default:
		for i := 0; i < n; i++ {
			ok = append(ok, hs.hosts[(hs.next+i)%n])
		}
		hs.next = (hs.next + 1) % n
	}
	if hs.c.cfg.picker == PickLatency {
		// Hosts never measured go first, so they get measured.
		sortStable(ok, func(a, b *host) bool { return a.latency < b.latency })
	}
	kept := ok[:0]
	var misfit []*host // discovery says wrong role or not usable: last
	for _, h := range ok {
		switch fit := hs.discoveryFit(h); {
		case fit == 2:
			// drained: never
		case fit == 1:
			misfit = append(misfit, h)
		case now.Before(h.until):
			bl = append(bl, h)
		default:
			kept = append(kept, h)
		}
	}
	return append(append(kept, bl...), misfit...)
}

// sortStable is an insertion sort: host lists are short.
func sortStable(hs []*host, less func(a, b *host) bool) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && less(hs[j], hs[j-1]); j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

// connectorFor returns the inner connector for a key on a host.
func (hs *hostSet) connectorFor(h *host, key poolKey) (driver.Connector, error) {
	c := hs.c
	if h.dsn == "" && key.user == "" {
		return c.inner, nil
	}
	k := poolKey{user: key.user, pass: key.pass}
	hs.mu.Lock()
	ic, ok := h.connector[k]
	hs.mu.Unlock()
	if ok {
		return ic, nil
	}
	dsn := h.dsn
	if dsn == "" {
		dsn = c.dsn
	}
	if key.user != "" {
		if c.innerDrv == nil {
			return nil, fmt.Errorf("hasql: WithUser needs a connector opened from a DSN (sql.Open or hasql.Open), not NewConnector/OpenDB: %w", errors.ErrUnsupported)
		}
		var err error
		if dsn, err = c.dialect.withUser(dsn, key.user, key.pass); err != nil {
			return nil, err
		}
	}
	ic, err := c.dialect.openConnector(c.innerDrv, dsn)
	if err != nil {
		return nil, newError(ErrDSN, fmt.Sprintf("host %s", h.addr), &redactedError{err, append([]string{key.pass}, c.secrets...)})
	}
	hs.mu.Lock()
	if h.connector == nil {
		h.connector = make(map[poolKey]driver.Connector)
	}
	h.connector[k] = ic
	hs.mu.Unlock()
	return ic, nil
}

// connected records a successful connect to h and reports whether h was down.
func (hs *hostSet) connected(h *host, took time.Duration, r role) (wasDown bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	wasDown = h.state != HostStateUp
	h.state, h.failures, h.until, h.penalty = HostStateUp, 0, time.Time{}, 0
	if r != roleUnknown {
		h.role = r
	}
	if h.latency == 0 {
		h.latency = took
	} else {
		h.latency = (h.latency*7 + took) / 8
	}
	h.open++
	hs.rerankLocked()
	return wasDown
}

// failed records a failed connect to h: it is blacklisted, for twice as long
// as last time while it keeps failing. It reports whether h was up.
func (hs *hostSet) failed(h *host, err error, now time.Time) (wasUp bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	wasUp = h.state == HostStateUp
	h.failures++
	h.total++
	h.lastErr = err
	base := hs.c.cfg.host.Blacklist
	if h.penalty == 0 {
		h.penalty = base
	} else {
		h.penalty = min(h.penalty*2, 64*base)
	}
	if base > 0 {
		h.until = now.Add(h.penalty)
		h.state = HostStateBlacklisted
	} else {
		h.state = HostStateDown
	}
	hs.rerankLocked()
	return wasUp
}

// genOf returns h's purge generation, for a session being opened to it.
func (hs *hostSet) genOf(h *host) uint64 {
	if h == nil {
		return 0
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return h.gen
}

// lostSession records that a session to h opened in generation gen was
// lost. news is false when a purge of h's sessions has happened since the
// session was opened: that purge already covered it. Otherwise a new purge
// generation starts and, unless the loss is only a wrong role, h is marked
// down (not blacklisted: a host that answers again is used again at once);
// wasUp says it was up before.
func (hs *hostSet) lostSession(h *host, gen uint64, err error, wrongRole bool) (news, wasUp bool) {
	if h == nil {
		return true, true
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if gen < h.gen {
		return false, false
	}
	h.gen++
	if wrongRole {
		return true, false
	}
	wasUp = h.state == HostStateUp
	if wasUp {
		h.state = HostStateDown
		hs.rerankLocked()
	}
	h.total++
	h.lastErr = err
	return true, wasUp
}

// bumpGen starts a new purge generation for h, or for every host when h is
// nil: the sessions opened so far are being purged.
func (hs *hostSet) bumpGen(h *host) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h != nil {
		h.gen++
		return
	}
	for _, x := range hs.hosts {
		x.gen++
	}
}

// markDown records an outside or detected DOWN for addr; it reports whether
// the host was up.
func (hs *hostSet) markDown(addr string, err error, now time.Time) (*host, bool) {
	h := hs.find(addr)
	if h == nil {
		return nil, false
	}
	return h, hs.failed(h, err, now)
}

func (hs *hostSet) find(addr string) *host {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.hosts {
		if h.addr == addr {
			return h
		}
	}
	return nil
}

// setRole records a host's role, learnt from a wrong-role error.
func (hs *hostSet) setRole(addr string, r role) {
	if h := hs.find(addr); h != nil {
		hs.mu.Lock()
		h.role = r
		hs.mu.Unlock()
	}
}

// closedOne records that a session to h closed.
func (hs *hostSet) closedOne(h *host) {
	if h == nil {
		return
	}
	hs.mu.Lock()
	h.open--
	hs.mu.Unlock()
}

func (hs *hostSet) stats() []HostStats {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]HostStats, len(hs.hosts))
	now := time.Now()
	for i, h := range hs.hosts {
		st := h.state
		if st == HostStateBlacklisted && !now.Before(h.until) {
			st = HostStateDown
		}
		out[i] = HostStats{Addr: h.addr, State: st, Open: h.open, Failures: h.total, LastError: h.lastErr, Role: h.hostRole()}
	}
	return out
}

// wants reports whether a server of role r suits the target; strict is the
// first pass, where prefer-* targets only take their preferred role.
func wants(t Target, r role, strict bool) bool {
	switch t {
	case TargetPrimary:
		return r == rolePrimary
	case TargetStandby:
		return r == roleStandby
	case TargetPreferPrimary:
		return !strict || r == rolePrimary
	case TargetPreferStandby:
		return !strict || r == roleStandby
	}
	return true
}

// roleOf asks a new inner connection for its server's role.
func (d dialect) roleOf(ctx context.Context, ph *session) (role, error) {
	q := d.roleQuery()
	if q == "" {
		return roleUnknown, nil
	}
	rows, err := ph.query(ctx, q, nil)
	if err == driver.ErrSkip {
		var cs *cachedStmt
		if cs, err = ph.acquireStmt(ctx, q, ""); err == nil {
			rows, err = stmtQuery(ctx, cs.si, nil)
			ph.releaseStmt(cs)
		}
	}
	if err != nil {
		return roleUnknown, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return roleUnknown, err
	}
	standby := false
	switch v := dest[0].(type) {
	case bool:
		standby = v
	case int64:
		standby = v != 0
	case []byte:
		standby = string(v) == "1" || string(v) == "t" || string(v) == "true"
	case string:
		standby = v == "1" || v == "t" || v == "true"
	}
	if standby {
		return roleStandby, nil
	}
	return rolePrimary, nil
}
