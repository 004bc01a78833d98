-- Idempotency-Key records: the first answer to a POST, replayed to retries
-- with the same key and body for 24 hours. Tenant data like any other: it
-- lives (and moves) with the tenant, under the same row-level security.
CREATE TABLE idempotency_keys (
    organization_id uuid NOT NULL,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    -- status 0 marks a request still running under this key.
    status          integer NOT NULL DEFAULT 0,
    response        bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);
CREATE INDEX idempotency_keys_age_idx ON idempotency_keys (created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);

-- The agent-minutes a completed run used, rounded up.
ALTER TABLE tasks ADD COLUMN agent_minutes integer;
