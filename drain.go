package hasql

import (
	"context"
	"fmt"
	"time"
)

// Drain takes host (a host:port as HostStats.Addr shows it) out of use for
// planned maintenance — a switchover, a restart: no new session is opened
// there and no idle one is handed out (they are closed now), and each
// session in use there is closed when its holder releases it, so work in
// progress, transactions included, finishes where it began. Drain returns
// once no session to host is open, or with an error when ctx ends first
// (the host stays drained either way). New work goes to the other hosts;
// with a target role that no other host has, it waits at the outage gate
// (hasql.outage_wait) until one has it, so a switchover run after Drain
// returns reaches the application as a pause, not as errors.
//
// A host stays drained until Undrain, also across discovery's refreshes.
// Drain costs a purge of the host's sessions and a poll of its open count
// every 10ms while it waits.
func (c *Connector) Drain(ctx context.Context, host string) error {
	if c.hosts == nil {
		return c.err
	}
	hs := c.hosts
	hs.mu.Lock()
	if hs.drained == nil {
		hs.drained = make(map[string]bool)
	}
	hs.drained[host] = true
	hs.mu.Unlock()
	if h := hs.find(host); h != nil {
		hs.bumpGen(h)
	}
	n := c.pool.purgeHost(host, false)
	c.events.emit(Event{Kind: SessionsPurged, Host: host, Sessions: n,
		Err: newError(ErrHostDown, fmt.Sprintf("host %s drained", host), nil)})
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if c.openCount(host) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hasql: draining %s: %d sessions still in use: %w", host, c.openCount(host), ctx.Err())
		case <-t.C:
		}
	}
}

// Undrain puts a host Drain took out of use back into use.
func (c *Connector) Undrain(host string) {
	if c.hosts == nil {
		return
	}
	c.hosts.mu.Lock()
	delete(c.hosts.drained, host)
	c.hosts.mu.Unlock()
	c.outage.poke()
}

// openCount counts the sessions to addr that are open (the host set's count).
func (c *Connector) openCount(addr string) int {
	hs := c.hosts
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.hosts {
		if h.addr == addr {
			return h.open
		}
	}
	return 0
}
