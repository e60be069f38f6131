package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Member discovery (hasql.discover): from the hosts given, learn the
// cluster's members and their roles from the cluster's own view — Patroni's
// REST API, Galera's wsrep_incoming_addresses, a MariaDB primary's SHOW SLAVE
// HOSTS — and keep the host list in line with it. One goroutine per
// connector refreshes the view every Discovery.Interval, at once after any
// failure a call or connect met (kick), and then every fastRefresh for
// fastWindow (every leaderlessRefresh while Patroni names no leader), so
// that a failover is seen within a fraction of a second of the cluster
// deciding it; a session that then finds the new primary still promoting
// waits for it on the spot (promotion.go). Nothing of it runs on a call's path: calls read
// the host list, which discovery changes under the host set's lock.
//
// What discovery decides:
//   - a member not yet in the host list is added (pointed at with the DSN's
//     own settings);
//   - a host discovery no longer lists, or lists in a state that serves no
//     work, gets no new sessions and its sessions are purged; one that was
//     only discovered is dropped from the list, one given in the DSN stays
//     (as the fallback for a discovery source that is down);
//   - a host whose role changed (Patroni: leader to replica or back) has its
//     sessions purged, so that a session opened under the old role never
//     serves work meant for the other;
//   - with a target role, a new session must have that role both by the
//     server's own answer and by discovery's: a PostgreSQL that still answers
//     pg_is_in_recovery() = false on a node Patroni no longer holds as leader
//     (its Patroni died, no watchdog) is not written to.
//
// A discovery source that cannot be reached changes nothing: the last known
// list stays, with the hosts given.

// DiscoverySource names where the cluster's members are learnt from
// (hasql.discover).
type DiscoverySource uint8

const (
	// DiscoverOff: the host list is the one given.
	DiscoverOff DiscoverySource = iota
	// DiscoverPatroni: Patroni's REST API GET /cluster (hasql.discover_url,
	// else the REST addresses Patroni reported last, else port 8008 of each
	// host).
	DiscoverPatroni
	// DiscoverGalera: wsrep_incoming_addresses of a Synced node of the
	// primary component; a new session is also checked for wsrep_ready.
	DiscoverGalera
	// DiscoverMySQLReplicas: SHOW SLAVE HOSTS on the primary (replicas must
	// set report_host and report_port).
	DiscoverMySQLReplicas
)

// String returns the DSN word: "off", "patroni", "galera", "mysql-replicas".
func (s DiscoverySource) String() string {
	return enumName(s, "DiscoverySource", "off", "patroni", "galera", "mysql-replicas")
}

// Discovery configures member discovery (hasql.discover, hasql.discover_url,
// hasql.discover_interval). It costs one small request per Interval (a
// REST GET or one query on a connection of its own), and a few per second
// for some seconds after a failure.
type Discovery struct {
	Source DiscoverySource
	// URL is Patroni's REST API base URL, e.g. http://10.0.0.1:8008.
	URL string
	// Interval is how often the view is refreshed when nothing fails
	// (default 30s).
	Interval time.Duration
}

// WithDiscovery sets member discovery.
func WithDiscovery(d Discovery) Option { return func(c *config) { c.discovery = d } }

const (
	defaultDiscoverInterval = 30 * time.Second
	fastRefresh             = 100 * time.Millisecond // refresh period after a failure...
	fastWindow              = 15 * time.Second       // ...for this long after the last one
	leaderlessRefresh       = 20 * time.Millisecond  // ...or this, while Patroni names no usable leader
	discoverTimeout         = 2 * time.Second        // bound on one source's answer
)

// member is one member as discovery sees it.
type member struct {
	addr   string // host:port of the database
	role   role   // rolePrimary, roleStandby, or roleUnknown (a multi-primary member)
	usable bool   // in a state to serve work (Patroni running, Galera Synced)
	api    string // Patroni: the member's REST base URL
}

// memberView is discovery's opinion of one host; known is false before
// discovery first answered for it.
type memberView struct {
	known  bool
	usable bool
	role   role
}

// discoverer is one discovery source.
type discoverer interface {
	fetch(ctx context.Context, c *Connector) ([]member, error)
}

// discovery is the connector's discovery state.
type discovery struct {
	src  discoverer
	kick chan struct{}
	http *http.Client // Patroni's; nil for the SQL sources
	apis []string     // Patroni REST base URLs learnt from the last answer
}

// startDiscovery starts the refresher when hasql.discover is set.
func (c *Connector) startDiscovery() {
	d := c.cfg.discovery
	switch d.Source {
	case DiscoverPatroni:
		tr := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
		c.disc = &discovery{src: patroniSource{}, http: &http.Client{Timeout: discoverTimeout, Transport: tr}}
	case DiscoverGalera:
		c.disc = &discovery{src: galeraSource{}}
	case DiscoverMySQLReplicas:
		c.disc = &discovery{src: replicaSource{}}
	default:
		return
	}
	c.disc.kick = make(chan struct{}, 1)
	p := c.pool
	if !p.addWorker() {
		return
	}
	go func() {
		defer p.wg.Done()
		if c.disc.http != nil {
			defer c.disc.http.CloseIdleConnections()
		}
		c.discoverLoop(p.bgCtx, d.Interval)
	}()
}

func (c *Connector) discoverLoop(ctx context.Context, interval time.Duration) {
	var fastUntil time.Time
	t := time.NewTimer(0) // first view at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.disc.kick:
			fastUntil = time.Now().Add(fastWindow)
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, discoverTimeout*2)
		ms, err := c.disc.src.fetch(fctx, c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil && len(ms) > 0 {
			c.applyMembers(ms)
		}
		next := interval
		if time.Now().Before(fastUntil) {
			next = fastRefresh
			if err == nil && c.disc.awaitsLeader(ms) {
				next = leaderlessRefresh
			}
		}
		t.Reset(next)
	}
}

// awaitsLeader reports whether a fresh view is Patroni's and names no usable
// leader: the old leader's key has expired (or it stopped) and Patroni is
// electing and promoting another. Discovery then asks every
// leaderlessRefresh rather than fastRefresh, so that the new leader is seen,
// and the outage prober woken, within a few tens of milliseconds of Patroni
// naming it. Only Patroni's source: one REST GET per ask, where the SQL
// sources open a connection each time.
func (d *discovery) awaitsLeader(ms []member) bool {
	if d.http == nil {
		return false
	}
	for _, m := range ms {
		if m.usable && m.role == rolePrimary {
			return false
		}
	}
	return true
}

// kickDiscovery asks for a refresh now (after a failure). Cheap, never
// blocks; nothing when discovery is off.
func (c *Connector) kickDiscovery() {
	if c.disc == nil {
		return
	}
	select {
	case c.disc.kick <- struct{}{}:
	default:
	}
}

// applyMembers brings the host list in line with a fresh view. Hosts whose
// role or usability changed have their sessions purged; a new primary wakes
// the outage prober.
func (c *Connector) applyMembers(ms []member) {
	hs := c.hosts
	var purge []string
	newPrimary := false
	hs.mu.Lock()
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.addr] {
			continue
		}
		seen[m.addr] = true
		view := memberView{known: true, usable: m.usable, role: m.role}
		var h *host
		for _, x := range hs.hosts {
			if x.addr == m.addr {
				h = x
				break
			}
		}
		if h == nil {
			dsn, err := c.dialect.pointAt(c.dsn, m.addr)
			if err != nil {
				continue
			}
			h = &host{addr: m.addr, dsn: dsn}
			hs.hosts = append(hs.hosts, h)
		} else if h.disc.known && (h.disc.role != view.role || h.disc.usable && !view.usable) {
			purge = append(purge, h.addr)
		}
		if view.usable && view.role == rolePrimary && !(h.disc.known && h.disc.usable && h.disc.role == rolePrimary) {
			newPrimary = true
		}
		h.disc = view
	}
	kept := hs.hosts[:0]
	for _, h := range hs.hosts {
		if !seen[h.addr] {
			if h.disc.known && h.disc.usable || !h.disc.known {
				purge = append(purge, h.addr)
			}
			h.disc = memberView{known: true}
			if !h.given {
				continue // only discovered, and gone: dropped
			}
		}
		kept = append(kept, h)
	}
	clear(hs.hosts[len(kept):])
	hs.hosts = kept
	hs.rerankLocked()
	hs.mu.Unlock()
	for _, addr := range purge {
		if h := hs.find(addr); h != nil {
			hs.bumpGen(h)
		}
		n := c.pool.purgeHost(addr, false)
		c.events.emit(Event{Kind: SessionsPurged, Host: addr, Sessions: n,
			Err: newError(ErrNoHosts, fmt.Sprintf("host %s changed role or left the cluster (hasql.discover=%v)", addr, c.cfg.discovery.Source), nil)})
	}
	if newPrimary {
		c.outage.poke()
	}
}

// discoveryFit tells order where a host goes: 0 usable, 1 last (discovery
// says it has the wrong role or is not usable; tried only when nothing else
// answers), 2 never (drained). hs.mu is held.
func (hs *hostSet) discoveryFit(h *host) int {
	if hs.drained[h.addr] {
		return 2
	}
	if !h.disc.known {
		return 0
	}
	if !h.disc.usable {
		return 1
	}
	if r := h.disc.role; r != roleUnknown && !wants(hs.c.cfg.target, r, true) {
		return 1
	}
	return 0
}

// errNotMember is why a new session on a host discovery does not hold in
// the wanted role is refused.
var errNotMember = errors.New("the cluster (hasql.discover) does not hold the host in the wanted role")

// discoveryVeto refuses a new session the cluster's view rules out, after
// its server answered role r (roleUnknown when no target asked): a host
// that is drained, not a usable member, or whose discovered role differs
// from the server's own answer where a role is wanted. A Galera session is
// also checked for wsrep_ready (a node outside the primary component still
// answers SELECT 1). With hasql.consistency=session, a Galera session reads
// causally (wsrep_sync_wait=1): a read on one node sees what was committed
// on another before it.
func (c *Connector) discoveryVeto(ctx context.Context, h *host, ph *session, r role) error {
	if h == nil {
		return nil
	}
	c.hosts.mu.Lock()
	drained := c.hosts.drained[h.addr]
	view := h.disc
	c.hosts.mu.Unlock()
	if drained {
		return fmt.Errorf("%w: %s is drained (Connector.Drain)", errWrongRole, h.addr)
	}
	if c.cfg.discovery.Source == DiscoverOff {
		return nil
	}
	if view.known {
		if !view.usable {
			return fmt.Errorf("%w: %s: %w", errWrongRole, h.addr, errNotMember)
		}
		if c.cfg.target != TargetAny && view.role != roleUnknown && r != roleUnknown && view.role != r {
			return fmt.Errorf("%w: %s: %w (the server says %v, the cluster %v)", errWrongRole, h.addr, errNotMember, r, view.role)
		}
	}
	if c.cfg.discovery.Source == DiscoverGalera {
		rows, err := queryInner(ctx, ph.inner, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'")
		if err != nil {
			return err
		}
		if len(rows) != 1 || len(rows[0]) != 2 || rows[0][1] != "ON" {
			return fmt.Errorf("%w: %s: Galera node not ready (wsrep_ready=%v)", errWrongRole, h.addr, rows)
		}
		if c.cfg.reads.Consistency != ConsistencyEventual {
			if _, err := queryInner(ctx, ph.inner, "SET SESSION wsrep_sync_wait=1"); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostRole is a host's role for HostStats: discovery's view when it has
// one, else the server's last answer. hs.mu is held.
func (h *host) hostRole() string {
	if h.disc.known {
		if !h.disc.usable {
			return "none"
		}
		if h.disc.role != roleUnknown {
			return h.disc.role.String()
		}
	}
	return h.role.String()
}

// queryInner runs a query on an inner connection outside the pipeline (for
// discovery and session checks) and returns its rows as text.
func queryInner(ctx context.Context, conn driver.Conn, q string) ([][]string, error) {
	qc, ok := conn.(driver.QueryerContext)
	if !ok {
		return nil, fmt.Errorf("hasql: the inner connection cannot run queries directly: %w", errors.ErrUnsupported)
	}
	rows, err := qc.QueryContext(ctx, q, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	var out [][]string
	for {
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		row := make([]string, len(dest))
		for i, v := range dest {
			switch x := v.(type) {
			case nil:
			case []byte:
				row[i] = string(x)
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
}

// sqlSource runs q on the first host (given or known) that answers, on an
// inner connection of its own, and returns that host and the rows.
func sqlSource(ctx context.Context, c *Connector, q func(ctx context.Context, h *host, conn driver.Conn) ([]member, error)) ([]member, error) {
	c.hosts.mu.Lock()
	hosts := append([]*host(nil), c.hosts.hosts...)
	c.hosts.mu.Unlock()
	var errs []error
	for _, h := range hosts {
		ic, err := c.hosts.connectorFor(h, poolKey{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, discoverTimeout)
		conn, err := ic.Connect(hctx)
		if err != nil {
			cancel()
			errs = append(errs, err)
			continue
		}
		ms, err := q(hctx, h, conn)
		conn.Close()
		cancel()
		if err == nil && len(ms) > 0 {
			return ms, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// splitAddrs splits a comma-separated address list, dropping empty items
// (Galera lists a joining node as an empty address).
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" && a != "AUTO" {
			out = append(out, a)
		}
	}
	return out
}
