DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['agents', 'tasks', 'messages', 'activity_logs', 'agent_sessions', 'schedules', 'idempotency_keys'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS tenant_fence_insert ON %I', t);
        EXECUTE format('DROP TRIGGER IF EXISTS tenant_fence_update ON %I', t);
        EXECUTE format('DROP TRIGGER IF EXISTS tenant_fence_delete ON %I', t);
    END LOOP;
END
$$;
DROP FUNCTION IF EXISTS tenant_fence_check();
DROP TABLE IF EXISTS tenant_fences;
