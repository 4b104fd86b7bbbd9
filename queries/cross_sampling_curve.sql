-- cross_sampling_curve: accuracy of cross-sampled answers vs the fraction of tokens taken from the other model.
--
-- Per (rl_model, benchmark, protocol, direction, threshold, budget, budget_unit) of cross_samples
-- (benchmark from prompts): accuracy over graded answers (correct not NULL; ungraded counted apart),
-- mean intervention_fraction and mean n_interventions. Reference accuracies come from generations on the
-- same problems (those of the rl_model in cross_samples): base_accuracy (sampler 'base') and rl_accuracy
-- (sampler = rl_model), graded responses only. gap = rl_accuracy - base_accuracy.
-- forward (base drives, RL intervenes): gap_recovered = (accuracy - base_accuracy) / gap.
-- reverse (RL drives, base intervenes): gap_lost = (rl_accuracy - accuracy) / gap.
-- Both NULL when gap = 0 or a reference accuracy is missing.
--
-- Parameters: none.
--
-- Tables: cross_samples, generations, prompts
--
-- Columns (one row per setting):
--   rl_model, benchmark, protocol, direction, threshold, budget, budget_unit   the setting (threshold in
--                               nats, NULL for 'resample'; budget in budget_unit, inf = unlimited)
--   n_samples                   cross-sampled answers
--   n_ungraded                  of which correct is NULL
--   accuracy                    correct / graded, fraction
--   mean_intervention_fraction  mean n_interventions / n_tokens, fraction
--   mean_n_interventions        mean tokens taken from the intervening model
--   base_accuracy, rl_accuracy  reference accuracies, fraction
--   gap_recovered               forward only, fraction of the base-to-RL gap recovered
--   gap_lost                    reverse only, fraction of the gap lost

WITH cs AS (
    SELECT c.*, p.benchmark FROM cross_samples AS c LEFT JOIN prompts AS p USING (problem_id)
),
problems AS (
    SELECT DISTINCT rl_model, problem_id FROM cross_samples
),
ref AS (
    SELECT pr.rl_model, g.benchmark,
           avg(g.correct::DOUBLE) FILTER (WHERE g.sampler = 'base') AS base_accuracy,
           avg(g.correct::DOUBLE) FILTER (WHERE g.sampler = pr.rl_model) AS rl_accuracy
    FROM problems AS pr JOIN generations AS g ON g.problem_id = pr.problem_id
    GROUP BY pr.rl_model, g.benchmark
),
curve AS (
    SELECT rl_model, benchmark, protocol, direction, threshold, budget, budget_unit,
           count(*) AS n_samples, count(*) - count(correct) AS n_ungraded,
           avg(correct::DOUBLE) AS accuracy,
           avg(intervention_fraction) AS mean_intervention_fraction,
           avg(n_interventions::DOUBLE) AS mean_n_interventions
    FROM cs
    GROUP BY rl_model, benchmark, protocol, direction, threshold, budget, budget_unit
)
SELECT c.*, r.base_accuracy, r.rl_accuracy,
       CASE WHEN c.direction = 'forward'
            THEN (c.accuracy - r.base_accuracy) / nullif(r.rl_accuracy - r.base_accuracy, 0) END AS gap_recovered,
       CASE WHEN c.direction = 'reverse'
            THEN (r.rl_accuracy - c.accuracy) / nullif(r.rl_accuracy - r.base_accuracy, 0) END AS gap_lost
FROM curve AS c LEFT JOIN ref AS r ON r.rl_model = c.rl_model AND r.benchmark IS NOT DISTINCT FROM c.benchmark
ORDER BY c.rl_model, c.benchmark, c.protocol, c.direction, c.threshold NULLS LAST, c.budget;
