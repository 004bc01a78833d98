package router

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
)

// runSchedulers runs n schedulers, as n provisioner processes would, until
// the returned stop is called.
func runSchedulers(t *testing.T, b *bundle, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		s := provisioner.NewScheduler(b.store, b.data.Schedules, quiet)
		s.Poll = 20 * time.Millisecond
		wg.Go(func() { s.Run(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

// overdue makes a schedule due since `ago` (as after an outage) in its
// database and in the catalog's index.
func overdue(t *testing.T, b *bundle, o org, scheduleID string, ago time.Duration) {
	tn, err := b.store.Tenant(testCtx(t), o.ID)
	require.NoError(t, err)
	db, err := b.store.Database(testCtx(t), tn.Placement.DatabaseID)
	require.NoError(t, err)
	at := time.Now().Add(-ago)
	_, err = tenancyConnTo(t, db.DSN).Exec(testCtx(t), `UPDATE schedules SET next_run_at = $2 WHERE id = $1`, scheduleID, at)
	require.NoError(t, err)
	require.NoError(t, b.store.NoteScheduleDue(testCtx(t), o.ID, at))
}

func tasksOf(t *testing.T, b *bundle, o org) []any {
	r := b.do(t, "GET", "/api/tasks?limit=200", o.token, nil)
	require.Equal(t, 200, r.status, r.text)
	return r.json["data"].([]any)
}

// TestSchedulesFire: a due schedule creates its task on shared and
// dedicated tenants, once per due time with two schedulers running, one
// catch-up task after an outage; disabled schedules and suspended
// organizations create nothing; the task is invisible to other tenants.
func TestSchedulesFire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := b.org(t, "sched-other", tenancy.PlanFree)
	for _, plan := range []tenancy.Plan{tenancy.PlanPro, tenancy.PlanEnterprise} {
		t.Run(string(plan), func(t *testing.T) {
			o := b.org(t, "sched-"+string(plan), plan)
			agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "cron-agent"})
			// Yearly, so that only the due time the test sets can fire while
			// it runs: an every-minute schedule would fire again at the next
			// minute boundary, whenever a slow run crosses one.
			sched := b.create(t, o.token, "/api/schedules", map[string]any{"agentId": agent["id"], "cron": "0 0 1 1 *",
				"taskTemplate": map[string]string{"title": "yearly report", "description": "from the schedule"}})
			off := b.create(t, o.token, "/api/schedules", map[string]any{"agentId": agent["id"], "cron": "0 0 1 1 *",
				"taskTemplate": map[string]string{"title": "disabled"}, "enabled": false})

			// Due for the last ten minutes, as after an outage; the disabled
			// one too, which must still not fire.
			overdue(t, b, o, sched["id"].(string), 10*time.Minute)
			overdue(t, b, o, off["id"].(string), 10*time.Minute)
			stop := runSchedulers(t, b, 2)
			require.Eventually(t, func() bool { return len(tasksOf(t, b, o)) > 0 }, 10*time.Second, 20*time.Millisecond)
			time.Sleep(300 * time.Millisecond) // both schedulers had their chance
			stop()

			tasks := tasksOf(t, b, o)
			require.Len(t, tasks, 1, "one catch-up task, created once with two schedulers")
			task := tasks[0].(map[string]any)
			require.Equal(t, "yearly report", task["title"])
			require.Equal(t, "from the schedule", task["description"])
			require.Equal(t, agent["id"], task["agentId"])
			next := b.do(t, "GET", "/api/schedules", o.token, nil).json["data"].([]any)
			for _, s := range next {
				s := s.(map[string]any)
				if s["id"] == sched["id"] {
					at, err := time.Parse(time.RFC3339Nano, s["nextRunAt"].(string))
					require.NoError(t, err)
					require.True(t, at.After(time.Now()), "nextRunAt moved past the missed period")
				}
			}
			act := b.do(t, "GET", "/api/activity?limit=200", o.token, nil)
			require.Contains(t, act.text, `"scheduleId":"`+sched["id"].(string)+`"`)

			foreign := b.do(t, "GET", "/api/tasks/"+task["id"].(string), other.token, nil)
			require.Equal(t, 404, foreign.status, "another tenant cannot see the task")

			// Suspended: due again, but nothing fires.
			overdue(t, b, o, sched["id"].(string), time.Minute)
			_, err := b.store.SetOrganizationStatus(testCtx(t), o.Slug, tenancy.StatusSuspended, tenancy.StatusActive)
			require.NoError(t, err)
			stop = runSchedulers(t, b, 1)
			time.Sleep(300 * time.Millisecond)
			stop()
			_, err = b.store.SetOrganizationStatus(testCtx(t), o.Slug, tenancy.StatusActive, tenancy.StatusSuspended)
			require.NoError(t, err)
			b.refresh(t, o.ID)
			require.Len(t, tasksOf(t, b, o), 1, "a suspended organization's schedule created nothing")
		})
	}
}
