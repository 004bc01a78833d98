package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

func (b *bundle) create(t *testing.T, token, path string, body any) map[string]any {
	t.Helper()
	r := b.do(t, "POST", path, token, body)
	require.Equal(t, 201, r.status, "%s: %s", path, r.text)
	return r.json
}

// refresh makes the gateway re-read an organization after a catalog change.
func (b *bundle) refresh(t *testing.T, orgID string) {
	require.NoError(t, b.feed.Publish(testCtx(t), tenancy.ChangeOrganization, orgID, time.Time{}))
}

func TestTaskLifecycleAndMetering(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, plan := range []tenancy.Plan{tenancy.PlanPro, tenancy.PlanEnterprise} {
		t.Run(string(plan), func(t *testing.T) {
			o := b.org(t, "tasks-"+string(plan), plan)
			agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "worker"})
			task := b.create(t, o.token, "/api/tasks", map[string]any{"title": "write report", "agentId": agent["id"], "priority": "high"})
			for _, f := range []string{"id", "title", "description", "status", "agentId", "priority", "result", "startedAt", "completedAt", "createdAt", "updatedAt"} {
				require.Contains(t, task, f)
			}
			require.Equal(t, "pending", task["status"])
			require.Equal(t, "high", task["priority"])
			other := b.create(t, o.token, "/api/tasks", map[string]any{"title": "unassigned"})
			require.Equal(t, "normal", other["priority"], "priority defaults to normal")
			id := task["id"].(string)

			r := b.do(t, "GET", "/api/tasks?status=pending&agentId="+agent["id"].(string), o.token, nil)
			require.Equal(t, 200, r.status, r.text)
			require.Len(t, r.json["data"], 1, "filters by status and agent")

			require.Equal(t, 409, b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, nil).status, "a pending task cannot complete")
			started := b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil)
			require.Equal(t, 200, started.status, started.text)
			require.Equal(t, "running", started.json["status"])
			require.NotNil(t, started.json["startedAt"])
			require.Equal(t, 409, b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil).status, "a running task cannot start again")

			done := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"result": map[string]any{"pages": 3}})
			require.Equal(t, 200, done.status, done.text)
			require.Equal(t, "completed", done.json["status"])
			require.Equal(t, map[string]any{"pages": float64(3)}, done.json["result"])
			again := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"result": "different"})
			require.Equal(t, 200, again.status, "a retried completion answers with the finished task")
			require.Equal(t, done.json["completedAt"], again.json["completedAt"])
			require.Equal(t, 409, b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil).status, "a completed task cannot be started again")

			org := b.do(t, "GET", "/api/organization", o.token, nil)
			require.Equal(t, 200, org.status)
			usage := org.json["usage"].(map[string]any)
			require.EqualValues(t, 1, usage["agentMinutes"], "a sub-minute run costs one minute, charged once")
			require.EqualValues(t, 1, usage["agents"])

			cancel := b.do(t, "PATCH", "/api/tasks/"+other["id"].(string), o.token, map[string]string{"status": "cancelled"})
			require.Equal(t, 200, cancel.status, cancel.text)
			require.Equal(t, "cancelled", cancel.json["status"])
			require.Equal(t, 409, b.do(t, "PATCH", "/api/tasks/"+id, o.token, map[string]string{"status": "cancelled"}).status)
			require.Equal(t, 400, b.do(t, "PATCH", "/api/tasks/"+id, o.token, map[string]string{"status": "completed"}).status)

			reassigned := b.do(t, "PATCH", "/api/tasks/"+other["id"].(string), o.token, map[string]any{"agentId": nil, "title": "renamed"})
			require.Equal(t, 200, reassigned.status, reassigned.text)
			require.Nil(t, reassigned.json["agentId"])
			require.Equal(t, "renamed", reassigned.json["title"])

			require.Equal(t, 204, b.do(t, "DELETE", "/api/tasks/"+id, o.token, nil).status)
			require.Equal(t, 404, b.do(t, "GET", "/api/tasks/"+id, o.token, nil).status)
		})
	}
}

func TestMessagesSessionsSchedulesActivity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "misc", tenancy.PlanEnterprise)
	agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "talker"})
	aid := agent["id"].(string)
	task := b.create(t, o.token, "/api/tasks", map[string]any{"title": "chat", "agentId": aid})

	m := b.create(t, o.token, "/api/messages", map[string]any{"role": "user", "content": "hello", "agentId": aid, "taskId": task["id"]})
	for _, f := range []string{"id", "agentId", "taskId", "role", "content", "createdAt"} {
		require.Contains(t, m, f)
	}
	b.create(t, o.token, "/api/messages", map[string]any{"role": "system", "content": "no refs"})
	r := b.do(t, "GET", "/api/messages?taskId="+task["id"].(string), o.token, nil)
	require.Len(t, r.json["data"], 1)
	r = b.do(t, "GET", "/api/messages", o.token, nil)
	require.Len(t, r.json["data"], 2)
	require.Equal(t, 400, b.do(t, "POST", "/api/messages", o.token, map[string]any{"role": "robot", "content": "x"}).status)

	sess := b.create(t, o.token, "/api/sessions", map[string]any{"agentId": aid})
	require.Equal(t, "active", sess["status"])
	sid := sess["id"].(string)
	upd := b.do(t, "PATCH", "/api/sessions/"+sid, o.token, map[string]any{"status": "completed", "tokensUsed": 1234,
		"endedAt": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)})
	require.Equal(t, 200, upd.status, upd.text)
	require.EqualValues(t, 1234, upd.json["tokensUsed"])
	require.Equal(t, 400, b.do(t, "PATCH", "/api/sessions/"+sid, o.token, map[string]any{"endedAt": "2001-01-01T00:00:00Z"}).status)
	require.Equal(t, 400, b.do(t, "PATCH", "/api/sessions/"+sid, o.token, map[string]any{"tokensUsed": -1}).status)
	require.Len(t, b.do(t, "GET", "/api/sessions", o.token, nil).json["data"], 1)

	sched := b.create(t, o.token, "/api/schedules", map[string]any{"agentId": aid, "cron": "*/5 * * * *",
		"taskTemplate": map[string]string{"title": "check inbox"}})
	require.Equal(t, true, sched["enabled"])
	next, err := time.Parse(time.RFC3339Nano, sched["nextRunAt"].(string))
	require.NoError(t, err)
	require.True(t, next.After(time.Now()) && next.Before(time.Now().Add(6*time.Minute)), "nextRunAt is the next 5-minute mark")
	schID := sched["id"].(string)
	off := b.do(t, "PATCH", "/api/schedules/"+schID, o.token, map[string]any{"enabled": false})
	require.Equal(t, 200, off.status, off.text)
	require.Nil(t, off.json["nextRunAt"], "a disabled schedule has no next run")
	hourly := b.do(t, "PATCH", "/api/schedules/"+schID, o.token, map[string]any{"enabled": true, "cron": "@hourly"})
	require.Equal(t, 200, hourly.status, hourly.text)
	require.NotNil(t, hourly.json["nextRunAt"])
	for _, bad := range []string{"", "not cron", "61 * * * *", "* * * *", "* * * * * * *"} {
		r := b.do(t, "POST", "/api/schedules", o.token, map[string]any{"agentId": aid, "cron": bad, "taskTemplate": map[string]string{"title": "x"}})
		require.Equal(t, 400, r.status, "cron %q: %s", bad, r.text)
		require.Contains(t, r.text, "cron")
	}
	require.Equal(t, 204, b.do(t, "DELETE", "/api/schedules/"+schID, o.token, nil).status)
	require.Empty(t, b.do(t, "GET", "/api/schedules", o.token, nil).json["data"])

	act := b.do(t, "GET", "/api/activity?limit=200", o.token, nil)
	require.Equal(t, 200, act.status)
	var actions []string
	for _, a := range act.json["data"].([]any) {
		actions = append(actions, a.(map[string]any)["action"].(string))
	}
	for _, want := range []string{"agent.created", "task.created", "message.created", "session.created", "session.updated",
		"schedule.created", "schedule.updated", "schedule.deleted"} {
		require.Contains(t, actions, want, "the API logs every change")
	}
}

func TestOrganizationEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "orgview", tenancy.PlanStarter)
	r := b.do(t, "GET", "/api/organization", o.token, nil)
	require.Equal(t, 200, r.status, r.text)
	for _, f := range []string{"id", "slug", "name", "plan", "status", "placement", "limits", "usage"} {
		require.Contains(t, r.json, f)
	}
	require.Equal(t, map[string]any{"maxAgents": float64(20), "maxAgentMinutes": float64(5000), "rps": float64(1_000_000), "maxSchedules": float64(20), "maxTokens": float64(10_000_000)}, r.json["limits"])
	usage := r.json["usage"].(map[string]any)
	start, _ := time.Parse(time.RFC3339, usage["periodStart"].(string))
	end, _ := time.Parse(time.RFC3339, usage["periodEnd"].(string))
	require.Equal(t, 1, start.Day())
	require.Equal(t, start.AddDate(0, 1, 0), end)

	seven := 7
	_, err := b.store.SetLimits(testCtx(t), "orgview", catalog.LimitChanges{MaxAgents: &seven})
	require.NoError(t, err)
	b.refresh(t, o.ID)
	r = b.do(t, "GET", "/api/organization", o.token, nil)
	require.EqualValues(t, 7, r.json["limits"].(map[string]any)["maxAgents"], "an operator's override applies")
}

// TestMaxAgentsUnderConcurrency: 12 simultaneous creates with a limit of 3
// leave exactly 3 agents, for shared and dedicated tenants.
func TestMaxAgentsUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	three := 3
	for _, plan := range []tenancy.Plan{tenancy.PlanFree, tenancy.PlanEnterprise} {
		o := b.org(t, "limit-"+string(plan), plan)
		_, err := b.store.SetLimits(testCtx(t), o.Slug, catalog.LimitChanges{MaxAgents: &three})
		require.NoError(t, err)
		b.refresh(t, o.ID)
		var ok, limited, other atomic.Int64
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": fmt.Sprintf("a%d", i)})
				switch {
				case r.status == 201:
					ok.Add(1)
				case r.status == 402 && r.errorCode() == "plan_limit_reached":
					limited.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 3, ok.Load(), plan)
		require.EqualValues(t, 9, limited.Load(), plan)
		require.Zero(t, other.Load())
		r := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "one-more"})
		require.Equal(t, 402, r.status)
		require.Contains(t, r.text, "upgrade")
		list := b.do(t, "GET", "/api/agents", o.token, nil)
		require.Len(t, list.json["data"], 3)
		require.Equal(t, 204, b.do(t, "DELETE", "/api/agents/"+list.json["data"].([]any)[0].(map[string]any)["id"].(string), o.token, nil).status)
		require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "after-delete"}).status,
			"a deleted agent frees its slot")
	}
}

// TestMeteringExactlyOnce: concurrent completions of one run charge its
// minutes once; a used-up period refuses starts with 402; a new period
// starts from zero.
func TestMeteringExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "meter", tenancy.PlanFree)
	ctx := testCtx(t)
	task := b.create(t, o.token, "/api/tasks", map[string]any{"title": "run"})
	id := task["id"].(string)
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil).status)
	// Pretend the run took 90 seconds: 2 agent-minutes rounded up.
	_, err := tenancytestSharedExec(t, b, `UPDATE tasks SET started_at = now() - interval '90 seconds' WHERE id = $1`, id)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, nil)
			require.Equal(t, 200, r.status, r.text)
		}()
	}
	wg.Wait()
	usage, err := b.store.Usage(ctx, o.ID)
	require.NoError(t, err)
	require.EqualValues(t, 2, usage.AgentMinutes, "charged once, rounded up")

	_, err = b.store.SetUsage(ctx, o.Slug, 1000)
	require.NoError(t, err)
	next := b.create(t, o.token, "/api/tasks", map[string]any{"title": "too much"})
	r := b.do(t, "POST", "/api/tasks/"+next["id"].(string)+"/start", o.token, nil)
	require.Equal(t, 402, r.status, r.text)
	require.Equal(t, "plan_limit_reached", r.errorCode())
	require.Contains(t, r.text, "agent-minutes")

	_, err = tenancyConn(t, b).Exec(ctx, `UPDATE organizations SET period_start = period_start - interval '1 month' WHERE id = $1`, o.ID)
	require.NoError(t, err)
	usage, err = b.store.Usage(ctx, o.ID)
	require.NoError(t, err)
	require.Zero(t, usage.AgentMinutes, "a new billing period starts from zero")
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+next["id"].(string)+"/start", o.token, nil).status)
}

func tenancytestSharedExec(t *testing.T, b *bundle, sql string, args ...any) (int64, error) {
	conn := tenancyConnTo(t, b.env.SharedURL)
	tag, err := conn.Exec(context.Background(), sql, args...)
	return tag.RowsAffected(), err
}

// TestRateLimitTwoTenants: one tenant flooding past its plan's rps gets
// 429 with Retry-After and RateLimit headers; another tenant, at the same
// time, is not limited.
func TestRateLimitTwoTenants(t *testing.T) {
	t.Parallel()
	plans := contractPlans()
	plans[tenancy.PlanFree] = tenancy.Limits{MaxAgents: 5, MaxAgentMinutes: 1000, RPS: 5}
	b := setup(t, setupOptions{plans: plans})
	noisy := b.org(t, "flood", tenancy.PlanFree)
	quiet := b.org(t, "calm", tenancy.PlanFree)
	var wg sync.WaitGroup
	var limited atomic.Int64
	var sample response
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 40 {
			r := b.do(t, "GET", "/api/agents", noisy.token, nil)
			if r.status == 429 {
				limited.Add(1)
				once.Do(func() { sample = r })
			}
		}
	}()
	for range 4 {
		r := b.do(t, "GET", "/api/agents", quiet.token, nil)
		require.Equal(t, 200, r.status, "the quiet tenant is not limited by the noisy one")
		require.NotEmpty(t, r.header.Get("RateLimit-Limit"))
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	require.Positive(t, limited.Load(), "the flood was limited")
	require.Equal(t, "rate_limited", sample.errorCode())
	require.NotEmpty(t, sample.header.Get("Retry-After"))
	require.Equal(t, "5", sample.header.Get("RateLimit-Limit"))
	require.Equal(t, "0", sample.header.Get("RateLimit-Remaining"))
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "idem", tenancy.PlanPro)
	other := b.org(t, "idem-other", tenancy.PlanPro)
	key := "retry-" + uuid.NewString()
	first := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "once"}, "Idempotency-Key", key)
	require.Equal(t, 201, first.status)
	second := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "once"}, "Idempotency-Key", key)
	require.Equal(t, 201, second.status, second.text)
	require.Equal(t, first.json["id"], second.json["id"], "the retry gets the first answer")
	require.Equal(t, "true", second.header.Get("Idempotent-Replayed"))
	require.Len(t, b.do(t, "GET", "/api/agents", o.token, nil).json["data"], 1, "and nothing happened twice")

	conflict := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "different"}, "Idempotency-Key", key)
	require.Equal(t, 409, conflict.status)
	require.Contains(t, conflict.text, "Idempotency-Key")

	theirs := b.do(t, "POST", "/api/agents", other.token, map[string]string{"name": "once"}, "Idempotency-Key", key)
	require.Equal(t, 201, theirs.status, "keys are per tenant")
	require.NotEqual(t, first.json["id"], theirs.json["id"])

	missing := uuid.NewString()
	failed := b.do(t, "POST", "/api/tasks", o.token, map[string]any{"title": "x", "agentId": missing}, "Idempotency-Key", "k2")
	require.Equal(t, 404, failed.status)
	replayed := b.do(t, "POST", "/api/tasks", o.token, map[string]any{"title": "x", "agentId": missing}, "Idempotency-Key", "k2")
	require.Equal(t, 404, replayed.status, "a final 4xx is replayed too")
	require.Equal(t, "true", replayed.header.Get("Idempotent-Replayed"))
	require.Equal(t, replayed.header.Get("X-Request-Id"), replayed.json["requestId"])
	require.Equal(t, failed.withoutRequestID(), replayed.withoutRequestID())
	agentID := first.json["id"].(string)
	ok := b.do(t, "POST", "/api/tasks", o.token, map[string]any{"title": "x", "agentId": agentID}, "Idempotency-Key", "k3")
	require.Equal(t, 201, ok.status)
	require.Equal(t, 400, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "y"}, "Idempotency-Key", "bad key with spaces").status)
}
