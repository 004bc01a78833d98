package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// KeyRecord is what the catalog holds for a key.
//
// Its fields are those of catalog.KeyRecord, in the same order, so that
// cmd can convert one into the other.
type KeyRecord struct {
	ID, OrganizationID, CreatedBy, Prefix string
	// Role is the role the key acts with.
	Role      tenancy.Role
	Hash      []byte
	ExpiresAt *time.Time
	Revoked   bool
}

// KeySource reads a key by prefix; an unknown prefix is an error whose
// tenancy.ErrorCode is not_found.
type KeySource func(ctx context.Context, prefix string) (KeyRecord, error)

// ErrInvalidKey is the one error for wrong, unknown, revoked, expired and
// malformed keys: a client must not learn which. The reason is wrapped for
// logs.
var ErrInvalidKey = errors.New("identity: invalid API key")

// sourceTimeout bounds a shared catalog read, which outlives the request
// that started it.
const sourceTimeout = 5 * time.Second

type keyEntry struct {
	rec     KeyRecord
	expires time.Time
}

// Keys verifies API keys against the catalog, caching each key's record by
// prefix. Entries expire after a TTL and are dropped at once by Forget and
// ForgetCreatedBy when a key or its creator changes.
//
// Like placement.Cache it does not use golang-lru's expirable cache, which
// starts a goroutine per cache that can never be stopped.
type Keys struct {
	src         KeySource
	ttl         time.Duration
	negativeTTL time.Duration
	now         func() time.Time

	known *lru.Cache[string, keyEntry]
	// absent holds prefixes the catalog does not know, so repeated guesses
	// do not reach it every time. It is a cache of its own so that a flood
	// of random prefixes cannot evict the keys of real clients.
	absent *lru.Cache[string, time.Time]
	flight singleflight.Group

	// mu orders cache fills against invalidations: a fill checks the
	// generation and adds under mu, so an invalidation cannot slip between
	// its check and its add. Hits never take it.
	mu sync.Mutex
	// generation grows with every invalidation. A lookup that was already
	// reading the catalog when one arrived may hold the old record: it
	// answers its callers but does not cache what it read.
	generation atomic.Uint64
	// outage paces catalog reads while the catalog fails; meanwhile
	// expired records are used (outage.MaxStale).
	outage outage.Stale
}

// NewKeys returns a verifier of at most size cached keys (and as many
// unknown prefixes), trusting a record for ttl and an unknown prefix for
// negativeTTL; negativeTTL <= 0 turns negative caching off.
func NewKeys(src KeySource, size int, ttl, negativeTTL time.Duration) *Keys {
	known, err := lru.New[string, keyEntry](size)
	if err != nil {
		panic(err) // only for size <= 0, a programming error
	}
	absent, err := lru.New[string, time.Time](size)
	if err != nil {
		panic(err)
	}
	return &Keys{src: src, ttl: ttl, negativeTTL: negativeTTL, now: time.Now, known: known, absent: absent}
}

// Verify checks raw, a whole tg_… key, and returns its record. Every refusal
// a client may not tell apart is ErrInvalidKey; a catalog failure is
// returned as it is (wrapped) so that the caller can answer 503. The
// returned record shares its Hash and ExpiresAt with the cache: do not
// modify them.
func (k *Keys) Verify(ctx context.Context, raw string) (KeyRecord, error) {
	prefix, secret, ok := ParseKey(raw)
	if !ok {
		return KeyRecord{}, fmt.Errorf("%w: malformed", ErrInvalidKey)
	}
	rec, found, err := k.record(ctx, prefix)
	if err != nil {
		return KeyRecord{}, err
	}
	if !found {
		return KeyRecord{}, fmt.Errorf("%w: unknown prefix", ErrInvalidKey)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], rec.Hash) != 1 {
		return KeyRecord{}, fmt.Errorf("%w: wrong secret", ErrInvalidKey)
	}
	if rec.Revoked {
		return KeyRecord{}, fmt.Errorf("%w: revoked", ErrInvalidKey)
	}
	if rec.ExpiresAt != nil && !k.now().Before(*rec.ExpiresAt) {
		return KeyRecord{}, fmt.Errorf("%w: expired", ErrInvalidKey)
	}
	return rec, nil
}

// keyLookup is what one shared catalog read found.
type keyLookup struct {
	rec   KeyRecord
	found bool
}

// record returns prefix's record, from the cache when fresh. Concurrent
// misses for one prefix share a single catalog read.
func (k *Keys) record(ctx context.Context, prefix string) (KeyRecord, bool, error) {
	now := k.now()
	e, cached := k.known.Get(prefix)
	if cached && now.Before(e.expires) {
		return e.rec, true, nil
	}
	usable := cached && outage.Usable(e.expires, now)
	if usable && k.outage.Wait(now) {
		return e.rec, true, nil
	}
	if until, ok := k.absent.Get(prefix); ok && now.Before(until) {
		return KeyRecord{}, false, nil
	}

	// prefix is a view of raw, which may be a reused fasthttp buffer: the
	// copy is what goes into the cache (and to the source, which may keep
	// it in the record it returns).
	prefix = strings.Clone(prefix)
	gen := k.generation.Load()
	// The flight key carries the generation, so a lookup that starts after
	// an invalidation never joins one that started before it. This does for
	// every invalidation what placement's flight.Forget(key) does for one
	// key; ForgetCreatedBy needs it because it cannot know which prefixes
	// are being read.
	v, err, _ := k.flight.Do(strconv.FormatUint(gen, 36)+"/"+prefix, func() (any, error) {
		// The shared read must not die with the first caller's request.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sourceTimeout)
		defer cancel()
		rec, err := k.src(ctx, prefix)
		switch {
		case err == nil:
			rec.Hash = bytes.Clone(rec.Hash)
			if rec.ExpiresAt != nil {
				t := *rec.ExpiresAt
				rec.ExpiresAt = &t
			}
			k.fill(gen, func() {
				k.absent.Remove(prefix)
				k.known.Add(prefix, keyEntry{rec: rec, expires: k.now().Add(k.ttl)})
			})
			return keyLookup{rec: rec, found: true}, nil
		case tenancy.ErrorCode(err) == tenancy.CodeNotFound:
			if k.negativeTTL > 0 {
				k.fill(gen, func() { k.absent.Add(prefix, k.now().Add(k.negativeTTL)) })
			}
			return keyLookup{}, nil
		default:
			return nil, fmt.Errorf("identity: read API key %s: %w", prefix, err)
		}
	})
	if err != nil {
		if usable {
			// The catalog is away: the record last read still says who
			// the key is. A revocation meanwhile reaches this replica as
			// a broadcast, which drops the entry.
			k.outage.Failed(k.now())
			return e.rec, true, nil
		}
		return KeyRecord{}, false, err
	}
	k.outage.Worked()
	l := v.(keyLookup)
	return l.rec, l.found, nil
}

// fill runs add unless an invalidation happened since gen was read.
func (k *Keys) fill(gen uint64, add func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.generation.Load() == gen {
		add()
	}
}

// Forget drops prefix's entry, known or absent: the key was revoked or
// created.
func (k *Keys) Forget(prefix string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.generation.Add(1)
	k.known.Remove(prefix)
	k.absent.Remove(prefix)
}

// ForgetCreatedBy drops the entries of every key userID created: the user
// was deleted or changed. It walks the whole cache, which is fine for
// something this rare.
func (k *Keys) ForgetCreatedBy(userID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.generation.Add(1)
	for _, prefix := range k.known.Keys() {
		if e, ok := k.known.Peek(prefix); ok && e.rec.CreatedBy == userID {
			k.known.Remove(prefix)
		}
	}
}
