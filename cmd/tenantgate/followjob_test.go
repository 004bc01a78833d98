package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestFollowJobWakesOnNotification: --wait follows a job's steps and
// returns when it ends although its poll is an hour away: the catalog's
// notifications of the job's changes wake it.
func TestFollowJobWakesOnNotification(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	cfg, err := (&cli{v: config.New()}).config()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, store, err := openCatalog(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	job, err := store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)

	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- followJobPolling(ctx, store, job.ID, &out, time.Hour) }()
	waitListening(t, e, followerName)

	// A worker's moves, made by hand.
	_, err = store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	require.NoError(t, store.ExtendJob(ctx, job.ID, "hand", "copy", time.Minute))
	require.NoError(t, store.FinishJob(ctx, job.ID, "hand", "", nil, 0))
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "  copy\n")
	require.Contains(t, out.String(), "job "+job.ID+" succeeded")
}

// TestFollowJobWarnsAndStops: --wait on a job no provisioner picks up
// warns once, after a poll, that it is still queued; it prints the steps
// and the end when the job is run after all; interrupted, it says the job
// goes on.
func TestFollowJobWarnsAndStops(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	cfg, err := (&cli{v: config.New()}).config()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, store, err := openCatalog(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	job, err := store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)

	var out tenancytest.LogBuffer
	done := make(chan error, 1)
	go func() { done <- followJobPolling(ctx, store, job.ID, &out, 20*time.Millisecond) }()
	const warning = "  still queued: is a provisioner running?"
	require.Eventually(t, func() bool { return strings.Contains(out.String(), warning) },
		30*time.Second, 10*time.Millisecond, "the warning once a poll has passed")
	waitListening(t, e, followerName)
	_, err = store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	require.NoError(t, store.ExtendJob(ctx, job.ID, "hand", "copy", time.Minute))
	require.NoError(t, store.FinishJob(ctx, job.ID, "hand", "", nil, 0))
	require.NoError(t, <-done)
	require.Equal(t, 1, strings.Count(out.String(), warning), out.String())
	require.Contains(t, out.String(), "  copy\n")
	require.True(t, strings.HasSuffix(out.String(), "job "+job.ID+" succeeded\n"), out.String())

	other, err := store.EnqueueJob(ctx, catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	stopCtx, stop := context.WithCancel(ctx)
	go func() { done <- followJobPolling(stopCtx, store, other.ID, io.Discard, time.Hour) }()
	waitListening(t, e, followerName)
	stop()
	err = <-done
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "stopped waiting; job "+other.ID+" goes on")
}

// waitListening waits until a connection named appName listens on the
// test's catalog (its LISTEN done, now idle).
func waitListening(t *testing.T, e *tenancytest.Env, appName string) {
	t.Helper()
	name, err := schema.DatabaseName(e.CatalogURL)
	require.NoError(t, err)
	conn := tenancytest.Connect(t, e.ServerURL)
	require.Eventually(t, func() bool {
		var pid int
		err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2 AND state = 'idle' AND query LIKE 'LISTEN%'`,
			name, appName).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, 30*time.Second, 10*time.Millisecond, "a %s listens", appName)
}
