-- readmodel: the order projection. "{{schema}}" is the (quoted) read-model schema; a rebuild runs
-- every readmodel migration against a shadow schema, then swaps it in.
CREATE SCHEMA IF NOT EXISTS {{schema}};

CREATE TABLE IF NOT EXISTS {{schema}}.orders (
    order_id        bigint        PRIMARY KEY,
    user_id         bigint        NOT NULL,
    items           jsonb         NOT NULL,
    amount          numeric(20,2) NOT NULL,
    currency        text          NOT NULL,
    status          text          NOT NULL,
    version         integer       NOT NULL,
    created_at      timestamptz   NOT NULL,
    updated_at      timestamptz   NOT NULL,
    payment_id      text,
    tracking_number text,
    cancel_reason   text,
    last_sequence   bigint        NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_idx ON {{schema}}.orders (user_id, order_id);
CREATE INDEX IF NOT EXISTS orders_status_idx ON {{schema}}.orders (status, order_id);

-- The timeline: one row per applied event; the primary key makes a double application fail loudly.
CREATE TABLE IF NOT EXISTS {{schema}}.order_events (
    order_id        bigint      NOT NULL,
    version         integer     NOT NULL,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    event_id        uuid        NOT NULL,
    sequence        bigint      NOT NULL,
    correlation_id  text,
    causation_id    text,
    PRIMARY KEY (order_id, version)
);

-- Per projection: the last EVENTS stream sequence applied (committed with the rows it covers).
CREATE TABLE IF NOT EXISTS {{schema}}.projection_checkpoints (
    projection      text        PRIMARY KEY,
    sequence        bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
