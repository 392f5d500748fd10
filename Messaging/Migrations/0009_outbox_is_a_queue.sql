-- The outbox is a queue: the relay deletes a row once the broker has confirmed it, in the transaction that claimed it,
-- instead of marking it sent and keeping it seven days. The change feed (change_events, written in the same statement
-- as the outbox row) is the service's durable record of its events. Poison rows stay, set aside with dead_at.
DELETE FROM outbox_messages WHERE sent_at IS NOT NULL;

-- Every remaining row is unsent: the relay's claim (dead_at IS NULL AND next_attempt_at <= now() ORDER BY seq) is an
-- index scan of the primary key, so the partial index on sent_at only cost an entry per event.
DROP INDEX IF EXISTS outbox_messages_unsent;

-- Nothing looks a row up by id or relies on its uniqueness (ids are version 7 UUIDs made per event), and in a table
-- whose rows leave once published a unique index guards only the few rows waiting; it cost an index entry per event.
ALTER TABLE outbox_messages DROP CONSTRAINT IF EXISTS outbox_messages_id_key;

ALTER TABLE outbox_messages DROP COLUMN IF EXISTS sent_at;
