-- Idempotency-Keys are scoped per caller (issue 14): the same key sent by two callers names two
-- requests, and one caller can never replay (or block) another's. "caller" is the authenticated
-- subject. Keys stored before this migration get caller '' (no authenticated subject is empty): they
-- are never matched again and expire with EDA_IDEMPOTENCY_TTL_S.
ALTER TABLE eda.idempotency_keys ADD COLUMN IF NOT EXISTS caller text NOT NULL DEFAULT '';
ALTER TABLE eda.idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_pkey;
ALTER TABLE eda.idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (caller, key);
