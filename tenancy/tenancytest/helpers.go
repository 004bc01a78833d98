package tenancytest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClient connects to the test Redis, closed when t ends. A missing
// Redis fails the test.
func RedisClient(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("tenancytest: Redis must run for the tests: %v", err)
	}
	return c
}

// RedisPrefix is a fresh key prefix for one test of package pkg: tests
// share the Redis and never flush it.
func RedisPrefix(pkg string) string {
	return "tgtest:" + pkg + ":" + randomHex(6) + ":"
}

// Clock is a clock for tests: time moves only when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// LogBuffer collects log lines, or any output, written from any goroutine.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Count is how many lines were logged at level (INFO, WARN, …).
func (b *LogBuffer) Count(level string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), "level="+level)
}

// NewLog returns a text logger writing into a LogBuffer.
func NewLog() (*slog.Logger, *LogBuffer) {
	b := &LogBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// CPUTicks reads the "cpu" line of /proc/stat: busy (all but idle and
// iowait) and total ticks since boot; zeros where there is no such file.
// Benchmarks report how busy the machine was while they ran.
func CPUTicks() (busy, total uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0, 0
	}
	for i, f := range fields[1:min(len(fields), 9)] { // user nice system idle iowait irq softirq steal
		n, _ := strconv.ParseUint(f, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// String is everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
