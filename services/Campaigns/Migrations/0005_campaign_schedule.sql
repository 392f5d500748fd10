-- When a campaign sends: the scheduler's runs, quiet hours' not-before times, birthdays by day, the win-back watch.

-- The read model kept only the birthday's month; a birthday campaign needs the day (filled by profile events and the rebuild).
ALTER TABLE customers ADD COLUMN birthday_day smallint;
CREATE INDEX customers_birthday ON customers (birthday_month, birthday_day) WHERE birthday_day IS NOT NULL;

-- Since when the campaign is running (set on every move to running): a recurring campaign's due times before it are not run.
ALTER TABLE campaigns ADD COLUMN running_since timestamptz;

-- A deferred send is retried from this time on (the end of quiet hours); null: at the next retry pass.
ALTER TABLE campaign_deliveries ADD COLUMN not_before timestamptz;
CREATE INDEX campaign_deliveries_deferred ON campaign_deliveries (not_before) WHERE status = 'deferred';

-- One row per occurrence the scheduler ran (a one-off "once", a cron due time, a birthday day, a win-back or expiry pass):
-- the first instance to insert it does the work, so two instances never both run one occurrence. A run whose instance died
-- (no finished_at after a lease) may be taken over; the delivery log's key keeps the takeover from sending twice.
CREATE TABLE campaign_runs (
    campaign_id uuid        NOT NULL REFERENCES campaigns (campaign_id),
    occurrence  text        COLLATE "C" NOT NULL,
    due_at      timestamptz NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    sent        int,
    PRIMARY KEY (campaign_id, occurrence)
);

-- The churn level each customer had at the last recompute the win-back trigger looked at; a rise into the at-risk band is a
-- change against it. win_back_state holds that recompute's id (no row yet: the first look only records the baseline).
CREATE TABLE churn_watch (
    customer_id uuid PRIMARY KEY,
    churn       text
);
CREATE TABLE win_back_state (
    id          int    PRIMARY KEY CHECK (id = 1),
    last_run_id bigint NOT NULL
);
