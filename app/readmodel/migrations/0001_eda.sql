-- Non-rebuildable state of the platform (schema "eda"): never touched by projection rebuilds.
CREATE SCHEMA IF NOT EXISTS eda;

-- Idempotency-Key results of POST /api/v1/orders (see app/api/idempotency.py).
CREATE TABLE IF NOT EXISTS eda.idempotency_keys (
    key             text        PRIMARY KEY,
    fingerprint     text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'completed')),
    order_id        bigint,
    response_status integer,
    response_body   bytea,
    response_headers jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON eda.idempotency_keys (created_at);
