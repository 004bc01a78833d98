-- Stripe does not deliver events in order: the newest event applied to
-- each subscription, so an older one arriving late is not applied over it.
CREATE TABLE stripe_subscriptions (
    id            text PRIMARY KEY,
    last_event_at timestamptz NOT NULL
);
