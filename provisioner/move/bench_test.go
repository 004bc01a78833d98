package move_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// BenchmarkMove100k moves a shared tenant with 100,000 rows, spread over
// every tenant table, to a dedicated database, next to a neighbour of the
// same size. It reports the whole move and the write freeze in seconds
// (targets < 10 s and < 3 s, issue 5). The freeze runs from the placement
// marked moving (gateways refuse the tenant's writes from then on) to the
// cleanup step, which first unfences the target; the whole move includes
// creating the dedicated database and clearing the source.
//
// It runs twice: with the databases owned by a superuser, as the tests
// (and `tenantgate dev`) have them, and owned by a plain login role, as a
// managed PostgreSQL gives. A plain owner is subject to the forced
// row-level security and may not turn triggers off, so its copy goes
// through staging tables with every foreign key checked.
//
//	go test -run '^$' -bench Move100k -benchtime 1x ./provisioner/move/
func BenchmarkMove100k(b *testing.B) {
	const rows = 100_000
	b.Run("superuser-owner", func(b *testing.B) {
		bb := setup(b)
		shared := bb.shared(b)
		neighbour := bb.org(b, "neighbour", tenancy.PlanPro)
		bb.seed(b, shared, neighbour.ID, rows)
		benchMoves(b, bb, bb.deps, rows, func(i int) string {
			o := bb.org(b, fmt.Sprintf("bench-%d", i), tenancy.PlanPro)
			bb.seed(b, shared, o.ID, rows)
			return o.ID
		}, func(db tenancy.Database) tenancy.Database { return db })
	})
	b.Run("plain-owner", func(b *testing.B) {
		bb := setup(b)
		asRoot := func(db tenancy.Database) tenancy.Database {
			dsn, err := schema.WithUser(db.DSN, "root", "")
			require.NoError(b, err)
			db.DSN = dsn
			return db
		}
		shared := bb.ownedDatabase(b, "owned_shared", tenancy.KindShared)
		d := bb.deps
		d.SharedDatabase = func(context.Context) (tenancy.Database, error) { return shared, nil }
		made := 0
		d.CreateDedicated = func(context.Context, string) (tenancy.Database, error) {
			made++
			return bb.ownedDatabase(b, fmt.Sprintf("owned_dedicated_%d", made), tenancy.KindDedicated), nil
		}
		org := func(slug string) string {
			o, err := bb.store.CreateOrganization(testCtx(b), catalog.NewOrganization{Slug: slug, Name: slug,
				Plan: tenancy.PlanPro, Status: tenancy.StatusActive, DatabaseID: shared.ID})
			require.NoError(b, err)
			bb.seed(b, asRoot(shared), o.ID, rows)
			return o.ID
		}
		org("neighbour")
		benchMoves(b, bb, d, rows, func(i int) string { return org(fmt.Sprintf("bench-%d", i)) }, asRoot)
	})
}

// benchMoves times moves of fresh tenants (newTenant seeds one and returns
// its id) to a dedicated database and checks every row arrived, reading
// through view (the owner's DSN may not see past row-level security).
func benchMoves(b *testing.B, bb *bundle, d move.Deps, rows int, newTenant func(i int) string,
	view func(tenancy.Database) tenancy.Database) {
	ctx := testCtx(b)
	var total, freeze time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		org := newTenant(i)
		b.StartTimer()

		var marked, unfencing time.Time
		start := time.Now()
		err := move.Move(ctx, d, org, tenancy.KindDedicated, func(step string) {
			switch step {
			case move.StepMark:
				marked = time.Now()
			case move.StepCleanup:
				unfencing = time.Now()
			}
		})
		total += time.Since(start)
		freeze += unfencing.Sub(marked)
		require.NoError(b, err)
		b.StopTimer()
		require.Equal(b, rows, bb.rows(b, view(bb.home(b, org)), org))
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/move")
	b.ReportMetric(freeze.Seconds()/float64(b.N), "freeze-s/move")
	b.ReportMetric(0, "ns/op") // the move's own figures say it better
}
