-- A stage move writes stage, furthest_stage, close and won columns, version and updated_at. opportunities_stage_owner
-- had stage among its columns, so every move was a non-HOT update: a new entry in each of the table's seven indexes.
-- Without it (and with room left on each page) a move is a HOT update that touches no index. The forecast and the open
-- pipeline read open opportunities by a plain scan for everyone (measured within 2 × the aggregate scan; the target is
-- 3 ×) and through opportunities_owner for one owner.
DROP INDEX IF EXISTS opportunities_stage_owner;
ALTER TABLE opportunities SET (fillfactor = 90);
