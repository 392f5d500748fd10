-- The ids partner systems (erp, tmall, pos-sz, ...) know a customer by: unique per system, one per customer and system.
CREATE TABLE customer_external_ids (
    system      text        NOT NULL,
    external_id text        NOT NULL,
    customer_id uuid        NOT NULL REFERENCES customers (id),
    created_at  timestamptz NOT NULL,
    CONSTRAINT customer_external_ids_pkey PRIMARY KEY (system, external_id),
    CONSTRAINT customer_external_ids_one_per_system UNIQUE (customer_id, system)
);
