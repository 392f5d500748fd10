-- The monthly sales roll-up: per brand-time month and customer, the orders paid in it at their net value (orders refunded in
-- full left out), so an unfiltered report by month, quarter or year reads these rows instead of every order. Kept by the
-- read model's writes (an order or a refund recomputes its customer's month from the orders) and refilled in full by the
-- rebuild and when the brand's time zone changes. A row exists only while the customer has a counted order in the month.

CREATE TABLE sales_customer_months (
    month        date          NOT NULL, -- first day of the month in the brand's time zone
    customer_id  uuid          NOT NULL,
    orders       int           NOT NULL,
    net          numeric(16,2) NOT NULL,
    max_ticket   numeric(14,2) NOT NULL,
    min_ticket   numeric(14,2) NOT NULL,
    PRIMARY KEY (month, customer_id)
);

-- The time zone the months were cut in and when the last full refill finished; no row: never filled, the reports scan orders.
CREATE TABLE sales_rollup_state (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    time_zone  text        NOT NULL,
    filled_at  timestamptz NOT NULL
);
