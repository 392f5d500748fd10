CREATE TABLE orders (
    id                uuid PRIMARY KEY,
    customer_id       uuid          NOT NULL REFERENCES customers (id),
    external_order_id text          NOT NULL,
    store_id          text,
    channel           text          NOT NULL,
    payment_method    text,
    -- Lines as sent by ERP: [{sku, productName, quantity, unitPrice}].
    lines             jsonb         NOT NULL,
    amount_paid       numeric(14,2) NOT NULL CHECK (amount_paid > 0),
    amount_refunded   numeric(14,2) NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount_paid),
    paid_at           timestamptz   NOT NULL,
    recorded_at       timestamptz   NOT NULL,
    CONSTRAINT orders_external_order_id_key UNIQUE (external_order_id)
);
CREATE INDEX orders_customer ON orders (customer_id, paid_at DESC, id);

CREATE TABLE refunds (
    refund_id   text PRIMARY KEY,
    order_id    uuid          NOT NULL REFERENCES orders (id),
    amount      numeric(14,2) NOT NULL CHECK (amount > 0),
    reason      text,
    refunded_at timestamptz   NOT NULL,
    recorded_at timestamptz   NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id);
