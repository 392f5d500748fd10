-- The change feed from the outbox, once per statement instead of once per row (a bulk import inserts hundreds of
-- outbox rows in one statement), and a wake-up for the feed's readers: NOTIFY is delivered when the writing
-- transaction commits, so a reader reads the new events at once instead of at its next poll.
CREATE OR REPLACE FUNCTION change_events_from_outbox_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- "Crm.Contracts.OrderPaid, Crm.Contracts" → "OrderPaid"
    INSERT INTO change_events (event_type, message_id, payload)
    SELECT regexp_replace(split_part(message_type, ',', 1), '^.*\.', ''), id, payload FROM new_rows ORDER BY seq;
    IF FOUND THEN
        PERFORM pg_notify('change_events', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS change_events_from_outbox ON outbox_messages;
CREATE TRIGGER change_events_from_outbox AFTER INSERT ON outbox_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_from_outbox_rows();
DROP FUNCTION IF EXISTS change_events_from_outbox();
