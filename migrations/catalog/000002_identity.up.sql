-- API keys belong to an organization; a key acts with the role its
-- creator had when it was made. Only a SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    name            text NOT NULL,
    prefix          text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_list_idx ON api_keys (organization_id, created_at, id) WHERE revoked_at IS NULL;

-- Logged-out session tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti             text PRIMARY KEY,
    user_id         uuid,
    organization_id uuid,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expiry_idx ON revoked_tokens (expires_at);

-- The durable change feed: every replica polls it, so an invalidation
-- reaches all of them even when the Redis broadcast is lost.
CREATE TABLE changes (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('organization', 'user', 'token', 'key')),
    subject    text NOT NULL,
    until      timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_recent_idx ON changes (created_at);

CREATE INDEX users_list_idx ON users (organization_id, created_at, id);
