-- reranking: is RL's top-1 token one base already ranked highly (re-ranking), or new (invention)?
--
-- For every (sampler, rl_model) pair, over all positions (subset 'all') and over high-divergence ones
-- (subset 'over_threshold', js >= js_threshold):
--   the share of positions whose RL top-1 token has base rank <= k (rl_top1_rank_base, 1-based, ties share
--   the best rank), for each k in rank_cutoffs; the distribution of topk_overlap (|top-K base ∩ top-K RL| / K,
--   one row per observed value, rounded to 6 decimals); its mean; the median base rank of the RL top-1.
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold   DOUBLE     0.1            JS threshold, nats, for the 'over_threshold' subset
--   rank_cutoffs   INTEGER[]  [1, 3, 5, 10]  base ranks k for "RL top-1 is in base top-k"
--
-- Tables: tokens
--
-- Columns (one row per sampler, rl_model, subset, measure, level):
--   sampler, rl_model   as in tokens
--   subset              'all' or 'over_threshold'
--   measure             'rl_top1_in_base_topk'     share with rl_top1_rank_base <= level (fraction)
--                       'topk_overlap_share'       share of positions with topk_overlap = level (fraction)
--                       'mean_topk_overlap'        mean topk_overlap, fraction in [0, 1] (level NULL)
--                       'median_rl_top1_rank_base' median base rank of the RL top-1 token (level NULL)
--   level               k (a base rank) or a topk_overlap value; NULL for the summary measures
--   value               see measure
--   n_tokens            positions in the subset

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE rank_cutoffs = COALESCE(getvariable('rank_cutoffs'), [1, 3, 5, 10])::INTEGER[];

-- One scan of tokens into cells (positions per RL top-1 base rank, rounded overlap and over-threshold or not);
-- every measure comes from the cells, the median from the running counts of the ranks (as quantile_cont).
WITH cells AS (
    SELECT sampler, rl_model, rl_top1_rank_base AS rank, round(topk_overlap::DOUBLE, 6) AS overlap,
           js::DOUBLE >= getvariable('js_threshold') AS is_over, count(*) AS n,
           sum(topk_overlap::DOUBLE) AS overlap_sum
    FROM tokens GROUP BY ALL
),
t AS (
    SELECT sampler, rl_model, 'all' AS subset, rank, overlap, n, overlap_sum FROM cells
    UNION ALL
    SELECT sampler, rl_model, 'over_threshold', rank, overlap, n, overlap_sum FROM cells WHERE is_over
),
by_rank AS (
    SELECT sampler, rl_model, subset, rank, sum(n) AS n FROM t GROUP BY ALL
),
running AS (
    SELECT *, sum(n) OVER (PARTITION BY sampler, rl_model, subset ORDER BY rank) - n AS below,
           sum(n) OVER (PARTITION BY sampler, rl_model, subset) AS n_set
    FROM by_rank
),
median AS (  -- quantile_cont(rank, 0.5): the mean of the order statistics floor(h) and ceil(h), h = (n - 1) / 2
    SELECT sampler, rl_model, subset,
           max(rank) FILTER (WHERE below <= floor((n_set - 1) * 0.5))::DOUBLE AS lo,
           max(rank) FILTER (WHERE below <= ceil((n_set - 1) * 0.5))::DOUBLE AS hi,
           any_value((n_set - 1) * 0.5) AS h
    FROM running GROUP BY sampler, rl_model, subset
),
n AS (
    SELECT sampler, rl_model, subset, sum(n)::BIGINT AS n_tokens,
           sum(overlap_sum) / sum(n) AS mean_overlap, any_value(m.lo + (m.hi - m.lo) * (m.h - floor(m.h))) AS median_rank
    FROM t JOIN median AS m USING (sampler, rl_model, subset) GROUP BY sampler, rl_model, subset
),
ranks AS (
    SELECT t.sampler, t.rl_model, t.subset, 'rl_top1_in_base_topk' AS measure, k.level::DOUBLE AS level,
           coalesce(sum(t.n) FILTER (WHERE t.rank <= k.level), 0) / sum(t.n) AS value
    FROM t CROSS JOIN (SELECT unnest(getvariable('rank_cutoffs')) AS level) AS k
    GROUP BY t.sampler, t.rl_model, t.subset, k.level
),
overlap_dist AS (
    SELECT t.sampler, t.rl_model, t.subset, 'topk_overlap_share' AS measure, t.overlap AS level,
           sum(t.n) / any_value(n.n_tokens) AS value
    FROM t JOIN n USING (sampler, rl_model, subset)
    GROUP BY t.sampler, t.rl_model, t.subset, t.overlap
),
summary AS (
    SELECT sampler, rl_model, subset, 'mean_topk_overlap' AS measure, NULL::DOUBLE AS level, mean_overlap AS value
    FROM n
    UNION ALL
    SELECT sampler, rl_model, subset, 'median_rl_top1_rank_base', NULL::DOUBLE, median_rank FROM n
)
SELECT r.sampler, r.rl_model, r.subset, r.measure, r.level, r.value, n.n_tokens
FROM (SELECT * FROM ranks UNION ALL SELECT * FROM overlap_dist UNION ALL SELECT * FROM summary) AS r
JOIN n USING (sampler, rl_model, subset)
ORDER BY r.sampler <> 'base', r.sampler, r.rl_model, r.subset, r.measure, r.level;
