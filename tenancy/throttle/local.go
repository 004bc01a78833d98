package throttle

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Local is a Counter for one process. It keeps at most maxKeys windows:
// expired ones are pruned on every Hit, and beyond maxKeys the oldest
// are dropped, so a flood of distinct keys (say, spoofed addresses) costs
// bounded memory. The price is that such a flood can drop a live window
// early and let its key start over.
type Local struct {
	now     func() time.Time // time.Now; replaced by tests
	maxKeys int

	mu      sync.Mutex
	windows map[string]*list.Element // values are *window
	// order holds the windows by start, oldest first. With one window
	// duration, that is also the order in which they end, so pruning from
	// the front finds every expired window. With mixed durations an expired
	// window may wait behind a longer live one; maxKeys still bounds both.
	order *list.List
}

type window struct {
	key   string
	count int64
	ends  time.Time
}

// NewLocal returns an in-process Counter tracking at most maxKeys windows.
// It panics if maxKeys < 1, like other constructors given an impossible
// bound: a Counter that tracks nothing would silently never throttle.
func NewLocal(maxKeys int) *Local {
	if maxKeys < 1 {
		panic("throttle: NewLocal needs maxKeys >= 1")
	}
	return &Local{
		now:     time.Now,
		maxKeys: maxKeys,
		windows: map[string]*list.Element{},
		order:   list.New(),
	}
}

// Hit counts one event for key, starting a window if key has no live one.
func (l *Local) Hit(_ context.Context, key string, d time.Duration) (int64, time.Duration, error) {
	if err := checkWindow(d); err != nil {
		return 0, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Read the clock under the lock, so a window started by a concurrent
	// Hit never lies in this Hit's future and resetIn stays <= d.
	now := l.now()
	l.pruneLocked(now)
	w := l.liveLocked(key, now)
	if w == nil {
		w = l.startLocked(key, now.Add(d))
	}
	w.count++
	return w.count, w.ends.Sub(now), nil
}

// Peek returns key's count and time left without counting.
func (l *Local) Peek(_ context.Context, key string) (int64, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.liveLocked(key, now)
	if w == nil {
		return 0, 0, nil
	}
	return w.count, w.ends.Sub(now), nil
}

// Reset forgets key.
func (l *Local) Reset(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.windows[key]; e != nil {
		l.removeLocked(e)
	}
	return nil
}

// Undo takes back one event of key's live window.
func (l *Local) Undo(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.liveLocked(key, l.now()); w != nil && w.count > 0 {
		w.count--
	}
	return nil
}

// liveLocked returns key's window, or nil when there is none or it ended.
func (l *Local) liveLocked(key string, now time.Time) *window {
	e := l.windows[key]
	if e == nil {
		return nil
	}
	if w := e.Value.(*window); now.Before(w.ends) {
		return w
	}
	l.removeLocked(e)
	return nil
}

func (l *Local) startLocked(key string, ends time.Time) *window {
	w := &window{key: key, ends: ends}
	l.windows[key] = l.order.PushBack(w)
	for l.order.Len() > l.maxKeys {
		l.removeLocked(l.order.Front())
	}
	return w
}

func (l *Local) pruneLocked(now time.Time) {
	for e := l.order.Front(); e != nil && !now.Before(e.Value.(*window).ends); e = l.order.Front() {
		l.removeLocked(e)
	}
}

func (l *Local) removeLocked(e *list.Element) {
	delete(l.windows, e.Value.(*window).key)
	l.order.Remove(e)
}
