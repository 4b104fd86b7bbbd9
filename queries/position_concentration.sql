-- position_concentration: where along the answer divergence happens (relative-position bins; first/middle/last).
--
-- For every (sampler, rl_model) pair: positions are binned by relative position
-- (bin = floor(position * position_bins / (n_tokens - 1)), capped at position_bins - 1, i.e. floor of
-- rel_position * position_bins computed exactly; one-token answers fall in bin 0), and split into segments:
-- 'first' = position < edge_tokens; else 'last' = position >= n_tokens - edge_tokens; else 'middle'
-- (answers shorter than 2 * edge_tokens have no middle; their shared positions count as 'first').
-- n_tokens of an answer comes from generations.
-- Per bin and per segment: mean JS, share over threshold, the share of the group's positions in it
-- and the share of the group's over-threshold positions in it; lift = share_of_over / share_of_tokens
-- (> 1: divergence concentrates there).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold    DOUBLE   0.1   JS threshold, nats; a position is over when js >= js_threshold
--   position_bins   INTEGER  20    number of equal-width relative-position bins over [0, 1]
--   edge_tokens     INTEGER  32    length, in tokens, of the 'first' and 'last' segments
--
-- Tables: tokens, generations
--
-- Columns (one row per sampler, rl_model, segment, bin):
--   sampler, rl_model   as in tokens
--   segment             'bin' (a relative-position bin) or 'first' / 'middle' / 'last'
--   bin                 0-based bin index for segment 'bin'; NULL for first/middle/last
--   rel_position_lo     lower edge of the bin, relative position in [0, 1] (NULL for segments)
--   rel_position_hi     upper edge of the bin, relative position in [0, 1] (NULL for segments)
--   n_tokens            positions in the bin or segment
--   mean_js             mean JS, nats
--   share_over          share of its positions with js >= js_threshold, fraction
--   share_of_tokens     its share of the group's positions, fraction
--   share_of_over       its share of the group's over-threshold positions, fraction (NULL if none over)
--   lift                share_of_over / share_of_tokens

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE position_bins = COALESCE(getvariable('position_bins'), 20)::INTEGER;
SET VARIABLE edge_tokens = COALESCE(getvariable('edge_tokens'), 32)::INTEGER;

WITH t AS (  -- one scan: positions, JS sum and positions over the threshold per (bin, segment) of each group
    SELECT tk.sampler, tk.rl_model,
           least(tk.position::BIGINT * getvariable('position_bins') // greatest(g.n_tokens - 1, 1),
                 getvariable('position_bins') - 1) AS bin,
           CASE WHEN tk.position < getvariable('edge_tokens') THEN 'first'
                WHEN tk.position >= g.n_tokens - getvariable('edge_tokens') THEN 'last'
                ELSE 'middle' END AS part,
           count(*) AS n, sum(tk.js::DOUBLE) AS sum_js, count_if(tk.js::DOUBLE >= getvariable('js_threshold')) AS n_over
    FROM tokens AS tk JOIN generations AS g USING (generation_id)
    GROUP BY ALL
),
g AS (
    SELECT sampler, rl_model, sum(n)::BIGINT AS n_group, sum(n_over)::BIGINT AS n_over
    FROM t GROUP BY sampler, rl_model
),
cells AS (
    SELECT sampler, rl_model, 'bin' AS segment, bin, sum(n)::BIGINT AS n_tokens, sum(sum_js) / sum(n) AS mean_js,
           sum(n_over)::BIGINT AS n_cell_over
    FROM t GROUP BY sampler, rl_model, bin
    UNION ALL
    SELECT sampler, rl_model, part AS segment, NULL AS bin, sum(n)::BIGINT, sum(sum_js) / sum(n), sum(n_over)::BIGINT
    FROM t GROUP BY sampler, rl_model, part
)
SELECT c.sampler, c.rl_model, c.segment, c.bin,
       c.bin / getvariable('position_bins') AS rel_position_lo,
       (c.bin + 1) / getvariable('position_bins') AS rel_position_hi,
       c.n_tokens, c.mean_js,
       c.n_cell_over / c.n_tokens AS share_over,
       c.n_tokens / g.n_group AS share_of_tokens,
       c.n_cell_over / nullif(g.n_over, 0) AS share_of_over,
       (c.n_cell_over / nullif(g.n_over, 0)) / (c.n_tokens / g.n_group) AS lift
FROM cells AS c JOIN g USING (sampler, rl_model)
ORDER BY c.sampler <> 'base', c.sampler, c.rl_model, c.segment <> 'bin', c.bin,
         CASE c.segment WHEN 'first' THEN 1 WHEN 'middle' THEN 2 ELSE 3 END;
