package hasql

// Tests of HA event delivery (events.go): names, order, time stamps, panicking receivers, and
// close delivering what is queued.

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{
		HostDown: "HostDown", HostUp: "HostUp", OutageBegin: "OutageBegin", OutageEnd: "OutageEnd",
		SessionsPurged: "SessionsPurged", EventKind(200): "EventKind(200)",
	} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// TestEventQueueDeliversInOrder: events arrive one at a time, in order, stamped when emitted
// if they were not; a receiver's panic loses only its own event and is counted in
// Stats.CallbackPanics; close delivers the rest.
func TestEventQueueDeliversInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	c := &Connector{}
	q := newEventQueue(func(e Event) {
		if e.Host == "panic" {
			panic("receiver")
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}, c)
	stamp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	boom := errors.New("boom")
	want := []Event{
		{Kind: HostDown, Host: "a:1", Err: boom, Time: stamp},
		{Kind: SessionsPurged, Host: "a:1", Sessions: 3, Time: stamp},
		{Kind: OutageBegin},
		{Kind: OutageEnd},
		{Kind: HostUp, Host: "a:1"},
	}
	before := time.Now()
	for i, e := range want {
		q.emit(e)
		if i == 2 {
			q.emit(Event{Kind: HostDown, Host: "panic"})
		}
	}
	q.close()
	q.emit(Event{Kind: HostDown, Host: "after close"}) // queued, never delivered, no goroutine
	if n := c.callbackPanics.Load(); n != 1 {
		t.Errorf("the receiver's panic counted %d times, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if w.Time.IsZero() {
			if g.Time.Before(before) {
				t.Errorf("event %d: Time %v not stamped at emit", i, g.Time)
			}
			g.Time = time.Time{}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestEventQueueWithoutReceiver(t *testing.T) {
	var q *eventQueue
	q.emit(Event{Kind: HostDown}) // no receiver configured: nothing, no panic
	q.close()
	q = newEventQueue(nil, nil)
	q.emit(Event{Kind: HostDown})
	q.close()
}
