package identity

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestRevocations(c *fakeClock) *Revocations {
	r := NewRevocations()
	r.now = c.now
	r.nextSweep = c.now().Add(sweepInterval)
	return r
}

func TestRevocations(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	r := newTestRevocations(c)
	t0 := c.now()

	r.Add("a", t0.Add(time.Minute))
	r.Add("b", t0.Add(time.Hour))
	require.True(t, r.Revoked("a"))
	require.True(t, r.Revoked("b"))
	require.False(t, r.Revoked("c"))
	require.False(t, r.Revoked(""))
	require.Equal(t, 2, r.Len())

	r.Add("stale", t0.Add(-time.Hour))
	require.False(t, r.Revoked("stale"), "a token that has already expired is not kept")
	require.Equal(t, 2, r.Len())

	// Kept through the leeway Tokens forgives past a token's expiry.
	c.advance(time.Minute + leeway - time.Nanosecond)
	require.True(t, r.Revoked("a"))
	c.advance(time.Nanosecond)
	require.False(t, r.Revoked("a"), "ended")
	require.True(t, r.Revoked("b"))
	require.Equal(t, 2, r.Len(), "not swept yet")

	// Adding again keeps the later end.
	r.Add("b", t0.Add(10*time.Minute))
	require.True(t, r.Revoked("b"))

	c.advance(sweepInterval)
	r.Add("d", c.now().Add(time.Hour)) // a sweep is due
	require.Equal(t, 2, r.Len(), "a is pruned; b and d remain")
	require.True(t, r.Revoked("b"))
	require.True(t, r.Revoked("d"))
}

func TestRevocationsPruneByCount(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	r := newTestRevocations(c)
	for i := range minSweepAdds / 2 {
		r.Add("short-"+strconv.Itoa(i), c.now().Add(time.Second))
	}
	c.advance(10 * time.Second) // all ended, but no sweep is due by time
	for i := range minSweepAdds/2 - 1 {
		r.Add("long-"+strconv.Itoa(i), c.now().Add(time.Hour))
	}
	require.Equal(t, minSweepAdds-1, r.Len())
	r.Add("last", c.now().Add(time.Hour)) // the minSweepAdds-th add sweeps
	require.Equal(t, minSweepAdds/2, r.Len())

	// The count restarts after a sweep.
	for i := range minSweepAdds - 1 {
		r.Add("more-"+strconv.Itoa(i), c.now().Add(time.Hour))
	}
	require.Equal(t, minSweepAdds/2+minSweepAdds-1, r.Len())
}

func TestRevocationsConcurrent(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	r := newTestRevocations(c)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				jti := fmt.Sprintf("w%d-%d", w, i)
				if i%3 == 0 {
					r.Add(jti, c.now().Add(time.Second)) // ends soon: swept by later adds
				} else {
					r.Add(jti, c.now().Add(24*time.Hour))
					assert.True(t, r.Revoked(jti))
				}
				_ = r.Revoked(fmt.Sprintf("w%d-%d", (w+1)%8, i))
				_ = r.Len()
				if i%500 == 0 {
					c.advance(30 * time.Second)
				}
			}
		})
	}
	wg.Wait()
	c.advance(2 * sweepInterval)
	r.Add("last", c.now().Add(time.Hour)) // a sweep is due
	require.Equal(t, 8*1333+1, r.Len(), "only the long revocations and the last one remain")
}

func BenchmarkRevoked(b *testing.B) {
	r := NewRevocations()
	until := time.Now().Add(time.Hour)
	for i := range 100_000 {
		r.Add("jti-"+strconv.Itoa(i), until)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !r.Revoked("jti-4242") {
				b.Fatal("not revoked")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r.Revoked("0123456789abcdef0123456789abcdef") {
				b.Fatal("revoked")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = r.Revoked("0123456789abcdef0123456789abcdef")
			}
		})
	})
}
