-- Rewards given without spending points (GrantReward: a campaign's coupon, an operator's gesture). One row per grant;
-- a retried call (same idempotency key) finds its row and returns the coupon it issued.
CREATE TABLE reward_grants (
    id              uuid        PRIMARY KEY,
    customer_id     uuid        NOT NULL REFERENCES accounts (customer_id),
    reward_id       text        COLLATE "C" NOT NULL REFERENCES rewards (id),
    reason          text        NOT NULL,
    idempotency_key text        NOT NULL,
    granted_at      timestamptz NOT NULL,
    CONSTRAINT reward_grants_idempotency_key UNIQUE (idempotency_key)
);
-- The per-member limit counts grants with redemptions.
CREATE INDEX reward_grants_member_reward ON reward_grants (customer_id, reward_id);

-- A coupon now comes from a redemption, a draw or a grant: exactly one of them.
ALTER TABLE coupons ADD COLUMN grant_id uuid REFERENCES reward_grants (id);
ALTER TABLE coupons DROP CONSTRAINT coupons_one_origin;
ALTER TABLE coupons ADD CONSTRAINT coupons_one_origin CHECK (num_nonnulls(redemption_id, draw_id, grant_id) = 1);
CREATE INDEX coupons_grant ON coupons (grant_id) WHERE grant_id IS NOT NULL;
