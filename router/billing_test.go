package router

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// stripeEvent is a subscription event as Stripe sends it.
func stripeEvent(typ, orgID, customer, status, price string) (string, []byte) {
	id := "evt_" + uuid.NewString()[:12]
	body, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": "2025-01-27.acacia", "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{
			"id": "sub_1", "object": "subscription", "customer": customer, "status": status,
			"metadata": map[string]string{"organization_id": orgID},
			"items":    map[string]any{"object": "list", "data": []any{map[string]any{"price": map[string]any{"id": price}}}},
		}},
	})
	return id, body
}

func (b *bundle) webhook(t *testing.T, body []byte, secret string, at time.Time) response {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return b.do(t, "POST", "/api/billing/webhook", "", string(body), "Stripe-Signature", signed.Header)
}

func TestBillingWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "payer", tenancy.PlanFree)

	_, body := stripeEvent("customer.subscription.updated", o.ID, "cus_1", "active", "price_pro")
	for name, r := range map[string]response{
		"unsigned": b.do(t, "POST", "/api/billing/webhook", "", string(body)),
		"forged":   b.webhook(t, body, "whsec_someone_else", time.Now()),
		"stale":    b.webhook(t, body, "whsec_test", time.Now().Add(-time.Hour)),
		"tampered": b.do(t, "POST", "/api/billing/webhook", "", string(body)+" ", "Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_test"}).Header),
	} {
		require.Equal(t, 400, r.status, "%s: %s", name, r.text)
		require.Equal(t, "invalid_request", r.errorCode())
	}
	org, _ := b.store.Organization(testCtx(t), o.ID)
	require.Equal(t, tenancy.PlanFree, org.Plan, "nothing applied from refused requests")

	r := b.webhook(t, body, "whsec_test", time.Now())
	require.Equal(t, 200, r.status, r.text)
	org, _ = b.store.Organization(testCtx(t), o.ID)
	require.Equal(t, tenancy.PlanPro, org.Plan, "the price sets the plan")
	again := b.webhook(t, body, "whsec_test", time.Now())
	require.Equal(t, true, again.json["duplicate"], "a redelivered event applies once")

	// Past due: writes keep working through the grace period (1 h here), then 402; reads go on.
	_, pastDue := stripeEvent("customer.subscription.updated", o.ID, "cus_1", "past_due", "price_pro")
	require.Equal(t, 200, b.webhook(t, pastDue, "whsec_test", time.Now()).status)
	require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "in-grace"}).status)
	_, err := tenancyConn(t, b).Exec(testCtx(t), `UPDATE organizations SET past_due_since = now() - interval '2 hours' WHERE id = $1`, o.ID)
	require.NoError(t, err)
	b.refresh(t, o.ID)
	w := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "late"})
	require.Equal(t, 402, w.status, w.text)
	require.Equal(t, "payment_required", w.errorCode())
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", o.token, nil).status, "reads go on")

	bill := b.do(t, "GET", "/api/billing", o.token, nil)
	require.Equal(t, 200, bill.status, bill.text)
	require.Equal(t, "past_due", bill.json["status"])
	require.NotNil(t, bill.json["graceEndsAt"])
	_, paid := stripeEvent("invoice.paid", "", "cus_1", "paid", "")
	require.Equal(t, 200, b.webhook(t, paid, "whsec_test", time.Now()).status)
	require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "paid-up"}).status, "invoice.paid clears it")
	_, failed := stripeEvent("invoice.payment_failed", "", "cus_1", "open", "")
	require.Equal(t, 200, b.webhook(t, failed, "whsec_test", time.Now()).status)
	require.Equal(t, "past_due", b.do(t, "GET", "/api/billing", o.token, nil).json["status"], "invoice.payment_failed marks it")
	_, paid2 := stripeEvent("invoice.paid", "", "cus_1", "paid", "")
	require.Equal(t, 200, b.webhook(t, paid2, "whsec_test", time.Now()).status)
	require.Equal(t, "active", b.do(t, "GET", "/api/billing", o.token, nil).json["status"])

	// Enterprise crosses the line: a move job with the plan is queued.
	_, ent := stripeEvent("customer.subscription.updated", "", "cus_1", "active", "price_ent")
	require.Equal(t, 200, b.webhook(t, ent, "whsec_test", time.Now()).status, "found by customer id")
	var payload string
	require.NoError(t, tenancyConn(t, b).QueryRow(testCtx(t), `SELECT payload::text FROM jobs WHERE organization_id = $1 AND kind = $2`,
		o.ID, catalog.JobMove).Scan(&payload))
	require.JSONEq(t, `{"to":"dedicated","plan":"enterprise"}`, payload)

	_, unknown := stripeEvent("customer.subscription.updated", uuid.NewString(), "cus_nobody", "active", "price_pro")
	require.Equal(t, 404, b.webhook(t, unknown, "whsec_test", time.Now()).status)
	ignored := b.webhook(t, []byte(`{"id":"evt_x","object":"event","type":"charge.succeeded","data":{"object":{}}}`), "whsec_test", time.Now())
	require.Equal(t, 200, ignored.status)
}

func TestBillingWebhookUnconfigured(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.app = New(Deps{Service: service.New(service.Deps{Catalog: b.store, Log: quiet, Tokens: b.tokens, PasswordParams: cheap}), Log: quiet}) // no stripe secret
	r := b.do(t, "POST", "/api/billing/webhook", "", `{}`)
	require.Equal(t, 503, r.status, r.text)
}
