package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// dueOrg creates an organization for the schedule index tests.
func dueOrg(t *testing.T, s *catalog.Store, ctx context.Context, slug string) string {
	t.Helper()
	db, err := s.RegisterDatabase(ctx, tenancy.Database{Name: "shared", Kind: tenancy.KindShared, DSN: "postgres://h/shared"})
	require.NoError(t, err)
	o, err := s.CreateOrganization(ctx, catalog.NewOrganization{Slug: slug, Name: slug, Plan: tenancy.PlanPro,
		Status: tenancy.StatusActive, DatabaseID: db.ID})
	require.NoError(t, err)
	return o.ID
}

// claimed takes the next due organization ("" when none is due).
func claimed(t *testing.T, s *catalog.Store, ctx context.Context, lease time.Duration) catalog.DueClaim {
	t.Helper()
	c, err := s.ClaimDueOrganization(ctx, lease)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return catalog.DueClaim{}
	}
	require.NoError(t, err)
	return c
}

// TestScheduleNotedDuringAVisitIsKept: a due time noted between a
// scheduler's claim and the end of its visit (a schedule the visit may
// not have read) survives the visit's final write, which makes the
// organization due now instead of removing or postponing it.
func TestScheduleNotedDuringAVisitIsKept(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t)
	org := dueOrg(t, s, ctx, "noted")
	nextYear := time.Now().AddDate(1, 0, 0)

	for _, end := range []*time.Time{nil, &nextYear} {
		require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(-time.Minute)))
		c := claimed(t, s, ctx, time.Minute)
		require.Equal(t, org, c.OrganizationID)
		require.Empty(t, claimed(t, s, ctx, time.Minute).OrganizationID, "leased to the visit")

		// The gateway notes a new schedule while the visit runs; the visit
		// read the tenant's schedules before it was committed.
		require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(time.Hour)))
		require.NoError(t, s.SetScheduleDue(ctx, c, end))

		again := claimed(t, s, ctx, time.Minute)
		require.Equal(t, org, again.OrganizationID, "due at once, for the next visit to read again (end %v)", end)
		require.NoError(t, s.SetScheduleDue(ctx, again, nil))
	}

	// Without a note meanwhile, the visit's word stands.
	require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(-time.Minute)))
	c := claimed(t, s, ctx, time.Minute)
	require.NoError(t, s.SetScheduleDue(ctx, c, &nextYear))
	require.Empty(t, claimed(t, s, ctx, 0).OrganizationID, "not due before next year")
	require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(-time.Minute)))
	c = claimed(t, s, ctx, time.Minute)
	require.NoError(t, s.SetScheduleDue(ctx, c, nil))
	require.Empty(t, claimed(t, s, ctx, 0).OrganizationID, "removed")
}

// TestStaleVisitCannotRemoveANewerEntry: a visit whose lease ran out while
// another scheduler visited the organization, removed its entry and saw a
// new schedule noted, does not remove the new entry when it ends.
func TestStaleVisitCannotRemoveANewerEntry(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t)
	org := dueOrg(t, s, ctx, "stale")
	require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(-time.Minute)))
	slow := claimed(t, s, ctx, 0) // a lease that has run out at once
	fast := claimed(t, s, ctx, time.Minute)
	require.Equal(t, org, fast.OrganizationID)
	require.NoError(t, s.SetScheduleDue(ctx, fast, nil))
	require.NoError(t, s.NoteScheduleDue(ctx, org, time.Now().Add(-time.Second)))

	require.NoError(t, s.SetScheduleDue(ctx, slow, nil))
	require.Equal(t, org, claimed(t, s, ctx, time.Minute).OrganizationID, "the new entry is kept, and due")
}

// TestLeftoverSchedulesQueueBehindEarlierOnes: a visit that leaves due
// schedules for later makes its organization due again, but behind one
// that came due before the visit ended.
func TestLeftoverSchedulesQueueBehindEarlierOnes(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t)
	busy, other := dueOrg(t, s, ctx, "busy"), dueOrg(t, s, ctx, "other")
	require.NoError(t, s.NoteScheduleDue(ctx, busy, time.Now().Add(-10*time.Minute)))
	require.NoError(t, s.NoteScheduleDue(ctx, other, time.Now().Add(-5*time.Minute)))
	c := claimed(t, s, ctx, time.Minute)
	require.Equal(t, busy, c.OrganizationID)
	// The visit read that its oldest leftover is due since ten minutes.
	require.NoError(t, s.SetScheduleDue(ctx, c, new(time.Now().Add(-10*time.Minute))))
	require.Equal(t, other, claimed(t, s, ctx, time.Minute).OrganizationID)
	require.Equal(t, busy, claimed(t, s, ctx, time.Minute).OrganizationID, "and due again right after")
}
