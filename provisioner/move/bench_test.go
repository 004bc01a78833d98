package move

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// BenchmarkMove100k moves a shared tenant with 100,000 rows, spread over
// every tenant table, to a dedicated database, next to a neighbour of the
// same size. It reports the whole move and the write freeze (from the
// fence to the switch, when neither database takes the tenant's writes)
// in seconds. The whole move includes creating the dedicated database.
func BenchmarkMove100k(b *testing.B) {
	const rows = 100_000
	bb := setup(b)
	ctx := testCtx(b)
	shared := bb.shared(b)
	neighbour := bb.org(b, "neighbour", tenancy.PlanPro)
	bb.seed(b, shared, neighbour.ID, rows)
	var total, freeze time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		o := bb.org(b, fmt.Sprintf("bench-%d", i), tenancy.PlanPro)
		bb.seed(b, shared, o.ID, rows)
		b.StartTimer()

		var fenced, switched time.Time
		start := time.Now()
		err := Move(ctx, bb.deps, o.ID, tenancy.KindDedicated, func(step string) {
			switch step {
			case StepFence:
				fenced = time.Now()
			case StepCleanup:
				switched = time.Now()
			}
		})
		total += time.Since(start)
		freeze += switched.Sub(fenced)
		require.NoError(b, err)
		b.StopTimer()
		require.Equal(b, rows, bb.rows(b, bb.home(b, o.ID), o.ID))
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/move")
	b.ReportMetric(freeze.Seconds()/float64(b.N), "freeze-s/move")
	b.ReportMetric(0, "ns/op") // the move's own figures say it better
}
