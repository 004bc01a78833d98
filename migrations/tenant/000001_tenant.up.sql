-- The tenant schema: identical in the shared database and every dedicated
-- one. Every row carries organization_id; keys, uniques and foreign keys are
-- composite on it, because constraint checks see other tenants' rows even
-- under row-level security. Policies fail closed: with no
-- app.organization_id setting (or after a transaction-local one ended and
-- reads back as '') no row is visible or writable.

CREATE TABLE agents (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    model           text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (organization_id, id)
);
CREATE UNIQUE INDEX agents_name_idx ON agents (organization_id, name) WHERE deleted_at IS NULL;
CREATE INDEX agents_list_idx ON agents (organization_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE tasks (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    agent_id        uuid,
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    priority        text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    result          jsonb,
    started_at      timestamptz,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id)
);
CREATE INDEX tasks_list_idx ON tasks (organization_id, created_at, id);
CREATE INDEX tasks_status_idx ON tasks (organization_id, status, created_at);
CREATE INDEX tasks_agent_idx ON tasks (organization_id, agent_id);

CREATE TABLE messages (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    agent_id        uuid,
    task_id         uuid,
    role            text NOT NULL CHECK (role IN ('user', 'agent', 'system')),
    content         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id),
    FOREIGN KEY (organization_id, task_id) REFERENCES tasks (organization_id, id)
);
CREATE INDEX messages_list_idx ON messages (organization_id, created_at, id);
CREATE INDEX messages_task_idx ON messages (organization_id, task_id);
CREATE INDEX messages_agent_idx ON messages (organization_id, agent_id);

CREATE TABLE activity_logs (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    actor_id        uuid,
    action          text NOT NULL,
    object_type     text NOT NULL,
    object_id       uuid,
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX activity_logs_list_idx ON activity_logs (organization_id, created_at, id);

CREATE TABLE agent_sessions (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    agent_id        uuid NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'failed')),
    tokens_used     bigint NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id)
);
CREATE INDEX agent_sessions_list_idx ON agent_sessions (organization_id, started_at, id);

CREATE TABLE schedules (
    organization_id uuid NOT NULL,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    agent_id        uuid NOT NULL,
    cron            text NOT NULL,
    task_template   jsonb NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    next_run_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id)
);
CREATE INDEX schedules_list_idx ON schedules (organization_id, created_at, id);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled AND deleted_at IS NULL;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['agents', 'tasks', 'messages', 'activity_logs', 'agent_sessions', 'schedules'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)
                 WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;
