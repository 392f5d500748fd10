CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE customers (
    id                uuid PRIMARY KEY,
    -- Registration order; the keyset for paging.
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name              text        NOT NULL,
    gender            smallint    NOT NULL DEFAULT 0,
    birthday          date,
    phone             text        NOT NULL,
    email             text,
    region            text,
    city              text,
    address           text,
    education         text,
    occupation        text,
    preferences       text[]      NOT NULL DEFAULT '{}',
    tags              text[]      NOT NULL DEFAULT '{}',
    source_channel    text,
    marketing_consent boolean     NOT NULL DEFAULT false,
    create_request_id text,
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT customers_phone_key UNIQUE (phone),
    CONSTRAINT customers_email_key UNIQUE (email),
    CONSTRAINT customers_create_request_id_key UNIQUE (create_request_id)
);

CREATE INDEX customers_tags ON customers USING gin (tags);
CREATE INDEX customers_region ON customers (region, seq);
CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
