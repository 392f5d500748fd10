-- The full recompute rebuilds every index of customer_scores after writing its million rows, and these two took about
-- 4.5 s of index building at 1M customers for readers that do not need them: the distribution counts are a GROUP BY over the
-- whole table, a bucket page walks the primary key in customer order and filters (an index on the group alone cannot give
-- that order: it needs every row of the bucket fetched and sorted), and segment rules on the group or quadrant join all
-- customers anyway. The decile, ladder and churn buckets never had an index.
DROP INDEX IF EXISTS customer_scores_group;
DROP INDEX IF EXISTS customer_scores_quadrant;
