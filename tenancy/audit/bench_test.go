package audit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// BenchmarkAuditFleet audits a fleet of tenant databases concurrently, as
// `tenantgate audit` and the provisioner's periodic audit do: each
// database costs a connection and one round trip of catalog queries; the
// expected fingerprint is computed once (before the timer starts, its
// time reported as expected-ms).
//
// TENANTGATE_BENCH_AUDIT_DATABASES sets the fleet's size (default 20; the
// issue's target is 1,000 in under 30 s), TENANTGATE_BENCH_AUDIT_CONCURRENCY
// how many are audited at once (default 16). The databases are copies of
// one migrated template, granted like the provisioner's.
func BenchmarkAuditFleet(b *testing.B) {
	n := envInt(b, "TENANTGATE_BENCH_AUDIT_DATABASES", 20)
	concurrency := envInt(b, "TENANTGATE_BENCH_AUDIT_CONCURRENCY", 16)
	f := setup(b)
	ctx := context.Background()
	tmpl := f.database(b, "tmpl")
	tmplName, err := schema.DatabaseName(tmpl)
	require.NoError(b, err)

	start := time.Now()
	targets := make([]Target, n)
	// Dropped here, several at a time, before the env's cleanup drops
	// what is left one by one: a thousand would outlast its timeout.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, t := range targets {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := schema.DropDatabase(ctx, f.env.ServerURL, t.Name); err != nil {
					b.Errorf("drop %s: %v", t.Name, err)
				}
			})
		}
		wg.Wait()
	})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make([]error, n)
	for i := range targets {
		name := fmt.Sprintf("%sd_%04d", f.env.Prefix, i)
		dsn := f.env.DatabaseURL(b, name)
		targets[i] = Target{Name: name, DSN: dsn}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = cloneDatabase(ctx, f.env.ServerURL, tmplName, name, dsn, f.appRole)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(b, err)
	}
	b.Logf("%d databases created in %v", n, time.Since(start).Round(time.Millisecond))

	a := New(Config{ScratchPrefix: f.env.Prefix + "scratch_"})
	start = time.Now()
	_, err = a.Expected(ctx, f.env.ServerURL, f.appRole, newestVersion(b))
	require.NoError(b, err)
	expected := time.Since(start)

	b.ResetTimer()
	for b.Loop() {
		for _, r := range a.AuditAll(ctx, f.appRole, targets, concurrency) {
			if r.Err != nil || r.Report.Verdict != OK {
				b.Fatalf("%s: %v %v", r.Target.Name, r.Err, r.Report)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/database")
	b.ReportMetric(float64(expected.Milliseconds()), "expected-ms")
	b.ReportMetric(float64(n), "databases")
}

// cloneDatabase copies template into a new database name (FILE_COPY: a
// few small files, faster than WAL_LOG for a schema without data) and
// grants it to appRole, as the provisioner does after a copy.
func cloneDatabase(ctx context.Context, serverURL, template, name, dsn, appRole string) error {
	maint, err := schema.WithDatabase(serverURL, "postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, maint)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{template}.Sanitize()+" STRATEGY FILE_COPY")
	conn.Close(ctx)
	if err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	return schema.GrantApp(ctx, db, appRole)
}
