package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// ForgetStripeEvent removes a recorded event whose application failed, so
// Stripe's retry applies it.
func (s *Store) ForgetStripeEvent(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM stripe_events WHERE id = $1`, id)
	return interpret(err, "stripe event")
}

// StripeEvent is what ordering a Stripe event needs.
type StripeEvent struct {
	ID, Type string
	// Subscription names the sequence the event belongs to: its
	// subscription, or its customer when it has none.
	Subscription string
	Created      time.Time
}

// ClaimStripeEvent records a Stripe event and reports whether to apply it:
// not when it was seen before (fresh false), nor when a newer event of the
// same subscription was already applied (stale true; it stays recorded, so
// a redelivery is a duplicate). Events of the same second are applied in
// arrival order: Stripe's times are whole seconds.
func (s *Store) ClaimStripeEvent(ctx context.Context, e StripeEvent) (fresh, stale bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT DO NOTHING`, e.ID, e.Type)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		fresh = true
		if e.Subscription == "" {
			return nil
		}
		tag, err = tx.Exec(ctx, `INSERT INTO stripe_subscriptions (id, last_event_at) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET last_event_at = EXCLUDED.last_event_at
			WHERE stripe_subscriptions.last_event_at <= EXCLUDED.last_event_at`, e.Subscription, e.Created)
		stale = err == nil && tag.RowsAffected() == 0
		return err
	})
	return fresh, stale, interpret(err, "stripe event")
}

// BillingOwners returns the organization a subscription's metadata names
// and the one its customer belongs to ("" for either when none), so that
// a caller can refuse an event where they disagree.
func (s *Store) BillingOwners(ctx context.Context, orgID, customerID string) (byID, byCustomer string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT id::text FROM organizations WHERE $1 <> '' AND id::text = $1), ''),
		coalesce((SELECT id::text FROM organizations WHERE $2 <> '' AND stripe_customer_id = $2), '')`,
		orgID, customerID).Scan(&byID, &byCustomer)
	return byID, byCustomer, interpret(err, "organization")
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
