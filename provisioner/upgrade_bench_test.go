package provisioner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// BenchmarkUpgradeToDedicated (issue 13, item 2): how long a customer who
// signed up on the free plan waits, once Stripe says they pay for
// enterprise, before their requests are served from a database of their
// own. The real binary runs as a gateway (`serve`) and a provisioner, as
// processes of their own, sharing Redis as replicas do. Each round signs
// up a new organization over HTTP (free plan, shared database), writes an
// agent, then sends the signed webhook of its enterprise subscription
// and polls GET /api/organization until it answers placement "dedicated"
// and plan "enterprise"; the first request after that, GET /api/agents,
// must find the agent. The figure runs from the webhook's send to that
// answer: the webhook, the move job (a database from the template, the
// rows copied and verified, the placement switched, every replica told),
// the plan change. In alternated rounds, the same floor as
// BenchmarkEnterpriseCreate: a bare CREATE DATABASE … TEMPLATE.
//
// It reports the medians, upgrade ÷ floor (target ≤ 2), the same from the
// signup's send (signup-ms, which adds the signup itself: a password hash
// and the shared placement), the move job's own time from its row (it
// goes on after the tenant is served: the old rows are removed), each
// of its steps' median from the provisioner's debug log, and the parts of
// its first step (see resolveParts).
//
//	go test -run '^$' -bench UpgradeToDedicated -benchtime 1x ./provisioner/
func BenchmarkUpgradeToDedicated(b *testing.B) {
	const rounds = 9
	f := newFleet(b)
	bin := buildCommand(b)
	const secret = "whsec_bench"
	env := append(commandEnv(f),
		"TENANTGATE_JWT_SECRET="+uuid.NewString()+uuid.NewString(),
		"TENANTGATE_SIGNUP_MODE=open",
		"TENANTGATE_STRIPE_WEBHOOK_SECRET="+secret,
		"TENANTGATE_STRIPE_PRICES=price_enterprise=enterprise",
		"TENANTGATE_REDIS_URL="+tenancytest.RedisURL(),
		"TENANTGATE_REDIS_PREFIX=tgbench:"+uuid.NewString()[:8]+":",
		// The poll below asks many times a second while the tenant is
		// still on the free plan (10 rps): refusals would hide the moment.
		"TENANTGATE_PLANS_FREE_RPS=100000",
	)
	provisioner := startService(b, bin, append(env, "TENANTGATE_LOG_LEVEL=debug"), "TENANTGATE_PROVISIONER_ADMIN_ADDR", "provisioner")
	defer provisioner.stop()
	gatewayAddr := freeAddr(b)
	gateway := startService(b, bin, append(env, "TENANTGATE_HTTP_ADDR="+gatewayAddr), "TENANTGATE_ADMIN_ADDR", "serve")
	defer gateway.stop()
	api := "http://" + gatewayAddr

	server := tenancytest.Connect(b, f.env.ServerURL)
	catalogConn := tenancytest.Connect(b, f.env.CatalogURL)
	template := pgx.Identifier{f.cfg.TemplateName()}.Sanitize()
	n := 0
	floor := func() time.Duration {
		n++
		name := pgx.Identifier{fmt.Sprintf("%sfloor_up_%d", f.env.DedicatedPrefix, n)}.Sanitize()
		start := time.Now()
		_, err := server.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+template)
		took := time.Since(start)
		require.NoError(b, err)
		return took
	}
	var jobs []time.Duration
	var jobIDs, orgs []string
	upgrade := func() (fromWebhook, fromSignup time.Duration) {
		n++
		signupStart := time.Now()
		org, token := benchSignup(b, api, fmt.Sprintf("upgrade-%d", n))
		require.Equal(b, 201, benchCall(b, "POST", api+"/api/agents", token, `{"name":"before"}`, nil))
		start := time.Now()
		benchWebhook(b, api, secret, org)
		for {
			var o struct{ Placement, Plan string }
			require.Equal(b, 200, benchCall(b, "GET", api+"/api/organization", token, "", &o))
			if o.Placement == "dedicated" && o.Plan == "enterprise" {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		var agents struct{ Data []struct{ Name string } }
		require.Equal(b, 200, benchCall(b, "GET", api+"/api/agents", token, "", &agents))
		now := time.Now()
		require.Len(b, agents.Data, 1, "the agent moved with its organization")
		// The job goes on after the switch (the old rows are removed).
		var secs *float64
		var id string
		for deadline := time.Now().Add(time.Minute); secs == nil; time.Sleep(10 * time.Millisecond) {
			require.True(b, time.Now().Before(deadline), "the move job did not finish")
			require.NoError(b, catalogConn.QueryRow(context.Background(),
				`SELECT id::text, extract(epoch FROM finished_at - created_at)::float8 FROM jobs WHERE organization_id = $1 AND kind = 'move'`, org).Scan(&id, &secs))
		}
		jobs, jobIDs = append(jobs, time.Duration(*secs*float64(time.Second))), append(jobIDs, id)
		orgs = append(orgs, org)
		return now.Sub(start), now.Sub(signupStart)
	}

	// The first dedicated database of a server makes its template.
	upgrade()
	jobs, jobIDs, orgs = nil, nil, nil
	var floors, upgrades, signups []time.Duration
	for b.Loop() {
		for i := range rounds {
			steps := []func(){
				func() { floors = append(floors, floor()) },
				func() {
					u, s := upgrade()
					upgrades, signups = append(upgrades, u), append(signups, s)
				},
			}
			for j := range steps {
				steps[(i+j)%len(steps)]()
			}
		}
	}
	fl, up := median(floors), median(upgrades)
	b.ReportMetric(ms(fl), "floor-ms")
	b.ReportMetric(ms(up), "upgrade-ms")
	b.ReportMetric(float64(up)/float64(fl), "upgrade/floor")
	b.ReportMetric(ms(slices.Max(upgrades)), "upgrade-max-ms")
	b.ReportMetric(ms(median(signups)), "signup-ms")
	b.ReportMetric(float64(median(signups))/float64(fl), "signup/floor")
	b.ReportMetric(ms(median(jobs)), "job-ms")
	provisioner.stop()
	for step, ds := range stepTimes(b, provisioner.output(), jobIDs) {
		b.ReportMetric(ms(median(ds)), "step-"+strings.ReplaceAll(step, " ", "-")+"-ms")
	}
	for part, ds := range resolveParts(b, provisioner.output(), orgs) {
		b.ReportMetric(ms(median(ds)), "resolve-"+part+"-ms")
	}
	b.Logf("floor %v\nupgrade %v\nfrom signup %v\nmove job %v\n(figures: the medians of %d rounds)",
		floors, upgrades, signups, jobs, rounds)
}

// benchSignup signs up a new organization named slug and returns its id
// and the owner's token.
func benchSignup(b *testing.B, api, slug string) (org, token string) {
	var out struct {
		Token        string
		Organization struct{ ID string }
	}
	body := fmt.Sprintf(`{"email":"owner@%s.test","password":"a long enough password","organizationName":%q,"organizationSlug":%q}`, slug, slug, slug)
	require.Equal(b, 201, benchCall(b, "POST", api+"/api/auth/signup", "", body, &out))
	return out.Organization.ID, out.Token
}

// benchWebhook sends Stripe's signed event of org's new enterprise
// subscription.
func benchWebhook(b *testing.B, api, secret, org string) {
	body, err := json.Marshal(map[string]any{
		"id": "evt_" + uuid.NewString()[:12], "object": "event", "type": "customer.subscription.created",
		"api_version": "2025-01-27.acacia", "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{
			"id": "sub_" + org[:8], "object": "subscription", "customer": "cus_" + org[:8], "status": "active",
			"metadata": map[string]string{"organization_id": org},
			"items":    map[string]any{"object": "list", "data": []any{map[string]any{"price": map[string]any{"id": "price_enterprise"}}}},
		}},
	})
	require.NoError(b, err)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	req, err := http.NewRequest("POST", api+"/api/billing/webhook", bytes.NewReader(body))
	require.NoError(b, err)
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	text, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(b, 200, res.StatusCode, "%s", text)
}

// benchCall sends a request and decodes a JSON answer into out (if not
// nil); it returns the status.
func benchCall(b *testing.B, method, url, token, body string, out any) int {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	require.NoError(b, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	require.NoError(b, err)
	if out != nil && res.StatusCode < 300 {
		require.NoError(b, json.Unmarshal(text, out), "%s", text)
	}
	return res.StatusCode
}

// resolveParts splits the resolve step of each of orgs' moves, from the
// provisioner's log, into: "register", from the step's start to the
// copy's start (reading the source's fence, registering the database);
// "provision", ProvisionDatabase's own time (the copy of the template and
// marking it ready); and "connect", from then to the mark step (the first
// connection to the new database, fencing it, reading both schemas).
func resolveParts(b *testing.B, log string, orgs []string) map[string][]time.Duration {
	type line struct {
		Time                                  time.Time
		Msg, Organization, Step, Database, To string
		MS                                    int64 `json:"ms"`
	}
	var lines []line
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	require.NoError(b, sc.Err())
	parts := map[string][]time.Duration{}
	for _, org := range orgs {
		var resolve, mark, ready time.Time
		var target string
		var provision time.Duration
		for _, l := range lines {
			switch {
			case l.Organization == org && l.Msg == "move step" && l.Step == move.StepResolve:
				resolve = l.Time
			case l.Organization == org && l.Msg == "move step" && l.Step == move.StepMark:
				mark = l.Time
			case l.Organization == org && l.Msg == "move target":
				target = l.To
			}
		}
		for _, l := range lines {
			if l.Msg == "dedicated database ready" && l.Database == target {
				ready, provision = l.Time, time.Duration(l.MS)*time.Millisecond
			}
		}
		if resolve.IsZero() || mark.IsZero() || ready.IsZero() {
			b.Logf("the log does not show organization %s's resolve step in full: resolve %v, mark %v, %q ready %v",
				org, resolve, mark, target, ready)
			continue
		}
		parts["register"] = append(parts["register"], ready.Add(-provision).Sub(resolve))
		parts["provision"] = append(parts["provision"], provision)
		parts["connect"] = append(parts["connect"], mark.Sub(ready))
	}
	return parts
}
