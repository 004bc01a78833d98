-- Per-tenant metering (tenancy/metering). Each gateway replica aggregates
-- usage per organization per minute in memory and upserts its CUMULATIVE
-- totals for the minute under its own random replica id: flushing the same
-- minute again overwrites that replica's row (greatest of old and new, so a
-- stale write can never lower it) instead of adding to it, and readers sum
-- over replicas. A replica that dies loses what it had not flushed, and
-- nothing is counted twice.
--
-- No foreign key to organizations: one batched flush must not fail because
-- a single organization was deleted meanwhile. Rows of deleted organizations
-- go with retention (Prune). organization_id 00000000-0000-0000-0000-000000000000
-- is the overflow pseudo-organization: usage of organizations past a
-- replica's per-minute cap.
CREATE TABLE usage_minutes (
    replica_id      uuid NOT NULL,
    organization_id uuid NOT NULL,
    minute          timestamptz NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    db_time_us      bigint NOT NULL DEFAULT 0, -- microseconds
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_written    bigint NOT NULL DEFAULT 0,
    bytes_sent      bigint NOT NULL DEFAULT 0,
    events          bigint NOT NULL DEFAULT 0,
    socket_seconds  bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica_id, organization_id, minute)
) WITH (fillfactor = 70); -- room for HOT updates: a row is rewritten at every flush of its minute
-- Totals of one organization over a range, and rollup/prune by age.
CREATE INDEX usage_minutes_organization_idx ON usage_minutes (organization_id, minute);
CREATE INDEX usage_minutes_minute_idx ON usage_minutes (minute);

-- Minute rows older than a day, rolled up: summed over replicas and minutes
-- of the hour, in the same statement that deletes them, so each minute row
-- is added exactly once.
CREATE TABLE usage_hours (
    organization_id uuid NOT NULL,
    hour            timestamptz NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    db_time_us      bigint NOT NULL DEFAULT 0,
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_written    bigint NOT NULL DEFAULT 0,
    bytes_sent      bigint NOT NULL DEFAULT 0,
    events          bigint NOT NULL DEFAULT 0,
    socket_seconds  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, hour)
);
CREATE INDEX usage_hours_hour_idx ON usage_hours (hour);

-- The latest storage figure of each organization, written by the
-- provisioner: a dedicated database's size, or an estimate of a shared
-- tenant's share.
CREATE TABLE usage_storage (
    organization_id uuid PRIMARY KEY,
    bytes           bigint NOT NULL CHECK (bytes >= 0),
    measured_at     timestamptz NOT NULL
);
