package hasql

import (
	"fmt"
	"sync"
	"time"
)

// EventKind names a high-availability event (OCI's HA event notification).
type EventKind uint8

const (
	HostDown       EventKind = iota // a host failed: a connect to it failed, a session to it was lost, or MarkHostDown
	HostUp                          // a host that was down accepted a connection again
	OutageBegin                     // no host could be reached: callers now wait for the database
	OutageEnd                       // a host was reached again after an outage
	SessionsPurged                  // sessions to a failed host were closed (idle) or marked to close on release (busy)
)

// String returns the kind's name, such as "HostDown".
func (k EventKind) String() string {
	switch k {
	case HostDown:
		return "HostDown"
	case HostUp:
		return "HostUp"
	case OutageBegin:
		return "OutageBegin"
	case OutageEnd:
		return "OutageEnd"
	case SessionsPurged:
		return "SessionsPurged"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one HA event.
type Event struct {
	Kind     EventKind
	Host     string // host:port, where the event is about one host
	Sessions int    // sessions affected (closed or marked)
	Err      error  // the failure behind the event, if any
	Time     time.Time
}

// WithEvents sets a function that receives HA events. Events are delivered
// one at a time, in the order they happened, from a goroutine of hasql's that
// holds no lock, so fn may call back into hasql. A slow fn delays later
// events, never database work.
func WithEvents(fn func(Event)) Option { return func(c *config) { c.events = fn } }

// eventQueue delivers events in order from one goroutine.
type eventQueue struct {
	fn      func(Event)
	conn    *Connector // counts the receiver's panics
	mu      sync.Mutex
	queue   []Event
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
}

func newEventQueue(fn func(Event), c *Connector) *eventQueue {
	return &eventQueue{fn: fn, conn: c, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// emit queues an event; it never blocks on the receiver.
func (q *eventQueue) emit(e Event) {
	if q == nil || q.fn == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	q.mu.Lock()
	if !q.started {
		q.started = true
		go q.run()
	}
	q.queue = append(q.queue, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, e := range batch {
			q.deliver(e)
		}
		select {
		case <-q.wake:
		case <-q.stop:
			q.mu.Lock()
			batch := q.queue
			q.queue = nil
			q.mu.Unlock()
			for _, e := range batch {
				q.deliver(e)
			}
			return
		}
	}
}

// deliver calls fn under the panic policy (userPanic): a receiver that
// panics is counted, and the next event is delivered as usual.
func (q *eventQueue) deliver(e Event) {
	defer func() {
		if p := recover(); p != nil {
			q.conn.userPanic(fmt.Sprintf("event receiver (%v)", e.Kind), p)
		}
	}()
	q.fn(e)
}

// close delivers what is queued and stops the goroutine.
func (q *eventQueue) close() {
	if q == nil {
		return
	}
	q.mu.Lock()
	started := q.started
	q.started = true // no goroutine starts after close
	q.mu.Unlock()
	close(q.stop)
	if started {
		<-q.done
	}
}
