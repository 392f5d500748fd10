-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it without superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE leads (
    id                uuid PRIMARY KEY,
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name              text        NOT NULL,
    -- E.164, as the customer service stores it; e-mail trimmed and lower-cased.
    phone             text,
    email             text,
    source_channel    text,
    interest          text,
    notes             text,
    status            text        NOT NULL,
    disqualify_reason text,
    owner_id          text        NOT NULL,
    -- The owner's team when the lead was given to them: what a sales manager of that team may see.
    owner_team        text,
    customer_id       uuid,
    -- Whether the conversion created the customer (false: an existing one was linked).
    customer_created  boolean     NOT NULL DEFAULT false,
    opportunity_id    uuid,
    conversion_key    text UNIQUE,
    request_id        text UNIQUE,
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX leads_open_phone ON leads (phone) WHERE status IN ('new', 'contacted', 'qualified');
CREATE INDEX leads_open_email ON leads (email) WHERE status IN ('new', 'contacted', 'qualified');
CREATE INDEX leads_owner ON leads (owner_id, seq);
CREATE INDEX leads_team ON leads (owner_team, seq);

CREATE TABLE opportunities (
    id                  uuid PRIMARY KEY,
    seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    title               text          NOT NULL,
    customer_id         uuid          NOT NULL,
    lead_id             uuid,
    product_interest    text,
    amount              numeric(14,2) NOT NULL CHECK (amount > 0),
    expected_close_date date          NOT NULL,
    stage               text          NOT NULL,
    owner_id            text          NOT NULL,
    owner_team          text,
    close_reason        text,
    closed_at           timestamptz,
    won_at              timestamptz,
    paid                numeric(14,2) NOT NULL DEFAULT 0 CHECK (paid >= 0 AND paid <= amount),
    -- none → pending (fully paid: the order is owed to the customer service) → recorded. The OrderRecorder retries
    -- pending rows until RecordOrder succeeds; RecordOrder is idempotent by the external id SALES-<id>.
    order_status        text          NOT NULL DEFAULT 'none',
    order_id            uuid,
    order_attempts      integer       NOT NULL DEFAULT 0,
    order_next_attempt  timestamptz,
    order_last_error    text,
    request_id          text UNIQUE,
    version             bigint        NOT NULL DEFAULT 1,
    created_at          timestamptz   NOT NULL,
    updated_at          timestamptz   NOT NULL
);
CREATE INDEX opportunities_owner ON opportunities (owner_id, seq);
CREATE INDEX opportunities_team ON opportunities (owner_team, seq);
CREATE INDEX opportunities_customer ON opportunities (customer_id, seq);
CREATE INDEX opportunities_order_pending ON opportunities (order_next_attempt) WHERE order_status = 'pending';

CREATE TABLE stage_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    opportunity_id uuid        NOT NULL REFERENCES opportunities (id),
    from_stage     text,
    to_stage       text        NOT NULL,
    reason         text,
    changed_by     text        NOT NULL,
    changed_at     timestamptz NOT NULL
);
CREATE INDEX stage_history_opportunity ON stage_history (opportunity_id, id);

CREATE TABLE receipts (
    receipt_id     text PRIMARY KEY,
    opportunity_id uuid          NOT NULL REFERENCES opportunities (id),
    amount         numeric(14,2) NOT NULL CHECK (amount > 0),
    method         text          NOT NULL,
    paid_at        timestamptz   NOT NULL,
    recorded_by    text          NOT NULL,
    recorded_at    timestamptz   NOT NULL
);
CREATE INDEX receipts_opportunity ON receipts (opportunity_id, paid_at, receipt_id);

CREATE TABLE activities (
    id             uuid PRIMARY KEY,
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind           text        NOT NULL,
    subject        text        NOT NULL,
    body           text        NOT NULL DEFAULT '',
    -- The lower-cased subject and body with every UTF-16 unit written as 'g' + 4 hex digits (SearchKey): the
    -- cluster runs with --locale=C, where pg_trgm extracts no trigrams from Chinese text, so it indexes this instead.
    search_key     text        NOT NULL,
    lead_id        uuid,
    opportunity_id uuid,
    customer_id    uuid,
    due_at         timestamptz,
    done_at        timestamptz,
    owner_id       text        NOT NULL,
    owner_team     text,
    reminded_at    timestamptz,
    request_id     text UNIQUE,
    created_at     timestamptz NOT NULL
);
CREATE INDEX activities_search ON activities USING gin (search_key gin_trgm_ops);
CREATE INDEX activities_owner_due ON activities (owner_id, due_at, id);
CREATE INDEX activities_customer ON activities (customer_id, seq);
CREATE INDEX activities_reminders ON activities (due_at) WHERE reminded_at IS NULL AND done_at IS NULL AND due_at IS NOT NULL;
