package identity

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// UserSource reads a user by id; a deleted user is an error whose
// tenancy.ErrorCode is not_found.
type UserSource func(ctx context.Context, userID string) (tenancy.User, error)

type principalEntry struct {
	user    tenancy.User
	absent  bool
	expires time.Time
}

// Principals caches the current state of users, so that a role change or a
// deletion applies to credentials already issued: a token or key says who
// the caller is, Principals says what that user may do now. Entries expire
// after a TTL and are dropped at once by Forget.
type Principals struct {
	src    UserSource
	ttl    time.Duration
	now    func() time.Time
	lru    *lru.Cache[string, principalEntry]
	flight singleflight.Group

	// mu and generation work as in Keys: a read that an invalidation
	// overtook answers its callers but is not cached.
	mu         sync.Mutex
	generation atomic.Uint64
	// outage paces catalog reads while the catalog fails; meanwhile
	// expired entries are used (outage.MaxStale).
	outage outage.Stale
}

// NewPrincipals returns a cache of at most size users trusted for ttl.
func NewPrincipals(src UserSource, size int, ttl time.Duration) *Principals {
	c, err := lru.New[string, principalEntry](size)
	if err != nil {
		panic(err) // only for size <= 0, a programming error
	}
	return &Principals{src: src, ttl: ttl, now: time.Now, lru: c}
}

// User returns userID's current state, from the cache when fresh. A deleted
// user is an error wrapping tenancy.ErrNotFound; that answer is cached too,
// as users are never undeleted. Concurrent misses for one user share a
// single catalog read; other catalog errors are returned wrapped and not
// cached.
func (p *Principals) User(ctx context.Context, userID string) (tenancy.User, error) {
	now := p.now()
	cachedEntry, cached := p.lru.Get(userID)
	if cached && now.Before(cachedEntry.expires) {
		return cachedEntry.answer(userID)
	}
	usable := cached && outage.Usable(cachedEntry.expires, now)
	if usable && p.outage.Wait(now) {
		return cachedEntry.answer(userID)
	}
	// userID may be a view of a request buffer: the copy goes into the cache.
	userID = strings.Clone(userID)
	v, err, _ := p.flight.Do(userID, func() (any, error) {
		// The shared read must not die with the first caller's request.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sourceTimeout)
		defer cancel()
		gen := p.generation.Load()
		u, err := p.src(ctx, userID)
		var e principalEntry
		switch {
		case err == nil:
			e = principalEntry{user: u}
		case tenancy.ErrorCode(err) == tenancy.CodeNotFound:
			e = principalEntry{absent: true}
		default:
			return nil, fmt.Errorf("identity: read user %s: %w", userID, err)
		}
		p.mu.Lock()
		if p.generation.Load() == gen {
			e.expires = p.now().Add(p.ttl)
			p.lru.Add(userID, e)
		}
		p.mu.Unlock()
		return e, nil
	})
	if err != nil {
		if usable {
			// The catalog is away: the user as last read. A role change
			// or deletion meanwhile arrives as a broadcast, which drops
			// the entry.
			p.outage.Failed(p.now())
			return cachedEntry.answer(userID)
		}
		return tenancy.User{}, err
	}
	p.outage.Worked()
	return v.(principalEntry).answer(userID)
}

// answer is what User returns for the entry.
func (e principalEntry) answer(userID string) (tenancy.User, error) {
	if e.absent {
		return tenancy.User{}, userGone(userID)
	}
	return e.user, nil
}

func userGone(userID string) error {
	return fmt.Errorf("identity: user %s: %w", userID, tenancy.ErrNotFound)
}

// Forget drops userID's entry: the user was changed or deleted.
func (p *Principals) Forget(userID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.generation.Add(1)
	// Later lookups must not join one that started before the change.
	p.flight.Forget(userID)
	p.lru.Remove(userID)
}
