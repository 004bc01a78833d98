package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

func TestAgentsCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, plan := range []tenancy.Plan{tenancy.PlanPro, tenancy.PlanEnterprise} {
		t.Run(string(plan), func(t *testing.T) {
			o := b.org(t, "crud-"+string(plan), plan)
			created := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "writer", "model": "m1"})
			require.Equal(t, 201, created.status, created.text)
			id := created.json["id"].(string)
			for _, f := range []string{"id", "name", "description", "model", "status", "createdAt", "updatedAt"} {
				require.Contains(t, created.json, f)
			}
			require.Equal(t, "active", created.json["status"])

			dup := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "writer"})
			require.Equal(t, 409, dup.status)
			require.Equal(t, "conflict", dup.errorCode())

			patched := b.do(t, "PATCH", "/api/agents/"+id, o.token, map[string]string{"status": "paused", "description": "d"})
			require.Equal(t, 200, patched.status, patched.text)
			require.Equal(t, "paused", patched.json["status"])
			require.Equal(t, "m1", patched.json["model"], "fields not sent are kept")

			require.Equal(t, 204, b.do(t, "DELETE", "/api/agents/"+id, o.token, nil).status)
			require.Equal(t, 404, b.do(t, "GET", "/api/agents/"+id, o.token, nil).status, "soft-deleted agents are gone")
			require.Equal(t, 404, b.do(t, "DELETE", "/api/agents/"+id, o.token, nil).status)
			require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "writer"}).status,
				"a deleted agent's name can be used again")
		})
	}
}

func TestAgentsPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "pages", tenancy.PlanPro)
	for i := range 7 {
		require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": fmt.Sprintf("a%d", i)}).status)
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		r := b.do(t, "GET", "/api/agents?limit=3&cursor="+cursor, o.token, nil)
		require.Equal(t, 200, r.status, r.text)
		for _, a := range r.json["data"].([]any) {
			names = append(names, a.(map[string]any)["name"].(string))
		}
		next, _ := r.json["nextCursor"].(string)
		if next == "" {
			require.Nil(t, r.json["nextCursor"], "the last page says null")
			break
		}
		cursor = next
	}
	require.Equal(t, "a0,a1,a2,a3,a4,a5,a6", strings.Join(names, ","), "every agent once, in creation order")
	r := b.do(t, "GET", "/api/agents", o.token, nil)
	require.Len(t, r.json["data"], 7, "default limit 50")
}
