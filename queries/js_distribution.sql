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

-- Each CTE reads tokens itself: a CTE used twice would be materialized (a copy of every row).
WITH n AS (
    SELECT sampler, rl_model, count(*) AS n_tokens,
           quantile_cont(js::DOUBLE, getvariable('js_percentiles')) AS js_at
    FROM tokens GROUP BY sampler, rl_model
),
percentiles AS (
    SELECT sampler, rl_model, 'js_percentile' AS measure,
           unnest(getvariable('js_percentiles')) AS level, unnest(js_at) AS value
    FROM n
),
thresholds AS (
    SELECT t.sampler, t.rl_model, 'share_over' AS measure, th.level,
           avg(CASE WHEN t.js::DOUBLE >= th.level THEN 1.0 ELSE 0.0 END) AS value
    FROM tokens AS t CROSS JOIN (SELECT unnest(getvariable('js_thresholds')) AS level) AS th
    GROUP BY t.sampler, t.rl_model, th.level
)
SELECT r.sampler, r.rl_model, r.measure, r.level, r.value, n.n_tokens
FROM (SELECT * FROM percentiles UNION ALL SELECT * FROM thresholds) AS r
JOIN n USING (sampler, rl_model)
ORDER BY r.sampler <> 'base', r.sampler, r.rl_model, r.measure, r.level;
