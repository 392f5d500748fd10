-- Each customer's analytics as of the last full recompute, stored so that reads, segments and campaigns query a
-- table (indexed, evaluated in SQL) instead of scoring the whole population in memory on every request.
-- Written in one transaction by the recompute (TRUNCATE, then binary COPY of every customer's row); recompute_runs says which
-- run is live (the latest). A customer who has no order yet has r = f = m = 0, rfm_cell = rfm_group = '' and churn null.

CREATE TABLE recompute_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of          timestamptz NOT NULL,
    horizon_days   int         NOT NULL,
    model_fit_id   bigint      REFERENCES model_fits (id),
    customers      int         NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    -- Customers the models were fitted on when this run fitted them (a random sample at scale); null: the latest fit was reused.
    fit_sample     int
);

CREATE TABLE customer_scores (
    customer_id            uuid PRIMARY KEY,
    run_id                 bigint           NOT NULL REFERENCES recompute_runs (id),
    orders                 int              NOT NULL,
    net_spend              numeric(16,2)    NOT NULL,
    first_order_at         timestamptz,
    last_order_at          timestamptz,
    days_since_last_order  int,
    -- Orders and net spend over the current-value window (12 months) and the RFM window (24 months) before the run's as_of.
    orders_12m             int              NOT NULL,
    spend_12m              numeric(16,2)    NOT NULL,
    orders_24m             int              NOT NULL,
    spend_24m              numeric(16,2)    NOT NULL,
    -- RFM scores 1-5 (0 when the customer has no order), the cell such as '555' and the named group.
    r                      smallint         NOT NULL,
    f                      smallint         NOT NULL,
    m                      smallint         NOT NULL,
    rfm_cell               text             NOT NULL,
    rfm_group              text             NOT NULL,
    -- From the BG/NBD and Gamma-Gamma models (null when no models are fitted).
    p_active               double precision,
    expected_purchases     double precision,
    expected_order_value   numeric(16,2),
    clv                    numeric(16,2),
    -- 'vip' | 'growable' | 'maintain' | 'abandon' (lower case of QuadrantKind), null without models.
    quadrant               text,
    decile                 smallint,
    ladder_stage           text             NOT NULL,
    -- 'low' | 'medium' | 'high'; null for a customer without orders. churn_basis: 'model' or 'interval' (days since the
    -- last order against the usual interval), '' without orders.
    churn                  text,
    churn_basis            text             NOT NULL
);
CREATE INDEX customer_scores_group ON customer_scores (rfm_group);
CREATE INDEX customer_scores_quadrant ON customer_scores (quadrant);
