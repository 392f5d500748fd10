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
