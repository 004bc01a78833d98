-- Tier-move fences. A row here means "this database takes no writes of
-- this organization": set in the source while a move copies the tenant out
-- (and kept there afterwards), and in the target until the placement
-- switches to it. The fence lives inside the database rather than in a
-- gateway's cache, so a replica whose cached placement is stale still
-- cannot write where the tenant is not served from.
CREATE TABLE tenant_fences (
    organization_id    uuid PRIMARY KEY,
    -- The placement epoch the fence was set at.
    epoch              bigint NOT NULL,
    -- Where the move that set this fence copies to, so that a rerun after
    -- a crash resumes with the same target.
    target_database_id uuid,
    fenced_at          timestamptz NOT NULL DEFAULT now()
);
-- The application role is granted DML on every table of the schema
-- (schema.GrantApp), this one included, and its name is configurable, so
-- it cannot be revoked here. Row-level security with no policy at all
-- denies it every row instead: it can neither see, add, change nor remove a
-- fence, and it has no TRUNCATE. RLS is enabled but not forced, so the
-- owner (the mover, and the function below, which runs as the owner) is
-- not subject to it.
REVOKE ALL ON tenant_fences FROM PUBLIC;
ALTER TABLE tenant_fences ENABLE ROW LEVEL SECURITY;

-- tenant_fence_check refuses, with SQLSTATE TG001, any statement that
-- changed a row of a fenced organization. It runs as its owner (SECURITY
-- DEFINER) to read the fences its caller cannot.
--
-- It is a statement trigger over the transition tables rather than a row
-- trigger: a row trigger that is SECURITY DEFINER costs tens of
-- microseconds per row, which would dominate a move's bulk copy. The
-- changed rows are already written, but uncommitted, when it runs: raising
-- aborts them with their transaction.
--
-- Draining: for each organization it changed, the statement takes that
-- organization's shared advisory lock, held to the end of its transaction;
-- the mover takes the exclusive one before it inserts a fence. So the
-- mover waits for every write transaction of the tenant already past its
-- check, and writers arriving meanwhile queue behind the mover and, once it
-- has committed, see the fence: each statement of this function takes a
-- fresh snapshot under READ COMMITTED, the isolation tenant writes run at.
--
-- The mover itself writes past the fence (copying into the target,
-- deleting from the source). A session may, for one organization, when it
-- both asks to, with the transaction-local setting tenantgate.fence_bypass
-- naming the organization, and logged in as a role with this function
-- owner's rights. Any role can set the setting; only the owner can use it.
CREATE FUNCTION tenant_fence_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    orgs   uuid[];
    org    uuid;
    bypass text := current_setting('tenantgate.fence_bypass', true);
BEGIN
    -- Sorted, so two statements lock organizations in the same order.
    IF TG_OP = 'UPDATE' THEN
        orgs := ARRAY(SELECT organization_id FROM changed UNION SELECT organization_id FROM changed_new ORDER BY 1);
    ELSE
        orgs := ARRAY(SELECT DISTINCT organization_id FROM changed ORDER BY 1);
    END IF;
    FOREACH org IN ARRAY orgs LOOP
        CONTINUE WHEN bypass = org::text AND pg_has_role(session_user, current_user, 'USAGE');
        PERFORM pg_advisory_xact_lock_shared(hashtext('tenantgate.fence'), hashtext(org::text));
        IF EXISTS (SELECT 1 FROM public.tenant_fences f WHERE f.organization_id = org) THEN
            RAISE EXCEPTION 'tenant is being moved' USING ERRCODE = 'TG001';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tenant_fence_check() FROM PUBLIC;

-- Every tenant table, one trigger per event: a trigger with transition
-- tables may have only one.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['agents', 'tasks', 'messages', 'activity_logs', 'agent_sessions', 'schedules', 'idempotency_keys'] LOOP
        EXECUTE format('CREATE TRIGGER tenant_fence_insert AFTER INSERT ON %I
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tenant_fence_check()', t);
        EXECUTE format('CREATE TRIGGER tenant_fence_update AFTER UPDATE ON %I
            REFERENCING OLD TABLE AS changed NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION tenant_fence_check()', t);
        EXECUTE format('CREATE TRIGGER tenant_fence_delete AFTER DELETE ON %I
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tenant_fence_check()', t);
    END LOOP;
END
$$;
