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
--   delta_quantiles  DOUBLE[]   [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]   quantile levels, fractions in [0, 1]
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

-- How it is computed. Per (group, problem) and per-row bucket (how many thresholds Δ passes each way, the p_base
-- bin) the rows and sums of Δ and |Δ|, so the threshold and bin measures at every level come from those few rows.
-- Rows are counted per bucket of similar Δ, f = ±(1 + max(ceil(64 ln |Δ|) + 3000, 0)) by Δ's sign (0 for Δ = 0),
-- with each bucket's lowest and highest Δ. Δ's quantiles are quantile_cont's: the order statistics floor(h) and
-- ceil(h), 0-based, h = (n - 1) x level, interpolated lo + (hi - lo) x (h - floor(h)); the buckets' running counts
-- say which bucket holds each, and only the rows of those buckets (if their Δ differ) are read again and sorted.
-- A top set is the first k rows of the group in (key, generation_id, position) order, key = -|Δ| or -JS (NULL
-- last), k = ceil(share x tokens of the group); the sets of a group nest. The rows per key bucket (-|f| for |Δ|,
-- ceil(1000 x key) for JS; counted with the Δ buckets in one pass) say which bucket holds each set's k-th row; the
-- rows of that bucket, sorted by (key, generation_id, position), give the set's last row, and a row is in the set
-- when its (key, generation_id, position) is at most that row's, compared in that order. Only the rows in a bucket
-- at most the highest such bucket (a few % of the rows) are read again. Each value is a ratio of two of 24
-- per-problem sums (with the default levels: tokens, sum of |Δ|, tokens past each threshold either way, tokens and
-- sums of Δ and |Δ| per bin, rows in both and in either top set; asymmetry divides a difference of two); a
-- replicate weighs each sum once.
WITH tok AS NOT MATERIALIZED (  -- read again by each use (held whole it was most of the report's memory)
    SELECT sampler, rl_model, generation_id, position,
           logp_rl::DOUBLE - logp_base::DOUBLE AS delta, exp(logp_base::DOUBLE) AS p_base,
           coalesce(-abs(logp_rl::DOUBLE - logp_base::DOUBLE), 'inf'::DOUBLE) AS key_delta,
           coalesce(-js::DOUBLE, 'inf'::DOUBLE) AS key_js,
           -- Δ's bucket, ascending with Δ: ±(1 + max(ceil(64 ln |Δ|) + 3000, 0)) by Δ's sign, 0 for Δ = 0
           sign(delta) * (1 + greatest(ceil(64 * ln(abs(delta))) + 3000, 0)) AS f_delta,
           -abs(coalesce(f_delta, 0)) AS b_delta, ceil(key_js * 1000) AS b_js  -- the keys' buckets
    FROM tokens
),
levels AS (  -- each list's distinct values, ascending; a level's rank is its place in its list
    SELECT (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('delta_thresholds')) AS x)) AS thresholds,
           (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('base_prob_edges')) AS x)) AS edges,
           (SELECT list(DISTINCT x ORDER BY x) FROM (SELECT unnest(getvariable('top_shares')) AS x)) AS shares
),
pairs AS (  -- per group, Δ bucket and JS key bucket: rows, and the lowest and highest Δ
    SELECT sampler, rl_model, f_delta AS f, b_js, count(*) AS n, min(delta) AS lo, max(delta) AS hi FROM tok GROUP BY ALL
),
fine AS (  -- per group and Δ bucket: rows, and the lowest and highest Δ
    SELECT sampler, rl_model, f, sum(n) AS n, min(lo) AS lo, max(hi) AS hi FROM pairs GROUP BY ALL
),
buckets AS (  -- per group, how many rows have each key bucket, for each order: -|f_delta| for |Δ|, ceil(1000 x key) for JS
    SELECT sampler, rl_model, TRUE AS is_delta, -abs(coalesce(f, 0)) AS b, sum(n) AS n FROM fine GROUP BY ALL
    UNION ALL
    SELECT sampler, rl_model, FALSE, b_js AS b, sum(n) FROM pairs GROUP BY ALL
),
sizes AS (  -- per group: tokens, and k of each top share
    SELECT c.sampler, c.rl_model, c.n_tokens, list_transform(l.shares, lambda s: ceil(s * c.n_tokens)::BIGINT) AS k
    FROM (SELECT sampler, rl_model, sum(n)::BIGINT AS n_tokens FROM buckets WHERE is_delta GROUP BY sampler, rl_model) AS c,
         levels AS l
),
cuts AS (  -- per group, order and top share rank i: the key bucket that holds the set's last row (the k-th), and that
    -- row's place in the bucket (k less the rows of lower buckets); none for k = 0
    SELECT b.sampler, b.rl_model, b.is_delta, z.i, b.b, (z.k - (b.below - b.n))::BIGINT AS rank_in_bucket
    FROM (SELECT *, sum(n) OVER (PARTITION BY sampler, rl_model, is_delta ORDER BY b) AS below FROM buckets) AS b
    JOIN (SELECT sampler, rl_model, unnest(range(1, len(k) + 1)) AS i, unnest(k) AS k
          FROM sizes) AS z USING (sampler, rl_model)
    WHERE b.below - b.n < z.k AND z.k <= b.below
),
candidates AS MATERIALIZED (  -- the rows in a bucket at most the highest cut bucket of an order: every top set's rows
    SELECT t.sampler, t.rl_model, t.generation_id, t.position, t.key_delta, t.key_js, t.b_delta, t.b_js
    FROM tok AS t
    WHERE t.b_delta <= (SELECT max(b) FROM cuts WHERE is_delta) OR t.b_js <= (SELECT max(b) FROM cuts WHERE NOT is_delta)
),
last_in AS (  -- per group and share rank i: each order's top set's last row as (key, generation_id, position); a row
    -- is in the set when its own (key, generation_id, position) is at most that, compared in that order
    SELECT x.sampler, x.rl_model, x.i,
           any_value(s.sorted[x.rank_in_bucket]) FILTER (WHERE x.is_delta) AS last_delta,
           any_value(s.sorted[x.rank_in_bucket]) FILTER (WHERE NOT x.is_delta) AS last_js
    FROM cuts AS x JOIN (
        SELECT c.sampler, c.rl_model, TRUE AS is_delta, c.b_delta AS b,
               list(row(c.key_delta, c.generation_id, c.position) ORDER BY c.key_delta, c.generation_id, c.position) AS sorted
        FROM candidates AS c SEMI JOIN cuts AS x
             ON x.sampler = c.sampler AND x.rl_model = c.rl_model AND x.is_delta AND x.b = c.b_delta
        GROUP BY ALL
        UNION ALL
        SELECT c.sampler, c.rl_model, FALSE, c.b_js,
               list(row(c.key_js, c.generation_id, c.position) ORDER BY c.key_js, c.generation_id, c.position)
        FROM candidates AS c SEMI JOIN cuts AS x
             ON x.sampler = c.sampler AND x.rl_model = c.rl_model AND NOT x.is_delta AND x.b = c.b_js
        GROUP BY ALL
    ) AS s ON s.sampler = x.sampler AND s.rl_model = x.rl_model AND s.is_delta = x.is_delta AND s.b = x.b
    GROUP BY x.sampler, x.rl_model, x.i
),
overlap AS (  -- per group, top share of rank i and problem: rows in both top sets, in either
    SELECT m.sampler, m.rl_model, m.i, g.problem_id,
           count(*) FILTER (WHERE m.in_delta AND m.in_js) AS n_both, count(*) AS n_either
    FROM (SELECT c.sampler, c.rl_model, c.generation_id, l.i,
                 coalesce(row(c.key_delta, c.generation_id, c.position) <= l.last_delta, FALSE) AS in_delta,
                 coalesce(row(c.key_js, c.generation_id, c.position) <= l.last_js, FALSE) AS in_js
          FROM candidates AS c JOIN last_in AS l ON l.sampler = c.sampler AND l.rl_model = c.rl_model) AS m
    JOIN generations AS g USING (generation_id)
    WHERE m.in_delta OR m.in_js
    GROUP BY m.sampler, m.rl_model, m.i, g.problem_id
),
placed AS (  -- each Δ bucket with the group's values below it and the group's number of values
    SELECT *, sum(n) OVER (PARTITION BY sampler, rl_model ORDER BY f) - n AS below,
           sum(n) OVER (PARTITION BY sampler, rl_model) AS n_values
    FROM fine WHERE f IS NOT NULL
),
wanted AS (  -- per group and quantile level i: the order statistics (1-based) floor(h) + 1 (side 0) and ceil(h) + 1
    -- (side 1), h = (n - 1) x level as quantile_cont takes them, with the bucket that holds each
    SELECT w.sampler, w.rl_model, w.i, w.h, w.side, p.f, p.lo, p.hi, (w.rank - p.below)::BIGINT AS rank_in_bucket
    FROM (SELECT *, CASE side WHEN 0 THEN floor(h) ELSE ceil(h) END::BIGINT + 1 AS rank
          FROM (SELECT sampler, rl_model, i, side,
                       (n_values - 1) * CASE WHEN getvariable('delta_quantiles')[i] BETWEEN 0 AND 1
                                             THEN getvariable('delta_quantiles')[i]
                                             ELSE error('delta_quantiles: each level must lie in [0, 1]') END AS h
                FROM (SELECT DISTINCT sampler, rl_model, n_values::BIGINT AS n_values FROM placed),
                     range(1, len(getvariable('delta_quantiles')) + 1) AS r(i), (VALUES (0), (1)) AS s(side))) AS w
    JOIN placed AS p ON p.sampler = w.sampler AND p.rl_model = w.rl_model AND p.below < w.rank AND w.rank <= p.below + p.n
),
near AS (  -- the Δ of the buckets holding an order statistic and more than one value, sorted
    SELECT t.sampler, t.rl_model, t.f_delta AS f, list(t.delta ORDER BY t.delta) AS sorted
    FROM (SELECT * FROM tok WHERE f_delta IN (SELECT f FROM wanted WHERE lo < hi)) AS t
    SEMI JOIN wanted AS w ON w.sampler = t.sampler AND w.rl_model = t.rl_model AND w.f = t.f_delta AND w.lo < w.hi
    GROUP BY ALL
),
quantiles_of AS (  -- per group: Δ's quantiles, interpolated as quantile_cont does: lo + (hi - lo) x (h - floor(h))
    SELECT sampler, rl_model, list(CASE WHEN h = floor(h) THEN v_lo ELSE v_lo + (v_hi - v_lo) * (h - floor(h)) END
                                   ORDER BY i) AS q
    FROM (SELECT w.sampler, w.rl_model, w.i, w.h,
                 any_value(CASE WHEN w.lo = w.hi THEN w.lo ELSE s.sorted[w.rank_in_bucket] END) FILTER (WHERE w.side = 0) AS v_lo,
                 any_value(CASE WHEN w.lo = w.hi THEN w.lo ELSE s.sorted[w.rank_in_bucket] END) FILTER (WHERE w.side = 1) AS v_hi
          FROM wanted AS w LEFT JOIN near AS s ON s.sampler = w.sampler AND s.rl_model = w.rl_model AND s.f = w.f
          GROUP BY w.sampler, w.rl_model, w.i, w.h)
    GROUP BY sampler, rl_model
),
cells AS (  -- per group, problem and bucket: rows, sum of Δ, sum of |Δ| (summed per answer first: a join of the
    -- answers' few rows with generations instead of every token's)
    SELECT a.sampler, a.rl_model, g.problem_id, a.n_ge, a.n_le, a.bin,
           sum(a.n) AS n, sum(a.sum_delta) AS sum_delta, sum(a.sum_abs) AS sum_abs
    FROM (  -- each CASE settles the common rows (below the smallest threshold, in the last bin) without a lambda
        SELECT t.sampler, t.rl_model, t.generation_id,
               CASE WHEN t.delta < l.thresholds[1] THEN 0 ELSE len(list_filter(l.thresholds, lambda x: t.delta >= x)) END AS n_ge,
               CASE WHEN t.delta > -l.thresholds[1] THEN 0 ELSE len(list_filter(l.thresholds, lambda x: t.delta <= -x)) END AS n_le,
               CASE WHEN t.p_base >= l.edges[-1] THEN len(l.edges) ELSE len(list_filter(l.edges, lambda x: t.p_base >= x)) END AS bin,
               count(*) AS n, sum(t.delta) AS sum_delta, sum(abs(t.delta)) AS sum_abs
        FROM tok AS t, levels AS l
        GROUP BY t.sampler, t.rl_model, t.generation_id, n_ge, n_le, bin
    ) AS a JOIN generations AS g USING (generation_id)
    GROUP BY a.sampler, a.rl_model, g.problem_id, a.n_ge, a.n_le, a.bin
),
per_problem AS (
    SELECT sampler, rl_model, problem_id, sum(n) AS n, sum(sum_abs) AS sum_abs FROM cells
    GROUP BY sampler, rl_model, problem_id
),
quantities AS (  -- per group, quantity and problem: a sum a replicate weighs. A quantity is a kind and a level's rank i:
    -- 'n' tokens and 'abs' the sum of |Δ| (i = 0); 'ge' / 'le' tokens with Δ >= t / Δ <= -t (threshold of rank i: Δ
    -- passes it when n_ge >= i, n_le >= i, the thresholds ascending); 'bin_n', 'bin_delta', 'bin_abs' tokens, sum of
    -- Δ and of |Δ| in the p_base bin of edge rank i (p_base >= that edge and below the next; every p_base < 2, the
    -- last bin's end); 'both' / 'either' rows in both / either top set of share rank i
    SELECT sampler, rl_model, 'n' AS kind, 0 AS i, problem_id, n::DOUBLE AS value FROM per_problem
    UNION ALL
    SELECT sampler, rl_model, 'abs', 0, problem_id, sum_abs FROM per_problem
    UNION ALL
    SELECT c.sampler, c.rl_model, k.kind, r.i, c.problem_id,
           coalesce(sum(c.n) FILTER (WHERE CASE k.kind WHEN 'ge' THEN c.n_ge ELSE c.n_le END >= r.i), 0)::DOUBLE
    FROM cells AS c, (SELECT unnest(range(1, len(thresholds) + 1)) AS i FROM levels) AS r, (VALUES ('ge'), ('le')) AS k(kind)
    GROUP BY c.sampler, c.rl_model, k.kind, r.i, c.problem_id
    UNION ALL
    SELECT c.sampler, c.rl_model, k.kind, r.i, c.problem_id,
           coalesce(sum(CASE k.kind WHEN 'bin_n' THEN c.n WHEN 'bin_delta' THEN c.sum_delta ELSE c.sum_abs END)
                        FILTER (WHERE c.bin = r.i), 0)::DOUBLE
    FROM cells AS c, (SELECT unnest(range(1, len(edges) + 1)) AS i FROM levels) AS r,
         (VALUES ('bin_n'), ('bin_delta'), ('bin_abs')) AS k(kind)
    GROUP BY c.sampler, c.rl_model, k.kind, r.i, c.problem_id
    UNION ALL
    SELECT p.sampler, p.rl_model, k.kind, r.i, p.problem_id,
           coalesce(CASE k.kind WHEN 'both' THEN o.n_both ELSE o.n_either END, 0)::DOUBLE
    FROM per_problem AS p CROSS JOIN (SELECT unnest(range(1, len(shares) + 1)) AS i FROM levels) AS r
    CROSS JOIN (VALUES ('both'), ('either')) AS k(kind)
    LEFT JOIN overlap AS o ON o.sampler = p.sampler AND o.rl_model = p.rl_model AND o.i = r.i
                          AND o.problem_id = p.problem_id
),
sums AS (  -- per group and quantity: its values over the dataset's problems (tokenshift_problem_numbers order), a
    -- 0 for each problem outside the group (every quantity has a row per problem of the group)
    SELECT sampler, rl_model, kind, i, list(value ORDER BY p) AS v
    FROM (SELECT q.sampler, q.rl_model, q.kind, q.i, pn.p, q.value
          FROM quantities AS q JOIN tokenshift_problem_numbers AS pn USING (problem_id)
          UNION ALL
          SELECT k.sampler, k.rl_model, k.kind, k.i, m.p, 0
          FROM (SELECT DISTINCT sampler, rl_model, kind, i FROM quantities) AS k
          JOIN (SELECT g.sampler, g.rl_model, pn.p
                FROM (SELECT DISTINCT sampler, rl_model FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
                ANTI JOIN per_problem AS pp
                     ON pp.sampler = g.sampler AND pp.rl_model = g.rl_model AND pp.problem_id = pn.problem_id) AS m
               ON m.sampler = k.sampler AND m.rl_model = k.rl_model)
    GROUP BY sampler, rl_model, kind, i
),
weighted AS (  -- per group, quantity and replicate r: its weighted sum over problems; r = -1 weighs each problem once
    -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT s.sampler, s.rl_model, s.kind, s.i, w.r, list_dot_product(w.w, s.v) AS d
    FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w
    UNION ALL
    SELECT sampler, rl_model, kind, i, -1, sum(value) FROM quantities GROUP BY sampler, rl_model, kind, i
),
measures AS (  -- each measure and level: the quantity it divides (less a second one, for asymmetry) and its divisor
    SELECT m.measure, l.thresholds[r.i] AS level, m.num, m.minus, m.den, r.i
    FROM (VALUES ('share_ge', 'ge', NULL, 'n'), ('share_le', 'le', NULL, 'n'), ('asymmetry', 'ge', 'le', 'n'))
             AS m(measure, num, minus, den),
         levels AS l, range(1, len(l.thresholds) + 1) AS r(i)
    UNION ALL
    SELECT m.measure, l.edges[r.i], m.num, NULL, m.den, r.i
    FROM (VALUES ('bin_mean_delta', 'bin_delta', 'bin_n'), ('bin_token_share', 'bin_n', 'n'),
                 ('bin_abs_share', 'bin_abs', 'abs')) AS m(measure, num, den),
         levels AS l, range(1, len(l.edges) + 1) AS r(i)
    UNION ALL
    SELECT 'jaccard_top', l.shares[r.i], 'both', NULL, 'either', r.i FROM levels AS l, range(1, len(l.shares) + 1) AS r(i)
),
ratios AS (  -- per group, measure, level and replicate: the measure's value (r = -1: the value itself)
    SELECT a.sampler, a.rl_model, m.measure, m.level, a.r, (a.d - coalesce(b.d, 0)) / nullif(c.d, 0) AS value
    FROM measures AS m
    JOIN weighted AS a ON a.kind = m.num AND a.i = m.i
    LEFT JOIN weighted AS b ON b.kind = m.minus AND b.i = m.i AND b.sampler = a.sampler AND b.rl_model = a.rl_model
                           AND b.r = a.r
    JOIN weighted AS c ON c.kind = m.den AND c.i = CASE WHEN m.den IN ('n', 'abs') THEN 0 ELSE m.i END
                      AND c.sampler = a.sampler AND c.rl_model = a.rl_model AND c.r = a.r
),
point AS (
    SELECT sampler, rl_model, measure, level, value FROM ratios WHERE r = -1
),
intervals AS (
    SELECT sampler, rl_model, measure, level, quantile_cont(value, 0.025) AS value_lo,
           quantile_cont(value, 0.975) AS value_hi
    FROM ratios WHERE r >= 0
    GROUP BY sampler, rl_model, measure, level
),
groups AS (
    SELECT z.sampler, z.rl_model, p.n_problems, z.n_tokens, q.q
    FROM sizes AS z JOIN quantiles_of AS q USING (sampler, rl_model)
    JOIN (SELECT sampler, rl_model, count(*) AS n_problems FROM per_problem GROUP BY sampler, rl_model) AS p
         USING (sampler, rl_model)
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
