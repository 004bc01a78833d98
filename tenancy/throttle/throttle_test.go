package throttle

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// subject is one Counter under test, with the window the suite uses and a
// way to let time pass on the Counter's clock.
type subject struct {
	c      Counter
	window time.Duration
	pass   func(time.Duration)
}

func newLocal(maxKeys int) (*Local, *tenancytest.Clock) {
	clock := tenancytest.NewClock()
	l := NewLocal(maxKeys)
	l.now = clock.Now
	return l, clock
}

func localSubject(testing.TB) subject {
	l, clock := newLocal(1000)
	return subject{c: l, window: time.Minute, pass: clock.Advance}
}

// redisSubject counts in the real Redis under a fresh prefix. Windows are
// short because Redis's clock cannot be faked; every key expires with its
// window, so nothing is left behind.
func redisSubject(t testing.TB) subject {
	return subject{c: NewRedis(redisClient(t), prefix()), window: 300 * time.Millisecond, pass: time.Sleep}
}

// requireWindow checks a Hit's or Peek's answer.
func requireWindow(t *testing.T, s subject, wantCount int64, count int64, resetIn time.Duration, err error) {
	t.Helper()
	require.NoError(t, err)
	require.Equal(t, wantCount, count)
	require.Greater(t, resetIn, time.Duration(0))
	require.LessOrEqual(t, resetIn, s.window)
}

// conformance checks what every Counter must do.
func conformance(t *testing.T, newSubject func(testing.TB) subject) {
	ctx := context.Background()
	t.Run("UndoTakesOneBackNeverBelowZero", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		require.NoError(t, s.c.Undo(ctx, "absent"))
		n, _, err := s.c.Peek(ctx, "absent")
		require.NoError(t, err)
		require.Zero(t, n, "undo of a key without a window makes none")
		for range 3 {
			_, _, err := s.c.Hit(ctx, "k", s.window)
			require.NoError(t, err)
		}
		require.NoError(t, s.c.Undo(ctx, "k"))
		n, resetIn, err := s.c.Peek(ctx, "k")
		requireWindow(t, s, 2, n, resetIn, err)
		for range 3 {
			require.NoError(t, s.c.Undo(ctx, "k"))
		}
		n, _, err = s.c.Peek(ctx, "k")
		require.NoError(t, err)
		require.Zero(t, n)
	})
	t.Run("CountsGrowWithinWindow", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		last := s.window
		for want := int64(1); want <= 3; want++ {
			n, resetIn, err := s.c.Hit(ctx, "k", s.window)
			requireWindow(t, s, want, n, resetIn, err)
			require.LessOrEqual(t, resetIn, last, "the window must not move")
			last = resetIn
		}
	})
	t.Run("WindowStartsAtFirstEvent", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		_, _, err := s.c.Hit(ctx, "k", s.window)
		require.NoError(t, err)
		n, resetIn, err := s.c.Hit(ctx, "k", 10*s.window)
		requireWindow(t, s, 2, n, resetIn, err)
	})
	t.Run("WindowEndsAndCountingRestarts", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		s.c.Hit(ctx, "k", s.window)
		_, resetIn, err := s.c.Hit(ctx, "k", s.window)
		require.NoError(t, err)
		s.pass(resetIn + 20*time.Millisecond)
		n, left, err := s.c.Peek(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, [2]any{int64(0), time.Duration(0)}, [2]any{n, left})
		n, resetIn, err = s.c.Hit(ctx, "k", s.window)
		requireWindow(t, s, 1, n, resetIn, err)
	})
	t.Run("Reset", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		require.NoError(t, s.c.Reset(ctx, "never-seen"))
		s.c.Hit(ctx, "k", s.window)
		s.c.Hit(ctx, "k", s.window)
		require.NoError(t, s.c.Reset(ctx, "k"))
		n, _, err := s.c.Peek(ctx, "k")
		require.NoError(t, err)
		require.Zero(t, n)
		n, resetIn, err := s.c.Hit(ctx, "k", s.window)
		requireWindow(t, s, 1, n, resetIn, err)
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		for range 3 {
			s.c.Hit(ctx, "a", s.window)
		}
		n, resetIn, err := s.c.Hit(ctx, "b", s.window)
		requireWindow(t, s, 1, n, resetIn, err)
		n, resetIn, err = s.c.Peek(ctx, "a")
		requireWindow(t, s, 3, n, resetIn, err)
	})
	t.Run("PeekDoesNotCount", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		n, resetIn, err := s.c.Peek(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, [2]any{int64(0), time.Duration(0)}, [2]any{n, resetIn})
		s.c.Hit(ctx, "k", s.window)
		for range 3 {
			n, resetIn, err := s.c.Peek(ctx, "k")
			requireWindow(t, s, 1, n, resetIn, err)
		}
		n, resetIn, err = s.c.Hit(ctx, "k", s.window)
		requireWindow(t, s, 2, n, resetIn, err)
	})
	t.Run("WindowBelowOneMillisecond", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		for _, w := range []time.Duration{0, -time.Second, 999 * time.Microsecond} {
			_, _, err := s.c.Hit(ctx, "k", w)
			require.ErrorIs(t, err, errWindow, "window %v", w)
		}
	})
	t.Run("ConcurrentHitsAllCount", func(t *testing.T) {
		t.Parallel()
		concurrentHits(t, newSubject(t))
	})
}

// concurrentHits checks that 50 goroutines × 20 Hits on one key count
// exactly 1000, handing out each count from 1 to 1000 once.
func concurrentHits(t *testing.T, s subject) {
	const goroutines, hits = 50, 20
	ctx := context.Background()
	counts := make(chan int64, goroutines*hits)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range hits {
				// A minute, so the window cannot end under a slow -race run.
				n, _, err := s.c.Hit(ctx, "k", time.Minute)
				if err != nil {
					t.Error(err) // not require: FailNow is for the test's goroutine
					return
				}
				counts <- n
			}
		})
	}
	wg.Wait()
	close(counts)
	seen := map[int64]bool{}
	for n := range counts {
		require.True(t, n >= 1 && n <= goroutines*hits && !seen[n], "count %d out of range or twice", n)
		seen[n] = true
	}
	require.Len(t, seen, goroutines*hits)
	n, _, err := s.c.Peek(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(goroutines*hits), n)
}

func TestLocal(t *testing.T) {
	t.Parallel()
	conformance(t, localSubject)
}

func TestRedis(t *testing.T) {
	t.Parallel()
	conformance(t, redisSubject)
}

func TestLocalWindowEndsExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := newLocal(10)
	_, resetIn, err := l.Hit(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.Equal(t, time.Minute, resetIn)
	clock.Advance(time.Minute - time.Nanosecond)
	n, resetIn, _ := l.Peek(ctx, "k")
	require.Equal(t, [2]any{int64(1), time.Nanosecond}, [2]any{n, resetIn})
	clock.Advance(time.Nanosecond)
	n, _, _ = l.Peek(ctx, "k")
	require.Zero(t, n)
}

func TestLocalMemoryBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLocal(100)
	for i := range 10_000 {
		_, _, err := l.Hit(ctx, fmt.Sprint("addr-", i), time.Minute)
		require.NoError(t, err)
	}
	require.LessOrEqual(t, tracked(l), 100)
	// The oldest windows went; the newest stay.
	n, _, _ := l.Peek(ctx, "addr-0")
	require.Zero(t, n)
	n, _, _ = l.Peek(ctx, "addr-9999")
	require.Equal(t, int64(1), n)
}

func TestLocalPrunesExpiredWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := newLocal(100)
	for i := range 50 {
		l.Hit(ctx, fmt.Sprint("addr-", i), time.Minute)
	}
	clock.Advance(time.Minute)
	l.Hit(ctx, "new", time.Minute)
	require.Equal(t, 1, tracked(l))
}

func TestNewLocalRejectsNoKeys(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { NewLocal(0) })
}

// tracked is the number of windows l holds, checking that its map and
// list agree.
func tracked(l *Local) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.windows) != l.order.Len() {
		panic(fmt.Sprintf("map holds %d windows, list %d", len(l.windows), l.order.Len()))
	}
	return len(l.windows)
}

// TestRedisReplicasShareCounts uses two clients as two gateway replicas.
func TestRedisReplicasShareCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := prefix()
	a, b := NewRedis(redisClient(t), p), NewRedis(redisClient(t), p)
	other := NewRedis(redisClient(t), prefix())
	a.Hit(ctx, "k", time.Minute)
	n, _, err := b.Hit(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	n, _, _ = a.Peek(ctx, "k")
	require.Equal(t, int64(2), n)
	n, _, _ = other.Hit(ctx, "k", time.Minute)
	require.Equal(t, int64(1), n, "another prefix must count apart")
	require.NoError(t, b.Reset(ctx, "k"))
	n, _, _ = a.Peek(ctx, "k")
	require.Zero(t, n)
}

func BenchmarkHit(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		benchmarkHit(b, NewLocal(10_000))
	})
	b.Run("redis", func(b *testing.B) {
		benchmarkHit(b, NewRedis(redisClient(b), prefix()))
	})
}

// benchmarkHit spreads Hits over 1024 keys, so Local's map is exercised and
// not one hot entry; keys expire with their one-minute windows.
func benchmarkHit(b *testing.B, c Counter) {
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	i := 0
	for b.Loop() {
		if _, _, err := c.Hit(ctx, keys[i%len(keys)], time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func redisClient(t testing.TB) *redis.Client { return tenancytest.RedisClient(t) }

func prefix() string { return tenancytest.RedisPrefix("throttle") }
