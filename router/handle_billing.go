package router

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// Billing is how Stripe drives plans.
type Billing struct {
	// WebhookSecret verifies Stripe-Signature; empty: the webhook answers 503.
	WebhookSecret string
	// Prices maps a Stripe price id to the plan it sells.
	Prices map[string]tenancy.Plan
	// GracePeriod is how long a past-due organization keeps writing.
	GracePeriod time.Duration
}

// subscription is the part of a Stripe subscription object we read.
type subscription struct {
	ID       string            `json:"id"`
	Customer string            `json:"customer"`
	Status   string            `json:"status"`
	Metadata map[string]string `json:"metadata"`
	Items    struct {
		Data []struct {
			Price struct {
				ID string `json:"id"`
			} `json:"price"`
		} `json:"data"`
	} `json:"items"`
}

// handleBillingWebhook applies Stripe subscription events: the price sets
// the plan (a move when it crosses the enterprise line), past_due starts
// the grace period, a cancellation returns the organization to free. A
// forged, stale or unsigned request is 400; each event applies once.
func (s *server) handleBillingWebhook(c *fiber.Ctx) error {
	if s.Billing.WebhookSecret == "" {
		return &tenancy.Error{Code: tenancy.CodeTenantUnavailable, Message: "billing is not configured (stripe.webhook_secret)",
			RetryAfter: time.Hour}
	}
	ev, err := webhook.ConstructEventWithOptions(c.Body(), c.Get("Stripe-Signature"), s.Billing.WebhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "Stripe-Signature: not a valid signature of this body, or too old")
	}
	var sub subscription
	switch ev.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"invoice.payment_failed", "invoice.paid":
		// An invoice names its customer and subscription like a
		// subscription does: the fields read are the same.
		if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &sub) != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "data.object: not a subscription or invoice")
		}
	default:
		return c.JSON(fiber.Map{"received": true, "applied": false})
	}
	ctx := c.UserContext()
	fresh, err := s.Catalog.FirstStripeEvent(ctx, ev.ID, string(ev.Type))
	if err != nil || !fresh {
		if err == nil {
			return c.JSON(fiber.Map{"received": true, "applied": false, "duplicate": true})
		}
		return err
	}
	if err := s.applySubscription(c, string(ev.Type), sub); err != nil {
		_ = s.Catalog.ForgetStripeEvent(ctx, ev.ID) // Stripe retries; let the retry apply it
		return err
	}
	return c.JSON(fiber.Map{"received": true, "applied": true})
}

func (s *server) applySubscription(c *fiber.Ctx, typ string, sub subscription) error {
	ctx := c.UserContext()
	org, err := s.Catalog.OrganizationForBilling(ctx, sub.Metadata["organization_id"], sub.Customer)
	if err != nil {
		return err
	}
	if typ == "invoice.payment_failed" || typ == "invoice.paid" {
		err := s.Catalog.SetBilling(ctx, org.ID, catalog.Billing{CustomerID: sub.Customer, PastDue: typ == "invoice.payment_failed"})
		if err != nil {
			return err
		}
		return s.Changes.Publish(ctx, tenancy.ChangeOrganization, org.ID, time.Time{})
	}
	plan := org.Plan
	switch {
	case typ == "customer.subscription.deleted" || sub.Status == "canceled" || sub.Status == "unpaid":
		plan = tenancy.PlanFree
	case len(sub.Items.Data) > 0:
		if p, ok := s.Billing.Prices[sub.Items.Data[0].Price.ID]; ok {
			plan = p
		}
	}
	err = s.Catalog.SetBilling(ctx, org.ID, catalog.Billing{CustomerID: sub.Customer, SubscriptionID: sub.ID,
		PastDue: sub.Status == "past_due"})
	if err != nil {
		return err
	}
	if plan != org.Plan {
		if err := s.changePlan(c, org, plan); err != nil {
			return err
		}
	}
	return s.Changes.Publish(ctx, tenancy.ChangeOrganization, org.ID, time.Time{})
}

// changePlan sets a plan within the tier, or queues the move across it.
func (s *server) changePlan(c *fiber.Ctx, org tenancy.Organization, plan tenancy.Plan) error {
	to := tenancy.KindShared
	if plan.Dedicated() {
		to = tenancy.KindDedicated
	}
	if to == org.Placement {
		return s.Catalog.SetPlan(c.UserContext(), org.ID, plan)
	}
	_, err := s.Catalog.EnqueueJob(c.UserContext(), catalog.JobMove, org.ID, catalog.MovePayload{To: to, Plan: plan})
	return err
}

// overdue refuses writes of an organization whose payment is overdue past
// the grace period; reads go on.
func (s *server) overdue(c *fiber.Ctx, t tenancy.Tenant) error {
	since := t.Organization.PastDueSince
	if since == nil || c.Method() == fiber.MethodGet || time.Since(*since) < s.Billing.GracePeriod {
		return nil
	}
	return tenancy.Errorf(tenancy.CodePaymentRequired,
		"the organization's payment is overdue; update the payment method to write again (reads still work)")
}

type billingView struct {
	Plan         tenancy.Plan `json:"plan"`
	Status       string       `json:"status"` // active or past_due
	PastDueSince *time.Time   `json:"pastDueSince"`
	GraceEndsAt  *time.Time   `json:"graceEndsAt"`
	PeriodStart  time.Time    `json:"periodStart"`
	PeriodEnd    time.Time    `json:"periodEnd"`
}

// handleBilling shows an owner the organization's plan, payment state and
// billing period.
func (s *server) handleBilling(c *fiber.Ctx) error {
	t, _ := tenantOf(c)
	usage, err := s.Catalog.Usage(c.UserContext(), t.Organization.ID)
	if err != nil {
		return err
	}
	v := billingView{Plan: t.Organization.Plan, Status: "active", PeriodStart: usage.PeriodStart, PeriodEnd: usage.PeriodEnd}
	if since := t.Organization.PastDueSince; since != nil {
		ends := since.Add(s.Billing.GracePeriod)
		v.Status, v.PastDueSince, v.GraceEndsAt = "past_due", since, &ends
	}
	return c.JSON(v)
}
