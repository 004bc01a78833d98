package metering

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"
)

// Config tunes a Meter. Zero fields take their defaults.
type Config struct {
	// MaxOrganizations caps the organizations one minute holds in memory
	// on this replica; the usage of any further organization in that
	// minute is counted under OverflowOrganization. Default 50,000.
	MaxOrganizations int
	// MaxPendingMinutes is how many minutes back a Meter keeps usage it has
	// not flushed yet (while the catalog cannot be written); older minutes
	// are dropped and counted in Stats.LostRecords. It bounds memory during
	// a catalog outage, and Store.Rollup relies on it: no replica writes a
	// minute older than this. Default 30, at most 60.
	MaxPendingMinutes int
	// FinalFlushTimeout bounds the flush Run makes when its context ends.
	// Default 5s.
	FinalFlushTimeout time.Duration
	// Log receives flush failures. Default slog.Default().
	Log *slog.Logger

	// shards is the number of lock shards, a power of two (tests and
	// benchmarks set it). Default max(64, 4×GOMAXPROCS) rounded up.
	shards int
}

// maxPendingMinutes is the upper bound of Config.MaxPendingMinutes, which
// minRollupAge leaves a margin above.
const maxPendingMinutes = 60

func (c Config) withDefaults() Config {
	if c.MaxOrganizations <= 0 {
		c.MaxOrganizations = 50_000
	}
	if c.MaxPendingMinutes <= 0 {
		c.MaxPendingMinutes = 30
	}
	c.MaxPendingMinutes = min(c.MaxPendingMinutes, maxPendingMinutes)
	if c.FinalFlushTimeout <= 0 {
		c.FinalFlushTimeout = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.shards <= 0 {
		c.shards = max(64, 4*runtime.GOMAXPROCS(0))
	}
	n := 1
	for n < c.shards {
		n <<= 1
	}
	c.shards = n
	return c
}

// Meter aggregates one gateway replica's usage per organization per minute
// and flushes it to the catalog. Its methods are safe for concurrent use.
//
// Record is on every request's path, so it takes one of many sharded
// mutexes (chosen by a hash of the organization id) for a map lookup and a
// few additions; everything else (admitting an organization, a new minute,
// the cap) happens once per organization per minute.
type Meter struct {
	store     *Store
	cfg       Config
	replicaID uuid.UUID
	now       func() time.Time
	seed      maphash.Seed
	mask      uint64
	shards    []shard

	// mu guards active, which the shards of one minute share so that the
	// cap holds across them. It is taken once per shard per minute.
	mu     sync.Mutex
	active map[int64]*atomic.Int64

	// flushMu makes flushes one at a time: rows hold cumulative totals, so
	// an older snapshot must never be written after a newer one.
	flushMu sync.Mutex

	// minute is the current minute while Run runs, refreshed every
	// second, so that Record need not read the clock: time.Now costs as
	// much as the rest of Record on some virtual machines. Zero otherwise.
	minute atomic.Int64

	overflowed, invalid, lost, flushes, flushErrors atomic.Int64
}

// shard is padded to its own cache lines, so that cores locking
// neighbouring shards do not contend for one line.
type shard struct {
	shardState
	_ [128 - unsafe.Sizeof(shardState{})%128]byte
}

type shardState struct {
	mu sync.Mutex
	// buckets are the minutes this shard holds, oldest first; the last is
	// the one records normally go to.
	buckets []*bucket
	// dropped is the newest minute this shard dropped from memory.
	dropped int64
}

// bucket is one shard's share of one minute.
type bucket struct {
	minute int64 // Unix time / 60
	orgs   map[string]*entry
	active *atomic.Int64 // organizations admitted to this minute, all shards
	// gen counts records added; snapGen is gen when the last flush read
	// the bucket, flushedGen when the last successful flush read it. A
	// closed bucket whose gen is flushedGen is in the catalog as it is.
	gen, snapGen, flushedGen uint64
}

// entry is one organization's cumulative usage in one minute.
type entry struct {
	u     Usage
	id    [16]byte
	dirty bool // changed since it was last read by a flush
}

// NewMeter returns a Meter flushing to s, with a random replica id, using
// s's clock.
func (s *Store) NewMeter(cfg Config) *Meter {
	cfg = cfg.withDefaults()
	return &Meter{
		store:     s,
		cfg:       cfg,
		replicaID: uuid.New(),
		now:       s.now,
		seed:      maphash.MakeSeed(),
		mask:      uint64(cfg.shards - 1),
		shards:    make([]shard, cfg.shards),
		active:    map[int64]*atomic.Int64{},
	}
}

// ReplicaID is the random id this Meter's rows are keyed by.
func (m *Meter) ReplicaID() string { return m.replicaID.String() }

// addResult says what add did with a record.
type addResult int

const (
	added   addResult = iota
	full              // the minute holds MaxOrganizations organizations already
	invalid           // the key is not a UUID in canonical form
)

// Record adds u to orgID's usage in the current minute. orgID is copied
// when it is first seen in a minute, so it may be a view of a request
// buffer. Usage of an organization past the minute's cap, or of an id that
// is not a UUID, is counted under OverflowOrganization.
func (m *Meter) Record(orgID string, u Usage) {
	minute := m.minute.Load()
	if minute == 0 {
		minute = unixMinute(m.now())
	}
	switch m.add(orgID, minute, u) {
	case added:
		return
	case full:
		m.overflowed.Add(1)
	case invalid:
		id, err := uuid.Parse(orgID)
		if err != nil {
			m.invalid.Add(1)
			break
		}
		// A UUID spelt otherwise (upper case, braces) is counted under its
		// canonical spelling: two spellings of one id in a flush would be
		// one row twice, which the upsert refuses.
		if m.add(id.String(), minute, u) == added {
			return
		}
		m.overflowed.Add(1)
	}
	// The overflow pseudo-organization is exempt from the cap.
	m.add(OverflowOrganization, minute, u)
}

func (m *Meter) add(key string, minute int64, u Usage) addResult {
	s := &m.shards[maphash.String(m.seed, key)&m.mask]
	s.mu.Lock()
	b := s.bucketFor(m, minute)
	e := b.orgs[key]
	if e == nil {
		var r addResult
		if e, r = m.admit(b, key); e == nil {
			s.mu.Unlock()
			return r
		}
	}
	e.u.Add(u)
	e.dirty = true
	b.gen++
	s.mu.Unlock()
	return added
}

// admit makes key an entry of b, within the minute's cap.
func (m *Meter) admit(b *bucket, key string) (*entry, addResult) {
	if len(key) != 36 {
		return nil, invalid
	}
	id, err := uuid.Parse(key)
	if err != nil || id.String() != key {
		return nil, invalid
	}
	if key != OverflowOrganization {
		limit := int64(m.cfg.MaxOrganizations)
		if b.active.Load() >= limit {
			return nil, full
		}
		if b.active.Add(1) > limit {
			b.active.Add(-1)
			return nil, full
		}
	}
	e := &entry{id: id}
	// Cloned: key may be a view of a buffer fasthttp reuses.
	b.orgs[strings.Clone(key)] = e
	return e, added
}

// bucketFor returns the shard's bucket for minute.
func (s *shard) bucketFor(m *Meter, minute int64) *bucket {
	if n := len(s.buckets); n > 0 && s.buckets[n-1].minute == minute {
		return s.buckets[n-1]
	}
	return s.slowBucket(m, minute)
}

func (s *shard) slowBucket(m *Meter, minute int64) *bucket {
	// A minute this shard has dropped must never come back: its rows hold
	// cumulative totals, which a new bucket starting again from zero would
	// not raise. A late record (its clock read just before the minute
	// turned, or a clock stepped back) goes to the next minute not dropped.
	minute = max(minute, s.dropped+1)
	for i := len(s.buckets) - 1; i >= 0; i-- {
		if s.buckets[i].minute == minute {
			return s.buckets[i]
		}
	}
	if n := len(s.buckets); n > 0 && minute < s.buckets[n-1].minute {
		return s.buckets[n-1] // counted in the newest minute held
	}
	b := &bucket{minute: minute, orgs: map[string]*entry{}, active: m.activeFor(minute)}
	s.buckets = append(s.buckets, b)
	s.expire(m, minute)
	return b
}

// expire drops the buckets older than MaxPendingMinutes before minute,
// counting what they held that no flush had written.
func (s *shard) expire(m *Meter, minute int64) {
	keep := s.buckets[:0]
	for _, b := range s.buckets {
		if b.minute < minute-int64(m.cfg.MaxPendingMinutes) {
			if n := b.gen - b.flushedGen; n > 0 {
				m.lost.Add(int64(n))
			}
			s.dropped = max(s.dropped, b.minute)
			continue
		}
		keep = append(keep, b)
	}
	clear(s.buckets[len(keep):])
	s.buckets = keep
}

// activeFor returns the shared count of organizations admitted to minute.
func (m *Meter) activeFor(minute int64) *atomic.Int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active[minute]
	if a == nil {
		a = &atomic.Int64{}
		m.active[minute] = a
		for k := range m.active {
			if k < minute-int64(m.cfg.MaxPendingMinutes)-1 {
				delete(m.active, k)
			}
		}
	}
	return a
}

// Flush writes every organization-minute changed since the last successful
// flush, in one statement (several only past maxRowsPerStatement rows).
// On failure everything is kept for the next flush; on success the minutes
// that are over and unchanged since are dropped from memory.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	nowMinute := unixMinute(m.now())
	var rows minuteRows
	sent := make([][]*entry, len(m.shards))
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.expire(m, nowMinute)
		for _, b := range s.buckets {
			b.snapGen = b.gen
			for _, e := range b.orgs {
				if e.dirty {
					rows.add(e.id, b.minute, e.u)
					e.dirty = false
					sent[i] = append(sent[i], e)
				}
			}
		}
		s.mu.Unlock()
	}
	if err := m.store.writeMinutes(ctx, m.replicaID, &rows); err != nil {
		m.flushErrors.Add(1)
		for i, entries := range sent {
			if len(entries) == 0 {
				continue
			}
			s := &m.shards[i]
			s.mu.Lock()
			for _, e := range entries {
				e.dirty = true
			}
			s.mu.Unlock()
		}
		return err
	}
	m.flushes.Add(1)
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		keep := s.buckets[:0]
		for _, b := range s.buckets {
			b.flushedGen = b.snapGen
			if b.minute < nowMinute && b.gen == b.flushedGen {
				s.dropped = max(s.dropped, b.minute)
				continue // over, and in the catalog as it is
			}
			keep = append(keep, b)
		}
		clear(s.buckets[len(keep):])
		s.buckets = keep
		s.mu.Unlock()
	}
	return nil
}

// Run flushes every interval until ctx ends, then flushes once more
// (within Config.FinalFlushTimeout) and returns. Run it once, in a
// goroutine the caller owns and waits for. While it runs, Record reads the
// minute Run refreshes every second instead of the clock: a record made
// within a second after a minute turns may count in the minute before.
func (m *Meter) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	clock := time.NewTicker(time.Second)
	defer clock.Stop()
	m.minute.Store(unixMinute(m.now()))
	defer m.minute.Store(0)
	for {
		select {
		case <-clock.C:
			m.minute.Store(unixMinute(m.now()))
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.FinalFlushTimeout)
			err := m.Flush(fctx)
			cancel()
			if err != nil {
				m.cfg.Log.Error("final usage flush failed: this replica's unflushed usage is lost", "replica", m.ReplicaID(), "err", err)
			}
			return
		case <-t.C:
			if err := m.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.cfg.Log.Warn("usage flush failed; kept for the next one", "replica", m.ReplicaID(), "err", err)
			}
		}
	}
}

// Stats describes a Meter, for metrics.
type Stats struct {
	// Entries is how many organization-minutes are held in memory.
	Entries int
	// Minutes is how many distinct minutes are held.
	Minutes int
	// OverflowRecords counts records of organizations past their minute's
	// cap, counted under OverflowOrganization.
	OverflowRecords int64
	// InvalidRecords counts records whose organization id is not a UUID,
	// counted under OverflowOrganization.
	InvalidRecords int64
	// LostRecords counts records dropped unflushed because their minute
	// was older than MaxPendingMinutes (the catalog could not be written).
	LostRecords int64
	// Flushes and FlushErrors count successful and failed flushes.
	Flushes, FlushErrors int64
}

// Stats returns the Meter's figures now.
func (m *Meter) Stats() Stats {
	st := Stats{
		OverflowRecords: m.overflowed.Load(),
		InvalidRecords:  m.invalid.Load(),
		LostRecords:     m.lost.Load(),
		Flushes:         m.flushes.Load(),
		FlushErrors:     m.flushErrors.Load(),
	}
	minutes := map[int64]bool{}
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, b := range s.buckets {
			st.Entries += len(b.orgs)
			minutes[b.minute] = true
		}
		s.mu.Unlock()
	}
	st.Minutes = len(minutes)
	return st
}

// unixMinute is t's minute, counted from the Unix epoch.
func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}
