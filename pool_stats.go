package hasql

import "time"

// Stats is a snapshot of a connector's pool and failure handling, as
// Connector.Stats returns it. The session figures (Open, Busy, Idle) are read
// together under the pool's lock and agree with each other; the counters are
// cumulative since the connector was opened and each is read on its own, so
// two of them may be a moment apart.
type Stats struct {
	// Open is the number of physical sessions open or being opened: the
	// slots counted toward PoolConfig.Max. It exceeds Max by the sessions
	// GetForce opened beyond it, by the outage prober's session, and after
	// a Reconfigure that shrank the pool until the surplus is released.
	Open int
	// Busy is the number of sessions held by a virtual handle (including
	// one its handle took back without the pool's lock), plus the sessions
	// being opened by a checkout for itself. Sessions being opened in the
	// background (Min, Incr, the outage prober) are in Open only.
	Busy int
	// Idle is the number of sessions in the pool's idle lists that nobody
	// holds, including those marked bad that the maintainer has yet to
	// close. Busy+Idle <= Open.
	Idle int

	// Waits is the number of times a checkout found the pool at its
	// maximum and queued for a session or slot (GetWait, GetTimedWait).
	Waits int64
	// WaitTimeouts is the number of those waits that ended because
	// PoolConfig.WaitTimeout passed (GetTimedWait); waits ended by the
	// caller's context are not counted.
	WaitTimeouts int64
	// WaitTime is the total time checkouts spent queued, over every wait
	// counted in Waits, whether or not it ended with a session.
	WaitTime time.Duration

	// Created is the number of sessions opened and taken into the pool:
	// by checkouts, in the background (Min, Incr) and by the outage
	// prober. A connect refused by a FnConnect callback or closed at once
	// for having the wrong role is not counted.
	Created int64
	// Closed is the number of pooled sessions closed, whatever the reason;
	// it includes Terminated.
	Closed int64
	// Terminated is the number of sessions closed because they could not be
	// pooled again: found dead, marked bad (a lost connection, a failed
	// reset or session callback, Session.Reconnect), or purged with their
	// host or at the start of an outage. Sessions retired by choice
	// (MaxLifetime, IdleTimeout, a smaller Max, Close) are not counted.
	Terminated int64

	// TagHits is the number of checkouts asking for a tag that got a
	// session carrying exactly that tag, including a handle taking back its
	// own parked session.
	TagHits int64
	// TagMisses is the number of checkouts asking for a tag that got some
	// other session: an untagged one, one with another tag
	// (WithMatchAnyTag), or a new one; a tagged checkout whose new session
	// failed to open also counts.
	TagMisses int64

	// StmtCacheHits is the number of statements found in a session's
	// statement cache rather than prepared.
	StmtCacheHits int64
	// StmtCacheMisses is the number of statements prepared because the
	// session's cache (enabled) did not hold them.
	StmtCacheMisses int64
	// StmtCacheEvictions is the number of statements taken out of a
	// session's cache: by its size limit, a smaller cache size, the
	// server's statement limit, a stale statement, pgx's statement naming,
	// or (other than with pgx) a session closed by choice.
	StmtCacheEvictions int64

	// Reconnects is the number of times a virtual handle was bound to a new
	// session after losing its own: after a lost connection (failover), by
	// Session.Reconnect, or because a pooled session was found dead at
	// checkout and replaced unseen.
	Reconnects int64
	// Failovers is the number of reconnects after a lost connection whose
	// new session is on another host than the lost one.
	Failovers int64
	// Retries is the number of times work was run again after its
	// connection was lost, each run counted once, including a query run
	// again when its rows' Close found the connection lost.
	Retries int64

	// TxCommittedAfterLoss is the number of transactions whose session died
	// after COMMIT was sent and which the commit-outcome guard found
	// committed (Commit returned nil).
	TxCommittedAfterLoss int64
	// TxNotCommitted is the number of transactions whose session died and
	// which certainly did not commit: lost before COMMIT was sent, or
	// resolved by the guard as not committed (ErrTxNotCommitted). A
	// transaction replayed on a new session (hasql.replay) counts in
	// Replays instead, even when the guard resolved its lost COMMIT.
	TxNotCommitted int64
	// TxUnknown is the number of commits whose session died after COMMIT
	// was sent and whose outcome stayed unknown (ErrTxResolutionUnknown).
	TxUnknown int64

	// CallbackPanics counts the panics recovered from the application's
	// functions: callbacks, the session callback, recovery functions, the
	// failover callback and the event receiver (see ErrCallbackPanic). Each
	// failed only the call it served; the event receiver's served none, so
	// this is where they show.
	CallbackPanics int64
	// PortChecks is the number of bare TCP dials the outage prober made to
	// learn whether a port that refused connections accepts again (see
	// docs/recovery.md). A refused dial reaches no server process; these
	// are not connect attempts and are not in Created.
	PortChecks int64

	// Replays is the number of transparent replays that succeeded
	// (hasql.replay): a transaction begun again on a new session after
	// its session died, every call's result matching what the application
	// had, or an idempotent query's rows continued on a new session.
	Replays int64
	// ReplaysDiverged is the number of replays that saw a result differ
	// from what the application already had: the application got
	// ErrReplayDiverged and the replayed transaction was rolled back.
	ReplaysDiverged int64
	// PrimaryReads and StandbyReads count the checkouts for read-only work
	// (ReadOnly, ReadAfter, a read-only transaction) with hasql.reads set
	// to standby or prefer-standby, by where they ran: on the primary (no
	// standby fit: lagging, behind the session's writes, or down) or on a
	// standby.
	PrimaryReads, StandbyReads int64

	// Hosts has one entry per host, in the order the DSN or WithHosts
	// lists them; a connector with a single host has one entry, whose
	// Addr is "" when the inner DSN does not name the host.
	Hosts []HostStats
}

// HostStats is one host's part of Stats.
type HostStats struct {
	// Addr is the host's host:port as configured.
	Addr string
	// State is the host's state now; a blacklisting whose time has passed
	// shows as HostStateDown.
	State HostState
	// Open is the number of sessions to the host that connected (role
	// checked) and have not closed yet.
	Open int
	// Failures is the number of failed connects to the host, MarkHostDown
	// calls for it, and lost connections that were news (the first loss
	// noticed after each purge of the host, wrong roles not counted), since
	// the connector was opened.
	Failures int64
	// LastError is the error of the last failure counted in Failures, or
	// nil.
	LastError error
	// Role is the host's role: "primary" or "standby" as discovery
	// (hasql.discover) or the server's last answer says, "none" for a host
	// discovery says serves no work, "" when not known (or the target is
	// any and nothing asked).
	Role string
	// Lag is how far the host, a standby, was behind its primary at the
	// background check's last look (hasql.reads or hasql.durability set):
	// the time since the primary had the first position the standby had
	// not replayed; 0 when caught up or not measured.
	Lag time.Duration
}

// Stats returns a snapshot of the connector's pool, statement caches, failure
// handling and hosts. The session counts (Open, Busy, Idle) are read together
// under the pool's lock and agree with each other; the other counters are
// read one by one while the pool runs, so two of them may be a moment apart.
// Stats may be called at any time, also after Close; it holds the pool's
// lock and the host set's briefly, and allocates Hosts.
func (c *Connector) Stats() Stats {
	var s Stats
	if c.pool != nil {
		c.pool.stats(&s)
	}
	s.StmtCacheHits = c.stmtHits.Load()
	s.StmtCacheMisses = c.stmtMisses.Load()
	s.StmtCacheEvictions = c.stmtEvictions.Load()
	s.Reconnects = c.reconnects.Load()
	s.Failovers = c.failovers.Load()
	s.Retries = c.retries.Load()
	s.TxCommittedAfterLoss = c.txCommittedAfterLoss.Load()
	s.TxNotCommitted = c.txNotCommitted.Load()
	s.TxUnknown = c.txUnknown.Load()
	s.CallbackPanics = c.callbackPanics.Load()
	s.Replays = c.replays.Load()
	s.ReplaysDiverged = c.replaysDiverged.Load()
	s.PortChecks = c.outage.portChecks.Load()
	if c.rw != nil {
		s.PrimaryReads, s.StandbyReads = c.rw.primaryReads.Load(), c.rw.standbyReads.Load()
	}
	if c.hosts != nil {
		s.Hosts = c.hosts.stats()
		if c.rw != nil {
			c.rw.fillLag(c.hosts, s.Hosts)
		}
	}
	return s
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
