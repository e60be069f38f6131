package hasql

import (
	"context"
	"time"
)

// Background host health checks (hasql.health_interval): each interval every
// host is dialled, its role read, and the connection closed. A host that
// fails is blacklisted and reported down (HostDown); one that answers again
// is reported up (HostUp). The measured connect time feeds the latency
// picker.

func (c *Connector) startHealth() {
	iv := c.cfg.host.HealthInterval
	if iv <= 0 {
		return
	}
	p := c.pool
	if !p.addWorker() {
		return
	}
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(iv)
		defer t.Stop()
		for {
			select {
			case <-p.bgCtx.Done():
				return
			case <-t.C:
				c.checkHosts(p.bgCtx)
			}
		}
	}()
}

// stopHealth is a no-op: the checker stops with the pool's background
// context, which pool.close cancels and waits for.
func (c *Connector) stopHealth() {}

// checkHosts checks every host once.
func (c *Connector) checkHosts(ctx context.Context) {
	c.hosts.mu.Lock()
	hosts := append([]*host(nil), c.hosts.hosts...)
	c.hosts.mu.Unlock()
	for _, h := range hosts {
		if ctx.Err() != nil {
			return
		}
		// openOn bounds the attempt by connect_timeout and counts running
		// out of it as the host's failure (a black hole is down). Without a
		// connect_timeout the check still has to end: its own bound then
		// counts as the host's failure here.
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if c.cfg.backoff.ConnectTimeout <= 0 {
			cctx, cancel = context.WithTimeout(ctx, max(c.cfg.host.HealthInterval, 5*time.Second))
		}
		ph, err := c.openOn(cctx, h, poolKey{}, c.cfg.target, false)
		timedOut := cctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if timedOut {
				c.hostFailed(h, err)
			}
			continue // openOn blacklisted it and reported it down
		}
		c.hosts.closedOne(h)
		ph.inner.Close()
	}
}
