package router

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// Tests of the holes issue 12 names, each through the real gateway over
// real databases.

// member adds a user with role to o and logs it in.
func (b *bundle) member(t *testing.T, o org, role string) string {
	t.Helper()
	email := role + "-" + uuid.NewString()[:8] + "@" + o.Slug + ".test"
	b.create(t, o.token, "/api/users", map[string]string{"email": email, "password": "password-member", "role": role})
	r := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": email, "password": "password-member"})
	require.Equal(t, 200, r.status, r.text)
	return r.json["token"].(string)
}

// TestReplayIsAuthorizedAndHoldsNoSecret: hole 1. A member replaying an
// owner's key creation with the owner's Idempotency-Key is refused; the
// same key from another principal is another key; a replay has no secret;
// nothing stored holds the secret or an unsalted hash of the request.
func TestReplayIsAuthorizedAndHoldsNoSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "replay", tenancy.PlanPro)
	memberToken := b.member(t, o, "member")
	adminToken := b.member(t, o, "admin")
	body := `{"name":"deploy key"}`
	key := "idem-" + uuid.NewString()

	first := b.do(t, "POST", "/api/api-keys", o.token, body, "Idempotency-Key", key)
	require.Equal(t, 201, first.status, first.text)
	secret := first.json["key"].(string)
	require.NotEmpty(t, secret)

	stolen := b.do(t, "POST", "/api/api-keys", memberToken, body, "Idempotency-Key", key)
	require.Equal(t, 403, stolen.status, "a replay is authorized like a first request: %s", stolen.text)
	require.NotContains(t, stolen.text, secret)

	theirs := b.do(t, "POST", "/api/api-keys", adminToken, body, "Idempotency-Key", key)
	require.Equal(t, 201, theirs.status, theirs.text)
	require.NotEqual(t, first.json["id"], theirs.json["id"], "another principal's key is another key")
	require.Empty(t, theirs.header.Get("Idempotent-Replayed"))

	replayed := b.do(t, "POST", "/api/api-keys", o.token, body, "Idempotency-Key", key)
	require.Equal(t, 201, replayed.status, replayed.text)
	require.Equal(t, "true", replayed.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.json["id"], replayed.json["id"])
	require.Equal(t, first.json["keyPrefix"], replayed.json["keyPrefix"])
	require.NotContains(t, replayed.json, "key", "a replay never shows the secret")
	require.NotContains(t, replayed.text, secret)

	// What is stored: no secret, no password, no plain hash of a body.
	userBody := `{"email":"new@replay.test","password":"a-password-to-hide","role":"member"}`
	require.Equal(t, 201, b.do(t, "POST", "/api/users", o.token, userBody, "Idempotency-Key", "user-"+key).status)
	conn := tenancyConnTo(t, b.sharedDSN(t))
	rows, err := conn.Query(testCtx(t), `SELECT key, request_hash, coalesce(response, '') FROM idempotency_keys WHERE organization_id = $1`, o.ID)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var k string
		var hash, resp []byte
		require.NoError(t, rows.Scan(&k, &hash, &resp))
		n++
		require.NotContains(t, string(resp), secret)
		require.NotContains(t, string(resp), "a-password-to-hide")
		for _, plain := range []string{body, userBody, "POST /api/api-keys\n" + body, "POST /api/users\n" + userBody} {
			sum := sha256.Sum256([]byte(plain))
			require.NotEqual(t, sum[:], hash, "an unsalted hash of a secret-bearing request is stored")
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 3, n, "owner's, admin's and the user creation's records")
}

// sharedDSN is the shared database's owner DSN.
func (b *bundle) sharedDSN(t *testing.T) string {
	db, err := b.store.SharedDatabase(testCtx(t))
	require.NoError(t, err)
	return db.DSN
}

// TestConcurrentGuessesAreBounded: hole 3. However many wrong passwords
// arrive at once, at most MaxFailures are evaluated in a window, and the
// right password in the same burst is refused once they are used up.
func TestConcurrentGuessesAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{login: service.LoginPolicy{MaxFailures: 5, MaxFailuresPerIP: 100, Window: time.Hour}})
	b.org(t, "burst", tenancy.PlanFree)
	from := []string{"X-Real-IP", "203.0.113.50"}
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@burst.test", "password": "wrong-guess-1234"}, from...)
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// At most the limit is evaluated. Fewer only if a guess found no
	// password-hashing slot (429, not counted) on a very busy machine.
	require.LessOrEqual(t, statuses[401], 5, "at most the limit of guesses were evaluated: %v", statuses)
	require.Equal(t, 12, statuses[401]+statuses[429], "%v", statuses)
	if statuses[401] == 5 {
		r := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@burst.test", "password": "password-burst"}, from...)
		require.Equal(t, 429, r.status, "the right password after the guesses ran out is not evaluated")
	}
}

// TestScheduleLimit: hole 6. Past the plan's max_schedules, 402.
func TestScheduleLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "cron-flood", tenancy.PlanFree)
	agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "a"})
	sched := map[string]any{"agentId": agent["id"], "cron": "* * * * *", "taskTemplate": map[string]string{"title": "t"}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := b.do(t, "POST", "/api/schedules", o.token, sched); r.status == 201 {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 5, created, "free allows 5 schedules, even to concurrent creates")
	r := b.do(t, "POST", "/api/schedules", o.token, sched)
	require.Equal(t, 402, r.status, r.text)
	require.Equal(t, "plan_limit_reached", r.errorCode())
	require.Contains(t, r.json["error"].(map[string]any)["message"], "upgrade")
}

// TestKeyRoleNeverGoesBackUp: hole 7. A key made by an owner who is then
// demoted acts as the demoted role, stays so when the creator is promoted
// again, and when the creator is deleted.
func TestKeyRoleNeverGoesBackUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "keyrole", tenancy.PlanPro)
	adminToken := b.member(t, o, "admin")
	me := b.do(t, "GET", "/api/auth/me", adminToken, nil)
	adminID := me.json["user"].(map[string]any)["id"].(string)
	k := b.create(t, adminToken, "/api/api-keys", map[string]string{"name": "ci"})
	apiKey := k["key"].(string)
	asKey := func() int {
		return b.doKey(t, "GET", "/api/api-keys", apiKey).status
	}
	require.Equal(t, 200, asKey(), "an admin's key lists keys")

	require.Equal(t, 200, b.do(t, "PATCH", "/api/users/"+adminID, o.token, map[string]string{"role": "member"}).status)
	require.Equal(t, 403, asKey(), "demoted with its creator")
	require.Equal(t, 200, b.do(t, "PATCH", "/api/users/"+adminID, o.token, map[string]string{"role": "admin"}).status)
	require.Equal(t, 403, asKey(), "and stays lowered when the creator is promoted again")
	require.Equal(t, 204, b.do(t, "DELETE", "/api/users/"+adminID, o.token, nil).status)
	require.Equal(t, 403, asKey(), "and when the creator is deleted")
	require.Equal(t, 200, b.doKey(t, "GET", "/api/agents", apiKey).status, "a member's key still works as a member")
}

// doKey sends a request with an API key.
func (b *bundle) doKey(t *testing.T, method, path, key string) response {
	t.Helper()
	return b.do(t, method, path, "", nil, "Authorization", "Key "+key)
}

// TestControlCharactersRefused: hole 8. Names and one-line text refuse C0
// and C1 controls; long text keeps its line breaks and tabs.
func TestControlCharactersRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "ctl", tenancy.PlanPro)
	for _, bad := range []string{"\x1b[2Jx", "a\rb", "a\nb", "a\x00b", "bell\a", "c1\u0085", "del\x7f", "sep\u2028"} {
		for path, body := range map[string]map[string]any{
			"/api/agents":   {"name": bad},
			"/api/tasks":    {"title": bad},
			"/api/api-keys": {"name": bad},
		} {
			r := b.do(t, "POST", path, o.token, body)
			require.Equal(t, 400, r.status, "%s %q: %s", path, bad, r.text)
			require.Equal(t, "invalid_request", r.errorCode())
		}
	}
	r := b.do(t, "POST", "/api/auth/signup", "", map[string]string{"email": "x@ctl2.test", "password": "long-enough-pw",
		"organizationName": "Evil\r\nslug  pro  active"}, "X-Real-IP", "198.51.100.99")
	require.Equal(t, 400, r.status, r.text)
	ok := b.do(t, "POST", "/api/agents", o.token, map[string]any{"name": "fine", "description": "line one\nline two\tindented"})
	require.Equal(t, 201, ok.status, ok.text)
}

// TestStripeEventsOutOfOrder: hole 9. A late, older subscription.updated
// does not undo a newer cancellation; an event whose metadata and customer
// point at different organizations is refused with 200.
func TestStripeEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "late", tenancy.PlanFree)
	other := b.org(t, "late-other", tenancy.PlanFree)
	at := time.Now().Unix()
	upgrade := stripeEventAt("customer.subscription.updated", o.ID, "cus_late", "active", "price_pro", at-60)
	cancel := stripeEventAt("customer.subscription.deleted", o.ID, "cus_late", "canceled", "price_pro", at)
	require.Equal(t, 200, b.webhook(t, upgrade, "whsec_test", time.Now()).status)
	require.Equal(t, tenancy.PlanPro, b.plan(t, o.ID))
	require.Equal(t, 200, b.webhook(t, cancel, "whsec_test", time.Now()).status)
	require.Equal(t, tenancy.PlanFree, b.plan(t, o.ID))

	late := stripeEventAt("customer.subscription.updated", o.ID, "cus_late", "active", "price_pro", at-30)
	r := b.webhook(t, late, "whsec_test", time.Now())
	require.Equal(t, 200, r.status, r.text)
	require.Equal(t, false, r.json["applied"], r.text)
	require.Equal(t, tenancy.PlanFree, b.plan(t, o.ID), "the late update did not undo the cancellation")

	// The customer is o's (set by the events above); the metadata names
	// another organization.
	mixed := stripeEventAt("customer.subscription.updated", other.ID, "cus_late", "active", "price_pro", at+10)
	r = b.webhook(t, mixed, "whsec_test", time.Now())
	require.Equal(t, 200, r.status, "refused, but Stripe must stop retrying: %s", r.text)
	require.Equal(t, false, r.json["applied"])
	require.Equal(t, tenancy.PlanFree, b.plan(t, o.ID))
	require.Equal(t, tenancy.PlanFree, b.plan(t, other.ID))
}

func stripeEventAt(typ, orgID, customer, status, price string, created int64) []byte {
	_, body := stripeEvent(typ, orgID, customer, status, price)
	return []byte(strings.Replace(string(body), fmt.Sprintf(`"created":%d`, time.Now().Unix()), fmt.Sprintf(`"created":%d`, created), 1))
}

func (b *bundle) plan(t *testing.T, orgID string) tenancy.Plan {
	org, err := b.store.Organization(testCtx(t), orgID)
	require.NoError(t, err)
	return org.Plan
}

// TestDeletedOrganizationCredentials: hole 11. Once an organization's
// records are gone and the change published, its sessions and keys get 401
// on every route, /api/auth/me included.
func TestDeletedOrganizationCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "gone", tenancy.PlanFree)
	key := b.create(t, o.token, "/api/api-keys", map[string]string{"name": "k"})["key"].(string)
	require.Equal(t, 200, b.do(t, "GET", "/api/auth/me", o.token, nil).status) // cached now
	require.Equal(t, 200, b.doKey(t, "GET", "/api/auth/me", key).status)
	require.NoError(t, b.store.DeleteOrganization(testCtx(t), o.ID))
	b.refresh(t, o.ID)
	for _, path := range []string{"/api/auth/me", "/api/agents"} {
		r := b.do(t, "GET", path, o.token, nil)
		require.Equal(t, 401, r.status, "%s with a session: %s", path, r.text)
		r = b.doKey(t, "GET", path, key)
		require.Equal(t, 401, r.status, "%s with a key: %s", path, r.text)
	}
}

// TestNonLatinSignups: hole 12. Fifty organizations named alike get
// fifty slugs.
func TestNonLatinSignups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	slugs := map[string]bool{}
	for i := range 50 {
		r := b.do(t, "POST", "/api/auth/signup", "", map[string]string{"email": fmt.Sprintf("u%d@kabushiki.test", i),
			"password": "long-enough-pw", "organizationName": "株式会社"}, "X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
		require.Equal(t, 201, r.status, "signup %d: %s", i, r.text)
		slugs[r.json["organization"].(map[string]any)["slug"].(string)] = true
	}
	require.Len(t, slugs, 50)
}

// TestTokenBudget: completions charge their tokens once, however many
// arrive at once; a start past the budget is 402; the organization shows
// tokens used.
func TestTokenBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "tokens", tenancy.PlanFree)
	limit := int64(1000)
	_, err := b.store.SetLimits(testCtx(t), o.Slug, catalog.LimitChanges{MaxTokens: &limit})
	require.NoError(t, err)
	b.refresh(t, o.ID)

	task := b.create(t, o.token, "/api/tasks", map[string]any{"title": "think"})
	id := task["id"].(string)
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+id+"/start", o.token, nil).status)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token,
				map[string]any{"usage": map[string]int{"inputTokens": 600 + i, "outputTokens": 400}})
			require.Equal(t, 200, r.status, r.text)
		}()
	}
	wg.Wait()
	usage := b.do(t, "GET", "/api/organization", o.token, nil).json["usage"].(map[string]any)
	require.GreaterOrEqual(t, usage["tokens"], float64(1000))
	require.LessOrEqual(t, usage["tokens"], float64(1005), "one completion's tokens, charged once")

	next := b.create(t, o.token, "/api/tasks", map[string]any{"title": "again"})
	r := b.do(t, "POST", "/api/tasks/"+next["id"].(string)+"/start", o.token, nil)
	require.Equal(t, 402, r.status, r.text)
	require.Equal(t, "plan_limit_reached", r.errorCode())
	require.Contains(t, r.json["error"].(map[string]any)["message"], "tokens")

	bad := b.do(t, "POST", "/api/tasks/"+id+"/complete", o.token, map[string]any{"usage": map[string]int{"inputTokens": -1}})
	require.Equal(t, 400, bad.status, bad.text)
}
