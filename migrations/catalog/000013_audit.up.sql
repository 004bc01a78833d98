-- The isolation audit (tenantgate audit). A database found unsafe is
-- quarantined: its tenants are refused (503) exactly as for a dirty one,
-- until a re-audit finds it safe or an operator accepts those findings.
ALTER TABLE databases ADD COLUMN quarantined boolean NOT NULL DEFAULT false;

-- Each database's last verdict, its findings, and an operator's acceptance
-- of one exact set of findings (a new finding quarantines again).
CREATE TABLE database_audits (
    database_id     uuid PRIMARY KEY REFERENCES databases (id) ON DELETE CASCADE,
    verdict         text NOT NULL CHECK (verdict IN ('ok', 'drift', 'unsafe')),
    findings        jsonb NOT NULL DEFAULT '[]',
    findings_hash   text NOT NULL DEFAULT '',
    schema_version  bigint NOT NULL DEFAULT 0,
    audited_at      timestamptz NOT NULL DEFAULT now(),
    accepted_hash   text,
    accepted_reason text,
    accepted_at     timestamptz
);
