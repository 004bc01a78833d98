-- One row per charged task run: completing a task twice (a retry) cannot
-- charge its agent-minutes twice.
CREATE TABLE usage_charges (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    task_id         uuid NOT NULL,
    minutes         integer NOT NULL CHECK (minutes >= 0),
    period_start    timestamptz NOT NULL,
    charged_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, task_id)
);
