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
-- Intervals: 95% Poisson percentile bootstrap over problems (problem_id from generations), the Poisson weights of
-- the accuracy recipe (each of the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1)
-- draw in each replicate, a function of bootstrap_seed, the replicate and the number; see accuracy), each value a
-- ratio of weighted sums over the group's problems (the top sets and bins are fixed from all rows, not redrawn).
-- Quantiles have no interval (value_lo, value_hi NULL): a bootstrap of token quantiles would redraw every token.
-- The weights come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   delta_quantiles  DOUBLE[]   [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]   quantile levels, fractions
--   delta_thresholds DOUBLE[]   [0.1, 0.3, 1.0]     t of the shares Δ >= +t and Δ <= -t, nats (> 0)
--   base_prob_edges  DOUBLE[]   [0, 0.1, 0.5, 0.9]  lower edges of the p_base bins (the last bin ends at 1)
--   top_shares       DOUBLE[]   [0.01, 0.05]        fractions of a group's tokens in each top set
--   bootstrap_reps   INTEGER    1000                bootstrap replicates
--   bootstrap_seed   INTEGER    0                   seed of the replicates' weights (>= 0)
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

-- tokens is read once (with its answers' problem_id) and aggregated per (group, problem) and per-row bucket (how many
-- thresholds Δ passes each way, the p_base bin, how many top sets the row is in), so the measures at every level
-- come from those few rows. A top set is the first k rows in (key, generation_id, position) order, key = -|Δ| or
-- -JS (NULL last): its k-th key v comes from a bounded heap of keys (min(key, k)), and among the rows whose key is v
-- the top set takes the first ones by (generation_id, position), as many as the heap's first k keys hold v.
WITH tok AS NOT MATERIALIZED (  -- read again by each use: held whole it was most of the report's memory
    SELECT t.sampler, t.rl_model, g.problem_id, t.generation_id, t.position,
           t.logp_rl::DOUBLE - t.logp_base::DOUBLE AS delta, exp(t.logp_base::DOUBLE) AS p_base, t.js::DOUBLE AS js,
           coalesce(-abs(t.logp_rl::DOUBLE - t.logp_base::DOUBLE), 'inf'::DOUBLE) AS key_delta,
           coalesce(-t.js::DOUBLE, 'inf'::DOUBLE) AS key_js
    FROM tokens AS t JOIN generations AS g USING (generation_id)
),
groups AS (
    SELECT sampler, rl_model, count(DISTINCT problem_id) AS n_problems, count(*) AS n_tokens,
           quantile_cont(delta, getvariable('delta_quantiles')) AS q
    FROM tok GROUP BY sampler, rl_model
),
levels AS (  -- each list's distinct values, ascending; a level's rank is its place in its list
    SELECT (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('delta_thresholds')) AS x)) AS thresholds,
           (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('base_prob_edges')) AS x)) AS edges,
           (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('top_shares')) AS x)) AS shares
),
heaps AS (  -- per group, the smallest max(k) keys of each order, ascending; k = ceil(share x tokens of the group)
    SELECT t.sampler, t.rl_model, any_value(z.k) AS k,
           min(t.key_delta, z.k_max) AS h_delta, min(t.key_js, z.k_max) AS h_js
    FROM tok AS t
    JOIN (SELECT sampler, rl_model, k, greatest(list_max(k), 1) AS k_max
          FROM (SELECT g.sampler, g.rl_model, list_transform(l.shares, lambda s: ceil(s * g.n_tokens)::BIGINT) AS k
                FROM groups AS g, levels AS l)) AS z USING (sampler, rl_model)
    GROUP BY t.sampler, t.rl_model
),
bounds AS (  -- per group and top share of rank i: the k-th key and how many of the first k keys equal it
    SELECT sampler, rl_model, i, 'delta' AS order_by, h_delta[k[i]] AS v,
           len(list_filter(h_delta[1:k[i]], lambda x: x = h_delta[k[i]])) AS need
    FROM heaps, range(1, len(k) + 1) AS r(i) WHERE k[i] > 0
    UNION ALL
    SELECT sampler, rl_model, i, 'js', h_js[k[i]], len(list_filter(h_js[1:k[i]], lambda x: x = h_js[k[i]]))
    FROM heaps, range(1, len(k) + 1) AS r(i) WHERE k[i] > 0
),
ties AS (  -- the rows whose key is a k-th key, in (generation_id, position) order
    SELECT *, row_number() OVER (PARTITION BY sampler, rl_model, i, order_by ORDER BY generation_id, position) AS rn
    FROM (SELECT b.*, t.generation_id, t.position
          FROM (SELECT * FROM tok WHERE key_delta IN (SELECT v FROM bounds WHERE order_by = 'delta')
                                     OR key_js IN (SELECT v FROM bounds WHERE order_by = 'js')) AS t
          JOIN bounds AS b ON b.sampler = t.sampler AND b.rl_model = t.rl_model
                          AND b.v = CASE b.order_by WHEN 'delta' THEN t.key_delta ELSE t.key_js END)
),
cutoffs AS (  -- per group, the last row of each nonempty top set as a key: a row is in the set when its key is <=
    SELECT sampler, rl_model,
           list({'v': v, 'g': generation_id, 'p': position}) FILTER (WHERE order_by = 'delta') AS cut_delta,
           list(v) FILTER (WHERE order_by = 'delta') AS v_delta,
           list({'v': v, 'g': generation_id, 'p': position}) FILTER (WHERE order_by = 'js') AS cut_js,
           list(v) FILTER (WHERE order_by = 'js') AS v_js
    FROM ties WHERE rn = need
    GROUP BY sampler, rl_model
),
cells AS (  -- per group, problem and bucket: rows, sum of Δ, sum of |Δ|
    SELECT t.sampler, t.rl_model, t.problem_id,
           len(list_filter(l.thresholds, lambda x: t.delta >= x)) AS n_ge,
           len(list_filter(l.thresholds, lambda x: t.delta <= -x)) AS n_le,
           len(list_filter(l.edges, lambda x: t.p_base >= x)) AS bin,
           -- the top sets nest (shares ascending), so a row in n of them is in those of the n largest shares
           -- (the whole key is compared only where the row's key is a k-th key: elsewhere the key alone decides)
           CASE WHEN list_contains(c.v_delta, t.key_delta)
                THEN len(list_filter(c.cut_delta, lambda x: {'v': t.key_delta, 'g': t.generation_id, 'p': t.position} <= x))
                ELSE coalesce(len(list_filter(c.v_delta, lambda x: t.key_delta < x)), 0) END AS tops_delta,
           CASE WHEN list_contains(c.v_js, t.key_js)
                THEN len(list_filter(c.cut_js, lambda x: {'v': t.key_js, 'g': t.generation_id, 'p': t.position} <= x))
                ELSE coalesce(len(list_filter(c.v_js, lambda x: t.key_js < x)), 0) END AS tops_js,
           count(*) AS n, sum(t.delta) AS sum_delta, sum(abs(t.delta)) AS sum_abs
    FROM tok AS t LEFT JOIN cutoffs AS c USING (sampler, rl_model), levels AS l
    GROUP BY t.sampler, t.rl_model, t.problem_id, n_ge, n_le, bin, tops_delta, tops_js
),
per_problem AS (
    SELECT sampler, rl_model, problem_id, sum(n) AS n, sum(sum_abs) AS sum_abs FROM cells
    GROUP BY sampler, rl_model, problem_id
),
items AS (  -- per group, measure, level and problem: what a replicate sums (num / den)
    -- a threshold of rank i: Δ >= it when n_ge >= i (the thresholds ascend); Δ <= -it when n_le >= i
    SELECT p.sampler, p.rl_model, m.measure, l.thresholds[i] AS level, p.problem_id,
           coalesce(CASE m.measure WHEN 'share_ge' THEN sum(c.n) FILTER (WHERE c.n_ge >= i)
                                   WHEN 'share_le' THEN sum(c.n) FILTER (WHERE c.n_le >= i)
                                   ELSE coalesce(sum(c.n) FILTER (WHERE c.n_ge >= i), 0)
                                        - coalesce(sum(c.n) FILTER (WHERE c.n_le >= i), 0) END, 0)::DOUBLE AS num,
           any_value(p.n)::DOUBLE AS den
    FROM per_problem AS p, levels AS l, range(1, len(l.thresholds) + 1) AS r(i),
         (SELECT unnest(['share_ge', 'share_le', 'asymmetry']) AS measure) AS m,
         cells AS c
    WHERE c.sampler = p.sampler AND c.rl_model = p.rl_model AND c.problem_id = p.problem_id
    GROUP BY p.sampler, p.rl_model, m.measure, i, level, p.problem_id
    UNION ALL
    -- the bin of edge rank i: p_base >= that edge and below the next (every p_base < 2, the last bin's end)
    SELECT p.sampler, p.rl_model, m.measure, l.edges[i] AS level, p.problem_id,
           coalesce(CASE m.measure WHEN 'bin_mean_delta' THEN sum(c.sum_delta) FILTER (WHERE c.bin = i)
                                   WHEN 'bin_token_share' THEN sum(c.n) FILTER (WHERE c.bin = i)
                                   ELSE sum(c.sum_abs) FILTER (WHERE c.bin = i) END, 0)::DOUBLE,
           CASE m.measure WHEN 'bin_mean_delta' THEN coalesce(sum(c.n) FILTER (WHERE c.bin = i), 0)
                          WHEN 'bin_token_share' THEN any_value(p.n) ELSE any_value(p.sum_abs) END::DOUBLE
    FROM per_problem AS p, levels AS l, range(1, len(l.edges) + 1) AS r(i),
         (SELECT unnest(['bin_mean_delta', 'bin_token_share', 'bin_abs_share']) AS measure) AS m,
         cells AS c
    WHERE c.sampler = p.sampler AND c.rl_model = p.rl_model AND c.problem_id = p.problem_id
    GROUP BY p.sampler, p.rl_model, m.measure, i, level, p.problem_id
    UNION ALL
    -- the top share of rank i (of S): a row is in its top set when it is in at least S - i + 1 of them (they nest)
    SELECT p.sampler, p.rl_model, 'jaccard_top', l.shares[i] AS level, p.problem_id,
           coalesce(sum(c.n) FILTER (WHERE c.tops_delta >= len(l.shares) - i + 1
                                       AND c.tops_js >= len(l.shares) - i + 1), 0)::DOUBLE,
           coalesce(sum(c.n) FILTER (WHERE c.tops_delta >= len(l.shares) - i + 1
                                       OR c.tops_js >= len(l.shares) - i + 1), 0)::DOUBLE
    FROM per_problem AS p, levels AS l, range(1, len(l.shares) + 1) AS r(i), cells AS c
    WHERE c.sampler = p.sampler AND c.rl_model = p.rl_model AND c.problem_id = p.problem_id
    GROUP BY p.sampler, p.rl_model, i, level, p.problem_id
),
point AS (
    SELECT sampler, rl_model, measure, level, sum(num) / nullif(sum(den), 0) AS value
    FROM items GROUP BY ALL
),
sums AS (  -- per group, measure and level: num and den over the dataset's problems (tokenshift_problem_numbers order)
    SELECT g.sampler, g.rl_model, g.measure, g.level,
           list(coalesce(i.num, 0) ORDER BY pn.p) AS num, list(coalesce(i.den, 0) ORDER BY pn.p) AS den
    FROM (SELECT DISTINCT sampler, rl_model, measure, level FROM items) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN items AS i ON i.sampler = g.sampler AND i.rl_model = g.rl_model AND i.measure = g.measure
                        AND i.level = g.level AND i.problem_id = pn.problem_id
    GROUP BY g.sampler, g.rl_model, g.measure, g.level
),
intervals AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT sampler, rl_model, measure, level, quantile_cont(value, 0.025) AS value_lo,
           quantile_cont(value, 0.975) AS value_hi
    FROM (SELECT s.sampler, s.rl_model, s.measure, s.level, w.r,
                 list_dot_product(w.w, s.num) / nullif(list_dot_product(w.w, s.den), 0) AS value
          FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY sampler, rl_model, measure, level
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
