-- Job notifications, sent when the writing transaction commits (NOTIFY is
-- transactional), so a job is never announced before it can be seen:
--   tenantgate_jobs       "kind:id" of a job that became queued (a new one,
--                         or one queued again for a retry): provisioners
--                         LISTEN and claim at once instead of polling;
--   tenantgate_job_<id>   the job's state, on each change of its state or
--                         step: `--wait` followers LISTEN and re-read it.
-- A trigger rather than NOTIFY in each statement: every writer of jobs
-- (the store, an operator's UPDATE that requeues a job) announces alike.
-- Notifications are a hint and may be lost (a listener reconnecting misses
-- those sent meanwhile): listeners re-read after each (re)connection and
-- keep a slow poll.
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = NEW.state AND OLD.step = NEW.step THEN
        RETURN NULL; -- a lease renewal: nothing a listener waits for
    END IF;
    IF NEW.state = 'queued' THEN
        PERFORM pg_notify('tenantgate_jobs', NEW.kind || ':' || NEW.id::text);
    END IF;
    PERFORM pg_notify('tenantgate_job_' || NEW.id::text, NEW.state);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, step ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_notify();
