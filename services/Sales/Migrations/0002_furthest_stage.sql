-- The furthest stage each opportunity has reached (lost does not count; won is past every open stage), kept by the
-- service on every move, so the stage-conversion report reads one column instead of grouping the whole stage history.
ALTER TABLE opportunities ADD COLUMN furthest_stage text;

-- Earlier rows, from their history, in the default pipeline's order (the service keeps it by the configured order).
UPDATE opportunities o SET furthest_stage = f.to_stage
FROM (SELECT DISTINCT ON (h.opportunity_id) h.opportunity_id, h.to_stage
      FROM stage_history h
      JOIN unnest('{qualification,needs_analysis,design_proposal,negotiation,won}'::text[]) WITH ORDINALITY AS s(code, ord) ON s.code = h.to_stage
      ORDER BY h.opportunity_id, s.ord DESC) f
WHERE f.opportunity_id = o.id;

-- The forecast and the open pipeline read only open opportunities: an index-only scan of this instead of the table.
CREATE INDEX opportunities_stage_owner ON opportunities (stage, owner_id) INCLUDE (expected_close_date, amount);
