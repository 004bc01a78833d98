package catalog

import (
	"context"

	"github.com/tenantgate/tenantgate/tenancy"
)

// FirstStripeEvent records a Stripe event id and reports whether it is new:
// a redelivered event is applied once.
func (s *Store) FirstStripeEvent(ctx context.Context, id, typ string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, typ)
	if err != nil {
		return false, interpret(err, "stripe event")
	}
	return tag.RowsAffected() == 1, nil
}

// ForgetStripeEvent removes a recorded event whose application failed, so
// Stripe's retry applies it.
func (s *Store) ForgetStripeEvent(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM stripe_events WHERE id = $1`, id)
	return interpret(err, "stripe event")
}

// OrganizationForBilling finds the organization a Stripe subscription is
// for: by the organization id in its metadata, else by its customer.
func (s *Store) OrganizationForBilling(ctx context.Context, orgID, customerID string) (tenancy.Organization, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id::text FROM organizations
		WHERE ($1 <> '' AND id::text = $1) OR ($2 <> '' AND stripe_customer_id = $2) LIMIT 1`, orgID, customerID).Scan(&id)
	if err != nil {
		return tenancy.Organization{}, interpret(err, "organization")
	}
	return s.Organization(ctx, id)
}

// Billing is what a subscription event sets on an organization.
type Billing struct {
	CustomerID, SubscriptionID string
	// PastDue: the payment is overdue (since keeps the first time it was).
	PastDue bool
}

// SetBilling records an organization's Stripe ids and payment state.
func (s *Store) SetBilling(ctx context.Context, orgID string, b Billing) error {
	_, err := s.pool.Exec(ctx, `UPDATE organizations SET stripe_customer_id = coalesce(nullif($2, ''), stripe_customer_id),
		stripe_subscription_id = coalesce(nullif($3, ''), stripe_subscription_id),
		past_due_since = CASE WHEN $4 THEN coalesce(past_due_since, now()) END, updated_at = now()
		WHERE id = $1`, orgID, b.CustomerID, b.SubscriptionID, b.PastDue)
	return interpret(err, "organization")
}
