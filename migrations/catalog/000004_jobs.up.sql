-- Provisioner jobs: claimed with FOR UPDATE SKIP LOCKED under a lease, so
-- several provisioners share the work and a killed one's job is taken over
-- when its lease runs out.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('provision', 'move', 'delete')),
    organization_id uuid REFERENCES organizations (id) ON DELETE SET NULL,
    payload         jsonb NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    step            text NOT NULL DEFAULT '',
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 5,
    run_after       timestamptz NOT NULL DEFAULT now(),
    locked_by       text,
    locked_until    timestamptz,
    error           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX jobs_ready_idx ON jobs (run_after) WHERE state IN ('queued', 'running');
-- One live job per organization: two moves of one tenant never overlap.
CREATE UNIQUE INDEX jobs_one_live_per_org ON jobs (organization_id)
    WHERE state IN ('queued', 'running') AND organization_id IS NOT NULL;
