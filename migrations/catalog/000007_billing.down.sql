DROP TABLE IF EXISTS stripe_events;
ALTER TABLE organizations DROP COLUMN IF EXISTS past_due_since,
    DROP COLUMN IF EXISTS stripe_subscription_id, DROP COLUMN IF EXISTS stripe_customer_id;
