-- The copy into change_events stays; the NOTIFY leaves the writer's transaction. A transaction that has notified takes
-- a lock shared by every database of the server at commit and holds it through its WAL flush, so every writing
-- transaction of every service committed one after the other (no group commit). Writers now wake readers after
-- their commit instead (Outbox.Wake → ChangeNotifications: readers in the same process at once, other instances by a
-- NOTIFY sent on a connection of its own that writes nothing).
CREATE OR REPLACE FUNCTION change_events_from_outbox_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- "Crm.Contracts.OrderPaid, Crm.Contracts" → "OrderPaid"
    INSERT INTO change_events (event_type, message_id, payload, customer_id)
    SELECT regexp_replace(split_part(message_type, ',', 1), '^.*\.', ''), id, payload, change_event_customer(payload)
    FROM new_rows ORDER BY seq;
    RETURN NULL;
END $$;
