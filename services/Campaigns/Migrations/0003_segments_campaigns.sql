-- Segments: a named rule tree (crm.campaigns.v1.SegmentRule as protobuf JSON) evaluated in SQL over customers and
-- customer_scores; snapshots freeze a segment's members at one moment (a campaign's audience).

CREATE TABLE segments (
    segment_id      uuid PRIMARY KEY,
    name            text        COLLATE "C" NOT NULL UNIQUE,
    description     text        NOT NULL DEFAULT '',
    rules           jsonb       NOT NULL,
    version         bigint      NOT NULL DEFAULT 1,
    idempotency_key text        UNIQUE,
    created_by      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- No foreign key to segments: a snapshot outlives the segment it was taken from (it keeps the rules it used).
CREATE TABLE segment_snapshots (
    snapshot_id     uuid PRIMARY KEY,
    segment_id      uuid        NOT NULL,
    segment_version bigint      NOT NULL,
    rules           jsonb       NOT NULL,
    purpose         text        NOT NULL DEFAULT '',
    member_count    bigint      NOT NULL,
    idempotency_key text        UNIQUE,
    taken_at        timestamptz NOT NULL
);

CREATE TABLE segment_snapshot_members (
    snapshot_id uuid NOT NULL REFERENCES segment_snapshots (snapshot_id),
    customer_id uuid NOT NULL,
    PRIMARY KEY (snapshot_id, customer_id)
);

-- Campaigns. state: draft | scheduled | running | paused | finished (see Marketing/CampaignStates.cs).
CREATE TABLE campaigns (
    campaign_id     uuid PRIMARY KEY,
    name            text        NOT NULL,
    kind            smallint    NOT NULL,
    state           text        NOT NULL,
    segment_id      uuid,
    channel         smallint    NOT NULL,
    template        text        NOT NULL,
    schedule_kind   smallint    NOT NULL,
    start_at        timestamptz,
    cron            text        NOT NULL DEFAULT '',
    version         bigint      NOT NULL DEFAULT 1,
    idempotency_key text        UNIQUE,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX campaigns_running_kind ON campaigns (kind) WHERE state = 'running';

-- One row per campaign, customer and occurrence: the key that makes a customer get a campaign once per occurrence
-- however often its trigger arrives. status: sent | no_consent | capped | deferred (only deferred is tried again).
CREATE TABLE campaign_deliveries (
    campaign_id uuid        NOT NULL REFERENCES campaigns (campaign_id),
    customer_id uuid        NOT NULL,
    occurrence  text        COLLATE "C" NOT NULL,
    status      text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, customer_id, occurrence)
);
-- The frequency cap's source of truth when Redis lost its counters: messages sent to a customer since a time.
CREATE INDEX campaign_deliveries_sent ON campaign_deliveries (customer_id, at) WHERE status = 'sent';

-- What the default sender "sends": the rendered message, one row per delivery (no outside gateway).
CREATE TABLE message_log (
    campaign_id uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    occurrence  text        NOT NULL,
    channel     smallint    NOT NULL,
    message     text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, customer_id, occurrence)
);
