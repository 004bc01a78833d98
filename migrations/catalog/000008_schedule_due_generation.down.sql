-- The sequence is owned by the column and goes with it.
ALTER TABLE schedule_due DROP COLUMN IF EXISTS generation;
DROP SEQUENCE IF EXISTS schedule_due_generation;
