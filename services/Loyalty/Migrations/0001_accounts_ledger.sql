-- One row per member. balance and growth_value always equal the sums of their ledger entries
-- (VerifyAccount proves it); balance is negative only while refunded points are owed.
CREATE TABLE accounts (
    customer_id     uuid PRIMARY KEY,
    balance         bigint      NOT NULL DEFAULT 0,
    growth_value    bigint      NOT NULL DEFAULT 0 CHECK (growth_value >= 0),
    tier            text        NOT NULL,
    check_in_streak integer     NOT NULL DEFAULT 0,
    last_check_in   date,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Immutable: every change of points or growth value is one row, never updated or deleted.
CREATE TABLE ledger_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     uuid        NOT NULL REFERENCES accounts (customer_id),
    kind            smallint    NOT NULL,  -- EntryKind: 1 earn, 2 redeem, 3 expire, 4 adjust, 5 claw-back
    source          text        NOT NULL,  -- order, refund, activity, redemption, admin, expiry
    source_ref      text        NOT NULL,
    points          bigint      NOT NULL,
    growth_value    bigint      NOT NULL,
    balance_after   bigint      NOT NULL,
    note            text,
    idempotency_key text        NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT ledger_entries_idempotency_key UNIQUE (idempotency_key)
);
CREATE INDEX ledger_entries_customer ON ledger_entries (customer_id, id DESC);

-- Earned points still spendable, by the moment they expire. Spending and expiry take the oldest first;
-- when the balance is positive, the open lots add up to it.
CREATE TABLE point_lots (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES accounts (customer_id),
    entry_id    bigint      NOT NULL REFERENCES ledger_entries (id),
    order_id    uuid,
    points      bigint      NOT NULL CHECK (points > 0),
    remaining   bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    earned_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX point_lots_open ON point_lots (customer_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX point_lots_expiring ON point_lots (expires_at) WHERE remaining > 0;

-- What each order earned and how much of it refunds have taken back.
CREATE TABLE order_earnings (
    order_id      uuid PRIMARY KEY,
    customer_id   uuid          NOT NULL REFERENCES accounts (customer_id),
    amount_paid   numeric(14,2) NOT NULL,
    points_earned bigint        NOT NULL,
    points_clawed bigint        NOT NULL DEFAULT 0 CHECK (points_clawed <= points_earned)
);
