-- Partner scoping of the change feed and webhooks, and webhook secrets encrypted at rest.
--
-- 1. Every change event records the customer it concerns (customerId at the top of the payload, or customer.customerId
--    as in CustomerRegistered / CustomerUpdated), so a partner's feed and webhooks can be limited to the customers
--    linked to its systems (a service that knows those links says how, see PartnerChangeScope). NULL: no customer.
ALTER TABLE change_events ADD COLUMN IF NOT EXISTS customer_id uuid;

CREATE OR REPLACE FUNCTION change_event_customer(payload jsonb) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN v::uuid END
    FROM (SELECT coalesce(payload ->> 'customerId', payload #>> '{customer,customerId}') AS v) AS s
$$;

CREATE OR REPLACE FUNCTION change_events_from_outbox_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- "Crm.Contracts.OrderPaid, Crm.Contracts" → "OrderPaid"
    INSERT INTO change_events (event_type, message_id, payload, customer_id)
    SELECT regexp_replace(split_part(message_type, ',', 1), '^.*\.', ''), id, payload, change_event_customer(payload)
    FROM new_rows ORDER BY seq;
    IF FOUND THEN
        PERFORM pg_notify('change_events', '');
    END IF;
    RETURN NULL;
END $$;

UPDATE change_events SET customer_id = change_event_customer(payload) WHERE customer_id IS NULL;

-- 2. A partner's endpoint remembers the systems of the token that created (or last updated) it and gets only events
--    about customers linked to them; NULL: a staff endpoint, every event.
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS systems text[];

-- Endpoints a partner made before this change: their systems are unknown, so they get nothing until the partner
-- updates them (which records its token's systems) and enables them again. The audit log names who made each.
DO $$
BEGIN
    IF to_regclass('audit_events') IS NOT NULL THEN
        UPDATE webhook_endpoints e
        SET systems = '{}', enabled = false, disabled_at = now(), version = version + 1,
            disabled_reason = 'Made before webhooks were limited to the partner''s own customers: update it with your token '
                              || '(that records your systems), then enable it.'
        WHERE e.systems IS NULL
          AND EXISTS (SELECT 1 FROM audit_events a
                      WHERE a.target_id = e.id::text AND a.rpc LIKE '%CreateEndpoint' AND a.role = 'partner');
    END IF;
END $$;

-- 3. The signing secret is stored encrypted (AES-GCM, Messaging/Webhooks/WebhookSecrets) under the key named here;
--    NULL: a row from before, still in clear, which the service encrypts under its current key when it starts.
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS secret_key_id text;
COMMENT ON COLUMN webhook_endpoints.secret IS 'base64(nonce | ciphertext | tag) under secret_key_id; in clear only while secret_key_id IS NULL';
