package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// follower runs FollowJob in the background with its poll an hour away,
// so that only the catalog's notifications (and the catch-up read after
// each (re)connection) make it read. Its states arrive one by one.
type follower struct {
	states chan catalog.Job
	done   chan struct{} // closed once FollowJob has returned err
	err    error
	cancel context.CancelFunc
}

func (c *jobsCatalog) follow(t *testing.T, ctx context.Context, id string) *follower {
	ctx, cancel := context.WithCancel(ctx)
	f := &follower{states: make(chan catalog.Job), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(f.done)
		f.err = c.store.FollowJob(ctx, id, time.Hour, func(j catalog.Job) error {
			select {
			case f.states <- j:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
			t.Error("FollowJob did not return once its context ended")
		}
	})
	return f
}

// next waits for the follower's next state.
func (f *follower) next(t *testing.T, what string) catalog.Job {
	t.Helper()
	select {
	case j := <-f.states:
		return j
	case <-f.done:
		t.Fatalf("the follower ended (%v) before it saw %s", f.err, what)
	case <-time.After(30 * time.Second):
		t.Fatalf("the follower did not see %s", what)
	}
	return catalog.Job{}
}

// end waits for the follower to return, and returns its error.
func (f *follower) end(t *testing.T) error {
	t.Helper()
	select {
	case j := <-f.states:
		t.Fatalf("a state after the end: %+v", j)
	case <-f.done:
		return f.err
	case <-time.After(30 * time.Second):
		t.Fatal("the follower did not end")
	}
	return nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestFollowJobSeesEachChange: a follower sees the job as it is, then each
// change a worker makes (the claim, a step, the end), woken by the
// catalog's notifications; it returns after the end and closes its
// listening connection.
func TestFollowJobSeesEachChange(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	ctx := testContext(t)
	job, err := c.store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)

	f := c.follow(t, ctx, job.ID)
	j := f.next(t, "the job as it is")
	require.Equal(t, catalog.JobQueued, j.State)
	require.Zero(t, j.Attempts)
	c.listening(t, catalog.JobFollowerName)

	_, err = c.store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	j = f.next(t, "the claim")
	require.Equal(t, catalog.JobRunning, j.State)
	require.Equal(t, 1, j.Attempts)

	require.NoError(t, c.store.ExtendJob(ctx, job.ID, "hand", "copy", time.Minute))
	require.Equal(t, "copy", f.next(t, "the step").Step)

	require.NoError(t, c.store.FinishJob(ctx, job.ID, "hand", "verify", errors.New("boom"), 0))
	j = f.next(t, "the end")
	require.Equal(t, catalog.JobFailed, j.State)
	require.Equal(t, "verify", j.Step)
	require.Equal(t, "boom", j.Error)
	require.NoError(t, f.end(t))
	c.gone(t, catalog.JobFollowerName)
}

// TestFollowJobOfAnEndedJob: following a job that has ended gives its
// state once and returns; an unknown job is not_found and gives nothing.
func TestFollowJobOfAnEndedJob(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	ctx := testContext(t)
	job, err := c.store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	_, err = c.store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	require.NoError(t, c.store.FinishJob(ctx, job.ID, "hand", "done", nil, 0))

	var seen []catalog.Job
	require.NoError(t, c.store.FollowJob(ctx, job.ID, time.Hour, func(j catalog.Job) error {
		seen = append(seen, j)
		return nil
	}))
	require.Len(t, seen, 1)
	require.Equal(t, catalog.JobSucceeded, seen[0].State)

	err = c.store.FollowJob(ctx, "00000000-0000-0000-0000-000000000000", time.Hour, func(j catalog.Job) error {
		t.Errorf("a state of an unknown job: %+v", j)
		return nil
	})
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err), "%v", err)
	c.gone(t, catalog.JobFollowerName)
}

// TestFollowJobStops: a follower stops, and closes its listening
// connection, when its callback fails (a client gone) and when its context
// ends.
func TestFollowJobStops(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	ctx := testContext(t)
	job, err := c.store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)

	f := c.follow(t, ctx, job.ID)
	f.next(t, "the job as it is")
	c.listening(t, catalog.JobFollowerName)
	f.cancel()
	require.ErrorIs(t, f.end(t), context.Canceled)
	c.gone(t, catalog.JobFollowerName)

	gone := errors.New("client gone")
	err = c.store.FollowJob(ctx, job.ID, time.Hour, func(catalog.Job) error { return gone })
	require.ErrorIs(t, err, gone)
	c.gone(t, catalog.JobFollowerName)
}

// TestFollowJobCatchesUpAfterReconnecting: the follower's listening
// connection is terminated, and the job ends while the catalog refuses
// new connections, so its notifications reach nobody; once the catalog
// takes connections again the follower listens again, reads once as if
// notified, and sees the end although its poll is an hour away.
func TestFollowJobCatchesUpAfterReconnecting(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	ctx := testContext(t)
	job, err := c.store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	// The hand that moves the job has its one connection open before the
	// catalog refuses new ones.
	cfg, err := pgxpool.ParseConfig(c.env.CatalogURL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	handPool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(handPool.Close)
	require.NoError(t, handPool.Ping(ctx))
	hand := catalog.New(handPool)

	f := c.follow(t, ctx, job.ID)
	require.Equal(t, catalog.JobQueued, f.next(t, "the job as it is").State)
	pid := c.listening(t, catalog.JobFollowerName)

	server := tenancytest.Connect(t, c.env.ServerURL)
	allow := func(yes bool) {
		_, err := server.Exec(context.Background(), `ALTER DATABASE `+pgx.Identifier{c.name}.Sanitize()+
			` ALLOW_CONNECTIONS `+map[bool]string{true: "true", false: "false"}[yes])
		require.NoError(t, err)
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	var killed bool
	require.NoError(t, server.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed))
	require.True(t, killed)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, server.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n))
		return n == 0
	}, 30*time.Second, 10*time.Millisecond, "the listening connection is gone")

	_, err = hand.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	require.NoError(t, hand.ExtendJob(ctx, job.ID, "hand", "copy", time.Minute))
	require.NoError(t, hand.FinishJob(ctx, job.ID, "hand", "", nil, 0))
	allow(true)

	j := f.next(t, "the end, read once listening again")
	require.Equal(t, catalog.JobSucceeded, j.State, "the changes nobody heard of come as one: the newest state")
	require.Equal(t, "copy", j.Step)
	require.NoError(t, f.end(t))
	c.gone(t, catalog.JobFollowerName)
}
