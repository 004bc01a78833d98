ALTER TABLE tasks DROP COLUMN IF EXISTS agent_minutes;
DROP TABLE IF EXISTS idempotency_keys;
