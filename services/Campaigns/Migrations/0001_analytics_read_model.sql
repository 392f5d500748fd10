-- The campaign service's analytics read model, kept from the customer and loyalty events (and rebuilt from the
-- customer service's export). Money is in yuan; an order's net value is amount_paid - amount_refunded.

CREATE TABLE customers (
    customer_id       uuid PRIMARY KEY,
    -- CustomerSnapshot.Version of the profile fields below; an older snapshot never overwrites a newer one.
    profile_version   bigint      NOT NULL DEFAULT 0,
    registered_at     timestamptz,
    birthday_month    smallint,
    region            text,
    city              text,
    tags              text[]      NOT NULL DEFAULT '{}',
    marketing_consent boolean     NOT NULL DEFAULT false,
    -- From TierChanged / points events: the value of the highest (Sequence, timestamp) seen.
    tier              text,
    tier_seq          bigint      NOT NULL DEFAULT -1,
    tier_at           timestamptz,
    points_balance    bigint,
    points_seq        bigint      NOT NULL DEFAULT -1,
    points_at         timestamptz
);
CREATE INDEX customers_tags ON customers USING gin (tags);

CREATE TABLE orders (
    order_id          uuid PRIMARY KEY,
    customer_id       uuid          NOT NULL,
    external_order_id text,
    store_id          text,
    channel           text,
    amount_paid       numeric(14,2) NOT NULL,
    -- The order's running refund total (OrderRefunded.TotalRefunded, monotonic: the greatest seen wins).
    amount_refunded   numeric(14,2) NOT NULL DEFAULT 0,
    -- Null while a refund has overtaken its OrderPaid; such a row counts nowhere until the payment arrives.
    paid_at           timestamptz
);
CREATE INDEX orders_customer ON orders (customer_id, paid_at);
CREATE INDEX orders_paid_at ON orders (paid_at);

CREATE TABLE order_lines (
    order_id     uuid          NOT NULL REFERENCES orders (order_id),
    line_no      int           NOT NULL,
    sku          text          NOT NULL,
    product_name text,
    quantity     int           NOT NULL,
    unit_price   numeric(14,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

CREATE TABLE model_fits (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of              timestamptz      NOT NULL,
    fitted_at          timestamptz      NOT NULL,
    r                  double precision NOT NULL,
    alpha_days         double precision NOT NULL,
    a                  double precision NOT NULL,
    b                  double precision NOT NULL,
    bgnbd_ll           double precision NOT NULL,
    bgnbd_customers    int              NOT NULL,
    p                  double precision NOT NULL,
    q                  double precision NOT NULL,
    gamma              double precision NOT NULL,
    gg_ll              double precision NOT NULL,
    gg_customers       int              NOT NULL
);
