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

-- One scan of tokens, aggregated per distinct base entropy of a group (v); ranks, bins and the fork cutoff come
-- from the running counts of those values (rank = 1 + positions of lower entropy; the cutoff interpolates between
-- the order statistics floor(h) and ceil(h), h = (n - 1) * fork_quantile, as quantile_cont does).
WITH v AS (
    SELECT sampler, rl_model, entropy_base::DOUBLE AS entropy, count(*) AS n, sum(js::DOUBLE) AS js_sum,
           count_if(js::DOUBLE >= getvariable('js_threshold')) AS n_over
    FROM tokens GROUP BY sampler, rl_model, entropy_base
),
r AS (
    SELECT *, (sum(n) OVER (PARTITION BY sampler, rl_model ORDER BY entropy) - n)::BIGINT AS below,
           (sum(n) OVER (PARTITION BY sampler, rl_model))::BIGINT AS n_group
    FROM v
),
c AS (
    SELECT sampler, rl_model, any_value(n_group) AS n_group,
           max(entropy) FILTER (WHERE below <= floor((n_group - 1) * getvariable('fork_quantile'))) AS lo,
           max(entropy) FILTER (WHERE below <= ceil((n_group - 1) * getvariable('fork_quantile'))) AS hi,
           any_value((n_group - 1) * getvariable('fork_quantile')) AS h
    FROM r GROUP BY sampler, rl_model
),
b AS (
    SELECT r.*, 1 + least(r.below * getvariable('entropy_bins') // greatest(r.n_group - 1, 1),
                          getvariable('entropy_bins') - 1) AS entropy_bin,
           r.entropy >= c.lo + (c.hi - c.lo) * (c.h - floor(c.h)) AS is_fork,
           c.lo + (c.hi - c.lo) * (c.h - floor(c.h)) AS fork_cutoff
    FROM r JOIN c USING (sampler, rl_model)
),
g AS (
    SELECT sampler, rl_model, any_value(n_group) AS n_group_tokens, any_value(fork_cutoff) AS fork_entropy_cutoff,
           coalesce(sum(n) FILTER (WHERE is_fork), 0) / any_value(n_group) AS fork_token_share,
           sum(n_over)::BIGINT AS n_over,
           coalesce(sum(n_over) FILTER (WHERE is_fork), 0) / nullif(sum(n_over), 0) AS over_share_in_forks
    FROM b GROUP BY sampler, rl_model
)
SELECT b.sampler, b.rl_model, b.entropy_bin,
       min(b.entropy) AS entropy_min, max(b.entropy) AS entropy_max,
       sum(b.n)::BIGINT AS n_tokens, sum(b.js_sum) / sum(b.n) AS mean_js,
       sum(b.n_over) / sum(b.n) AS share_over,
       sum(b.n_over) / nullif(any_value(g.n_over), 0) AS share_of_over,
       any_value(g.fork_entropy_cutoff) AS fork_entropy_cutoff,
       any_value(g.fork_token_share) AS fork_token_share,
       any_value(g.n_over) AS n_over,
       any_value(g.over_share_in_forks) AS over_share_in_forks,
       any_value(g.n_group_tokens) AS n_group_tokens
FROM b JOIN g USING (sampler, rl_model)
GROUP BY b.sampler, b.rl_model, b.entropy_bin
ORDER BY b.sampler <> 'base', b.sampler, b.rl_model, b.entropy_bin;
