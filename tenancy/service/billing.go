package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// subscription is the part of a Stripe subscription (or invoice) we read.
type subscription struct {
	ID           string            `json:"id"`
	Subscription string            `json:"subscription"` // of an invoice
	Customer     string            `json:"customer"`
	Status       string            `json:"status"`
	Metadata     map[string]string `json:"metadata"`
	Items        struct {
		Data []struct {
			Price struct {
				ID string `json:"id"`
			} `json:"price"`
		} `json:"data"`
	} `json:"items"`
}

// WebhookResult says what became of a Stripe event.
type WebhookResult struct {
	Received  bool   `json:"received"`
	Applied   bool   `json:"applied"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Ignored   string `json:"ignored,omitempty"` // why an event was not applied
}

// ApplyStripeEvent verifies and applies one Stripe webhook delivery:
// the price sets the plan (through ChangePlan), past_due starts the grace
// period, a cancellation returns the organization to free. A forged, stale
// or unsigned request is 400. Each event applies once, and never over a
// newer event of its subscription; an event whose metadata and customer
// name different organizations is refused (answered 200 so that Stripe
// stops retrying, and logged).
func (s *Service) ApplyStripeEvent(ctx context.Context, payload []byte, signature string) (WebhookResult, error) {
	if s.Billing.WebhookSecret == "" {
		return WebhookResult{}, &tenancy.Error{Code: tenancy.CodeTenantUnavailable,
			Message: "billing is not configured (stripe.webhook_secret)", RetryAfter: time.Hour}
	}
	ev, err := webhook.ConstructEventWithOptions(payload, signature, s.Billing.WebhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		return WebhookResult{}, tenancy.Errorf(tenancy.CodeInvalid, "Stripe-Signature: not a valid signature of this body, or too old")
	}
	typ := string(ev.Type)
	switch typ {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"invoice.payment_failed", "invoice.paid":
	default:
		return WebhookResult{Received: true}, nil
	}
	var sub subscription
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &sub) != nil {
		return WebhookResult{}, tenancy.Errorf(tenancy.CodeInvalid, "data.object: not a subscription or invoice")
	}
	invoice := typ == "invoice.payment_failed" || typ == "invoice.paid"
	orgID, err := s.billingOwner(ctx, ev.ID, sub)
	if err != nil || orgID == "" {
		return WebhookResult{Received: true, Ignored: "organization"}, err
	}
	seq := sub.ID
	if invoice {
		seq = sub.Subscription
	}
	if seq == "" {
		seq = "customer:" + sub.Customer
	}
	fresh, stale, err := s.Catalog.ClaimStripeEvent(ctx, catalog.StripeEvent{ID: ev.ID, Type: typ, Subscription: seq,
		Created: time.Unix(ev.Created, 0)})
	switch {
	case err != nil:
		return WebhookResult{}, err
	case !fresh:
		return WebhookResult{Received: true, Duplicate: true}, nil
	case stale:
		s.Log.Info("stripe event older than one already applied; ignored", "event", ev.ID, "type", typ, "subscription", seq)
		return WebhookResult{Received: true, Ignored: "stale"}, nil
	}
	if err := s.applySubscription(ctx, orgID, typ, invoice, sub); err != nil {
		_ = s.Catalog.ForgetStripeEvent(context.WithoutCancel(ctx), ev.ID) // Stripe retries; let the retry apply it
		return WebhookResult{}, err
	}
	return WebhookResult{Received: true, Applied: true}, nil
}

// billingOwner is the organization an event is for: the one its metadata
// names or the one its customer belongs to. When they disagree the event
// is refused ("" and no error): picking one could move another customer's
// plan.
func (s *Service) billingOwner(ctx context.Context, eventID string, sub subscription) (string, error) {
	byID, byCustomer, err := s.Catalog.BillingOwners(ctx, sub.Metadata["organization_id"], sub.Customer)
	switch {
	case err != nil:
		return "", err
	case byID != "" && byCustomer != "" && byID != byCustomer:
		s.Log.Warn("stripe event names two organizations; refused", "event", eventID,
			"metadataOrganization", byID, "customerOrganization", byCustomer)
		return "", nil
	case byID != "":
		return byID, nil
	case byCustomer == "":
		// Not yet linked, perhaps: Stripe retries a 404 for days.
		return "", tenancy.Errorf(tenancy.CodeNotFound, "no organization has this subscription's metadata or customer")
	}
	return byCustomer, nil
}

func (s *Service) applySubscription(ctx context.Context, orgID, typ string, invoice bool, sub subscription) error {
	if invoice {
		err := s.Catalog.SetBilling(ctx, orgID, catalog.Billing{CustomerID: sub.Customer, PastDue: typ == "invoice.payment_failed"})
		if err != nil {
			return err
		}
		return s.Changes.Publish(ctx, tenancy.ChangeOrganization, orgID, time.Time{})
	}
	org, err := s.Catalog.Organization(ctx, orgID)
	if err != nil {
		return err
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
	err = s.Catalog.SetBilling(ctx, orgID, catalog.Billing{CustomerID: sub.Customer, SubscriptionID: sub.ID,
		PastDue: sub.Status == "past_due"})
	if err != nil {
		return err
	}
	_, err = s.ChangePlan(ctx, orgID, plan)
	return err
}

// ChangePlan is the one way an organization's plan changes: from the
// Stripe webhook, from `tenants set-plan`, and from a move job once its
// move is done. Within the tier it sets the plan and tells every replica;
// across the enterprise line it queues the move, whose job calls ChangePlan
// again when the data is in place, which then sets the plan. It returns the
// move job's id, "" when none was needed.
func (s *Service) ChangePlan(ctx context.Context, orgID string, plan tenancy.Plan) (jobID string, err error) {
	org, err := s.Catalog.Organization(ctx, orgID)
	if err != nil {
		return "", err
	}
	to := tenancy.KindShared
	if plan.Dedicated() {
		to = tenancy.KindDedicated
	}
	if to != org.Placement {
		j, err := s.Catalog.EnqueueJob(ctx, catalog.JobMove, org.ID, catalog.MovePayload{To: to, Plan: plan})
		return j.ID, err
	}
	if plan != org.Plan {
		if err := s.Catalog.SetPlan(ctx, org.ID, plan); err != nil {
			return "", err
		}
	}
	return "", s.Changes.Publish(ctx, tenancy.ChangeOrganization, org.ID, time.Time{})
}

// MoveOrganization queues the move of an organization's data to placement
// to ("shared" or "dedicated") without a plan change. A move to where the
// organization already is finishes what a stopped move left, or does
// nothing.
func (s *Service) MoveOrganization(ctx context.Context, orgID, to string) (jobID string, err error) {
	if to != tenancy.KindShared && to != tenancy.KindDedicated {
		return "", tenancy.Errorf(tenancy.CodeInvalid, "to: must be shared or dedicated")
	}
	j, err := s.Catalog.EnqueueJob(ctx, catalog.JobMove, orgID, catalog.MovePayload{To: to})
	return j.ID, err
}

// DeleteOrganization queues an organization's deletion: its rows, or its
// dedicated database when dropDedicated confirms it, then its records.
// The job refuses its requests first and tells every replica again once
// the records are gone, so its credentials get 401 everywhere.
func (s *Service) DeleteOrganization(ctx context.Context, slug string, dropDedicated bool) (jobID string, err error) {
	org, err := s.Catalog.OrganizationDetailBySlug(ctx, slug)
	if err != nil {
		return "", err
	}
	if org.Placement == tenancy.KindDedicated && !dropDedicated {
		return "", tenancy.Errorf(tenancy.CodeInvalid, "organization %s has its own database %s; confirm dropping it with the organization (--yes)",
			org.Slug, org.Database)
	}
	j, err := s.Catalog.EnqueueJob(ctx, catalog.JobDelete, org.ID, catalog.DeletePayload{OrganizationID: org.ID})
	return j.ID, err
}

// OrganizationChanged tells every gateway replica to re-read an
// organization (after an operator's or a job's change to it).
func (s *Service) OrganizationChanged(ctx context.Context, orgID string) error {
	return s.Changes.Publish(ctx, tenancy.ChangeOrganization, orgID, time.Time{})
}
