-- The ledger of tenant-schema migration fan-outs (`tenantgate migrate
-- tenants`): one row per run and one per database and run, so an operator
-- can see what happened where, and a run that was interrupted is resumed
-- by the next one with the same target instead of redone.
--
-- A database being migrated is refused to its tenants through the existing
-- databases.dirty flag (set before golang-migrate starts, cleared after
-- success), the same flag golang-migrate's failure leaves behind; so the
-- databases.state constraint is left as it is.
CREATE TABLE migration_runs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- migrate: a fan-out; repair: an operator forced a database's version.
    kind        text NOT NULL DEFAULT 'migrate' CHECK (kind IN ('migrate', 'repair')),
    target      bigint NOT NULL CHECK (target >= 0),
    -- scope is the organization slug a run was narrowed to; '' is every database.
    scope       text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'interrupted', 'succeeded', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- The run a new fan-out resumes: the newest unfinished one with its target.
CREATE INDEX migration_runs_resume_idx ON migration_runs (target, scope, started_at DESC)
    WHERE status IN ('running', 'interrupted');

CREATE TABLE migration_results (
    run_id       uuid NOT NULL REFERENCES migration_runs (id) ON DELETE CASCADE,
    database_id  uuid NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    version_from bigint NOT NULL CHECK (version_from >= 0),
    version_to   bigint NOT NULL CHECK (version_to >= 0),
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'repaired')),
    error        text NOT NULL DEFAULT '',
    -- attempts counts tries within the run: retries of a connection that
    -- failed, and a resume of a database the interrupted run had started.
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    duration_ms  bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (run_id, database_id)
);
-- A database's latest entry, for `tenantgate migrate status`.
CREATE INDEX migration_results_database_idx ON migration_results (database_id, started_at DESC);
