-- Outbox.AddAsync / AddRangeAsync now write the change events themselves, in the same statement as the outbox rows (a
-- data-modifying WITH): same transaction, so the same tx, and the same order. The statement trigger with its transition
-- table cost more Postgres CPU per write than the whole rest of a bare outbox insert. Every writer of outbox rows goes
-- through Outbox; a row inserted by hand no longer reaches the change feed.
DROP TRIGGER IF EXISTS change_events_from_outbox ON outbox_messages;
DROP FUNCTION IF EXISTS change_events_from_outbox_rows();
