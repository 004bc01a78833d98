DROP TABLE IF EXISTS database_audits;
ALTER TABLE databases DROP COLUMN IF EXISTS quarantined;
