package provisioner

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// TestMain checks that workers and listeners stop every goroutine they
// start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestListenerWakesAndStops: a listener wakes its owner once it listens
// (the catch-up read) and on each notification, and closes its connection
// when stopped.
func TestListenerWakesAndStops(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	const name = "tenantgate-test-listener"
	l := NewListener(func(ctx context.Context) (*pgx.Conn, error) { return f.store.ListenConn(ctx, name) }, quiet, catalog.JobsChannel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	woken := func(what string) {
		t.Helper()
		select {
		case <-l.Wake():
		case <-time.After(30 * time.Second):
			t.Fatalf("not woken %s", what)
		}
	}
	woken("once listening")
	pid := f.listening(t, name)

	_, err := f.store.EnqueueJob(context.Background(), catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	woken("by a new job")

	cancel()
	<-done
	server := f.server(t)
	require.Eventually(t, func() bool { // the backend exits after the goodbye
		var left int
		require.NoError(t, server.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&left))
		return left == 0
	}, 30*time.Second, 10*time.Millisecond, "the connection is closed once the listener stops")
}
