CREATE TABLE servers (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE,
    dsn        text NOT NULL,
    capacity   integer NOT NULL DEFAULT 100 CHECK (capacity >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE databases (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server_id      uuid REFERENCES servers (id),
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('shared', 'dedicated')),
    -- dsn connects as the schema owner; tenant traffic uses the application role.
    dsn            text NOT NULL UNIQUE,
    state          text NOT NULL DEFAULT 'ready' CHECK (state IN ('creating', 'ready', 'dropping')),
    schema_version bigint NOT NULL DEFAULT 0,
    dirty          boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                text NOT NULL UNIQUE,
    name                text NOT NULL,
    plan                text NOT NULL CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'suspended')),
    -- NULL limit overrides mean "the plan's default".
    max_agents          integer,
    max_agent_minutes   integer,
    rps                 integer,
    agent_minutes_used  bigint NOT NULL DEFAULT 0,
    period_start        timestamptz NOT NULL DEFAULT date_trunc('month', now()),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE placements (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    database_id     uuid NOT NULL REFERENCES databases (id),
    epoch           bigint NOT NULL DEFAULT 1,
    state           text NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'moving')),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX placements_database_idx ON placements (database_id);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           text NOT NULL,
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique across the deployment, compared without case.
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));
CREATE INDEX users_organization_idx ON users (organization_id);
