-- Each customer's analytics as of the last full recompute, stored so that reads, segments and campaigns query a
-- table (indexed, evaluated in SQL) instead of scoring the whole population in memory on every request.
-- Written in one transaction by the recompute (replace all rows of the run); recompute_runs says which run is live.

CREATE TABLE recompute_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of          timestamptz NOT NULL,
    horizon_days   int         NOT NULL,
    model_fit_id   bigint      REFERENCES model_fits (id),
    customers      int         NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL
);

CREATE TABLE customer_scores (
    customer_id            uuid PRIMARY KEY,
    run_id                 bigint           NOT NULL REFERENCES recompute_runs (id),
    orders                 int              NOT NULL,
    net_spend              numeric(16,2)    NOT NULL,
    first_order_at         timestamptz,
    last_order_at          timestamptz,
    days_since_last_order  int,
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
    -- 'low' | 'medium' | 'high'
    churn                  text             NOT NULL
);
CREATE INDEX customer_scores_group ON customer_scores (rfm_group);
CREATE INDEX customer_scores_quadrant ON customer_scores (quadrant);
