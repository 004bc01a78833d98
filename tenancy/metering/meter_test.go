package metering_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestTwoReplicasSum: two replicas serving one tenant in the same minutes
// each write their own rows; Totals is the sum of both.
func TestTwoReplicasSum(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := f.meter(metering.Config{}), f.meter(metering.Config{})
	require.NotEqual(t, a.ReplicaID(), b.ReplicaID())
	o := org()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				a.Record(o, req(time.Millisecond, 2, 1))
				b.Record(o, req(2*time.Millisecond, 3, 0))
			}
		})
	}
	wg.Wait()
	f.flush(t, a)
	f.flush(t, b)
	f.clock.Advance(time.Minute)
	a.Record(o, req(time.Millisecond, 2, 1))
	f.flush(t, a)

	want := times(req(time.Millisecond, 2, 1), 1001)
	want.Add(times(req(2*time.Millisecond, 3, 0), 1000))
	require.Equal(t, want, f.totals(t, o))
	require.Equal(t, int64(3), f.count(t, `SELECT count(*) FROM usage_minutes WHERE organization_id = $1`, o),
		"a row per replica per minute")
}

// TestFlushIsIdempotent: rows hold a replica's cumulative totals for the
// minute, so flushing the same minute again, changed or not, overwrites
// the row instead of adding to it.
func TestFlushIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	o := org()

	for range 10 {
		m.Record(o, req(time.Millisecond, 1, 0))
	}
	f.flush(t, m)
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 10), f.totals(t, o))

	for range 5 {
		m.Record(o, req(time.Millisecond, 1, 0))
	}
	f.flush(t, m)
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 15), f.totals(t, o))
	require.Equal(t, int64(1), f.count(t, `SELECT count(*) FROM usage_minutes`))
}

// TestCrashedReplicaLosesOnlyUnflushed: a replica that records, flushes,
// records more and dies without a final flush loses only what it recorded
// after its last flush; its successor (a new replica id) adds to, and does
// not overwrite, what the dead one wrote.
func TestCrashedReplicaLosesOnlyUnflushed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	o := org()

	dead := f.meter(metering.Config{})
	for range 10 {
		dead.Record(o, req(time.Millisecond, 1, 1))
	}
	f.flush(t, dead)
	for range 7 {
		dead.Record(o, req(time.Millisecond, 1, 1)) // never flushed
	}
	// dead crashes here: it is never flushed again.

	successor := f.meter(metering.Config{})
	for range 3 {
		successor.Record(o, req(time.Millisecond, 1, 1))
	}
	f.flush(t, successor)
	f.flush(t, successor)
	require.Equal(t, times(req(time.Millisecond, 1, 1), 13), f.totals(t, o))
}

// TestOtherTenantsUsageInvisible: an organization's totals hold its own
// usage only, whatever other organizations did in the same minutes on the
// same replicas.
func TestOtherTenantsUsageInvisible(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	a, b := org(), org()
	for range 5 {
		m.Record(a, req(time.Millisecond, 1, 0))
	}
	for range 50 {
		m.Record(b, req(time.Second, 100, 100))
	}
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 5), f.totals(t, a))
	require.Equal(t, times(req(time.Second, 100, 100), 50), f.totals(t, b))
	require.Zero(t, f.totals(t, org()), "an organization that did nothing")
}

// TestCapCountsOverflow: past MaxOrganizations in a minute, usage is
// counted under the overflow pseudo-organization and in Stats, never
// dropped; the next minute has room again.
func TestCapCountsOverflow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{MaxOrganizations: 5})
	orgs := make([]string, 8)
	for i := range orgs {
		orgs[i] = org()
		m.Record(orgs[i], req(time.Millisecond, 1, 0))
		m.Record(orgs[i], req(time.Millisecond, 1, 0))
	}
	st := m.Stats()
	require.Equal(t, int64(6), st.OverflowRecords, "two records each of three organizations past the cap")
	require.Equal(t, 6, st.Entries, "five organizations and the overflow")

	m.Record("not-a-uuid", req(time.Millisecond, 1, 0))
	require.Equal(t, int64(1), m.Stats().InvalidRecords)

	f.flush(t, m)
	for _, o := range orgs[:5] {
		require.Equal(t, times(req(time.Millisecond, 1, 0), 2), f.totals(t, o), o)
	}
	for _, o := range orgs[5:] {
		require.Zero(t, f.totals(t, o), o)
	}
	require.Equal(t, times(req(time.Millisecond, 1, 0), 7), f.totals(t, metering.OverflowOrganization))

	f.clock.Advance(time.Minute)
	m.Record(orgs[7], req(time.Millisecond, 1, 0))
	f.flush(t, m)
	require.Equal(t, req(time.Millisecond, 1, 0), f.totals(t, orgs[7]), "a new minute, a new cap")
	require.Equal(t, int64(6), m.Stats().OverflowRecords)
}

// TestNonCanonicalIDCountsUnderCanonical: an upper-case spelling of an
// organization id is counted under the id, in the same row.
func TestNonCanonicalIDCountsUnderCanonical(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	o := org()
	m.Record(o, req(time.Millisecond, 1, 0))
	m.Record(strings.ToUpper(o), req(time.Millisecond, 1, 0))
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 2), f.totals(t, o))
	require.Zero(t, m.Stats().InvalidRecords)
}

// TestOneStatementPerFlush: a flush of 10,000 active organizations is one
// statement, and a flush with nothing changed sends none.
func TestOneStatementPerFlush(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	orgs := make([]string, 10_000)
	for i := range orgs {
		orgs[i] = org()
		m.Record(orgs[i], req(time.Millisecond, 1, 1))
	}
	before := f.statements.Load()
	f.flush(t, m)
	require.Equal(t, int64(1), f.statements.Load()-before, "statements in one flush")
	require.Equal(t, int64(10_000), f.count(t, `SELECT count(*) FROM usage_minutes`))
	require.Equal(t, int64(10_000), f.count(t, `SELECT sum(requests) FROM usage_minutes`))

	before = f.statements.Load()
	f.flush(t, m)
	require.Equal(t, before, f.statements.Load(), "nothing changed, nothing sent")

	for _, o := range orgs[:100] {
		m.Record(o, req(time.Millisecond, 1, 1))
	}
	before = f.statements.Load()
	f.flush(t, m)
	require.Equal(t, int64(1), f.statements.Load()-before)
	require.Equal(t, int64(10_100), f.count(t, `SELECT sum(requests) FROM usage_minutes`))
}

// TestFailedFlushKeepsUsage: a flush the catalog refuses keeps everything
// for the next one, which writes it once.
func TestFailedFlushKeepsUsage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	m := f.meter(metering.Config{})
	o := org()
	m.Record(o, req(time.Millisecond, 1, 0))
	f.flush(t, m)
	m.Record(o, req(time.Millisecond, 1, 0))

	_, err := f.pool.Exec(ctx, `ALTER TABLE usage_minutes RENAME TO usage_minutes_away`)
	require.NoError(t, err)
	require.Error(t, m.Flush(ctx))
	f.clock.Advance(time.Minute) // the minute closes while the catalog refuses
	m.Record(o, req(time.Millisecond, 1, 0))
	require.Error(t, m.Flush(ctx))
	require.Equal(t, int64(2), m.Stats().FlushErrors)
	_, err = f.pool.Exec(ctx, `ALTER TABLE usage_minutes_away RENAME TO usage_minutes`)
	require.NoError(t, err)

	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 3), f.totals(t, o))
	require.Equal(t, 1, m.Stats().Minutes, "the closed minute, now written, is dropped")
}

// TestClosedMinutesDropped: once a minute is over and flushed, memory holds
// the current minute only; a minute over but not flushed is kept.
func TestClosedMinutesDropped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	a, b := org(), org()
	m.Record(a, req(time.Millisecond, 1, 0))
	m.Record(b, req(time.Millisecond, 1, 0))
	f.clock.Advance(time.Minute)
	m.Record(a, req(time.Millisecond, 1, 0))
	require.Equal(t, metering.Stats{Entries: 3, Minutes: 2}, m.Stats())

	f.flush(t, m)
	require.Equal(t, metering.Stats{Entries: 1, Minutes: 1, Flushes: 1}, m.Stats())

	f.clock.Advance(time.Minute)
	f.flush(t, m)
	require.Equal(t, metering.Stats{Flushes: 2}, m.Stats(), "an idle replica holds nothing")

	points, err := f.store.Totals(context.Background(), a, time.Time{}, time.Now().AddDate(10, 0, 0), metering.Hour)
	require.NoError(t, err)
	require.Equal(t, []metering.Point{{Start: tenancytest.NewClock().Now(), Usage: times(req(time.Millisecond, 1, 0), 2)}}, points)
}

// TestPendingMinutesBounded: while the catalog refuses flushes, minutes
// older than MaxPendingMinutes are dropped and counted as lost, so memory
// stays bounded; the rest is written when the catalog is back.
func TestPendingMinutesBounded(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	m := f.meter(metering.Config{MaxPendingMinutes: 3})
	o := org()
	_, err := f.pool.Exec(ctx, `ALTER TABLE usage_minutes RENAME TO usage_minutes_away`)
	require.NoError(t, err)
	for range 6 {
		m.Record(o, req(time.Millisecond, 1, 0))
		m.Record(o, req(time.Millisecond, 1, 0))
		require.Error(t, m.Flush(ctx))
		f.clock.Advance(time.Minute)
	}
	st := m.Stats()
	require.Equal(t, 4, st.Minutes, "minutes 2 to 5: the last record's and the three before it")
	require.Equal(t, int64(4), st.LostRecords, "minutes 0 and 1, of two records each")

	_, err = f.pool.Exec(ctx, `ALTER TABLE usage_minutes_away RENAME TO usage_minutes`)
	require.NoError(t, err)
	f.flush(t, m) // at minute 6: minute 2 is too old to write
	require.Equal(t, int64(6), m.Stats().LostRecords)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 6), f.totals(t, o), "minutes 3 to 5")
}

// TestLateRecordCounted: a record whose clock was read in a minute the
// meter has already flushed and dropped is counted in the newest minute,
// not lost and not written twice.
func TestLateRecordCounted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := f.clock.Now()
	now := start
	var mu sync.Mutex
	store := metering.NewStore(f.pool, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	m := store.NewMeter(metering.Config{})
	o := org()

	m.Record(o, req(time.Millisecond, 1, 0))
	set(start.Add(time.Minute))
	m.Record(o, req(time.Millisecond, 1, 0))
	f.flush(t, m)
	set(start) // a clock read before the minute turned
	m.Record(o, req(time.Millisecond, 1, 0))
	set(start.Add(time.Minute))
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 3), f.totals(t, o))

	// Every minute flushed and dropped: a late record must not start its
	// minute again from zero (its row would keep the larger old total).
	set(start.Add(2 * time.Minute))
	f.flush(t, m)
	require.Zero(t, m.Stats().Minutes)
	set(start.Add(time.Minute))
	m.Record(o, req(time.Millisecond, 1, 0))
	set(start.Add(2 * time.Minute))
	f.flush(t, m)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 4), f.totals(t, o))
}

// TestRecordDuringFlushKept: a record added to a minute that is over while
// a flush of it is being written keeps the minute in memory, and the next
// flush writes it.
func TestRecordDuringFlushKept(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := f.clock.Now()
	now := start
	var mu sync.Mutex
	store := metering.NewStore(f.pool, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	m := store.NewMeter(metering.Config{})
	o := org()

	m.Record(o, req(time.Millisecond, 1, 0))
	set(start.Add(time.Minute)) // the minute is over; the flush reads it
	late := func() {
		f.onStatement.Store(nil)
		set(start) // a clock read just before the minute turned
		m.Record(o, req(time.Millisecond, 1, 0))
		set(start.Add(time.Minute))
	}
	f.onStatement.Store(&late)
	f.flush(t, m)
	require.Equal(t, 1, m.Stats().Minutes, "the minute changed during the flush: kept")
	f.flush(t, m)
	require.Zero(t, m.Stats().Minutes)
	require.Equal(t, times(req(time.Millisecond, 1, 0), 2), f.totals(t, o))
}

// TestRunFlushesAndStops: Run flushes in the background and once more
// when its context ends, then returns.
func TestRunFlushesAndStops(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	o := org()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, 10*time.Millisecond) }()

	m.Record(o, req(time.Millisecond, 1, 0))
	require.Eventually(t, func() bool { return f.totals(t, o).Requests == 1 }, 10*time.Second, 10*time.Millisecond,
		"a background flush")
	m.Record(o, req(time.Millisecond, 1, 0))
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.Equal(t, int64(2), f.totals(t, o).Requests, "the final flush")
}

// TestRecordConcurrentWithFlush: records racing flushes and minute turns
// are all counted, once.
func TestRecordConcurrentWithFlush(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	orgs := []string{org(), org(), org()}
	ctx := context.Background()
	stop := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if err := m.Flush(ctx); err != nil {
					t.Error(err)
					return
				}
				f.clock.Advance(20 * time.Second)
			}
		}
	})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.Record(orgs[(w+i)%len(orgs)], metering.Usage{Requests: 1})
			}
		})
	}
	wg.Wait()
	close(stop)
	flusher.Wait()
	f.flush(t, m)
	var total int64
	for _, o := range orgs {
		total += f.totals(t, o).Requests
	}
	require.Equal(t, int64(8000), total)
}
