package outage

import (
	"sync/atomic"
	"time"
)

// MaxStale is how long past its TTL a cached answer of the catalog (a
// placement, a user, an API key) is still used while the catalog cannot be
// read: cached tenants keep being served through a catalog outage, as
// long as it is not longer than this.
const MaxStale = time.Hour

// staleRetry is how often, during an outage, one read tries the source.
const staleRetry = time.Second

// Stale paces the reads of a cache's source while the source fails: after
// a failure, expired entries are used at once for a second instead of
// every request waiting for the source to fail again.
type Stale struct {
	retryAt atomic.Int64 // unix nanoseconds; 0 while the source works
}

// Wait reports whether, at now, the source failed within the last second
// and should not be tried yet.
func (s *Stale) Wait(now time.Time) bool { return now.UnixNano() < s.retryAt.Load() }

// Failed records that a read failed at now.
func (s *Stale) Failed(now time.Time) { s.retryAt.Store(now.Add(staleRetry).UnixNano()) }

// Worked records that a read succeeded.
func (s *Stale) Worked() { s.retryAt.Store(0) }

// Usable reports whether an entry that expired at expires may still be used
// at now during an outage.
func Usable(expires, now time.Time) bool { return now.Before(expires.Add(MaxStale)) }
