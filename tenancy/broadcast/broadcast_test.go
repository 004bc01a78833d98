package broadcast

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func redisURL() string {
	if u := os.Getenv("TENANTGATE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func prefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "tgtest:" + hex.EncodeToString(b) + ":"
}

// conformance checks what every Bus must do.
func conformance(t *testing.T, a, b Bus) {
	got := make(chan string, 10)
	stop := b.Subscribe("placement", func(p []byte) { got <- string(p) })
	other := b.Subscribe("other", func(p []byte) { got <- "other:" + string(p) })
	defer other()
	require.NoError(t, a.Publish(context.Background(), "placement", []byte("org-1")))
	select {
	case p := <-got:
		require.Equal(t, "org-1", p)
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
	stop()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, a.Publish(context.Background(), "placement", []byte("org-2")))
	select {
	case p := <-got:
		t.Fatalf("delivered after stop: %q", p)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestLocal(t *testing.T) {
	t.Parallel()
	l := NewLocal()
	conformance(t, l, l)
}

func TestRedisAcrossReplicas(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(redisURL())
	require.NoError(t, err)
	ca, cb := redis.NewClient(opts), redis.NewClient(opts)
	defer ca.Close()
	defer cb.Close()
	require.NoError(t, ca.Ping(context.Background()).Err(), "Redis must run for the tests")
	p := prefix()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, b := NewRedis(ca, p, log), NewRedis(cb, p, log)
	defer a.Close()
	defer b.Close()
	conformance(t, a, b)
}

// TestRedisStopForgetsSubscription: a gateway subscribes and stops once
// per organization whose sockets come and go, for as long as it runs, so a
// stopped subscription must leave nothing behind: not in the bus, not a
// goroutine. Not parallel: it compares goroutine counts, which other
// running tests would move.
func TestRedisStopForgetsSubscription(t *testing.T) {
	opts, err := redis.ParseURL(redisURL())
	require.NoError(t, err)
	client := redis.NewClient(opts)
	defer client.Close()
	require.NoError(t, client.Ping(context.Background()).Err(), "Redis must run for the tests")
	bus := NewRedis(client, prefix(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	defer bus.Close()
	baseline := runtime.NumGoroutine()

	got := make(chan string, 1)
	for i := range 1000 {
		stop := bus.Subscribe("org-"+strconv.Itoa(i%10), func(p []byte) {
			select {
			case got <- string(p):
			default:
			}
		})
		stop()
		stop() // a second stop does nothing
	}
	require.Zero(t, bus.subscriptions(), "stopped subscriptions are forgotten")
	// Polled here, not with require.Eventually: that runs each check on a
	// goroutine of its own, which the count would include.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("the goroutines of stopped subscriptions did not end: %d running, %d before\n%s",
				runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The bus still works after all that.
	stop := bus.Subscribe("org-0", func(p []byte) { got <- string(p) })
	defer stop()
	require.Equal(t, 1, bus.subscriptions())
	require.NoError(t, bus.Publish(context.Background(), "org-0", []byte("hello")))
	select {
	case p := <-got:
		require.Equal(t, "hello", p)
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
}
