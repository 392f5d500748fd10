-- Webhooks: partners' HTTP endpoints that get this service's change events POSTed to them, signed (see
-- Messaging/Webhooks). Each endpoint keeps its own cursor over change_events (the same (tx, id) order and token as the
-- change feed), so a slow or failing endpoint holds up nobody else.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id              uuid        PRIMARY KEY,
    owner           text        NOT NULL,                 -- the token subject that created it (a partner sees only its own)
    request_id      text,                                 -- CreateEndpoint's idempotency key
    url             text        NOT NULL,
    event_types     text[]      NOT NULL DEFAULT '{}',    -- empty: every event type
    description     text        NOT NULL DEFAULT '',
    secret          text        NOT NULL,                 -- HMAC key: needed in clear to sign
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text,
    disabled_at     timestamptz,
    -- The cursor: the last change event passed (delivered, or skipped by the type filter).
    cursor_tx       xid8        NOT NULL,
    cursor_id       bigint      NOT NULL,
    -- Failure state of the event at the head of the line (in order: nothing after it goes out first).
    failures        integer     NOT NULL DEFAULT 0,
    failing_since   timestamptz,
    next_attempt_at timestamptz,
    -- Which instance of the service is delivering to it now (a lease, so two instances never both send).
    lease_owner     uuid,
    lease_until     timestamptz,
    version         bigint      NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, request_id)
);

-- The delivery log: one row per endpoint and event, updated by every attempt (a replay counts on).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_tx         xid8        NOT NULL,
    event_seq        bigint      NOT NULL,
    message_id       uuid        NOT NULL,
    event_type       text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    first_attempt_at timestamptz NOT NULL,
    last_attempt_at  timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    delivered_at     timestamptz,
    UNIQUE (endpoint_id, event_tx, event_seq)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- change_events are pruned by age (never past an enabled endpoint's cursor).
CREATE INDEX IF NOT EXISTS change_events_occurred_at ON change_events (occurred_at);
