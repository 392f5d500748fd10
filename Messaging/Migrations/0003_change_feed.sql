-- The change feed: every integration event the service commits, kept for partners to read back in a stable order
-- (crm.changes.v1.ChangeFeed). Filled by a trigger on the outbox, so it holds exactly what the outbox holds.
-- Order and resume token: (tx, id). tx is the writing transaction's id; a reader only reads below the oldest
-- transaction still running (pg_snapshot_xmin), where no row can appear any more, so a position once passed
-- never gains a row behind it: resuming after a token misses nothing and repeats nothing.
CREATE TABLE IF NOT EXISTS change_events (
    tx           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    event_type   text        NOT NULL,
    message_id   uuid        NOT NULL,
    payload      jsonb       NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx, id)
);

CREATE OR REPLACE FUNCTION change_events_from_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- "Crm.Contracts.OrderPaid, Crm.Contracts" → "OrderPaid"
    INSERT INTO change_events (event_type, message_id, payload)
    VALUES (regexp_replace(split_part(NEW.message_type, ',', 1), '^.*\.', ''), NEW.id, NEW.payload);
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS change_events_from_outbox ON outbox_messages;
CREATE TRIGGER change_events_from_outbox AFTER INSERT ON outbox_messages
    FOR EACH ROW EXECUTE FUNCTION change_events_from_outbox();
