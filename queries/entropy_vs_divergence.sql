-- entropy_vs_divergence: JS divergence by base-entropy bin, and how many high-divergence tokens are forks.
--
-- For every (sampler, rl_model) pair, token positions are put into `entropy_bins` equal-count bins of the
-- base entropy (bin = 1 + floor((rank - 1) * entropy_bins / (n - 1)), rank = 1-based rank of entropy_base
-- in the group, ties sharing the lowest rank, so equal entropies share a bin; bin 1 = lowest entropy).
-- Per bin: mean JS (nats) and the share of positions with js >= js_threshold.
-- A "fork" is a position whose entropy_base is >= the fork_quantile quantile of entropy_base in its group
-- (fork_quantile 0.8 = the top 20% highest-entropy positions); over_share_in_forks is the share of the
-- group's over-threshold positions that are forks (if divergence ignored entropy it would be ~1 - fork_quantile).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold   DOUBLE   0.1   JS threshold, nats; a position is high-divergence when js >= js_threshold
--   entropy_bins   INTEGER  10    number of equal-count base-entropy bins (10 = deciles)
--   fork_quantile  DOUBLE   0.8   quantile of entropy_base above which a position is a fork
--
-- Tables: tokens
--
-- Columns (one row per sampler, rl_model, entropy_bin; the last five repeat per group):
--   sampler, rl_model      as in tokens
--   entropy_bin            1..entropy_bins, by increasing base entropy
--   entropy_min            lowest entropy_base in the bin, nats
--   entropy_max            highest entropy_base in the bin, nats
--   n_tokens               positions in the bin
--   mean_js                mean JS in the bin, nats
--   share_over             share of the bin's positions with js >= js_threshold, fraction
--   share_of_over          share of the group's over-threshold positions that fall in this bin, fraction
--   fork_entropy_cutoff    entropy_base cutoff of a fork in the group, nats
--   fork_token_share       share of the group's positions that are forks, fraction
--   n_over                 over-threshold positions in the group
--   over_share_in_forks    share of the group's over-threshold positions that are forks, fraction (NULL if none over)
--   n_group_tokens         positions in the group

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE entropy_bins = COALESCE(getvariable('entropy_bins'), 10)::INTEGER;
SET VARIABLE fork_quantile = COALESCE(getvariable('fork_quantile'), 0.8)::DOUBLE;

-- Two scans of tokens, no window or sort over its rows. The first sums positions per bucket of similar entropies,
-- f = ceil(64 x ln(entropy)) (-inf for 0), with each bucket's lowest and highest entropy; the buckets' running
-- counts say which bucket holds each order statistic needed: bin bound j is the c_j-th smallest entropy,
-- c_j = ceil(j * max(n - 1, 1) / entropy_bins) (bin > j exactly when more than c_j positions have a lower
-- entropy), and the fork cutoff is quantile_cont's, between the order statistics floor(h) and ceil(h), 0-based,
-- h = (n - 1) * fork_quantile. The second reads the positions of those buckets (few), which give the order
-- statistics and are the only buckets a bound or the fork cutoff can split (equal entropies share a bucket): a
-- bucket with no bound in [lowest, highest) and the fork cutoff not in (lowest, highest] lies wholly inside one
-- bin and on one side of the cutoff; the positions of the others are put into their bins one by one.

WITH fine AS (  -- per group and bucket of similar entropies: positions, sums and extremes
    SELECT sampler, rl_model, ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) AS f, min(entropy_base::DOUBLE) AS entropy_min,
           max(entropy_base::DOUBLE) AS entropy_max, count(*) AS n_tokens, sum(js::DOUBLE) AS sum_js,
           count_if(js::DOUBLE >= getvariable('js_threshold')) AS n_over
    FROM tokens GROUP BY sampler, rl_model, f
),
placed AS (  -- each bucket with the group's positions below it and the group's size
    SELECT *, sum(n_tokens) OVER (PARTITION BY sampler, rl_model ORDER BY f) - n_tokens AS below,
           sum(n_tokens) OVER (PARTITION BY sampler, rl_model) AS n_group
    FROM fine
),
wanted AS (  -- per group, the order statistics needed (1-based ranks): j = 1.. the bin bounds, j = 0 and -1 the fork
    -- cutoff's lower and upper neighbours; with the bucket that holds each
    SELECT w.sampler, w.rl_model, w.h, w.j, p.f, (w.rank - p.below)::BIGINT AS rank_in_bucket
    FROM (SELECT *, CASE WHEN j = -1 THEN ceil(h)::BIGINT + 1 WHEN j = 0 THEN floor(h)::BIGINT + 1
                         ELSE (j * greatest(n_group - 1, 1) + getvariable('entropy_bins') - 1) // getvariable('entropy_bins')
                    END AS rank
          FROM (SELECT sampler, rl_model, n_group, h, unnest(range(-1, getvariable('entropy_bins'))) AS j
                FROM (SELECT DISTINCT sampler, rl_model, n_group::BIGINT AS n_group,
                             (n_group::BIGINT - 1) * getvariable('fork_quantile') AS h FROM placed))) AS w
    JOIN placed AS p ON p.sampler = w.sampler AND p.rl_model = w.rl_model AND p.below < w.rank AND w.rank <= p.below + p.n_tokens
),
near AS MATERIALIZED (  -- the positions of the buckets holding an order statistic, each on its own
    SELECT t.sampler, t.rl_model, t.f, t.entropy, t.js
    FROM (SELECT sampler, rl_model, ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) AS f, entropy_base::DOUBLE AS entropy,
                 js::DOUBLE AS js
          FROM tokens WHERE ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) IN (SELECT f FROM wanted)) AS t
    SEMI JOIN wanted AS w ON w.sampler = t.sampler AND w.rl_model = t.rl_model AND w.f = t.f
),
cut AS (  -- per group: the bin bounds and the fork cutoff (quantile_cont's interpolation: lo + (hi - lo) x (h - floor(h)))
    SELECT sampler, rl_model,
           coalesce(list(value ORDER BY j) FILTER (WHERE j > 0), []::DOUBLE[]) AS bounds,
           any_value(value) FILTER (WHERE j = 0)
               + (any_value(value) FILTER (WHERE j = -1) - any_value(value) FILTER (WHERE j = 0))
                 * (any_value(h) - floor(any_value(h))) AS fork_cutoff
    FROM (SELECT w.sampler, w.rl_model, w.h, w.j, s.sorted[w.rank_in_bucket] AS value
          FROM wanted AS w
          JOIN (SELECT sampler, rl_model, f, list(entropy ORDER BY entropy) AS sorted FROM near GROUP BY ALL) AS s
            ON s.sampler = w.sampler AND s.rl_model = w.rl_model AND s.f = w.f)
    GROUP BY sampler, rl_model
),
buckets AS MATERIALIZED (  -- each bucket with its group's cuts, and whether a bound or the fork cutoff splits it
    SELECT b.*, c.bounds, c.fork_cutoff,
           len(list_filter(c.bounds, lambda x: b.entropy_min <= x AND x < b.entropy_max)) > 0
               OR (b.entropy_min < c.fork_cutoff AND c.fork_cutoff <= b.entropy_max) AS split
    FROM fine AS b JOIN cut AS c USING (sampler, rl_model)
),
a AS (  -- per bin; the group's figures are sums over its bins
    SELECT sampler, rl_model, entropy_bin, min(entropy_min) AS entropy_min, max(entropy_max) AS entropy_max,
           sum(n_tokens)::BIGINT AS n_tokens, sum(sum_js) AS sum_js, sum(n_over)::BIGINT AS n_over,
           sum(n_fork)::BIGINT AS n_fork, sum(n_over_fork)::BIGINT AS n_over_fork, any_value(fork_cutoff) AS fork_entropy_cutoff
    FROM (  -- whole buckets: every position is above the bounds below the lowest entropy, and a fork when the lowest is
        SELECT sampler, rl_model, 1 + len(list_filter(bounds, lambda x: x < entropy_min)) AS entropy_bin,
               entropy_min, entropy_max, n_tokens, sum_js, n_over,
               CASE WHEN entropy_min >= fork_cutoff THEN n_tokens ELSE 0 END AS n_fork,
               CASE WHEN entropy_min >= fork_cutoff THEN n_over ELSE 0 END AS n_over_fork, fork_cutoff
        FROM buckets WHERE NOT split
        UNION ALL
        -- the positions of the split buckets, each on its own
        SELECT t.sampler, t.rl_model, 1 + len(list_filter(b.bounds, lambda x: x < t.entropy)), t.entropy, t.entropy, 1,
               t.js, t.is_over::INTEGER, (t.entropy >= b.fork_cutoff)::INTEGER,
               (t.is_over AND t.entropy >= b.fork_cutoff)::INTEGER, b.fork_cutoff
        FROM (SELECT *, js >= getvariable('js_threshold') AS is_over FROM near) AS t
        JOIN buckets AS b ON b.sampler = t.sampler AND b.rl_model = t.rl_model AND b.f = t.f AND b.split
    )
    GROUP BY sampler, rl_model, entropy_bin
),
g AS (
    SELECT sampler, rl_model, sum(n_tokens)::BIGINT AS n_group_tokens, any_value(fork_entropy_cutoff) AS fork_entropy_cutoff,
           sum(n_fork) / sum(n_tokens) AS fork_token_share, sum(n_over)::BIGINT AS n_over,
           sum(n_over_fork) / nullif(sum(n_over), 0) AS over_share_in_forks
    FROM a GROUP BY sampler, rl_model
)
SELECT b.sampler, b.rl_model, b.entropy_bin, b.entropy_min, b.entropy_max, b.n_tokens, b.sum_js / b.n_tokens AS mean_js,
       b.n_over / b.n_tokens AS share_over,
       b.n_over / nullif(g.n_over, 0) AS share_of_over,
       g.fork_entropy_cutoff, g.fork_token_share, g.n_over, g.over_share_in_forks, g.n_group_tokens
FROM a AS b JOIN g USING (sampler, rl_model)
ORDER BY b.sampler <> 'base', b.sampler, b.rl_model, b.entropy_bin;
