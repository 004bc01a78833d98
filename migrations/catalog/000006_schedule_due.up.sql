-- The next time each organization has a schedule due, so the scheduler
-- visits only organizations with work instead of every tenant database.
CREATE TABLE schedule_due (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    next_due        timestamptz NOT NULL
);
CREATE INDEX schedule_due_next_idx ON schedule_due (next_due);
