-- cross_sampling_curve: accuracy of cross-sampled answers vs the fraction of tokens taken from the other model.
--
-- Per setting of cross_samples (rl_model, benchmark from prompts, protocol, direction, criterion,
-- match_criterion, sign, mix_weight, mix_space, rate, threshold, budget, budget_unit; a random control's
-- repetitions (control_seed) are pooled, and a matched control's per-answer rate is not a setting; sign and
-- mix_space read as NULL on builds older than schema 2.1, and NULL mix_space is 'prob'): accuracy over
-- graded answers (correct not NULL; ungraded counted apart), mean intervention_fraction and mean
-- n_interventions. Reference accuracies come from generations on the same problems (those of the
-- rl_model in cross_samples): base_accuracy (sampler 'base') and rl_accuracy (sampler = rl_model), graded
-- responses only. gap = rl_accuracy - base_accuracy.
-- forward (base drives, RL intervenes): gap_recovered = (accuracy - base_accuracy) / gap.
-- reverse (RL drives, base intervenes): gap_lost = (rl_accuracy - accuracy) / gap.
-- Both NULL when gap = 0 or a reference accuracy is missing.
--
-- Intervals: 95% Poisson percentile bootstrap over problems, the Poisson weights of the accuracy recipe (each of
-- the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1) draw in each replicate, a
-- function of bootstrap_seed, the replicate and the number; see accuracy). Each replicate recomputes accuracy,
-- base_accuracy, rl_accuracy (ratios of weighted sums over the setting's problems) and the gap shares from them;
-- replicates where a value is undefined (nothing graded, gap 0) are left out.
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
--   rl_model, benchmark, protocol, direction, threshold, budget, budget_unit   the setting (threshold in
--                               the criterion's units, nats; NULL for 'resample', 'top1_differs' and random
--                               with a rate; budget in budget_unit, inf = unlimited)
--   criterion, match_criterion, sign, mix_weight, mix_space, rate   the selection rule (sign: delta_logp's 'le' or
--                               'ge', NULL otherwise; mix_space 'prob' or 'log'; rate: random with a fixed rate)
--   n_samples                   cross-sampled answers
--   n_ungraded                  of which correct is NULL
--   accuracy, accuracy_lo, accuracy_hi             correct / graded and its 95% interval, fraction
--   mean_intervention_fraction  mean n_interventions / n_tokens, fraction
--   mean_n_interventions        mean tokens taken from the intervening model
--   base_accuracy, base_accuracy_lo, base_accuracy_hi, rl_accuracy, rl_accuracy_lo, rl_accuracy_hi
--                               reference accuracies and their intervals, fraction
--   gap_recovered, gap_recovered_lo, gap_recovered_hi   forward only, share of the base-to-RL gap recovered
--   gap_lost, gap_lost_lo, gap_lost_hi                  reverse only, share of the gap lost

SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH cs AS (
    SELECT c.* REPLACE (coalesce(c.mix_space, 'prob') AS mix_space), p.benchmark,
           CASE WHEN c.match_criterion IS NULL THEN c.rate END AS rate_setting
    FROM cross_samples AS c LEFT JOIN prompts AS p USING (problem_id)
),
ref AS (  -- cross_reference: a view of the preamble (tokenshift query NAME --print-sql)
    SELECT rl_model, benchmark, sum(c_base) / nullif(sum(n_base), 0) AS base_accuracy,
           sum(c_rl) / nullif(sum(n_rl), 0) AS rl_accuracy
    FROM cross_reference GROUP BY rl_model, benchmark
),
curve AS (
    SELECT rl_model, benchmark, protocol, direction, threshold, budget, budget_unit,
           criterion, match_criterion, sign, mix_weight, mix_space, rate_setting AS rate,
           count(*) AS n_samples, count(*) - count(correct) AS n_ungraded,
           avg(correct::DOUBLE) AS accuracy,
           avg(intervention_fraction) AS mean_intervention_fraction,
           avg(n_interventions::DOUBLE) AS mean_n_interventions
    FROM cs
    GROUP BY rl_model, benchmark, protocol, direction, threshold, budget, budget_unit,
             criterion, match_criterion, sign, mix_weight, mix_space, rate_setting
),
per_problem AS (  -- one row per setting and problem
    SELECT s.*, r.c_base, r.n_base, r.c_rl, r.n_rl
    FROM (SELECT rl_model, benchmark, protocol, direction, threshold, budget, budget_unit,
                 criterion, match_criterion, sign, mix_weight, mix_space, rate_setting, problem_id,
                 count_if(correct)::BIGINT AS c, count(correct) AS n,
                 hash(rl_model, benchmark, protocol, direction, threshold, budget, budget_unit,
                      criterion, match_criterion, sign, mix_weight, mix_space, rate_setting) AS setting
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
refs AS (  -- the distinct reference lists: settings of one rl_model on the same problems share theirs
    SELECT row_number() OVER () AS ref, * FROM (SELECT DISTINCT c_base, n_base, c_rl, n_rl FROM sums)
),
lists AS (  -- what each replicate weighs: every setting's c and n, every distinct reference's four lists (once)
    SELECT setting AS id, 'c' AS kind, c AS v FROM sums
    UNION ALL SELECT setting, 'n', n FROM sums
    UNION ALL SELECT ref, 'c_base', c_base FROM refs
    UNION ALL SELECT ref, 'n_base', n_base FROM refs
    UNION ALL SELECT ref, 'c_rl', c_rl FROM refs
    UNION ALL SELECT ref, 'n_rl', n_rl FROM refs
),
weighted AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT l.id, l.kind, w.r, list_dot_product(w.w, l.v) AS d
    FROM lists AS l, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w
),
replicates AS (  -- per setting and replicate: the three accuracies, ratios of the weighted sums
    SELECT s.setting, c.r, s.direction, c.d / nullif(n.d, 0) AS accuracy,
           cb.d / nullif(nb.d, 0) AS base_accuracy, cr.d / nullif(nr.d, 0) AS rl_accuracy
    FROM sums AS s
    JOIN refs AS f ON f.c_base = s.c_base AND f.n_base = s.n_base AND f.c_rl = s.c_rl AND f.n_rl = s.n_rl
    JOIN weighted AS c ON c.kind = 'c' AND c.id = s.setting
    JOIN weighted AS n ON n.kind = 'n' AND n.id = s.setting AND n.r = c.r
    JOIN weighted AS cb ON cb.kind = 'c_base' AND cb.id = f.ref AND cb.r = c.r
    JOIN weighted AS nb ON nb.kind = 'n_base' AND nb.id = f.ref AND nb.r = c.r
    JOIN weighted AS cr ON cr.kind = 'c_rl' AND cr.id = f.ref AND cr.r = c.r
    JOIN weighted AS nr ON nr.kind = 'n_rl' AND nr.id = f.ref AND nr.r = c.r
),
intervals AS (
    SELECT setting,
           quantile_cont(accuracy, 0.025) AS accuracy_lo, quantile_cont(accuracy, 0.975) AS accuracy_hi,
           quantile_cont(base_accuracy, 0.025) AS base_accuracy_lo, quantile_cont(base_accuracy, 0.975) AS base_accuracy_hi,
           quantile_cont(rl_accuracy, 0.025) AS rl_accuracy_lo, quantile_cont(rl_accuracy, 0.975) AS rl_accuracy_hi,
           quantile_cont(share, 0.025) AS share_lo, quantile_cont(share, 0.975) AS share_hi
    FROM (SELECT *, CASE WHEN direction = 'forward'
                         THEN (accuracy - base_accuracy) / nullif(rl_accuracy - base_accuracy, 0)
                         ELSE (rl_accuracy - accuracy) / nullif(rl_accuracy - base_accuracy, 0) END AS share
          FROM replicates)
    GROUP BY setting
)
SELECT c.rl_model, c.benchmark, c.protocol, c.direction, c.threshold, c.budget, c.budget_unit,
       c.criterion, c.match_criterion, c.sign, c.mix_weight, c.mix_space, c.rate, c.n_samples, c.n_ungraded,
       c.accuracy, i.accuracy_lo, i.accuracy_hi, c.mean_intervention_fraction, c.mean_n_interventions,
       r.base_accuracy, i.base_accuracy_lo, i.base_accuracy_hi, r.rl_accuracy, i.rl_accuracy_lo, i.rl_accuracy_hi,
       CASE WHEN c.direction = 'forward'
            THEN (c.accuracy - r.base_accuracy) / nullif(r.rl_accuracy - r.base_accuracy, 0) END AS gap_recovered,
       CASE WHEN c.direction = 'forward' THEN i.share_lo END AS gap_recovered_lo,
       CASE WHEN c.direction = 'forward' THEN i.share_hi END AS gap_recovered_hi,
       CASE WHEN c.direction = 'reverse'
            THEN (r.rl_accuracy - c.accuracy) / nullif(r.rl_accuracy - r.base_accuracy, 0) END AS gap_lost,
       CASE WHEN c.direction = 'reverse' THEN i.share_lo END AS gap_lost_lo,
       CASE WHEN c.direction = 'reverse' THEN i.share_hi END AS gap_lost_hi
FROM curve AS c
LEFT JOIN ref AS r ON r.rl_model = c.rl_model AND r.benchmark IS NOT DISTINCT FROM c.benchmark
LEFT JOIN intervals AS i
       ON i.setting = hash(c.rl_model, c.benchmark, c.protocol, c.direction, c.threshold, c.budget, c.budget_unit,
                           c.criterion, c.match_criterion, c.sign, c.mix_weight, c.mix_space, c.rate)
ORDER BY c.rl_model, c.benchmark, c.protocol, c.criterion, c.match_criterion NULLS FIRST, c.sign NULLS FIRST,
         c.mix_space DESC, c.mix_weight,
         c.direction, c.threshold NULLS LAST, c.rate NULLS LAST, c.budget;
