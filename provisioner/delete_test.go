package provisioner

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// TestDeletePublishesOnceTheRecordsAreGone: the replicas are told of a
// deleted organization after its catalog records are gone, so that a
// re-read finds nothing and nothing of it stays cached (credentials,
// users, placement); and before, when it is suspended.
func TestDeletePublishesOnceTheRecordsAreGone(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for _, plan := range []tenancy.Plan{tenancy.PlanPro, tenancy.PlanEnterprise} {
		f.prov.Publish = nil
		org := f.org(t, "goner-"+string(plan), plan)
		var seen []string
		f.prov.Publish = func(ctx context.Context, orgID string) error {
			require.Equal(t, org, orgID)
			o, err := f.store.Organization(ctx, orgID)
			switch {
			case err == nil:
				seen = append(seen, string(o.Status))
			case tenancy.ErrorCode(err) == tenancy.CodeNotFound:
				seen = append(seen, "gone")
			default:
				return err
			}
			return nil
		}
		var steps []string
		require.NoError(t, f.prov.DeleteOrganization(ctx(t), org, func(s string) { steps = append(steps, s) }))
		require.Equal(t, []string{"delete data", "delete records"}, steps)
		require.Equal(t, []string{string(tenancy.StatusSuspended), "gone"}, seen, plan)
	}
}
