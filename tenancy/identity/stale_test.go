package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// TestStaleDuringCatalogOutage: once their TTL has passed, a user and an
// API key already read are still answered while the catalog fails (trying
// it once a second), up to outage.MaxStale; what was never read, or was
// forgotten, is not; a forgotten (revoked) key stays refused.
func TestStaleDuringCatalogOutage(t *testing.T) {
	t.Parallel()
	down := errors.New("catalog down")
	users := newFakeUsers(alice)
	p := NewPrincipals(users.read, 10, time.Minute)
	keys := newFakeKeys()
	good := keys.add(t, "alice", nil)
	revoked := keys.add(t, "alice", nil)
	k := NewKeys(keys.read, 10, time.Minute, time.Minute)
	now := time.Now()
	p.now = func() time.Time { return now }
	k.now = func() time.Time { return now }
	ctx := context.Background()
	_, err := p.User(ctx, "alice")
	require.NoError(t, err)
	for _, raw := range []string{good, revoked} {
		_, err = k.Verify(ctx, raw)
		require.NoError(t, err)
	}

	users.fail, keys.fail = down, down
	k.Forget(prefixOf(t, revoked))
	now = now.Add(2 * time.Minute)
	users.reads.Store(0)
	keys.reads.Store(0)
	for range 20 {
		u, err := p.User(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, alice.Role, u.Role)
		_, err = k.Verify(ctx, good)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, users.reads.Load(), "the catalog is tried once a second")
	_, err = k.Verify(ctx, revoked)
	require.ErrorIs(t, err, down, "a forgotten key is not served from the past")
	_, err = p.User(ctx, "bob")
	require.ErrorIs(t, err, down)

	now = now.Add(outage.MaxStale)
	_, err = p.User(ctx, "alice")
	require.ErrorIs(t, err, down, "not past MaxStale")
	_, err = k.Verify(ctx, good)
	require.ErrorIs(t, err, down)
}
