package identity

import (
	"strings"
	"sync"
	"time"
)

// Revocation pruning: expired entries are swept when sweepInterval has
// passed since the last sweep, or when as many entries were added since then
// as the set held after it (at least minSweepAdds), which keeps the cost of
// sweeping amortized O(1) per Add however large the set grows.
const (
	sweepInterval = time.Minute
	minSweepAdds  = 1024
)

// Revocations is an in-memory set of revoked session token ids (jti), each
// kept until the token it revokes expires, so checking a request is a map
// lookup. It is the per-replica cache of what the catalog records durably
// (DESIGN, Traps: revocations must survive Redis loss). Safe for concurrent
// use.
type Revocations struct {
	mu  sync.RWMutex
	m   map[string]time.Time // jti → the end of its revocation
	now func() time.Time

	addsSinceSweep int
	sizeAfterSweep int
	nextSweep      time.Time
}

// NewRevocations returns an empty set.
func NewRevocations() *Revocations {
	r := &Revocations{m: map[string]time.Time{}, now: time.Now}
	r.nextSweep = r.now().Add(sweepInterval)
	return r
}

// Add revokes jti until until, normally the token's expiry. The entry is
// kept for the clock-skew leeway that Tokens forgives beyond until, so a
// token is never accepted again in that margin. Adding a jti twice keeps the
// later end.
func (r *Revocations) Add(jti string, until time.Time) {
	until = until.Add(leeway)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !now.Before(until) {
		return // the token no longer verifies anyway
	}
	if old, ok := r.m[jti]; !ok || until.After(old) {
		// jti may come from a request or a Redis message buffer.
		r.m[strings.Clone(jti)] = until
	}
	r.addsSinceSweep++
	if !now.Before(r.nextSweep) || r.addsSinceSweep >= max(minSweepAdds, r.sizeAfterSweep) {
		r.sweep(now)
	}
}

// sweep drops the entries that ended by now. r.mu must be held for writing.
func (r *Revocations) sweep(now time.Time) {
	for jti, until := range r.m {
		if !now.Before(until) {
			delete(r.m, jti)
		}
	}
	r.addsSinceSweep = 0
	r.sizeAfterSweep = len(r.m)
	r.nextSweep = now.Add(sweepInterval)
}

// Revoked reports whether jti is revoked now.
func (r *Revocations) Revoked(jti string) bool {
	r.mu.RLock()
	until, ok := r.m[jti]
	r.mu.RUnlock()
	return ok && r.now().Before(until)
}

// Len returns how many entries the set holds, including ended ones that the
// next sweep will drop.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}
