-- Model tokens: an operator's per-organization budget override (NULL: the
-- plan's), the tokens used this period, and each charged run's tokens in
-- the same ledger as its agent-minutes, so a run is charged once for both.
ALTER TABLE organizations
    ADD COLUMN max_tokens  bigint,
    ADD COLUMN tokens_used bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_charges ADD COLUMN tokens bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0);
