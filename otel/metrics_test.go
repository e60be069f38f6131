package hasqlotel_test

import (
	"context"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
	hasqlotel "github.com/hasqlgo/hasql/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// point is one collected data point: its metric, attributes and value.
type point struct {
	attrs attribute.Set
	value float64
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != hasqlotel.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, float64(p.Value)})
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, p.Value})
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, p.Value})
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// value returns the value of metric name whose attributes include want,
// failing the test when there is not exactly one.
func value(t *testing.T, ms map[string][]point, name string, want ...attribute.KeyValue) float64 {
	t.Helper()
	var found []float64
	for _, p := range ms[name] {
		ok := true
		for _, kv := range want {
			if v, has := p.attrs.Value(kv.Key); !has || v != kv.Value {
				ok = false
			}
		}
		if ok {
			found = append(found, p.value)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s %v: %d points (%v)", name, want, len(found), ms[name])
	}
	return found[0]
}

var (
	poolHasql = attribute.String("db.client.connection.pool.name", "hasql")
	stateUsed = attribute.String("db.client.connection.state", "used")
	stateIdle = attribute.String("db.client.connection.state", "idle")
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	faults := hasqltest.NewFaults()
	db, mock := hasqltest.NewMock(t, hasqltest.WithFaults(faults))
	c, _ := hasql.ConnectorOf(db)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	unregister, err := hasqlotel.RegisterMetrics(c, mp)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing yet: no session, no statement lookups (so no hit ratio).
	ms := collect(t, reader)
	if v := value(t, ms, hasqlotel.MetricConnectionCount, poolHasql, stateUsed); v != 0 {
		t.Fatalf("used %v", v)
	}
	if _, ok := ms[hasqlotel.MetricStmtCacheHitRatio]; ok {
		t.Fatal("a hit ratio before any lookup")
	}

	// A held session: one used.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mock.ExpectExec("SET").WillReturnResult(sqlmock.NewResult(0, 0))
	if _, err := conn.ExecContext(ctx, "SET x = 1"); err != nil {
		t.Fatal(err)
	}
	ms = collect(t, reader)
	if u, i, o := value(t, ms, hasqlotel.MetricConnectionCount, stateUsed), value(t, ms, hasqlotel.MetricConnectionCount, stateIdle),
		value(t, ms, hasqlotel.MetricSessionsOpen, poolHasql); u != 1 || i != 0 || o != 1 {
		t.Fatalf("held: used %v, idle %v, open %v", u, i, o)
	}
	conn.Close()

	// Released: idle. A statement prepared twice on it: one miss, one hit.
	db.SetMaxOpenConns(1)
	mock.ExpectPrepare("SELECT v").ExpectQuery().WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	mock.ExpectQuery("SELECT v").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
	for range 2 {
		st, err := db.Prepare("SELECT v FROM t")
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if err := st.QueryRow().Scan(&v); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	// A lost connection recovered from: a terminated session, a reconnect,
	// a retry.
	faults.LoseBeforeSend("UPDATE", 1)
	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	if _, err := db.Exec("UPDATE t SET v = 1"); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	ms = collect(t, reader)
	for name, want := range map[string]float64{
		hasqlotel.MetricSessionsCreated:    float64(s.Created),
		hasqlotel.MetricSessionsClosed:     float64(s.Closed),
		hasqlotel.MetricSessionsTerminated: 1,
		hasqlotel.MetricReconnects:         1,
		hasqlotel.MetricRetries:            1,
		hasqlotel.MetricFailovers:          0,
		hasqlotel.MetricStmtCacheHits:      1,
		hasqlotel.MetricStmtCacheMisses:    1,
		hasqlotel.MetricStmtCacheEvictions: 0,
		hasqlotel.MetricStmtCacheHitRatio:  0.5,
		hasqlotel.MetricWaits:              float64(s.Waits),
		hasqlotel.MetricWaitTime:           s.WaitTime.Seconds(),
		hasqlotel.MetricConnectionTimeouts: 0,
		hasqlotel.MetricTagHits:            0,
		hasqlotel.MetricTagMisses:          float64(s.TagMisses),
	} {
		if got := value(t, ms, name, poolHasql); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if s.Created < 2 {
		t.Errorf("created %d sessions, want at least 2 (one replaced the lost one)", s.Created)
	}
	if u, i := value(t, ms, hasqlotel.MetricConnectionCount, stateUsed), value(t, ms, hasqlotel.MetricConnectionCount, stateIdle); u != 0 || i != float64(s.Idle) {
		t.Errorf("released: used %v, idle %v (stats idle %d)", u, i, s.Idle)
	}
	// go-sqlmock has no host address: no per-host metrics.
	if len(ms[hasqlotel.MetricHostSessions]) != 0 || len(ms[hasqlotel.MetricHostFailures]) != 0 {
		t.Errorf("per-host metrics without a host address: %v", ms[hasqlotel.MetricHostSessions])
	}

	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	if ms := collect(t, reader); len(ms) != 0 {
		t.Fatalf("metrics after unregister: %v", ms)
	}
}

func TestMetricsOptions(t *testing.T) {
	ctx := context.Background()
	db, _ := hasqltest.NewMock(t)
	c, _ := hasql.ConnectorOf(db)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	if _, err := hasqlotel.RegisterMetrics(c, mp, hasqlotel.WithPoolName("orders"), hasqlotel.WithSystem("mysql"),
		hasqlotel.WithAttributes(attribute.String("app.shard", "7"))); err != nil {
		t.Fatal(err)
	}
	ms := collect(t, reader)
	value(t, ms, hasqlotel.MetricSessionsOpen, attribute.String("db.client.connection.pool.name", "orders"),
		attribute.String("db.system.name", "mysql"), attribute.String("app.shard", "7"))
	if _, err := hasqlotel.RegisterMetrics(nil, mp); err == nil {
		t.Fatal("RegisterMetrics(nil) succeeded")
	}
	if _, err := hasqlotel.RegisterMetrics(c, nil); err == nil {
		t.Fatal("RegisterMetrics without a MeterProvider succeeded")
	}
}
