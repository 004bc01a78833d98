package metering_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// TestAdvise: noisy shared tenants are told to move out, idle dedicated
// ones to move back or, on a plan that wants a dedicated database, to be
// reviewed; everything else gets no advice.
func TestAdvise(t *testing.T) {
	t.Parallel()
	shared := func(db, slug string, dbTime, dbTotal time.Duration, storage, storageTotal int64) metering.Share {
		return metering.Share{OrganizationID: slug + "-id", Slug: slug, Plan: "pro", DatabaseID: db, DatabaseName: db,
			Kind: tenancy.KindShared, Usage: metering.Usage{DBTime: dbTime}, DatabaseDBTime: dbTotal,
			Storage: storage, DatabaseStorage: storageTotal}
	}
	dedicated := func(slug, plan string, dbTime time.Duration) metering.Share {
		return metering.Share{OrganizationID: slug + "-id", Slug: slug, Plan: plan, DatabaseID: "d-" + slug, DatabaseName: "d-" + slug,
			Kind: tenancy.KindDedicated, Usage: metering.Usage{DBTime: dbTime}, DatabaseDBTime: dbTime}
	}
	week := metering.AdviceRules{Window: 7 * 24 * time.Hour} // floor: 1m a day, 7m over the week
	type want struct{ slug, action, to string }
	for _, tc := range []struct {
		name   string
		rules  metering.AdviceRules
		shares []metering.Share
		want   []want
	}{
		{"a noisy neighbour by time", week, []metering.Share{
			shared("s1", "noisy", 80*time.Minute, 100*time.Minute, 0, 0),
			shared("s1", "quiet", 15*time.Minute, 100*time.Minute, 0, 0),
			shared("s1", "idle", 5*time.Minute, 100*time.Minute, 0, 0),
		}, []want{{"noisy", metering.ActionMove, tenancy.KindDedicated}}},
		{"a large share of an idle database is no noise", week, []metering.Share{
			shared("s1", "a", 5*time.Minute, 6*time.Minute, 0, 0),
			shared("s1", "b", time.Minute, 6*time.Minute, 0, 0),
		}, nil},
		{"a noisy neighbour by storage", week, []metering.Share{
			shared("s1", "big", 0, 0, 700, 1000),
			shared("s1", "small", 0, 0, 300, 1000),
		}, []want{{"big", metering.ActionMove, tenancy.KindDedicated}, {"small", metering.ActionMove, tenancy.KindDedicated}}},
		{"the threshold is a parameter", metering.AdviceRules{Window: week.Window, Share: 0.5}, []metering.Share{
			shared("s1", "big", 0, 0, 700, 1000),
			shared("s1", "small", 0, 0, 300, 1000),
		}, []want{{"big", metering.ActionMove, tenancy.KindDedicated}}},
		{"alone on a shared database: no neighbours", week, []metering.Share{
			shared("s1", "alone", time.Hour, time.Hour, 10, 10),
		}, nil},
		{"idle dedicated tenants", week, []metering.Share{
			dedicated("idle-pro", "pro", 6*time.Minute),
			dedicated("idle-ent", "enterprise", 0),
			dedicated("busy", "enterprise", 8*time.Minute),
		}, []want{{"idle-pro", metering.ActionMove, tenancy.KindShared}, {"idle-ent", metering.ActionReview, ""}}},
		{"the floor scales with the window", metering.AdviceRules{Window: 24 * time.Hour}, []metering.Share{
			dedicated("idle-pro", "pro", 6*time.Minute),
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []want
			for _, a := range metering.Advise(tc.shares, tc.rules) {
				got = append(got, want{a.Slug, a.Action, a.To})
				require.NotEmpty(t, a.Reason)
			}
			require.Equal(t, tc.want, got)
		})
	}

	advice := metering.Advise([]metering.Share{
		shared("s1", "noisy", 80*time.Minute, 100*time.Minute, 0, 0),
		shared("s1", "quiet", 20*time.Minute, 100*time.Minute, 0, 0),
	}, week)
	require.Len(t, advice, 1)
	require.InDelta(t, 0.8, advice[0].DBTimeShare, 1e-9, "the figures behind the advice")
	require.Equal(t, 0.2, advice[0].Threshold)
	require.Equal(t, 7*time.Minute, advice[0].IdleFloor)
	require.Equal(t, "80.0% of the database time of shared database s1 (threshold 20.0%)", advice[0].Reason)
}
