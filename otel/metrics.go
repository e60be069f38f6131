package hasqlotel

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/hasqlgo/hasql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
)

// Metric names. The two db.client.connection.* ones are the semantic
// conventions'; the others are hasql's own.
const (
	MetricConnectionCount    = "db.client.connection.count"    // {connection}, up-down: Busy (state "used") and Idle (state "idle")
	MetricConnectionTimeouts = "db.client.connection.timeouts" // {timeout}, counter: Stats.WaitTimeouts
	MetricSessionsOpen       = "hasql.sessions.open"           // {session}, up-down: Stats.Open (including sessions being opened)
	MetricSessionsCreated    = "hasql.sessions.created"        // {session}, counter
	MetricSessionsClosed     = "hasql.sessions.closed"         // {session}, counter
	MetricSessionsTerminated = "hasql.sessions.terminated"     // {session}, counter: closed after an error
	MetricWaits              = "hasql.pool.waits"              // {wait}, counter: checkouts that waited for a session
	MetricWaitTime           = "hasql.pool.wait_time"          // s, counter: total time spent waiting
	MetricTagHits            = "hasql.tag.hits"                // {checkout}, counter
	MetricTagMisses          = "hasql.tag.misses"              // {checkout}, counter
	MetricStmtCacheHits      = "hasql.stmtcache.hits"          // {statement}, counter
	MetricStmtCacheMisses    = "hasql.stmtcache.misses"        // {statement}, counter
	MetricStmtCacheEvictions = "hasql.stmtcache.evictions"     // {statement}, counter
	MetricStmtCacheHitRatio  = "hasql.stmtcache.hit_ratio"     // 1, gauge: hits / (hits + misses), once there was a lookup
	MetricReconnects         = "hasql.reconnects"              // {reconnect}, counter
	MetricFailovers          = "hasql.failovers"               // {failover}, counter: reconnects that landed on another host
	MetricRetries            = "hasql.retries"                 // {retry}, counter: work run again after a lost connection
	MetricHostSessions       = "hasql.host.sessions"           // {session}, up-down, per host (server.address, server.port, hasql.host.state)
	MetricHostFailures       = "hasql.host.failures"           // {failure}, counter, per host
)

// RegisterMetrics reports the connector's Stats through asynchronous
// instruments on a meter from mp: each collection reads Stats once. Every
// measurement carries db.client.connection.pool.name (WithPoolName), and
// db.system.name when WithSystem is given, and the WithAttributes
// attributes. The names are the Metric* constants. unregister stops the
// reporting.
func RegisterMetrics(c *hasql.Connector, mp metric.MeterProvider, opts ...Option) (unregister func() error, err error) {
	if c == nil || mp == nil {
		return nil, errors.New("hasqlotel: RegisterMetrics needs a connector and a MeterProvider")
	}
	cfg := newConfig(opts)
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))

	var errs []error
	i64 := func(name, unit, desc string) metric.Int64ObservableCounter {
		inst, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return inst
	}
	ud := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		inst, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return inst
	}
	conns := ud(MetricConnectionCount, "{connection}", "Physical sessions in use (state used) and idle in the pool (state idle).")
	open := ud(MetricSessionsOpen, "{session}", "Physical sessions open, including those being opened.")
	timeouts := i64(MetricConnectionTimeouts, "{timeout}", "Checkouts that gave up waiting for a session (timedwait).")
	created := i64(MetricSessionsCreated, "{session}", "Physical sessions opened.")
	closed := i64(MetricSessionsClosed, "{session}", "Physical sessions closed.")
	terminated := i64(MetricSessionsTerminated, "{session}", "Physical sessions closed after an error.")
	waits := i64(MetricWaits, "{wait}", "Checkouts that waited for a session.")
	tagHits := i64(MetricTagHits, "{checkout}", "Checkouts that found a session with the requested tag.")
	tagMisses := i64(MetricTagMisses, "{checkout}", "Checkouts that did not find a session with the requested tag.")
	hits := i64(MetricStmtCacheHits, "{statement}", "Statements found in a session's statement cache.")
	misses := i64(MetricStmtCacheMisses, "{statement}", "Statements prepared because the cache did not hold them.")
	evictions := i64(MetricStmtCacheEvictions, "{statement}", "Statements evicted from a statement cache.")
	reconnects := i64(MetricReconnects, "{reconnect}", "Sessions replaced after a lost connection, and Session.Reconnect calls.")
	failovers := i64(MetricFailovers, "{failover}", "Reconnects that landed on another host.")
	retries := i64(MetricRetries, "{retry}", "Work run again on a new session after a lost connection.")
	hostSessions := ud(MetricHostSessions, "{session}", "Physical sessions open, per host.")
	hostFailures := i64(MetricHostFailures, "{failure}", "Failed connects and lost sessions, per host.")
	waitTime, err := m.Float64ObservableCounter(MetricWaitTime, metric.WithUnit("s"),
		metric.WithDescription("Time checkouts spent waiting for a session."))
	errs = append(errs, err)
	ratio, err := m.Float64ObservableGauge(MetricStmtCacheHitRatio, metric.WithUnit("1"),
		metric.WithDescription("Statement-cache hits over lookups, since the connector opened."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	poolName := cfg.poolName
	base := make([]attribute.KeyValue, 0, 2+len(cfg.attrs))
	if cfg.system != "" {
		base = append(base, semconv.DBSystemNameKey.String(cfg.system))
	}
	base = append(base, cfg.attrs...)
	var (
		setOnce         sync.Once
		all, used, idle metric.MeasurementOption
	)
	sets := func(s *hasql.Stats) {
		setOnce.Do(func() {
			if poolName == "" {
				var hosts []string
				for _, h := range s.Hosts {
					if h.Addr != "" {
						hosts = append(hosts, h.Addr)
					}
				}
				poolName = strings.Join(hosts, ",")
				if poolName == "" {
					poolName = "hasql"
				}
			}
			pool := append([]attribute.KeyValue{semconv.DBClientConnectionPoolName(poolName)}, base...)
			all = metric.WithAttributeSet(attribute.NewSet(pool...))
			used = metric.WithAttributeSet(attribute.NewSet(append(pool, semconv.DBClientConnectionStateUsed)...))
			idle = metric.WithAttributeSet(attribute.NewSet(append(pool, semconv.DBClientConnectionStateIdle)...))
		})
	}

	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := c.Stats()
		sets(&s)
		o.ObserveInt64(conns, int64(s.Busy), used)
		o.ObserveInt64(conns, int64(s.Idle), idle)
		o.ObserveInt64(open, int64(s.Open), all)
		o.ObserveInt64(timeouts, s.WaitTimeouts, all)
		o.ObserveInt64(created, s.Created, all)
		o.ObserveInt64(closed, s.Closed, all)
		o.ObserveInt64(terminated, s.Terminated, all)
		o.ObserveInt64(waits, s.Waits, all)
		o.ObserveFloat64(waitTime, s.WaitTime.Seconds(), all)
		o.ObserveInt64(tagHits, s.TagHits, all)
		o.ObserveInt64(tagMisses, s.TagMisses, all)
		o.ObserveInt64(hits, s.StmtCacheHits, all)
		o.ObserveInt64(misses, s.StmtCacheMisses, all)
		o.ObserveInt64(evictions, s.StmtCacheEvictions, all)
		if n := s.StmtCacheHits + s.StmtCacheMisses; n > 0 {
			o.ObserveFloat64(ratio, float64(s.StmtCacheHits)/float64(n), all)
		}
		o.ObserveInt64(reconnects, s.Reconnects, all)
		o.ObserveInt64(failovers, s.Failovers, all)
		o.ObserveInt64(retries, s.Retries, all)
		for _, h := range s.Hosts {
			if h.Addr == "" {
				continue // the only host, address unknown: the pool figures say it all
			}
			attrs := append([]attribute.KeyValue{semconv.DBClientConnectionPoolName(poolName)}, base...)
			attrs = append(attrs, hostAttrs(h.Addr)...)
			o.ObserveInt64(hostFailures, h.Failures, metric.WithAttributes(attrs...))
			attrs = append(attrs, attribute.String("hasql.host.state", h.State.String()))
			o.ObserveInt64(hostSessions, int64(h.Open), metric.WithAttributes(attrs...))
		}
		return nil
	}, conns, open, timeouts, created, closed, terminated, waits, waitTime, tagHits, tagMisses,
		hits, misses, evictions, ratio, reconnects, failovers, retries, hostSessions, hostFailures)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
