package provisioner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/audit"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestAuditQuarantinesEachUnsafeProperty: for each property that weakens
// isolation, broken by hand on one tenant's dedicated database, the fleet
// audit names it, quarantines that database (its tenant no longer
// serves), and leaves a tenant elsewhere serving. (BYPASSRLS is a role
// attribute shared by every test on this server: tenancy/audit tests it
// on a role of its own.)
func TestAuditQuarantinesEachUnsafeProperty(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	calm, err := f.prov.CreateOrganization(ctx, CreateOrganization{Slug: "calm", Name: "Calm", Plan: tenancy.PlanPro})
	require.NoError(t, err)
	audits := NewAudits(f.cfg, f.store, quiet)
	var published []string
	audits.Publish = func(_ context.Context, orgID string) error { published = append(published, orgID); return nil }
	app := f.cfg.AppRole

	for _, c := range []struct {
		slug     string
		property audit.Property
		breakSQL string
	}{
		{"rls-off", "rls_disabled", `ALTER TABLE agents DISABLE ROW LEVEL SECURITY`},
		{"no-force", "rls_not_forced", `ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY`},
		{"open-policy", "policy", `CREATE POLICY everyone ON messages USING (true)`},
		{"app-owns", "app_role_owns", `ALTER TABLE schedules OWNER TO ` + app},
		{"new-table", "unprotected_table", `CREATE TABLE notes (body text); GRANT SELECT ON notes TO ` + app},
		{"no-fence", "fence_trigger", `DROP TRIGGER tenant_fence_insert ON agents`},
		{"wide-grant", "grant_wider", `GRANT TRUNCATE ON agents TO ` + app},
	} {
		t.Run(c.slug, func(t *testing.T) {
			org, err := f.prov.CreateOrganization(ctx, CreateOrganization{Slug: c.slug, Name: c.slug, Plan: tenancy.PlanEnterprise})
			require.NoError(t, err)
			pl, err := f.store.Placement(ctx, org.ID)
			require.NoError(t, err)
			db, err := f.store.Database(ctx, pl.DatabaseID)
			require.NoError(t, err)
			_, err = tenancytest.Connect(t, db.DSN).Exec(ctx, c.breakSQL)
			require.NoError(t, err)

			out, err := audits.AuditFleet(ctx, db.Name)
			require.NoError(t, err)
			require.Len(t, out, 1)
			require.Equal(t, audit.Unsafe, out[0].Verdict, "%+v", out[0])
			require.True(t, out[0].Quarantined)
			var named bool
			for _, fd := range out[0].Findings {
				named = named || fd.Property == c.property
			}
			require.True(t, named, "the audit names %s: %+v", c.property, out[0].Findings)
			require.Contains(t, published, org.ID, "the gateways are told")

			broken, err := f.store.Tenant(ctx, org.ID)
			require.NoError(t, err)
			require.False(t, broken.Placement.DatabaseReady, "its tenant is refused (503)")
			elsewhere, err := f.store.Tenant(ctx, calm.ID)
			require.NoError(t, err)
			require.True(t, elsewhere.Placement.DatabaseReady, "a tenant elsewhere is served")
		})
	}
}

// TestTemplateAuditedUnderItsLock: the fleet audit connects to a server's
// template only while it holds the server's template lock alone, so it
// never meets a copy there (a copy fails while anyone is connected to its
// template). While this test holds the lock shared, as a copy does, the
// audit neither ends nor connects to the template; once the lock is
// given back, it audits the template. (A wrong audit could only go
// unnoticed here, never fail a right one: the watch is bounded.)
func TestTemplateAuditedUnderItsLock(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	_, err := f.prov.CreateOrganization(ctx, CreateOrganization{Slug: "templated", Name: "T", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	audits := NewAudits(f.cfg, f.store, quiet)

	copier := f.server(t) // the maintenance database, where copies lock
	_, err = copier.Exec(ctx, `SELECT pg_advisory_lock_shared($1)`, schema.LockID(templateLock))
	require.NoError(t, err)
	type result struct {
		out []AuditOutcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := audits.AuditFleet(ctx)
		done <- result{out, err}
	}()
	watcher := f.server(t)
	for range 100 {
		select {
		case r := <-done:
			t.Fatalf("the audit ended while a copy held the template lock: %+v %v", r.out, r.err)
		default:
		}
		var connected int
		require.NoError(t, watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`,
			f.cfg.TemplateName()).Scan(&connected))
		require.Zero(t, connected, "the audit connected to the template while a copy held the lock")
		time.Sleep(20 * time.Millisecond)
	}
	_, err = copier.Exec(ctx, `SELECT pg_advisory_unlock_shared($1)`, schema.LockID(templateLock))
	require.NoError(t, err)
	r := <-done
	require.NoError(t, r.err)
	var template *AuditOutcome
	for i := range r.out {
		if r.out[i].Kind == KindTemplate && strings.HasPrefix(r.out[i].Database, f.cfg.TemplateName()+" ") {
			template = &r.out[i]
		}
	}
	require.NotNil(t, template, "the template is audited: %+v", r.out)
	require.Empty(t, template.Error)
	require.Equal(t, audit.OK, template.Verdict, "%+v", template.Findings)
}
