-- Keyword search in any script (Chinese included): substring matching (ILIKE) backed by GIN indexes, not word splitting.
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it without superuser rights. It serves
-- Latin-script keywords. It cannot serve Chinese ones: a pattern shorter than three characters (most Chinese words are
-- two) yields no trigram, and under LC_CTYPE C (how the launcher creates databases) CJK characters yield none at all,
-- so such a search scanned the whole index. Hence a second index on character bigrams, the idea of pg_bigm in plain
-- SQL: a keyword of two or more characters must have all its bigrams in the text; ILIKE rechecks the exact match.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION text_bigrams(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT coalesce(array_agg(DISTINCT substr(lower(value), i, 2)), '{}') FROM generate_series(1, char_length(value) - 1) AS i $$;

-- Each customer's tier as learned from TierChanged; sequence keeps a stale event from overwriting a newer tier.
CREATE TABLE customer_tiers (
    customer_id uuid PRIMARY KEY,
    tier        text        NOT NULL,
    sequence    bigint      NOT NULL,
    changed_at  timestamptz NOT NULL
);

CREATE TABLE queues (
    name             text PRIMARY KEY,
    team             text,
    supervisor_queue boolean NOT NULL DEFAULT false
);
CREATE TABLE queue_agents (
    queue    text NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
    agent_id text NOT NULL,
    PRIMARY KEY (queue, agent_id)
);
CREATE INDEX queue_agents_agent ON queue_agents (agent_id);

-- Enums are stored as the proto numbers. SLA: fr_* first response, res_* resolution; res_due_at is NULL while the
-- resolution clock is stopped (paused_since set: waiting on the customer or resolved).
CREATE TABLE tickets (
    id                 uuid PRIMARY KEY,
    customer_id        uuid        NOT NULL,
    type               integer     NOT NULL,
    channel            integer     NOT NULL,
    priority           integer     NOT NULL,
    state              integer     NOT NULL,
    order_ref          text,
    subject            text        NOT NULL,
    description        text        NOT NULL,
    tags               text[]      NOT NULL DEFAULT '{}',
    attachments        jsonb       NOT NULL DEFAULT '[]',
    queue              text,
    assignee           text,
    customer_tier      text,
    escalated          boolean     NOT NULL DEFAULT false,
    opened_by          text        NOT NULL,
    opened_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    idempotency_key    text UNIQUE,
    fr_target_minutes  integer     NOT NULL,
    fr_due_at          timestamptz NOT NULL,
    fr_met_at          timestamptz,
    fr_breached_at     timestamptz,
    first_response_at  timestamptz,
    res_target_minutes integer     NOT NULL,
    res_due_at         timestamptz,
    res_met_at         timestamptz,
    res_breached_at    timestamptz,
    paused_since       timestamptz,
    paused_seconds     bigint      NOT NULL DEFAULT 0,
    near_breach_logged boolean     NOT NULL DEFAULT false,
    resolved_at        timestamptz,
    closed_at          timestamptz,
    survey_score       integer,
    survey_comment     text,
    survey_answered_at timestamptz,
    search_text        text GENERATED ALWAYS AS (subject || ' ' || description) STORED
);
CREATE INDEX tickets_customer ON tickets (customer_id, opened_at DESC, id DESC);
CREATE INDEX tickets_assignee ON tickets (assignee, opened_at) WHERE assignee IS NOT NULL;
CREATE INDEX tickets_opened ON tickets (opened_at);
CREATE INDEX tickets_tags ON tickets USING gin (tags);
CREATE INDEX tickets_search ON tickets USING gin (search_text gin_trgm_ops);
CREATE INDEX tickets_search_bigrams ON tickets USING gin (text_bigrams(search_text));
-- What the scheduler and ListAtRisk read: only targets still running.
CREATE INDEX tickets_fr_running ON tickets (fr_due_at) WHERE fr_met_at IS NULL AND fr_breached_at IS NULL;
CREATE INDEX tickets_res_running ON tickets (res_due_at) WHERE res_met_at IS NULL AND res_breached_at IS NULL AND res_due_at IS NOT NULL;

CREATE TABLE comments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets (id),
    author      text        NOT NULL,
    author_role text        NOT NULL,
    visibility  integer     NOT NULL,
    body        text        NOT NULL,
    attachments jsonb       NOT NULL DEFAULT '[]',
    request_id  text,
    created_at  timestamptz NOT NULL,
    UNIQUE (ticket_id, request_id)
);
CREATE INDEX comments_ticket ON comments (ticket_id, id);
CREATE INDEX comments_search ON comments USING gin (body gin_trgm_ops);
CREATE INDEX comments_search_bigrams ON comments USING gin (text_bigrams(body));

-- The four steps of a complaint: receive, investigate, resolve, follow_up (the first time each happened).
CREATE TABLE complaint_steps (
    ticket_id uuid        NOT NULL REFERENCES tickets (id),
    step      text        NOT NULL,
    done_by   text        NOT NULL,
    done_at   timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, step)
);

CREATE TABLE agent_reviews (
    agent_id      text        NOT NULL,
    period        text        NOT NULL,  -- YYYY-MM
    period_start  date        NOT NULL,
    reviewer      text        NOT NULL,
    confidence    integer     NOT NULL,
    warmth        integer     NOT NULL,
    attentiveness integer     NOT NULL,
    patience      integer     NOT NULL,
    sincerity     integer     NOT NULL,
    care          integer     NOT NULL,
    comment       text        NOT NULL,
    reviewed_at   timestamptz NOT NULL,
    PRIMARY KEY (agent_id, period, reviewer)
);

-- Paid orders above the care-call threshold: one row per order (redeliveries find it), the ticket opens when due.
CREATE TABLE care_calls (
    order_id          uuid PRIMARY KEY,
    customer_id       uuid        NOT NULL,
    external_order_id text        NOT NULL,
    amount_paid       numeric     NOT NULL,
    due_at            timestamptz NOT NULL,
    ticket_id         uuid
);
CREATE INDEX care_calls_due ON care_calls (due_at) WHERE ticket_id IS NULL;
