-- criteria_comparison: each selection criterion and its matched random control at the budget it realises.
--
-- Per setting of the threshold protocol in cross_samples (rl_model, benchmark from prompts, direction,
-- criterion, match_criterion, sign, mix_weight, mix_space, threshold, rate, budget, budget_unit; a random
-- control's repetitions pooled; sign and mix_space read as NULL on builds older than schema 2.1, and NULL
-- mix_space is 'prob'): the effective budget as the study reports it, effective_pct = 100 x mean
-- intervention_fraction and effective_n = mean n_interventions per answer; accuracy; and gap_share = the
-- share of the base-to-RL gap recovered (forward: (accuracy - base) / (rl - base)) or lost (reverse:
-- (rl - accuracy) / (rl - base)), reference accuracies from generations on the same problems as in
-- cross_sampling_curve; gap_share_per_token = gap_share / effective_n. A random control matched to a
-- criterion (match_criterion set) shares that setting's sign, mix weight and space, threshold and budget: matched_accuracy is the
-- criterion's accuracy there and criterion_minus_control = matched_accuracy - accuracy (forward: > 0 when
-- the criterion's positions matter more than random ones; reverse: < 0, the criterion's swaps hurt more).
--
-- Intervals: 95% Poisson percentile bootstrap over problems, the Poisson weights of the accuracy recipe (each of
-- the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1) draw in each replicate, a
-- function of bootstrap_seed, the replicate and the number; see accuracy). A control and the setting it matches
-- answer the same problems, so criterion_minus_control is bootstrapped paired (the same weights for both).
-- Replicates where a value is undefined (nothing graded, gap 0) are left out.
-- The weights come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   bootstrap_reps   INTEGER    1000   bootstrap replicates
--   bootstrap_seed   INTEGER    0      seed of the replicates' weights (>= 0)
--
-- Tables: cross_samples, generations, prompts
--
-- Columns (one row per setting):
--   rl_model, benchmark, direction      the pair, benchmark and direction
--   selection                  criterion, '@' match_criterion for a matched control, ' <=' or ' >=' for sign le or ge,
--                              ' r=' rate, ' w=' mix weight (when not 1), ' log' for mix_space 'log'
--   criterion, match_criterion, sign, mix_weight, mix_space, threshold, rate, budget, budget_unit   the setting
--                              (threshold in the criterion's units, nats; rate: random with a fixed rate)
--   n_samples                  cross-sampled answers
--   effective_pct              mean % of an answer's tokens taken from (or mixed with) the other model
--   effective_n                mean number of such tokens per answer
--   accuracy, accuracy_lo, accuracy_hi          correct / graded and its 95% interval, fraction
--   gap_share, gap_share_lo, gap_share_hi       share of the gap recovered (forward) or lost (reverse)
--   gap_share_per_token        gap_share / effective_n
--   matched_accuracy           matched controls: the accuracy of the setting they match
--   criterion_minus_control, criterion_minus_control_lo, criterion_minus_control_hi   paired difference, fraction

SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH cs AS (
    SELECT c.* REPLACE (coalesce(c.mix_space, 'prob') AS mix_space), p.benchmark,
           CASE WHEN c.match_criterion IS NULL THEN c.rate END AS rate_setting
    FROM cross_samples AS c LEFT JOIN prompts AS p USING (problem_id)
    WHERE c.protocol = 'threshold'
),
ref AS (  -- cross_reference: a view of the preamble (tokenshift query NAME --print-sql)
    SELECT rl_model, benchmark, sum(c_base) / nullif(sum(n_base), 0) AS base_accuracy,
           sum(c_rl) / nullif(sum(n_rl), 0) AS rl_accuracy
    FROM cross_reference GROUP BY rl_model, benchmark
),
settings AS (
    SELECT rl_model, benchmark, direction, criterion, match_criterion, sign, mix_weight, mix_space, threshold,
           rate_setting AS rate, budget, budget_unit,
           count(*) AS n_samples, 100 * avg(intervention_fraction) AS effective_pct,
           avg(n_interventions::DOUBLE) AS effective_n, avg(correct::DOUBLE) AS accuracy,
           hash(rl_model, benchmark, direction, criterion, match_criterion, sign, mix_weight, mix_space, threshold,
                rate_setting, budget, budget_unit) AS setting,
           hash(rl_model, benchmark, direction, coalesce(match_criterion, criterion), sign, mix_weight, mix_space,
                threshold, budget, budget_unit) AS matched
    FROM cs GROUP BY ALL
),
per_problem AS (
    SELECT s.*, r.c_base, r.n_base, r.c_rl, r.n_rl
    FROM (SELECT rl_model, problem_id, direction,
                 hash(rl_model, benchmark, direction, criterion, match_criterion, sign, mix_weight, mix_space,
                      threshold, rate_setting, budget, budget_unit) AS setting,
                 count_if(correct)::BIGINT AS c, count(correct) AS n
          FROM cs GROUP BY ALL) AS s
    LEFT JOIN cross_reference AS r USING (rl_model, problem_id)
),
sums AS (  -- per setting, each per-problem sum over the dataset's problems (tokenshift_problem_numbers order; 0: not in it)
    SELECT g.setting, any_value(g.direction) AS direction,
           list(coalesce(p.c, 0)::DOUBLE ORDER BY pn.p) AS c,
           list(coalesce(p.n, 0)::DOUBLE ORDER BY pn.p) AS n,
           list(coalesce(p.c_base, 0)::DOUBLE ORDER BY pn.p) AS c_base,
           list(coalesce(p.n_base, 0)::DOUBLE ORDER BY pn.p) AS n_base,
           list(coalesce(p.c_rl, 0)::DOUBLE ORDER BY pn.p) AS c_rl,
           list(coalesce(p.n_rl, 0)::DOUBLE ORDER BY pn.p) AS n_rl
    FROM (SELECT DISTINCT setting, direction FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN per_problem AS p ON p.setting = g.setting AND p.problem_id = pn.problem_id
    GROUP BY g.setting
),
replicates AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT s.setting, w.r, s.direction,
           list_dot_product(w.w, s.c) / nullif(list_dot_product(w.w, s.n), 0) AS accuracy,
           list_dot_product(w.w, s.c_base) / nullif(list_dot_product(w.w, s.n_base), 0) AS base_accuracy,
           list_dot_product(w.w, s.c_rl) / nullif(list_dot_product(w.w, s.n_rl), 0) AS rl_accuracy
    FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w
),
intervals AS (
    SELECT setting,
           quantile_cont(accuracy, 0.025) AS accuracy_lo, quantile_cont(accuracy, 0.975) AS accuracy_hi,
           quantile_cont(share, 0.025) AS gap_share_lo, quantile_cont(share, 0.975) AS gap_share_hi
    FROM (SELECT *, CASE WHEN direction = 'forward'
                         THEN (accuracy - base_accuracy) / nullif(rl_accuracy - base_accuracy, 0)
                         ELSE (rl_accuracy - accuracy) / nullif(rl_accuracy - base_accuracy, 0) END AS share
          FROM replicates)
    GROUP BY setting
),
paired AS (  -- matched control vs the setting it matches, on the same replicate weights
    SELECT s.setting,
           quantile_cont(m.accuracy - c.accuracy, 0.025) AS lo, quantile_cont(m.accuracy - c.accuracy, 0.975) AS hi
    FROM settings AS s
    JOIN settings AS t ON t.matched = s.matched AND t.criterion <> 'random'
    JOIN replicates AS c ON c.setting = s.setting
    JOIN replicates AS m ON m.setting = t.setting AND m.r = c.r
    WHERE s.match_criterion IS NOT NULL
    GROUP BY s.setting
)
SELECT s.rl_model, s.benchmark, s.direction,
       s.criterion || coalesce('@' || s.match_criterion, '')
           || coalesce(CASE s.sign WHEN 'le' THEN ' <=' WHEN 'ge' THEN ' >=' END, '') || coalesce(' r=' || s.rate, '')
           || CASE WHEN s.mix_weight <> 1 THEN ' w=' || s.mix_weight ELSE '' END
           || CASE WHEN s.mix_space = 'log' THEN ' log' ELSE '' END AS selection,
       s.criterion, s.match_criterion, s.sign, s.mix_weight, s.mix_space, s.threshold, s.rate, s.budget, s.budget_unit, s.n_samples,
       s.effective_pct, s.effective_n, s.accuracy, i.accuracy_lo, i.accuracy_hi,
       CASE WHEN s.direction = 'forward' THEN (s.accuracy - r.base_accuracy) ELSE (r.rl_accuracy - s.accuracy) END
           / nullif(r.rl_accuracy - r.base_accuracy, 0) AS gap_share,
       i.gap_share_lo, i.gap_share_hi,
       CASE WHEN s.direction = 'forward' THEN (s.accuracy - r.base_accuracy) ELSE (r.rl_accuracy - s.accuracy) END
           / nullif(r.rl_accuracy - r.base_accuracy, 0) / nullif(s.effective_n, 0) AS gap_share_per_token,
       t.accuracy AS matched_accuracy, t.accuracy - s.accuracy AS criterion_minus_control,
       p.lo AS criterion_minus_control_lo, p.hi AS criterion_minus_control_hi
FROM settings AS s
LEFT JOIN ref AS r ON r.rl_model = s.rl_model AND r.benchmark IS NOT DISTINCT FROM s.benchmark
LEFT JOIN intervals AS i ON i.setting = s.setting
LEFT JOIN settings AS t ON s.match_criterion IS NOT NULL AND t.criterion <> 'random' AND t.matched = s.matched
LEFT JOIN paired AS p ON p.setting = s.setting
ORDER BY s.rl_model, s.benchmark, s.direction, s.criterion = 'random', s.criterion, s.match_criterion NULLS FIRST,
         s.sign NULLS FIRST, s.mix_space DESC, s.mix_weight, s.threshold NULLS LAST, s.rate NULLS LAST, s.budget;
