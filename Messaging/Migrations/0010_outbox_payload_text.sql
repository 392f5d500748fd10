-- The outbox payload as text: the relay hands it to the JSON deserializer as it is, where reading jsonb back out as text
-- was a third of the relay's Postgres CPU. Writers still send each event's JSON once; Postgres parses it once, into the
-- change_events row, which keeps jsonb (partners' filters and reports query into it).
ALTER TABLE outbox_messages ALTER COLUMN payload TYPE text USING payload::text;
