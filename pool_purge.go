package hasql

// Purges: taking sessions out of use because what they are connected to is
// gone, as opposed to retiring them by choice (pool_size.go). A purge closes
// the idle sessions it picks at once and marks the held ones it picks bad,
// so that each retires when its holder releases it; the slots it frees go to
// waiters. Sessions still opening escape a purge: the host's purge
// generation (hosts.go) makes their loss, if any, news again.

// purgeHost closes the idle sessions to host and marks its held ones bad,
// returning how many sessions it marked (idle ones included; sessions
// already marked bad are not counted again).
func (p *pool) purgeHost(host string) int {
	return p.purge(func(ph *session) bool { return ph.host == host })
}

// purgeAll closes every idle session and marks every held one, for the
// start of an outage: sessions opened before it are not reused after it.
func (p *pool) purgeAll() {
	p.purge(func(*session) bool { return true })
}

// purge closes the idle sessions doom picks and marks bad every session it
// picks, handing the freed slots to waiters, and returns how many sessions
// it newly marked. doom runs under mu: it must only read the session.
func (p *pool) purge(doom func(*session) bool) (marked int) {
	p.mu.Lock()
	doomed := p.takeIdleWhereLocked(doom)
	for ph := range p.all { // the doomed idle ones too: they are still in all
		if doom(ph) && !ph.bad.Load() {
			ph.bad.Store(true)
			marked++
		}
	}
	p.freeSlotsLocked(len(doomed))
	p.unlock()
	for _, ph := range doomed {
		ph.close(true)
	}
	return marked
}
