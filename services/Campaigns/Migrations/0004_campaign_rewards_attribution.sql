-- What a campaign gives (a loyalty coupon reward), whom it holds out (a control group) and how long its orders count
-- (the attribution window). Delivery status gains 'control': held out, no message, no coupon, not against the cap.
ALTER TABLE campaigns ADD COLUMN reward_id text COLLATE "C";
ALTER TABLE campaigns ADD COLUMN control_share_percent integer NOT NULL DEFAULT 0 CHECK (control_share_percent BETWEEN 0 AND 50);
ALTER TABLE campaigns ADD COLUMN attribution_window_days integer NOT NULL DEFAULT 14 CHECK (attribution_window_days BETWEEN 1 AND 365);

-- The coupon the loyalty service issued for a delivery (its GrantReward's idempotency key is derived from the same
-- campaign, customer and occurrence, so a retry gets this same code back).
CREATE TABLE campaign_coupons (
    campaign_id uuid          NOT NULL REFERENCES campaigns (campaign_id),
    customer_id uuid          NOT NULL,
    occurrence  text          COLLATE "C" NOT NULL,
    code        text          COLLATE "C" NOT NULL UNIQUE,
    reward_id   text          NOT NULL,
    face_value  numeric(14,2) NOT NULL,
    issued_at   timestamptz   NOT NULL,
    PRIMARY KEY (campaign_id, customer_id, occurrence)
);

-- Coupons used at the till (loyalty's CouponUsed), any coupon; a campaign's are those in campaign_coupons.
CREATE TABLE coupon_uses (
    code        text          COLLATE "C" PRIMARY KEY,
    customer_id uuid          NOT NULL,
    reward_id   text          NOT NULL,
    face_value  numeric(14,2) NOT NULL,
    order_ref   text          NOT NULL,
    used_at     timestamptz   NOT NULL
);
