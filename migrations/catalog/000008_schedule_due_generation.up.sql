-- A generation on each schedule_due entry, so that a scheduler visit does
-- not overwrite what was noted while it ran: every note and every claim
-- takes a fresh value from one sequence (never reused, so an entry deleted
-- and noted again cannot bring back a value a slow visit still holds), and
-- a visit's final write only overwrites the entry at the generation it
-- claimed.
CREATE SEQUENCE schedule_due_generation;
ALTER TABLE schedule_due ADD COLUMN generation bigint NOT NULL DEFAULT nextval('schedule_due_generation');
ALTER SEQUENCE schedule_due_generation OWNED BY schedule_due.generation;
