// Package cbmetrics is a hasql callback package that counts the driver calls
// of every Fn, their errors, and their latency in a fixed-bucket histogram.
// Recording is a few atomic adds per call; read the figures with Snapshot.
//
//	m := cbmetrics.Register("metrics")
//	db, err := sql.Open("hasql", "mysql:app@tcp(db)/app?hasql.callbacks=metrics")
//	...
//	s := m.Snapshot()
//	fmt.Println(s.Fns[hasql.FnQuery].Count)
//
// Every connector that loads the package adds to the same Metrics.
package cbmetrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hasqlgo/hasql"
)

// NumFn is the number of hasql Fns, the size of Snapshot.Fns.
const NumFn = int(hasql.FnClose) + 1

// Bounds are the histogram's bucket upper bounds (inclusive). Buckets[i] of
// a FnStats counts calls that took at most Bounds[i] (and more than
// Bounds[i-1]); the last bucket counts the slower ones.
var Bounds = [...]time.Duration{
	100 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second,
}

// NumBuckets is the number of histogram buckets: one per bound and one more.
const NumBuckets = len(Bounds) + 1

// Metrics records the calls of the connectors it is installed on. It is safe
// for concurrent use. The zero value is ready to use.
type Metrics struct {
	fns [NumFn]counters
}

type counters struct {
	count, errors, total atomic.Int64
	buckets              [NumBuckets]atomic.Int64
}

// FnStats are the figures of one Fn.
type FnStats struct {
	Count   int64             // calls that completed (their exit callbacks ran)
	Errors  int64             // of those, calls that failed
	Total   time.Duration     // summed latency
	Buckets [NumBuckets]int64 // latency histogram; see Bounds
}

// Snapshot is a copy of the figures at one moment, indexed by hasql.Fn.
// Figures of different Fns may be read a moment apart.
type Snapshot struct {
	Fns [NumFn]FnStats
}

// startKey marks a call's start time in Call.Ctx; each Metrics has its own.
type startKey struct{ m *Metrics }

// New returns an empty Metrics, to install with Setup.
func New() *Metrics { return &Metrics{} }

// Register returns a new Metrics made available to connectors as the
// callback package name (see hasql.RegisterPackage, which panics if name is
// taken).
func Register(name string) *Metrics {
	m := New()
	hasql.RegisterPackage(name, m.Setup)
	return m
}

// Setup registers the entry and exit callbacks that feed m on r: use it with
// hasql.RegisterPackage or on a connector's own Callbacks. It chains to any
// callback already registered on r.
func (m *Metrics) Setup(r *hasql.Callbacks) error {
	key := startKey{m}
	for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
		prevEntry, prevExit := r.Get(fn, hasql.Entry), r.Get(fn, hasql.Exit)
		r.Register(fn, hasql.Entry, func(c *hasql.Call) error {
			c.Ctx = context.WithValue(c.Ctx, key, time.Now())
			if prevEntry != nil {
				return prevEntry(c)
			}
			return hasql.Continue
		})
		r.Register(fn, hasql.Exit, func(c *hasql.Call) error {
			ret := hasql.Continue
			if prevExit != nil {
				ret = prevExit(c)
			}
			failed := c.Err != nil
			if ret != hasql.Continue {
				failed = ret != nil
			}
			var d time.Duration
			if start, ok := c.Ctx.Value(key).(time.Time); ok {
				d = time.Since(start)
			}
			m.record(c.Fn, d, failed)
			return ret
		})
	}
	return nil
}

func (m *Metrics) record(fn hasql.Fn, d time.Duration, failed bool) {
	if int(fn) >= NumFn {
		return
	}
	f := &m.fns[fn]
	f.count.Add(1)
	if failed {
		f.errors.Add(1)
	}
	f.total.Add(int64(d))
	i := 0
	for i < len(Bounds) && d > Bounds[i] {
		i++
	}
	f.buckets[i].Add(1)
}

// Snapshot returns the figures so far.
func (m *Metrics) Snapshot() Snapshot {
	var s Snapshot
	for i := range m.fns {
		f, out := &m.fns[i], &s.Fns[i]
		out.Count = f.count.Load()
		out.Errors = f.errors.Load()
		out.Total = time.Duration(f.total.Load())
		for b := range f.buckets {
			out.Buckets[b] = f.buckets[b].Load()
		}
	}
	return s
}
