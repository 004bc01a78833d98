DROP TABLE IF EXISTS stripe_subscriptions;
