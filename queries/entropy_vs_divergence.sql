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

-- Two scans of tokens, no window over its rows. The first gives each group's base entropies in order: the fork
-- cutoff interpolates between its order statistics floor(h) and ceil(h) (0-based, h = (n - 1) * fork_quantile, as
-- quantile_cont), and bin > j exactly when more than c_j = ceil(j * max(n - 1, 1) / entropy_bins) positions have a
-- lower entropy, i.e. when the entropy exceeds the c_j-th smallest (bounds). The second counts positions per bin.
WITH s AS (
    SELECT sampler, rl_model, count(*) AS n_group, list(entropy_base::DOUBLE ORDER BY entropy_base) AS sorted,
           (count(*) - 1) * getvariable('fork_quantile') AS h
    FROM tokens GROUP BY sampler, rl_model
),
cut AS (
    SELECT sampler, rl_model, n_group,
           sorted[floor(h)::BIGINT + 1] + (sorted[ceil(h)::BIGINT + 1] - sorted[floor(h)::BIGINT + 1]) * (h - floor(h))
               AS fork_cutoff,
           list_select(sorted, list_transform(range(1, getvariable('entropy_bins')),
                                              lambda j: (j * greatest(n_group - 1, 1) + getvariable('entropy_bins') - 1)
                                                        // getvariable('entropy_bins'))) AS bounds
    FROM s
),
cuts AS MATERIALIZED (  -- every group's cuts as constant lists, read per row by the group's position in `groups`
    SELECT list({'sampler': sampler, 'rl_model': rl_model} ORDER BY sampler, rl_model) AS groups,
           list(bounds ORDER BY sampler, rl_model) AS bounds, list(fork_cutoff ORDER BY sampler, rl_model) AS cutoffs
    FROM cut
),
t AS (
    SELECT sampler, rl_model, entropy_base::DOUBLE AS entropy, js::DOUBLE AS js,
           js::DOUBLE >= getvariable('js_threshold') AS is_over,
           list_position((SELECT groups FROM cuts), {'sampler': sampler, 'rl_model': rl_model}) AS g
    FROM tokens
),
a AS (
    SELECT sampler, rl_model,
           1 + len(list_filter((SELECT bounds FROM cuts)[g], lambda x: x < entropy)) AS entropy_bin,
           grouping(entropy_bin) AS whole_group,
           min(entropy) AS entropy_min, max(entropy) AS entropy_max, count(*) AS n_tokens, avg(js) AS mean_js,
           avg(CASE WHEN is_over THEN 1.0 ELSE 0.0 END) AS share_over, count_if(is_over)::BIGINT AS n_over,
           avg(CASE WHEN entropy >= (SELECT cutoffs FROM cuts)[g] THEN 1.0 ELSE 0.0 END) AS fork_token_share,
           count_if(is_over AND entropy >= (SELECT cutoffs FROM cuts)[g]) AS n_over_fork,
           any_value((SELECT cutoffs FROM cuts)[g]) AS fork_entropy_cutoff
    FROM t GROUP BY GROUPING SETS ((sampler, rl_model, entropy_bin), (sampler, rl_model))
),
g AS (
    SELECT sampler, rl_model, n_tokens AS n_group_tokens, fork_entropy_cutoff, fork_token_share, n_over,
           n_over_fork / nullif(n_over, 0) AS over_share_in_forks
    FROM a WHERE whole_group = 1
)
SELECT b.sampler, b.rl_model, b.entropy_bin, b.entropy_min, b.entropy_max, b.n_tokens, b.mean_js, b.share_over,
       b.n_over / nullif(g.n_over, 0) AS share_of_over,
       g.fork_entropy_cutoff, g.fork_token_share, g.n_over, g.over_share_in_forks, g.n_group_tokens
FROM a AS b JOIN g USING (sampler, rl_model)
WHERE b.whole_group = 0
ORDER BY b.sampler <> 'base', b.sampler, b.rl_model, b.entropy_bin;
