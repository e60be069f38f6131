package cbmetrics

import (
	"testing"
	"time"

	"github.com/hasqlgo/hasql"
)

func TestCallbackMetricsBuckets(t *testing.T) {
	m := New()
	cases := []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0},
		{100 * time.Microsecond, 0}, // bounds are inclusive
		{100*time.Microsecond + 1, 1},
		{time.Millisecond, 2},
		{7 * time.Millisecond, 4},
		{time.Second, 8},
		{5 * time.Second, 9},
		{time.Hour, NumBuckets - 1},
	}
	for _, c := range cases {
		m.record(hasql.FnQuery, c.d, false)
	}
	m.record(hasql.FnExec, time.Millisecond, true)
	m.record(hasql.FnClose+1, time.Millisecond, true) // out of range: ignored

	s := m.Snapshot()
	q := s.Fns[hasql.FnQuery]
	var want [NumBuckets]int64
	var total time.Duration
	for _, c := range cases {
		want[c.bucket]++
		total += c.d
	}
	if q.Buckets != want {
		t.Fatalf("buckets %v, want %v", q.Buckets, want)
	}
	if q.Count != int64(len(cases)) || q.Errors != 0 || q.Total != total {
		t.Fatalf("FnQuery stats %+v", q)
	}
	if e := s.Fns[hasql.FnExec]; e.Count != 1 || e.Errors != 1 || e.Buckets[2] != 1 {
		t.Fatalf("FnExec stats %+v", e)
	}
}
