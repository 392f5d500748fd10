-- Running SLA targets move out of the wide tickets row into sla_targets: one narrow row per target whose clock runs
-- (not met, not breached, not paused, ticket open). The scheduler and ListAtRisk read only this table; a breach deletes
-- the row instead of updating the ticket's SLA columns under the partial indexes, which made every escalation a
-- non-HOT update of the wide row with an entry in every tickets index. tickets keeps the record (due, met, breached).
-- The key starts with due_at: the scheduler's "due by now" and ListAtRisk's keyset pages are ranges of it, and whoever
-- stops a target knows its due time from the ticket row, so no second index is needed.
CREATE TABLE sla_targets (
    due_at      timestamptz NOT NULL,
    ticket_id   uuid        NOT NULL,
    target      smallint    NOT NULL,  -- 1 first response, 2 resolution
    near_breach boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (due_at, ticket_id, target)
);
INSERT INTO sla_targets (due_at, ticket_id, target, near_breach)
SELECT fr_due_at, id, 1, near_breach_logged FROM tickets
WHERE fr_met_at IS NULL AND fr_breached_at IS NULL AND state BETWEEN 1 AND 4
UNION ALL
SELECT res_due_at, id, 2, near_breach_logged FROM tickets
WHERE res_met_at IS NULL AND res_breached_at IS NULL AND res_due_at IS NOT NULL AND state BETWEEN 1 AND 4;

DROP INDEX tickets_fr_running;
DROP INDEX tickets_res_running;
ALTER TABLE tickets DROP COLUMN near_breach_logged;
-- With no indexed column among those a state change or an escalation writes (assignment aside), room on the page lets
-- those updates be HOT: no new index entries at all.
ALTER TABLE tickets SET (fillfactor = 85);
