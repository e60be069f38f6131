package hasql

import "io"

// Purges: taking sessions out of use because what they are connected to is
// gone, as opposed to retiring them by choice (pool_size.go). A purge closes
// the idle sessions it picks at once and marks the held ones it picks bad,
// so that each retires when its holder releases it; the slots it frees go to
// waiters. Sessions still opening escape a purge: the host's purge
// generation (hosts.go) makes their loss, if any, news again.

// purgeHost closes the idle sessions to host and marks its held ones bad,
// returning how many sessions it marked (idle ones included; sessions
// already marked bad are not counted again). With interrupt (an outside
// DOWN notice, MarkHostDown) the held ones' sockets are closed too, where
// the dialect can reach them, so that calls in flight on them end now
// instead of after a TCP timeout.
func (p *pool) purgeHost(host string, interrupt bool) int {
	return p.purge(func(ph *session) bool { return ph.host == host }, interrupt)
}

// purgeAll closes every idle session and marks every held one, for the
// start of an outage: sessions opened before it are not reused after it.
func (p *pool) purgeAll() {
	p.purge(func(*session) bool { return true }, false)
}

// purgeIdleOfHost closes the idle sessions to host, leaving held ones alone,
// and returns how many it closed: for a host found down by a failed connect
// or health check, which says nothing sure of the sessions in use.
func (p *pool) purgeIdleOfHost(host string) int {
	p.mu.Lock()
	doomed := p.takeIdleWhereLocked(func(ph *session) bool { return ph.host == host })
	p.freeSlotsLocked(len(doomed))
	p.unlock()
	for _, ph := range doomed {
		ph.close(true)
	}
	return len(doomed)
}

// purge closes the idle sessions doom picks and marks bad every session it
// picks, handing the freed slots to waiters, and returns how many sessions
// it newly marked; with interrupt it also closes the sockets of the held
// ones it marked (see purgeHost). doom runs under mu: it must only read the
// session.
func (p *pool) purge(doom func(*session) bool, interrupt bool) (marked int) {
	var held []io.Closer
	p.mu.Lock()
	doomed := p.takeIdleWhereLocked(doom)
	for ph := range p.all { // the doomed idle ones too: they are still in all
		if doom(ph) && !ph.bad.Load() {
			ph.bad.Store(true)
			marked++
			if interrupt && ph.wire != nil && !ph.idle.Load() { // held: in use now
				held = append(held, ph.wire)
			}
		}
	}
	p.freeSlotsLocked(len(doomed))
	p.unlock()
	for _, ph := range doomed {
		ph.close(true)
	}
	// The holder's call fails as on a server gone down; it then finds the
	// session bad and dead, and terminates it.
	for _, w := range held {
		_ = w.Close()
	}
	return marked
}
