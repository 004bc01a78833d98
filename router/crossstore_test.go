package router

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Operations that write the tenant's database and the catalog: a failure
// injected between the two writes (a catalog table made unreachable),
// then a retry under the same Idempotency-Key, leaves exactly one object.

// breakCatalogTable renames a catalog table until the returned repair
// renames it back.
func (b *bundle) breakCatalogTable(t *testing.T, table string) (repair func()) {
	conn := tenancyConn(t, b)
	_, err := conn.Exec(testCtx(t), `ALTER TABLE `+table+` RENAME TO `+table+`_broken`)
	require.NoError(t, err)
	return func() {
		_, err := conn.Exec(testCtx(t), `ALTER TABLE `+table+`_broken RENAME TO `+table)
		require.NoError(t, err)
	}
}

func TestScheduleCreateAcrossStores(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "xs-sched", tenancy.PlanPro)
	agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "a"})
	body := map[string]any{"agentId": agent["id"], "cron": "*/5 * * * *", "taskTemplate": map[string]string{"title": "t"}}

	repair := b.breakCatalogTable(t, "schedule_due")
	r := b.do(t, "POST", "/api/schedules", o.token, body, "Idempotency-Key", "sched-1")
	require.GreaterOrEqual(t, r.status, 500, r.text)
	repair()

	r = b.do(t, "POST", "/api/schedules", o.token, body, "Idempotency-Key", "sched-1")
	require.Equal(t, 201, r.status, r.text)
	again := b.do(t, "POST", "/api/schedules", o.token, body, "Idempotency-Key", "sched-1")
	require.Equal(t, 201, again.status, again.text)
	require.Equal(t, r.json["id"], again.json["id"])

	list := b.do(t, "GET", "/api/schedules", o.token, nil)
	require.Len(t, list.json["data"], 1, "exactly one schedule after the failure and the retries")
	var due int
	require.NoError(t, tenancyConn(t, b).QueryRow(testCtx(t), `SELECT count(*) FROM schedule_due WHERE organization_id = $1`, o.ID).Scan(&due))
	require.Equal(t, 1, due, "and the scheduler's index knows it")
}

func TestTaskCompletionAcrossStores(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "xs-task", tenancy.PlanPro)
	task := b.create(t, o.token, "/api/tasks", map[string]any{"title": "run"})
	id := task["id"].(string)
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil).status)

	repair := b.breakCatalogTable(t, "usage_charges")
	r := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"result": "ok"}, "Idempotency-Key", "done-1")
	require.GreaterOrEqual(t, r.status, 500, r.text)
	repair()

	for range 2 {
		r = b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"result": "ok"}, "Idempotency-Key", "done-1")
		require.Equal(t, 200, r.status, r.text)
		require.Equal(t, "completed", r.json["status"])
	}
	// And a retry without the key converges too.
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"result": "ok"}).status)

	var charges, used int
	require.NoError(t, tenancyConn(t, b).QueryRow(testCtx(t), `SELECT count(*), coalesce(sum(minutes), 0) FROM usage_charges
		WHERE organization_id = $1`, o.ID).Scan(&charges, &used))
	require.Equal(t, 1, charges, "charged once")
	org := b.do(t, "GET", "/api/organization", o.token, nil)
	require.EqualValues(t, used, org.json["usage"].(map[string]any)["agentMinutes"])
	require.Positive(t, used)
}
