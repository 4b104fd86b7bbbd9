-- direction: the signed shift of the sampled token, Δlog p = logp_rl - logp_base, along each sampler's answers.
--
-- For every (sampler, rl_model) of the tokens table (Δ > 0: RL gives the sampled token more probability than
-- base; the same sign whoever sampled): quantiles of Δ; the share of tokens with Δ >= +t and with Δ <= -t at
-- each t and their difference (the sign asymmetry: > 0 when RL raises more sampled tokens than it lowers);
-- by bins of the base's probability of the token, p_base = exp(logp_base), the mean Δ, the share of the
-- tokens and the share of all |Δ| they carry (does RL spend its change on tokens the base found unlikely?);
-- and the Jaccard overlap between the top positions by |Δ| and the top positions by JS at the same count
-- (k = ceil(top_share x tokens of the group); ties by generation_id, position), |both| / |either|.
--
-- Intervals: 95% percentile bootstrap over problems (problem_id from generations; problems of a group
-- numbered 0..n-1 in problem_id order), the draws of the other interval recipes (accuracy), each value a
-- ratio of sums over the drawn problems (the top sets and bins are fixed from all rows, not redrawn).
-- Quantiles have no interval (value_lo, value_hi NULL): a bootstrap of token quantiles would redraw every token.
-- The draws come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   delta_quantiles  DOUBLE[]   [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]   quantile levels, fractions
--   delta_thresholds DOUBLE[]   [0.1, 0.3, 1.0]     t of the shares Δ >= +t and Δ <= -t, nats (> 0)
--   base_prob_edges  DOUBLE[]   [0, 0.1, 0.5, 0.9]  lower edges of the p_base bins (the last bin ends at 1)
--   top_shares       DOUBLE[]   [0.01, 0.05]        fractions of a group's tokens in each top set
--   bootstrap_reps   INTEGER    1000                bootstrap replicates
--   bootstrap_seed   INTEGER    0                   seed of the replicates' draws (>= 0)
--
-- Tables: tokens, generations
--
-- Columns (one row per sampler, rl_model, measure, level):
--   sampler, rl_model        whose answers, and the RL model compared with base
--   measure                  'quantile' (value: Δ at quantile level, nats), 'share_ge' (share with Δ >= level),
--                            'share_le' (share with Δ <= -level), 'asymmetry' (share_ge - share_le),
--                            'bin_mean_delta' (mean Δ of the tokens whose p_base is in the bin starting at
--                            level, nats), 'bin_token_share' (their share of the tokens), 'bin_abs_share'
--                            (their share of the sum of |Δ|), 'jaccard_top' (overlap of the top level x tokens
--                            by |Δ| and by JS)
--   level                    the quantile level, t, bin's lower edge or top share
--   value, value_lo, value_hi   the value and its 95% bootstrap interval (fractions, or nats for Δ)
--   n_problems, n_tokens     problems and token positions of the group

SET VARIABLE delta_quantiles = COALESCE(getvariable('delta_quantiles'), [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])::DOUBLE[];
SET VARIABLE delta_thresholds = COALESCE(getvariable('delta_thresholds'), [0.1, 0.3, 1.0])::DOUBLE[];
SET VARIABLE base_prob_edges = COALESCE(getvariable('base_prob_edges'), [0, 0.1, 0.5, 0.9])::DOUBLE[];
SET VARIABLE top_shares = COALESCE(getvariable('top_shares'), [0.01, 0.05])::DOUBLE[];
SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH tok AS (
    SELECT t.sampler, t.rl_model, g.problem_id, t.generation_id, t.position,
           t.logp_rl::DOUBLE - t.logp_base::DOUBLE AS delta, exp(t.logp_base::DOUBLE) AS p_base, t.js::DOUBLE AS js
    FROM tokens AS t JOIN generations AS g USING (generation_id)
),
groups AS (
    SELECT sampler, rl_model, count(DISTINCT problem_id) AS n_problems, count(*) AS n_tokens,
           quantile_cont(delta, getvariable('delta_quantiles')) AS q
    FROM tok GROUP BY sampler, rl_model
),
edges AS (
    SELECT e.edge, coalesce(lead(e.edge) OVER (ORDER BY e.edge), 2.0) AS upper
    FROM (SELECT DISTINCT unnest(getvariable('base_prob_edges')) AS edge) AS e
),
ranked AS (
    SELECT sampler, rl_model, problem_id,
           row_number() OVER (PARTITION BY sampler, rl_model ORDER BY abs(delta) DESC, generation_id, position) AS by_delta,
           row_number() OVER (PARTITION BY sampler, rl_model ORDER BY js DESC, generation_id, position) AS by_js
    FROM tok
),
items AS (  -- per group, measure, level and problem: what a replicate sums (num / den)
    SELECT t.sampler, t.rl_model, m.measure, th.level, t.problem_id,
           sum(CASE m.measure WHEN 'share_ge' THEN (t.delta >= th.level)::INT
                              WHEN 'share_le' THEN (t.delta <= -th.level)::INT
                              ELSE (t.delta >= th.level)::INT - (t.delta <= -th.level)::INT END)::DOUBLE AS num,
           count(*)::DOUBLE AS den
    FROM tok AS t CROSS JOIN (SELECT unnest(getvariable('delta_thresholds')) AS level) AS th
    CROSS JOIN (SELECT unnest(['share_ge', 'share_le', 'asymmetry']) AS measure) AS m
    GROUP BY ALL
    UNION ALL
    SELECT t.sampler, t.rl_model, m.measure, e.edge, t.problem_id,
           sum(CASE WHEN t.p_base >= e.edge AND t.p_base < e.upper THEN
                   CASE m.measure WHEN 'bin_mean_delta' THEN t.delta WHEN 'bin_token_share' THEN 1 ELSE abs(t.delta) END
                   ELSE 0 END)::DOUBLE,
           sum(CASE m.measure WHEN 'bin_mean_delta' THEN (t.p_base >= e.edge AND t.p_base < e.upper)::INT
                              WHEN 'bin_token_share' THEN 1 ELSE abs(t.delta) END)::DOUBLE
    FROM tok AS t CROSS JOIN edges AS e
    CROSS JOIN (SELECT unnest(['bin_mean_delta', 'bin_token_share', 'bin_abs_share']) AS measure) AS m
    GROUP BY ALL
    UNION ALL
    SELECT r.sampler, r.rl_model, 'jaccard_top', s.level, r.problem_id,
           count_if(r.by_delta <= ceil(s.level * g.n_tokens) AND r.by_js <= ceil(s.level * g.n_tokens))::DOUBLE,
           count_if(r.by_delta <= ceil(s.level * g.n_tokens) OR r.by_js <= ceil(s.level * g.n_tokens))::DOUBLE
    FROM ranked AS r JOIN groups AS g USING (sampler, rl_model)
    CROSS JOIN (SELECT unnest(getvariable('top_shares')) AS level) AS s
    GROUP BY ALL
),
numbered AS (
    SELECT *, dense_rank() OVER (PARTITION BY sampler, rl_model ORDER BY problem_id) - 1 AS idx
    FROM items
),
sized AS (
    SELECT n.*, g.n_problems AS n_set FROM numbered AS n JOIN groups AS g USING (sampler, rl_model)
),
point AS (
    SELECT sampler, rl_model, measure, level, sum(num) / nullif(sum(den), 0) AS value
    FROM sized GROUP BY ALL
),
sizes AS (SELECT DISTINCT n_problems AS n FROM groups),
weights AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT * FROM tokenshift_bootstrap_weights((SELECT list(n ORDER BY n) FROM sizes),
                                               getvariable('bootstrap_reps'), getvariable('bootstrap_seed'))
),
intervals AS (
    SELECT sampler, rl_model, measure, level, quantile_cont(value, 0.025) AS value_lo,
           quantile_cont(value, 0.975) AS value_hi
    FROM (SELECT s.sampler, s.rl_model, s.measure, s.level, w.r,
                 sum(w.w * s.num) / nullif(sum(w.w * s.den), 0) AS value
          FROM sized AS s JOIN weights AS w ON w.n = s.n_set AND w.idx = s.idx
          GROUP BY ALL)
    GROUP BY ALL
),
quantiles AS (
    SELECT sampler, rl_model, 'quantile' AS measure, unnest(getvariable('delta_quantiles')) AS level,
           unnest(q) AS value, NULL::DOUBLE AS value_lo, NULL::DOUBLE AS value_hi, n_problems, n_tokens
    FROM groups
)
SELECT * FROM quantiles
UNION ALL
SELECT p.sampler, p.rl_model, p.measure, p.level, p.value, i.value_lo, i.value_hi, g.n_problems, g.n_tokens
FROM point AS p JOIN groups AS g USING (sampler, rl_model)
LEFT JOIN intervals AS i USING (sampler, rl_model, measure, level)
ORDER BY sampler <> 'base', sampler, rl_model,
         list_position(['quantile', 'share_ge', 'share_le', 'asymmetry', 'bin_mean_delta', 'bin_token_share',
                        'bin_abs_share', 'jaccard_top'], measure), level;
