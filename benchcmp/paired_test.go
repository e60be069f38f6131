package benchcmp

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// pairedBlock is how many operations one variant runs in one turn.
const pairedBlock = 256

// BenchmarkWrappersPaired measures what each variant adds to raw when they
// take turns at a fine grain, so that a shared machine's load, which comes
// and goes within a second, lands on all of them alike: each round runs
// pairedBlock operations of every variant, in an order drawn afresh per
// round, timing each block. b.N is the number of rounds (use -benchtime
// 400x, say); the ns/op go test prints is per round and means nothing here.
//
// Metrics, per operation: for each variant V, "V-x" is the median over the
// rounds of V's ns/op divided by raw's in the same round, "V-added-ns" the
// median of the difference, and "V-allocs+" its allocations per operation
// less raw's; "raw-ns" is raw's median ns/op.
func BenchmarkWrappersPaired(b *testing.B) {
	ctx := context.Background()
	dbs := make([]*sql.DB, len(variants))
	for i, v := range variants {
		dbs[i] = open(b, v)
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			allocs := make([]float64, len(variants))
			for i, db := range dbs {
				allocs[i] = testing.AllocsPerRun(200, func() {
					if err := o.run(ctx, db); err != nil {
						b.Fatalf("%s %s: %v", o.name, variants[i].name, err)
					}
				})
			}
			perOp := make([][]float64, len(variants)) // ns/op of each round
			order := rand.Perm(len(variants))
			b.ResetTimer()
			for r := 0; r < b.N; r++ {
				rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				for _, i := range order {
					t0 := time.Now()
					for k := 0; k < pairedBlock; k++ {
						if err := o.run(ctx, dbs[i]); err != nil {
							b.Fatalf("%s %s: %v", o.name, variants[i].name, err)
						}
					}
					perOp[i] = append(perOp[i], float64(time.Since(t0))/pairedBlock)
				}
			}
			b.StopTimer()
			b.ReportMetric(median(perOp[0]), "raw-ns")
			for i := 1; i < len(variants); i++ {
				ratio := make([]float64, b.N)
				added := make([]float64, b.N)
				for r := range ratio {
					ratio[r] = perOp[i][r] / perOp[0][r]
					added[r] = perOp[i][r] - perOp[0][r]
				}
				name := variants[i].name
				b.ReportMetric(median(ratio), name+"-x")
				b.ReportMetric(median(added), name+"-added-ns")
				b.ReportMetric(allocs[i]-allocs[0], name+"-allocs+")
			}
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}
