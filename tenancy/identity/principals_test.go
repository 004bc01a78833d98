package identity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// fakeUsers is a catalog of users that counts its reads.
type fakeUsers struct {
	mu    sync.Mutex
	users map[string]tenancy.User
	fail  error
	reads atomic.Int64
	hook  func(userID string)
}

func newFakeUsers(users ...tenancy.User) *fakeUsers {
	f := &fakeUsers{users: map[string]tenancy.User{}}
	for _, u := range users {
		f.users[u.ID] = u
	}
	return f
}

func (f *fakeUsers) read(ctx context.Context, userID string) (tenancy.User, error) {
	f.reads.Add(1)
	f.mu.Lock()
	u, ok := f.users[userID]
	fail, hook := f.fail, f.hook
	f.mu.Unlock()
	if hook != nil {
		hook(userID)
	}
	if fail != nil {
		return tenancy.User{}, fail
	}
	if !ok {
		return tenancy.User{}, tenancy.Wrap(errors.New("no rows"), tenancy.CodeNotFound, "user not found")
	}
	return u, nil
}

func (f *fakeUsers) setRole(userID string, r tenancy.Role) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[userID]
	u.Role = r
	f.users[userID] = u
}

func (f *fakeUsers) remove(userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.users, userID)
}

var alice = tenancy.User{ID: "alice", OrganizationID: "o1", Email: "alice@example.com", Role: tenancy.RoleAdmin}

func TestPrincipalsCache(t *testing.T) {
	t.Parallel()
	f := newFakeUsers(alice)
	p := NewPrincipals(f.read, 10, time.Minute)
	now := time.Now()
	p.now = func() time.Time { return now }
	ctx := context.Background()

	for range 5 {
		u, err := p.User(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, alice, u)
	}
	require.EqualValues(t, 1, f.reads.Load(), "hits do not read the catalog")

	f.setRole("alice", tenancy.RoleMember)
	u, _ := p.User(ctx, "alice")
	require.Equal(t, tenancy.RoleAdmin, u.Role, "cached")
	p.Forget("alice")
	u, _ = p.User(ctx, "alice")
	require.Equal(t, tenancy.RoleMember, u.Role, "Forget makes the next lookup read the catalog")
	require.EqualValues(t, 2, f.reads.Load())

	f.setRole("alice", tenancy.RoleOwner)
	now = now.Add(2 * time.Minute)
	u, _ = p.User(ctx, "alice")
	require.Equal(t, tenancy.RoleOwner, u.Role, "an expired entry is read again")
}

func TestPrincipalsDeleted(t *testing.T) {
	t.Parallel()
	f := newFakeUsers(alice)
	p := NewPrincipals(f.read, 10, time.Minute)
	ctx := context.Background()

	for range 3 {
		_, err := p.User(ctx, "ghost")
		require.ErrorIs(t, err, tenancy.ErrNotFound)
		require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
	}
	require.EqualValues(t, 1, f.reads.Load(), "a missing user is cached too")

	_, err := p.User(ctx, "alice")
	require.NoError(t, err)
	f.remove("alice")
	p.Forget("alice")
	for range 3 {
		_, err = p.User(ctx, "alice")
		require.ErrorIs(t, err, tenancy.ErrNotFound, "a deletion applies at once after Forget")
	}
	require.EqualValues(t, 3, f.reads.Load())
}

func TestPrincipalsSourceFailure(t *testing.T) {
	t.Parallel()
	down := errors.New("catalog down")
	f := newFakeUsers(alice)
	f.fail = down
	p := NewPrincipals(f.read, 10, time.Minute)
	for range 2 {
		_, err := p.User(context.Background(), "alice")
		require.ErrorIs(t, err, down)
		require.NotErrorIs(t, err, tenancy.ErrNotFound)
	}
	require.EqualValues(t, 2, f.reads.Load(), "failures are not cached")
}

func TestPrincipalsSingleFlight(t *testing.T) {
	t.Parallel()
	f := newFakeUsers(alice)
	f.hook = func(string) { time.Sleep(10 * time.Millisecond) }
	p := NewPrincipals(f.read, 10, time.Minute)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := p.User(context.Background(), "alice")
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, f.reads.Load())
}

// TestPrincipalsForgetDuringRead: as TestVerifyForgetDuringRead, for users.
func TestPrincipalsForgetDuringRead(t *testing.T) {
	t.Parallel()
	f := newFakeUsers(alice)
	reading, proceed := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	f.hook = func(string) {
		if first.CompareAndSwap(true, false) {
			close(reading)
			<-proceed
		}
	}
	p := NewPrincipals(f.read, 10, time.Hour)
	done := make(chan tenancy.User)
	go func() {
		u, _ := p.User(context.Background(), "alice")
		done <- u
	}()
	<-reading
	f.setRole("alice", tenancy.RoleMember) // the demotion commits…
	p.Forget("alice")
	fresh := make(chan tenancy.User, 1)
	go func() { // …and a new lookup does not join the old read
		u, err := p.User(context.Background(), "alice")
		assert.NoError(t, err)
		fresh <- u
	}()
	select {
	case u := <-fresh:
		require.Equal(t, tenancy.RoleMember, u.Role)
	case <-time.After(5 * time.Second):
		close(proceed)
		t.Fatal("a lookup after Forget joined the read that started before it")
	}
	close(proceed)
	require.Equal(t, tenancy.RoleAdmin, (<-done).Role, "the old lookup answers what it read")
	u, _ := p.User(context.Background(), "alice")
	require.Equal(t, tenancy.RoleMember, u.Role, "but did not cache it over the invalidation")
}
