-- js_distribution: percentile curve of the per-token JS divergence and the share of tokens over each threshold.
--
-- For every (sampler, rl_model) pair of the tokens table: the JS divergence (nats, in [0, ln 2]) at each
-- percentile level (continuous quantile, linear interpolation), and the share of token positions whose
-- JS is >= each threshold ("over" the threshold; the study's "meaningful divergence").
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_percentiles  DOUBLE[]  [0.5, 0.75, 0.9, 0.95, 0.99, 0.999]  percentile levels, fractions in (0, 1)
--   js_thresholds   DOUBLE[]  [0.01, 0.05, 0.1, 0.2]               JS thresholds, nats
--
-- Tables: tokens
--
-- Columns (one row per sampler, rl_model, measure, level):
--   sampler    model that sampled the responses ('base' or an RL model)
--   rl_model   RL model compared with base
--   measure    'js_percentile' or 'share_over'
--   level      percentile level (fraction) for js_percentile; JS threshold (nats) for share_over
--   value      JS in nats for js_percentile; share of tokens with js >= level, fraction in [0, 1], for share_over
--   n_tokens   token positions in the (sampler, rl_model) group

SET VARIABLE js_percentiles = COALESCE(getvariable('js_percentiles'), [0.5, 0.75, 0.9, 0.95, 0.99, 0.999])::DOUBLE[];
SET VARIABLE js_thresholds = COALESCE(getvariable('js_thresholds'), [0.01, 0.05, 0.1, 0.2])::DOUBLE[];

WITH n AS (  -- one scan: the percentiles and, per threshold, the positions at or above it (histogram of -js)
    SELECT sampler, rl_model, count(*) AS n_tokens,
           quantile_cont(js::DOUBLE, getvariable('js_percentiles')) AS js_at,
           histogram(-js::DOUBLE, [-level FOR level IN getvariable('js_thresholds')]) AS below_minus
    FROM tokens GROUP BY sampler, rl_model
),
percentiles AS (
    SELECT sampler, rl_model, 'js_percentile' AS measure,
           unnest(getvariable('js_percentiles')) AS level, unnest(js_at) AS value
    FROM n
),
thresholds AS (  -- js >= level where -js <= -level: the histogram's bins up to bound -level
    SELECT n.sampler, n.rl_model, 'share_over' AS measure, th.level,
           coalesce(list_sum([b.value FOR b IN map_entries(n.below_minus) IF b.key <= -th.level]), 0) / n.n_tokens
               AS value
    FROM n CROSS JOIN (SELECT DISTINCT unnest(getvariable('js_thresholds')) AS level) AS th
)
SELECT r.sampler, r.rl_model, r.measure, r.level, r.value, n.n_tokens
FROM (SELECT * FROM percentiles UNION ALL SELECT * FROM thresholds) AS r
JOIN n USING (sampler, rl_model)
ORDER BY r.sampler <> 'base', r.sampler, r.rl_model, r.measure, r.level;
