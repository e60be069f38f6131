package hasql

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Re-checking a pooled session's role at checkout. A server's role can
// change under a live session: a PostgreSQL standby that is promoted keeps
// its sessions, which become writable; a MariaDB primary set read_only keeps
// its own. Discovery (hasql.discover) purges a host's sessions when the
// cluster's view changes; without it nothing else would notice, and a
// session opened on a standby would go on serving "standby only" work on
// the new primary. So a session bound to a role (hasql.target=primary or
// standby, or a standby session for read-only work) has its server's role
// asked again when it is checked out:
//
//   - at every checkout for failoverWindow after a failure the connector
//     met (a lost session, a failed connect, an outage), since a promotion
//     follows a primary's failure;
//   - when the server reported a role change on the session since its
//     last check, with no round trip (PostgreSQL 14+: in_hot_standby turns
//     off in the answer to the first statement after a promotion);
//   - otherwise when its last check is older than roleRecheckAfter (1 s),
//     for a role changed with no failure seen (a standby promoted while its
//     primary lives) and no report heard.
//
// One round trip (the role query new sessions are asked); a session used
// all the time pays it once a second. A session whose server answers
// another role is not used: it is ended, the host's role recorded, the
// host's other sessions purged (SessionsPurged), and another session taken.

const failoverWindow = 15 * time.Second

// roleRecheckAfter: 1 s (a variable for tests, set through export_test.go).
var roleRecheckAfter atomic.Int64

func init() { roleRecheckAfter.Store(int64(time.Second)) }

// errRoleChanged is why a pooled session is not used: its server's role is
// no longer the one it was opened for.
var errRoleChanged = newError(ErrNoHosts, "the server's role changed under a pooled session", nil)

// noteFailure records that the connector met a failure now: checkouts
// re-check their sessions' roles for failoverWindow.
func (c *Connector) noteFailure() { c.lastFailure.Store(time.Now().UnixNano()) }

// checkoutRole is the role a session of key must have, if any.
func (c *Connector) checkoutRole(key poolKey) (Target, bool) {
	if key.standby {
		return TargetStandby, true
	}
	switch t := c.cfg.target; t {
	case TargetPrimary, TargetStandby:
		return t, true
	}
	return TargetAny, false
}

// recheckRole re-asks the role of ph, a pooled session being checked out,
// when it is due (see above); it returns an error wrapping errRoleChanged
// when the server has another role now, or the role query's error.
func (c *Connector) recheckRole(ctx context.Context, ph *session) error {
	target, ok := c.checkoutRole(ph.key)
	if !ok {
		return nil
	}
	now := time.Now().UnixNano()
	report := c.dialect.roleReport(ph.inner)
	if report == ph.roleReport && now-ph.roleAt < roleRecheckAfter.Load() && now-c.lastFailure.Load() >= int64(failoverWindow) {
		return nil
	}
	r, err := c.dialect.roleOf(ctx, ph)
	if err != nil {
		return err
	}
	if r == roleUnknown || wants(target, r, true) {
		ph.roleAt, ph.roleReport = now, report
		return nil
	}
	c.hosts.setRole(ph.host, r)
	if h := c.hosts.find(ph.host); h != nil {
		c.hosts.bumpGen(h)
	}
	err = fmt.Errorf("%w: %s is now a %v", errRoleChanged, ph.host, r)
	n := c.pool.purgeHost(ph.host, false)
	c.events.emit(Event{Kind: SessionsPurged, Host: ph.host, Sessions: n, Err: err})
	c.noteFailure()
	return err
}
