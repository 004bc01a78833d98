package catalog_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// TestAuditQuarantine: an unsafe verdict quarantines a database, which no
// longer counts as serving; an operator's acceptance releases it for those
// findings only; a safe re-audit releases it; the other database is never
// touched.
func TestAuditQuarantine(t *testing.T) {
	t.Parallel()
	store, _, dbs := ledgerStore(t)
	ctx := context.Background()
	quarantined := func(id string) bool {
		d, err := store.Database(ctx, id)
		require.NoError(t, err)
		return d.Quarantined
	}
	require.Error(t, store.AcceptAudit(ctx, dbs[0].ID, "nothing to accept"), "never audited")

	q, changed, err := store.RecordAudit(ctx, dbs[0].ID, catalog.VerdictUnsafe, []string{"agents: row level security disabled"}, 3)
	require.NoError(t, err)
	require.True(t, q)
	require.True(t, changed)
	require.True(t, quarantined(dbs[0].ID))
	require.False(t, quarantined(dbs[1].ID), "other databases are unaffected")

	require.NoError(t, store.AcceptAudit(ctx, dbs[0].ID, "incident 42: being fixed"))
	require.False(t, quarantined(dbs[0].ID))
	q, _, err = store.RecordAudit(ctx, dbs[0].ID, catalog.VerdictUnsafe, []string{"agents: row level security disabled"}, 3)
	require.NoError(t, err)
	require.False(t, q, "the accepted findings do not quarantine it again")
	q, changed, err = store.RecordAudit(ctx, dbs[0].ID, catalog.VerdictUnsafe,
		[]string{"agents: row level security disabled", "role app: BYPASSRLS"}, 3)
	require.NoError(t, err)
	require.True(t, q, "a new finding does")
	require.True(t, changed)

	q, changed, err = store.RecordAudit(ctx, dbs[0].ID, catalog.VerdictDrift, []string{"agents: index x not expected"}, 3)
	require.NoError(t, err)
	require.False(t, q, "drift is reported, not quarantined")
	require.True(t, changed)

	audits, err := store.Audits(ctx)
	require.NoError(t, err)
	byID := map[string]catalog.AuditRecord{}
	for _, a := range audits {
		byID[a.DatabaseID] = a
	}
	require.Equal(t, catalog.VerdictDrift, byID[dbs[0].ID].Verdict)
	require.Equal(t, []string{"agents: index x not expected"}, byID[dbs[0].ID].Findings)
	require.Equal(t, "incident 42: being fixed", byID[dbs[0].ID].AcceptedReason)
	require.Empty(t, byID[dbs[1].ID].Verdict, "never audited")
}
