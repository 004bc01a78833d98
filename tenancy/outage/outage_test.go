package outage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := New("redis", slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second)
	tr.now = func() time.Time { return now }
	ctx := context.Background()
	if tr.Skip() {
		t.Fatal("skips before any failure")
	}
	if tr.Report(ctx, errors.New("down")) {
		t.Fatal("a failure reported as working")
	}
	if !tr.Skip() {
		t.Fatal("does not skip right after a failure")
	}
	now = now.Add(1500 * time.Millisecond)
	if tr.Skip() {
		t.Fatal("no retry once the interval passed")
	}
	if !tr.Skip() {
		t.Fatal("a second caller in the same interval also retries")
	}
	if !tr.Report(ctx, nil) || tr.Skip() {
		t.Fatal("a success does not end the outage")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tr.Report(cancelled, errors.New("context canceled"))
	if tr.Skip() {
		t.Fatal("a cancelled caller started an outage")
	}
}
