-- How many opportunities each owner has per (stage, furthest stage), and for won ones the summed time from created
-- to won: what the pipeline report groups by. Kept by the service in the transaction of every create, move, close and
-- reopen (PipelineCounts), so the report for a whole team or everyone reads a few hundred rows instead of grouping
-- the opportunities table. owner_team '' and furthest_stage '' stand for NULL (key columns cannot be NULL).
-- won_seconds is numeric so that adding and taking away is exact: it always equals the sum over the rows.
CREATE TABLE pipeline_counts (
    owner_id       text    NOT NULL,
    owner_team     text    NOT NULL,
    stage          text    NOT NULL,
    furthest_stage text    NOT NULL,
    opportunities  integer NOT NULL,
    won_seconds    numeric NOT NULL,
    PRIMARY KEY (owner_id, owner_team, stage, furthest_stage)
);
CREATE INDEX pipeline_counts_team ON pipeline_counts (owner_team);

INSERT INTO pipeline_counts (owner_id, owner_team, stage, furthest_stage, opportunities, won_seconds)
SELECT owner_id, coalesce(owner_team, ''), stage, coalesce(furthest_stage, ''), count(*),
       coalesce(sum(extract(epoch FROM won_at - created_at)), 0)
FROM opportunities GROUP BY 1, 2, 3, 4;
