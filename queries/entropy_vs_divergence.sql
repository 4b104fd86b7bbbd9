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

WITH t AS (
    SELECT sampler, rl_model, entropy_base::DOUBLE AS entropy, js::DOUBLE AS js,
           js::DOUBLE >= getvariable('js_threshold') AS is_over,
           rank() OVER (PARTITION BY sampler, rl_model ORDER BY entropy_base) AS entropy_rank,
           count(*) OVER (PARTITION BY sampler, rl_model) AS n_group,
           quantile_cont(entropy_base::DOUBLE, getvariable('fork_quantile'))
               OVER (PARTITION BY sampler, rl_model) AS fork_cutoff
    FROM tokens
),
b AS (
    SELECT *,
           1 + least((entropy_rank - 1) * getvariable('entropy_bins') // greatest(n_group - 1, 1),
                     getvariable('entropy_bins') - 1) AS entropy_bin,
           entropy >= fork_cutoff AS is_fork
    FROM t
),
g AS (
    SELECT sampler, rl_model, count(*) AS n_group_tokens, any_value(fork_cutoff) AS fork_entropy_cutoff,
           avg(CASE WHEN is_fork THEN 1.0 ELSE 0.0 END) AS fork_token_share,
           count_if(is_over)::BIGINT AS n_over,
           count_if(is_over AND is_fork) / nullif(count_if(is_over), 0) AS over_share_in_forks
    FROM b GROUP BY sampler, rl_model
)
SELECT b.sampler, b.rl_model, b.entropy_bin,
       min(b.entropy) AS entropy_min, max(b.entropy) AS entropy_max,
       count(*) AS n_tokens, avg(b.js) AS mean_js,
       avg(CASE WHEN b.is_over THEN 1.0 ELSE 0.0 END) AS share_over,
       count_if(b.is_over) / nullif(any_value(g.n_over), 0) AS share_of_over,
       any_value(g.fork_entropy_cutoff) AS fork_entropy_cutoff,
       any_value(g.fork_token_share) AS fork_token_share,
       any_value(g.n_over) AS n_over,
       any_value(g.over_share_in_forks) AS over_share_in_forks,
       any_value(g.n_group_tokens) AS n_group_tokens
FROM b JOIN g USING (sampler, rl_model)
GROUP BY b.sampler, b.rl_model, b.entropy_bin
ORDER BY b.sampler <> 'base', b.sampler, b.rl_model, b.entropy_bin;
