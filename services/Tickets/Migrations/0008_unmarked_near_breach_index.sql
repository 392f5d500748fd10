-- The scheduler marks each running target once as it comes within the near-breach window ("due_at <= now + window AND
-- NOT near_breach"). Through the primary key that range holds every target already marked, a window's worth (about
-- 5,000 of 100,000 in the tickets bench), each checked on its heap page: 16-20 ms a pass, most of a pass with nothing due.
-- The unmarked targets alone, indexed by due time, leave the pass only the few that entered the window since the last one.
CREATE INDEX sla_targets_unmarked ON sla_targets (due_at) WHERE NOT near_breach;
