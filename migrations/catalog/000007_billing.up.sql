-- Billing state from Stripe: the customer and subscription of each
-- organization, and since when its payment is overdue.
ALTER TABLE organizations
    ADD COLUMN stripe_customer_id     text UNIQUE,
    ADD COLUMN stripe_subscription_id text,
    ADD COLUMN past_due_since         timestamptz;

-- Stripe delivers an event at least once: each is applied once.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
