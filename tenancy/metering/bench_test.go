package metering_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// BenchmarkRecord measures Record, the hot path, from parallel goroutines
// recording for one organization (a hot tenant: one shard), for a thousand
// and for fifty thousand (spread over the shards): with the default shards
// and, for comparison, one mutex; with the minute Run keeps (as in
// production) and, for comparison, reading the clock on every record.
func BenchmarkRecord(b *testing.B) {
	store := metering.NewStore(nil, nil) // Record never touches the catalog
	type variant struct {
		name   string
		shards int
		clock  bool
	}
	for _, v := range []variant{{"shards=default", 0, false}, {"shards=1", 1, false}, {"shards=default/clock=time.Now", 0, true}} {
		for _, n := range []int{1, 1000, 50_000} {
			b.Run(fmt.Sprintf("orgs=%d/%s", n, v.name), func(b *testing.B) {
				orgs := make([]string, n)
				for i := range orgs {
					orgs[i] = org()
				}
				m := store.NewMeter(metering.WithShards(metering.Config{}, v.shards))
				if !v.clock {
					m.FreezeMinute()
				}
				u := metering.Usage{Requests: 1, DBTime: 300 * time.Microsecond, RowsRead: 3, BytesSent: 900}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := rand.IntN(n)
					for pb.Next() {
						m.Record(orgs[i], u)
						if i++; i == n {
							i = 0
						}
					}
				})
			})
		}
	}
}

// BenchmarkFlush10k measures one flush of 10,000 organizations active in
// the current minute (each row an update of the previous flush's, as in a
// steady state), one statement each time.
func BenchmarkFlush10k(b *testing.B) {
	f := setup(b)
	m := f.meter(metering.Config{})
	orgs := make([]string, 10_000)
	for i := range orgs {
		orgs[i] = org()
	}
	u := metering.Usage{Requests: 1, DBTime: 300 * time.Microsecond, RowsRead: 3, BytesSent: 900}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		for _, o := range orgs {
			m.Record(o, u)
		}
		before := f.statements.Load()
		b.StartTimer()
		require.NoError(b, m.Flush(ctx))
		b.StopTimer()
		require.Equal(b, int64(1), f.statements.Load()-before)
		b.StartTimer()
	}
}

// BenchmarkTracerStatement measures what metering adds to one tenant
// statement: a span in the context, two clock reads and a Record.
func BenchmarkTracerStatement(b *testing.B) {
	m := metering.NewStore(nil, nil).NewMeter(metering.Config{})
	m.FreezeMinute()
	tr := m.Tracer()
	ctx := tenancy.WithTenant(context.Background(), tenancy.Tenant{Organization: tenancy.Organization{ID: org()}})
	start := pgx.TraceQueryStartData{SQL: "SELECT id FROM agents WHERE organization_id = $1"}
	end := pgx.TraceQueryEndData{CommandTag: pgconn.NewCommandTag("SELECT 3")}
	b.ReportAllocs()
	for b.Loop() {
		tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, start), nil, end)
	}
}
