package broadcast

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
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
