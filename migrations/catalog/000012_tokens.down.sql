ALTER TABLE usage_charges DROP COLUMN IF EXISTS tokens;
ALTER TABLE organizations DROP COLUMN IF EXISTS max_tokens, DROP COLUMN IF EXISTS tokens_used;
