-- The monthly roll-up also keeps each month's first and last paid order (the first by (paid_at, net), as the recompute
-- picks it), so the full recompute can take order counts, windows, recency and the first order's value from the months
-- instead of aggregating every order. Rows written before this have none: forget the fill so the service refills at
-- start-up (the reports and the recompute read the orders until it has).

ALTER TABLE sales_customer_months
    ADD COLUMN first_paid_at timestamptz,
    ADD COLUMN first_net     numeric(14,2),
    ADD COLUMN last_paid_at  timestamptz;

DELETE FROM sales_rollup_state;
