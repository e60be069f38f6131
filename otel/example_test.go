package hasqlotel_test

import (
	"context"
	"fmt"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/hasqlgo/hasql"
	"github.com/hasqlgo/hasql/hasqltest"
	hasqlotel "github.com/hasqlgo/hasql/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Spans for a connector's calls, children of the application's span.
func ExampleInstrument() {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.Background())

	db, mock, done, err := hasqltest.OpenMock()
	if err != nil {
		panic(err)
	}
	defer done()
	c, _ := hasql.ConnectorOf(db)
	stop, err := hasqlotel.Instrument(c, hasqlotel.WithTracerProvider(tp))
	if err != nil {
		panic(err)
	}
	defer stop()

	mock.ExpectQuery("SELECT name").WillReturnRows(sqlmock.NewRows([]string{"name"}).AddRow("ann"))
	ctx, span := tp.Tracer("app").Start(context.Background(), "GET /users/1")
	var name string
	db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = ?", 1).Scan(&name)
	span.End()

	for _, s := range exporter.GetSpans() {
		fmt.Printf("%-14s parent=%v\n", s.Name, s.Parent.IsValid())
	}
	// Output:
	// hasql.connect  parent=true
	// SELECT         parent=true
	// GET /users/1   parent=false
}

// The pool's figures as metrics, read on each collection.
func ExampleRegisterMetrics() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	db, mock, done, err := hasqltest.OpenMock()
	if err != nil {
		panic(err)
	}
	defer done()
	c, _ := hasql.ConnectorOf(db)
	unregister, err := hasqlotel.RegisterMetrics(c, mp, hasqlotel.WithPoolName("orders"))
	if err != nil {
		panic(err)
	}
	defer unregister()

	mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	db.Exec("UPDATE stock SET n = n - 1")

	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == hasqlotel.MetricSessionsCreated {
			p := m.Data.(metricdata.Sum[int64]).DataPoints[0]
			pool, _ := p.Attributes.Value("db.client.connection.pool.name")
			fmt.Println(m.Name, pool.AsString(), p.Value)
		}
	}
	// Output:
	// hasql.sessions.created orders 1
}
