-- The rewards catalogue: coupons, goods, points + cash and lottery draws. stock is a count, -1 for unlimited;
-- redemptions and draws take it with a conditional update, so it never goes below zero (never oversold).
-- Ids and coupon codes sort bytewise (COLLATE "C") whatever the database's locale, so paging order is stable.
CREATE TABLE rewards (
    id                 text          COLLATE "C" PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,64}$'),
    name               text          NOT NULL,
    kind               smallint      NOT NULL,  -- RewardKind: 1 coupon, 2 goods, 3 points + cash, 4 lottery
    points_cost        bigint        NOT NULL CHECK (points_cost >= 0),
    cash_price         numeric(14,2) NOT NULL DEFAULT 0 CHECK (cash_price >= 0),
    min_tier           text          NOT NULL DEFAULT '',  -- lowest tier allowed; '' for everyone
    per_member_limit   integer       NOT NULL DEFAULT 0 CHECK (per_member_limit >= 0),  -- 0: no limit
    stock              integer       NOT NULL CHECK (stock >= -1),
    active             boolean       NOT NULL,
    coupon_face_value  numeric(14,2) CHECK (coupon_face_value > 0),
    coupon_threshold   numeric(14,2) CHECK (coupon_threshold >= 0),
    coupon_valid_days  integer       CHECK (coupon_valid_days BETWEEN 1 AND 3650),
    free_draws_per_day integer       NOT NULL DEFAULT 0 CHECK (free_draws_per_day >= 0),
    created_at         timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL
);

-- A lottery's prize table, in the order the chances are laid out on [0, 1); the rest of [0, 1) is "nothing".
CREATE TABLE prizes (
    reward_id         text             NOT NULL REFERENCES rewards (id) ON DELETE CASCADE,
    id                text             NOT NULL,
    position          integer          NOT NULL,
    name              text             NOT NULL,
    kind              smallint         NOT NULL,  -- PrizeKind: 1 nothing, 2 points, 3 coupon, 4 goods
    probability       double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    stock             integer          NOT NULL CHECK (stock >= -1),
    points            bigint           NOT NULL DEFAULT 0 CHECK (points >= 0),
    coupon_face_value numeric(14,2)    CHECK (coupon_face_value > 0),
    coupon_threshold  numeric(14,2)    CHECK (coupon_threshold >= 0),
    coupon_valid_days integer          CHECK (coupon_valid_days BETWEEN 1 AND 3650),
    PRIMARY KEY (reward_id, id)
);

-- One row per redemption; a retried request (same idempotency key) finds its row and returns it.
CREATE TABLE redemptions (
    id              uuid          PRIMARY KEY,
    customer_id     uuid          NOT NULL REFERENCES accounts (customer_id),
    reward_id       text          NOT NULL REFERENCES rewards (id),
    quantity        integer       NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    points_spent    bigint        NOT NULL CHECK (points_spent >= 0),
    cash_due        numeric(14,2) NOT NULL CHECK (cash_due >= 0),
    balance_after   bigint        NOT NULL,
    idempotency_key text          NOT NULL,
    redeemed_at     timestamptz   NOT NULL,
    CONSTRAINT redemptions_idempotency_key UNIQUE (idempotency_key)
);
CREATE INDEX redemptions_member_reward ON redemptions (customer_id, reward_id);

-- One row per lottery draw, with a snapshot of the prize won (the prize table may change later).
-- draw_day is the day in the brand's calendar, for the free draws per day.
CREATE TABLE draws (
    id              uuid        PRIMARY KEY,
    customer_id     uuid        NOT NULL REFERENCES accounts (customer_id),
    reward_id       text        NOT NULL REFERENCES rewards (id),
    draw_day        date        NOT NULL,
    free_draw       boolean     NOT NULL,
    points_spent    bigint      NOT NULL CHECK (points_spent >= 0),
    prize           jsonb       NOT NULL,
    balance_after   bigint      NOT NULL,
    idempotency_key text        NOT NULL,
    drawn_at        timestamptz NOT NULL,
    CONSTRAINT draws_idempotency_key UNIQUE (idempotency_key)
);
CREATE INDEX draws_member_day ON draws (customer_id, reward_id, draw_day);

-- Coupons issued by a redemption or won in a draw. status: 1 issued, 2 used; an issued coupon past
-- valid_until reads as expired. Using one is a conditional update on status = 1, so it is used once.
CREATE TABLE coupons (
    code              text          COLLATE "C" PRIMARY KEY,
    customer_id       uuid          NOT NULL REFERENCES accounts (customer_id),
    reward_id         text          NOT NULL REFERENCES rewards (id),
    redemption_id     uuid          REFERENCES redemptions (id),
    draw_id           uuid          REFERENCES draws (id),
    face_value        numeric(14,2) NOT NULL CHECK (face_value > 0),
    threshold         numeric(14,2) NOT NULL CHECK (threshold >= 0),
    valid_from        timestamptz   NOT NULL,
    valid_until       timestamptz   NOT NULL,
    status            smallint      NOT NULL DEFAULT 1 CHECK (status IN (1, 2)),
    used_at           timestamptz,
    used_order_ref    text,
    used_order_amount numeric(14,2),
    CONSTRAINT coupons_used_has_order CHECK ((status = 2) = (used_at IS NOT NULL AND used_order_ref IS NOT NULL)),
    CONSTRAINT coupons_one_origin CHECK (num_nonnulls(redemption_id, draw_id) = 1)
);
CREATE INDEX coupons_redemption ON coupons (redemption_id) WHERE redemption_id IS NOT NULL;
CREATE INDEX coupons_draw ON coupons (draw_id) WHERE draw_id IS NOT NULL;
CREATE INDEX coupons_customer ON coupons (customer_id);
