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

-- Three scans of tokens, no window or sort over its rows. The first gives each group's fork cutoff (quantile_cont:
-- between the order statistics floor(h) and ceil(h), 0-based, h = (n - 1) * fork_quantile) and its bin bounds:
-- bin > j exactly when more than c_j = ceil(j * max(n - 1, 1) / entropy_bins) positions have a lower entropy,
-- i.e. when the entropy exceeds the c_j-th smallest. quantile_disc at level q takes the ceil(n * q)-th smallest, so
-- the c-th smallest of a group of n is its value at q = (c - 0.5) / n; entropy_bin_levels lists those levels for
-- every group (quantile_disc takes them as one constant list). The second sums positions per bucket of similar
-- entropies, f = ceil(64 x ln(entropy)) (-inf for 0), with each bucket's lowest and highest entropy: a bucket with
-- no bound in [lowest, highest) and the fork cutoff not in (lowest, highest] lies wholly inside one bin and on one
-- side of the cutoff. The third reads again the positions of the other buckets (few) and puts each into its bin.
SET VARIABLE entropy_bin_levels = (
    SELECT list_concat([0.5], list(DISTINCT (c::DOUBLE - 0.5) / n::DOUBLE))
    FROM (SELECT count(*) AS n FROM tokens GROUP BY sampler, rl_model),
         LATERAL (SELECT unnest(list_transform(range(1, getvariable('entropy_bins')),
                                               lambda j: (j * greatest(n - 1, 1) + getvariable('entropy_bins') - 1)
                                                         // getvariable('entropy_bins'))) AS c)
);

WITH s AS (
    SELECT sampler, rl_model, count(*) AS n_group,
           quantile_cont(entropy_base::DOUBLE, getvariable('fork_quantile')) AS fork_cutoff,
           quantile_disc(entropy_base::DOUBLE, getvariable('entropy_bin_levels')) AS at_levels
    FROM tokens GROUP BY sampler, rl_model
),
cut AS (
    SELECT sampler, rl_model, n_group, fork_cutoff,
           list_transform(range(1, getvariable('entropy_bins')),
                          lambda j: at_levels[list_position(getvariable('entropy_bin_levels'),
                              (((j * greatest(n_group - 1, 1) + getvariable('entropy_bins') - 1)
                                // getvariable('entropy_bins'))::DOUBLE - 0.5) / n_group::DOUBLE)]) AS bounds
    FROM s
),
fine AS (  -- per group and bucket of similar entropies: positions, sums and extremes
    SELECT sampler, rl_model, ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) AS f, min(entropy_base::DOUBLE) AS entropy_min,
           max(entropy_base::DOUBLE) AS entropy_max, count(*) AS n_tokens, sum(js::DOUBLE) AS sum_js,
           count_if(js::DOUBLE >= getvariable('js_threshold')) AS n_over
    FROM tokens GROUP BY sampler, rl_model, f
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
        FROM (SELECT sampler, rl_model, entropy_base::DOUBLE AS entropy, js::DOUBLE AS js,
                     js::DOUBLE >= getvariable('js_threshold') AS is_over, ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) AS f
              FROM tokens WHERE ceil(64 * ln(greatest(entropy_base::DOUBLE, 0))) IN (SELECT f FROM buckets WHERE split)) AS t
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
