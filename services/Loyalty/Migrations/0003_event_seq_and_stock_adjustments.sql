-- Each account numbers the points and tier events it publishes, 1, 2, 3, ... (taken under the account's row lock
-- with the change), so consumers of absolute values (balance, growth value, tier) can drop a stale event.
-- Events published before this column existed carry no number (0).
ALTER TABLE accounts ADD COLUMN event_seq bigint NOT NULL DEFAULT 0 CHECK (event_seq >= 0);

-- Explicit stock changes (AdjustRewardStock): editing a reward never touches its stock, these do, each once per
-- idempotency key. prize_id is '' for the reward's own stock, else the lottery prize whose stock changed.
CREATE TABLE reward_stock_adjustments (
    idempotency_key text        PRIMARY KEY,
    reward_id       text        COLLATE "C" NOT NULL REFERENCES rewards (id) ON DELETE CASCADE,
    prize_id        text        NOT NULL DEFAULT '',
    delta           integer     NOT NULL CHECK (delta <> 0),
    stock_after     integer     NOT NULL CHECK (stock_after >= 0),
    adjusted_at     timestamptz NOT NULL
);
CREATE INDEX reward_stock_adjustments_reward ON reward_stock_adjustments (reward_id, adjusted_at);
