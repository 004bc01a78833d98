package identity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeKeys is a catalog of API keys that counts its reads.
type fakeKeys struct {
	mu    sync.Mutex
	recs  map[string]KeyRecord
	fail  error
	reads atomic.Int64
	// hook, when set, runs inside each read after the record is taken.
	hook func(prefix string)
}

func newFakeKeys() *fakeKeys { return &fakeKeys{recs: map[string]KeyRecord{}} }

func (f *fakeKeys) read(ctx context.Context, prefix string) (KeyRecord, error) {
	f.reads.Add(1)
	f.mu.Lock()
	rec, ok := f.recs[prefix]
	fail, hook := f.fail, f.hook
	f.mu.Unlock()
	if hook != nil {
		hook(prefix)
	}
	if fail != nil {
		return KeyRecord{}, fail
	}
	if !ok {
		return KeyRecord{}, tenancy.Wrap(errors.New("no rows"), tenancy.CodeNotFound, "API key not found")
	}
	// Like a store that echoes its argument back: the cache must have
	// handed it a copy, not a view of the caller's buffer.
	rec.Prefix = prefix
	return rec, nil
}

// add creates a key for userID and returns its plaintext.
func (f *fakeKeys) add(t testing.TB, userID string, edit func(*KeyRecord)) string {
	t.Helper()
	k, err := GenerateKey()
	require.NoError(t, err)
	rec := KeyRecord{ID: "key-" + k.Prefix, OrganizationID: "o1", CreatedBy: userID, Hash: k.Hash}
	if edit != nil {
		edit(&rec)
	}
	f.set(k.Prefix, rec)
	return k.Plaintext
}

func (f *fakeKeys) set(prefix string, rec KeyRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[prefix] = rec
}

func (f *fakeKeys) edit(prefix string, edit func(*KeyRecord)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := f.recs[prefix]
	edit(&rec)
	f.recs[prefix] = rec
}

func prefixOf(t testing.TB, raw string) string {
	t.Helper()
	p, _, ok := ParseKey(raw)
	require.True(t, ok)
	return p
}

func TestVerifyAnswers(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	good := f.add(t, "u1", nil)
	revoked := f.add(t, "u1", func(r *KeyRecord) { r.Revoked = true })
	expired := f.add(t, "u1", func(r *KeyRecord) { r.ExpiresAt = &past })
	expiring := f.add(t, "u1", func(r *KeyRecord) { r.ExpiresAt = &future })
	unknown, err := GenerateKey()
	require.NoError(t, err)
	other, err := GenerateKey()
	require.NoError(t, err)
	wrongSecret := good[:12] + other.Secret

	k := NewKeys(f.read, 100, time.Hour, time.Minute)
	k.now = func() time.Time { return now }
	ctx := context.Background()

	rec, err := k.Verify(ctx, good)
	require.NoError(t, err)
	require.Equal(t, "o1", rec.OrganizationID)
	require.Equal(t, "u1", rec.CreatedBy)
	require.Equal(t, prefixOf(t, good), rec.Prefix)
	_, err = k.Verify(ctx, expiring)
	require.NoError(t, err, "a key before its expiry")

	for _, c := range []struct{ raw, reason string }{
		{wrongSecret, "wrong secret"},
		{unknown.Plaintext, "unknown prefix"},
		{revoked, "revoked"},
		{expired, "expired"},
		{good + "x", "malformed"},
		{"", "malformed"},
	} {
		for _, try := range []string{"first", "cached"} {
			rec, err := k.Verify(ctx, c.raw)
			require.ErrorIs(t, err, ErrInvalidKey, "%s (%s)", c.reason, try)
			require.ErrorContains(t, err, c.reason, "the reason is kept for logs")
			require.Equal(t, KeyRecord{}, rec)
		}
	}

	now = future
	_, err = k.Verify(ctx, expiring)
	require.ErrorIs(t, err, ErrInvalidKey, "a cached key stops at its expiry")
}

func TestVerifySourceFailure(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	good := f.add(t, "u1", nil)
	down := errors.New("catalog down")
	f.fail = down
	k := NewKeys(f.read, 100, time.Hour, time.Minute)

	for range 2 {
		_, err := k.Verify(context.Background(), good)
		require.ErrorIs(t, err, down, "returned as it is, for a 503")
		require.NotErrorIs(t, err, ErrInvalidKey)
	}
	require.EqualValues(t, 2, f.reads.Load(), "failures are not cached")

	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	_, err := k.Verify(context.Background(), good)
	require.NoError(t, err)
}

func TestVerifyCaches(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	good := f.add(t, "u1", nil)
	k := NewKeys(f.read, 100, time.Minute, 10*time.Second)
	now := time.Now()
	k.now = func() time.Time { return now }
	ctx := context.Background()

	for range 5 {
		_, err := k.Verify(ctx, good)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, f.reads.Load(), "hits do not read the catalog")

	// A wrong secret for a known prefix is answered from the cache too.
	other, _ := GenerateKey()
	_, err := k.Verify(ctx, good[:12]+other.Secret)
	require.ErrorIs(t, err, ErrInvalidKey)
	require.EqualValues(t, 1, f.reads.Load())

	// Revoked in the catalog: the cache serves the old record until the
	// TTL or a Forget.
	f.edit(prefixOf(t, good), func(r *KeyRecord) { r.Revoked = true })
	_, err = k.Verify(ctx, good)
	require.NoError(t, err, "still cached")
	k.Forget(prefixOf(t, good))
	_, err = k.Verify(ctx, good)
	require.ErrorIs(t, err, ErrInvalidKey, "Forget makes the next Verify read the catalog")
	require.EqualValues(t, 2, f.reads.Load())

	// TTL.
	f.edit(prefixOf(t, good), func(r *KeyRecord) { r.Revoked = false })
	now = now.Add(59 * time.Second)
	_, err = k.Verify(ctx, good)
	require.ErrorIs(t, err, ErrInvalidKey, "not expired yet")
	now = now.Add(2 * time.Second)
	_, err = k.Verify(ctx, good)
	require.NoError(t, err, "an expired entry is read again")
	require.EqualValues(t, 3, f.reads.Load())
}

func TestVerifyNegativeCache(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	k := NewKeys(f.read, 100, time.Minute, 10*time.Second)
	now := time.Now()
	k.now = func() time.Time { return now }
	ctx := context.Background()
	guess, _ := GenerateKey()

	for range 5 {
		_, err := k.Verify(ctx, guess.Plaintext)
		require.ErrorIs(t, err, ErrInvalidKey)
	}
	require.EqualValues(t, 1, f.reads.Load(), "an unknown prefix is remembered")

	// A different secret with the same unknown prefix is answered too.
	_, err := k.Verify(ctx, guess.Plaintext[:12]+freshSecret(t))
	require.ErrorIs(t, err, ErrInvalidKey)
	require.EqualValues(t, 1, f.reads.Load())

	now = now.Add(11 * time.Second)
	_, err = k.Verify(ctx, guess.Plaintext)
	require.ErrorIs(t, err, ErrInvalidKey)
	require.EqualValues(t, 2, f.reads.Load(), "for negativeTTL only")

	// The key is created: Forget drops the "absent" entry at once.
	f.set(guess.Prefix, KeyRecord{ID: "k", OrganizationID: "o1", CreatedBy: "u1", Hash: guess.Hash})
	_, err = k.Verify(ctx, guess.Plaintext)
	require.ErrorIs(t, err, ErrInvalidKey, "still remembered as absent")
	k.Forget(guess.Prefix)
	_, err = k.Verify(ctx, guess.Plaintext)
	require.NoError(t, err)
	require.EqualValues(t, 3, f.reads.Load())

	// negativeTTL 0: no negative caching.
	f2 := newFakeKeys()
	k2 := NewKeys(f2.read, 100, time.Minute, 0)
	for range 3 {
		_, err = k2.Verify(ctx, guess.Plaintext)
		require.ErrorIs(t, err, ErrInvalidKey)
	}
	require.EqualValues(t, 3, f2.reads.Load())
}

// freshSecret returns a new well-formed secret.
func freshSecret(t *testing.T) string {
	k, err := GenerateKey()
	require.NoError(t, err)
	return k.Secret
}

func TestVerifyAbsentDoNotEvictKnown(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	good := f.add(t, "u1", nil)
	k := NewKeys(f.read, 4, time.Minute, time.Minute)
	ctx := context.Background()
	_, err := k.Verify(ctx, good)
	require.NoError(t, err)
	for range 20 { // a flood of random guesses
		guess, _ := GenerateKey()
		_, err = k.Verify(ctx, guess.Plaintext)
		require.ErrorIs(t, err, ErrInvalidKey)
	}
	reads := f.reads.Load()
	_, err = k.Verify(ctx, good)
	require.NoError(t, err)
	require.Equal(t, reads, f.reads.Load(), "the real key is still cached")
}

func TestForgetCreatedBy(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	a1 := f.add(t, "alice", nil)
	a2 := f.add(t, "alice", nil)
	b1 := f.add(t, "bob", nil)
	k := NewKeys(f.read, 100, time.Hour, time.Hour)
	ctx := context.Background()
	for _, raw := range []string{a1, a2, b1} {
		_, err := k.Verify(ctx, raw)
		require.NoError(t, err)
	}
	require.EqualValues(t, 3, f.reads.Load())

	// alice is deleted; her keys go with her.
	for _, raw := range []string{a1, a2} {
		f.edit(prefixOf(t, raw), func(r *KeyRecord) { r.Revoked = true })
	}
	k.ForgetCreatedBy("alice")
	for _, raw := range []string{a1, a2} {
		_, err := k.Verify(ctx, raw)
		require.ErrorIs(t, err, ErrInvalidKey)
	}
	_, err := k.Verify(ctx, b1)
	require.NoError(t, err)
	require.EqualValues(t, 5, f.reads.Load(), "alice's keys were read again, bob's was not")
}

func TestVerifySingleFlight(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	good := f.add(t, "u1", nil)
	f.hook = func(string) { time.Sleep(10 * time.Millisecond) } // let misses pile up
	k := NewKeys(f.read, 100, time.Hour, time.Hour)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := k.Verify(context.Background(), good)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, f.reads.Load(), "50 concurrent misses read the catalog once")
}

// TestVerifyForgetDuringRead: an invalidation that arrives while a Verify
// reads the catalog is not undone by that Verify caching what it read, and a
// Verify that starts after it does not join the old read.
func TestVerifyForgetDuringRead(t *testing.T) {
	t.Parallel()
	for name, forget := range map[string]func(k *Keys, prefix string){
		"Forget":          func(k *Keys, prefix string) { k.Forget(prefix) },
		"ForgetCreatedBy": func(k *Keys, _ string) { k.ForgetCreatedBy("u1") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeKeys()
			good := f.add(t, "u1", nil)
			prefix := prefixOf(t, good)
			reading, proceed := make(chan struct{}), make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			f.hook = func(string) {
				if first.CompareAndSwap(true, false) {
					close(reading)
					<-proceed
				}
			}
			k := NewKeys(f.read, 10, time.Hour, time.Hour)
			done := make(chan error)
			go func() {
				_, err := k.Verify(context.Background(), good)
				done <- err
			}()
			<-reading
			f.edit(prefix, func(r *KeyRecord) { r.Revoked = true }) // the revocation commits…
			forget(k, prefix)
			fresh := make(chan error, 1)
			go func() { // …and a new Verify does not join the old read
				_, err := k.Verify(context.Background(), good)
				fresh <- err
			}()
			select {
			case err := <-fresh:
				require.ErrorIs(t, err, ErrInvalidKey)
			case <-time.After(5 * time.Second):
				close(proceed)
				t.Fatal("a Verify after the invalidation joined the read that started before it")
			}
			close(proceed)
			require.NoError(t, <-done, "the old Verify answers what it read")
			_, err := k.Verify(context.Background(), good)
			require.ErrorIs(t, err, ErrInvalidKey, "but did not cache it over the invalidation")
			require.EqualValues(t, 2, f.reads.Load())
		})
	}
}

// TestVerifyDoesNotAliasRaw: raw may be a view of a fasthttp buffer that is
// reused for the next request; what the cache keeps must survive that.
func TestVerifyDoesNotAliasRaw(t *testing.T) {
	t.Parallel()
	f := newFakeKeys()
	good := f.add(t, "u1", nil)
	other := f.add(t, "u2", nil)
	k := NewKeys(f.read, 10, time.Hour, time.Hour)
	ctx := context.Background()

	buf := []byte(good)
	view := unsafe.String(&buf[0], len(buf))
	rec, err := k.Verify(ctx, view)
	require.NoError(t, err)
	copy(buf, other) // the next request lands in the same buffer
	require.Equal(t, prefixOf(t, good), rec.Prefix, "the returned record does not alias raw")

	_, err = k.Verify(ctx, good)
	require.NoError(t, err)
	require.EqualValues(t, 1, f.reads.Load(), "the cached prefix was a copy: still a hit")
	rec, err = k.Verify(ctx, view) // now other's bytes
	require.NoError(t, err)
	require.Equal(t, "u2", rec.CreatedBy)
	require.EqualValues(t, 2, f.reads.Load())
}

func BenchmarkKeyVerify(b *testing.B) {
	f := newFakeKeys()
	good := f.add(b, "u1", nil)
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		k := NewKeys(f.read, 1000, time.Hour, time.Minute)
		_, _ = k.Verify(ctx, good)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.Verify(ctx, good); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		k := NewKeys(f.read, 1000, time.Hour, time.Minute)
		_, _ = k.Verify(ctx, good)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := k.Verify(ctx, good); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("miss", func(b *testing.B) { // ttl 0: every Verify reads the (instant) source
		k := NewKeys(f.read, 1000, 0, time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.Verify(ctx, good); err != nil {
				b.Fatal(err)
			}
		}
	})
}
