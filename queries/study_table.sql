-- study_table: the study's cross-sampling table: direction, effective % and # of swapped tokens, start -> end accuracy.
--
-- One row per setting of cross_samples, laid out like the study's table (Meng et al., ICLR 2026):
-- start_accuracy is the driver's own accuracy on the same problems (forward: base's, reverse: the RL
-- model's, from generations, graded responses only), end_accuracy the cross-sampled answers' accuracy,
-- effective_pct = 100 x mean intervention_fraction and effective_n = mean n_interventions per answer.
-- Settings as in cross_sampling_curve (a random control's repetitions pooled; sign and mix_space read as NULL
-- on builds older than schema 2.1, NULL mix_space being 'prob'); selection names the criterion ('@'
-- match_criterion for a matched random control, ' <=' or ' >=' for delta_logp's sign le or ge, ' r=' rate,
-- ' w=' mix weight when not 1, ' log' for mix_space 'log').
--
-- Intervals: 95% Poisson percentile bootstrap over problems, the Poisson weights of the accuracy recipe (each of
-- the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1) draw in each replicate, a
-- function of bootstrap_seed, the replicate and the number; see accuracy), ratios of weighted sums per replicate,
-- replicates with nothing graded left out.
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
--   rl_model, benchmark, selection, protocol, threshold, budget, budget_unit   the setting (threshold in
--                       the criterion's units, nats)
--   direction           forward (base drives, RL intervenes) or reverse (RL drives, base intervenes)
--   effective_pct       mean % of an answer's tokens taken from (or mixed with) the other model
--   effective_n         mean number of such tokens per answer
--   start_accuracy, start_accuracy_lo, start_accuracy_hi   the driver alone, fraction, 95% interval
--   end_accuracy, end_accuracy_lo, end_accuracy_hi         cross-sampled, fraction, 95% interval
--   n_samples           cross-sampled answers

SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH cs AS (
    SELECT c.*, p.benchmark, CASE WHEN c.match_criterion IS NULL THEN c.rate END AS rate_setting,
           c.criterion || coalesce('@' || c.match_criterion, '')
               || coalesce(CASE c.sign WHEN 'le' THEN ' <=' WHEN 'ge' THEN ' >=' END, '')
               || coalesce(' r=' || CASE WHEN c.match_criterion IS NULL THEN c.rate END, '')
               || CASE WHEN c.mix_weight <> 1 THEN ' w=' || c.mix_weight ELSE '' END
               || CASE WHEN c.mix_space = 'log' THEN ' log' ELSE '' END AS selection
    FROM cross_samples AS c LEFT JOIN prompts AS p USING (problem_id)
),
per_problem AS (
    SELECT s.*,
           CASE WHEN s.direction = 'forward' THEN d.c_base ELSE d.c_rl END AS c_start,
           CASE WHEN s.direction = 'forward' THEN d.n_base ELSE d.n_rl END AS n_start
    FROM (SELECT rl_model, benchmark, selection, protocol, threshold, budget, budget_unit, direction, problem_id,
                 hash(rl_model, benchmark, selection, protocol, threshold, budget, budget_unit, direction) AS setting,
                 count(*) AS n_samples, count_if(correct)::BIGINT AS c, count(correct) AS n,
                 sum(intervention_fraction) AS sum_fraction, sum(n_interventions) AS sum_n
          FROM cs GROUP BY ALL) AS s
    LEFT JOIN cross_reference AS d USING (rl_model, problem_id)  -- a view of the preamble (--print-sql)
),
settings AS (
    SELECT setting, rl_model, benchmark, selection, protocol, threshold, budget, budget_unit, direction,
           sum(n_samples)::BIGINT AS n_samples, 100 * sum(sum_fraction) / sum(n_samples) AS effective_pct,
           sum(sum_n) / sum(n_samples) AS effective_n,
           sum(c_start) / nullif(sum(n_start), 0) AS start_accuracy, sum(c) / nullif(sum(n), 0) AS end_accuracy
    FROM per_problem GROUP BY ALL
),
sums AS (  -- per setting, each per-problem sum as a list over the dataset's problems (tokenshift_problem_numbers order; 0 outside the setting)
    SELECT g.setting,
           list(coalesce(p.c_start, 0)::DOUBLE ORDER BY pn.p) AS c_start,
           list(coalesce(p.n_start, 0)::DOUBLE ORDER BY pn.p) AS n_start,
           list(coalesce(p.c, 0)::DOUBLE ORDER BY pn.p) AS c,
           list(coalesce(p.n, 0)::DOUBLE ORDER BY pn.p) AS n
    FROM (SELECT DISTINCT setting FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN per_problem AS p ON p.setting = g.setting AND p.problem_id = pn.problem_id
    GROUP BY g.setting
),
intervals AS (
    SELECT setting,
           quantile_cont(start_accuracy, 0.025) AS start_accuracy_lo, quantile_cont(start_accuracy, 0.975) AS start_accuracy_hi,
           quantile_cont(end_accuracy, 0.025) AS end_accuracy_lo, quantile_cont(end_accuracy, 0.975) AS end_accuracy_hi
    FROM (SELECT s.setting, w.r,  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
                 list_dot_product(w.w, s.c_start) / nullif(list_dot_product(w.w, s.n_start), 0) AS start_accuracy,
                 list_dot_product(w.w, s.c) / nullif(list_dot_product(w.w, s.n), 0) AS end_accuracy
          FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY setting
)
SELECT s.rl_model, s.benchmark, s.selection, s.protocol, s.threshold, s.budget, s.budget_unit, s.direction,
       s.effective_pct, s.effective_n, s.start_accuracy, i.start_accuracy_lo, i.start_accuracy_hi,
       s.end_accuracy, i.end_accuracy_lo, i.end_accuracy_hi, s.n_samples
FROM settings AS s LEFT JOIN intervals AS i USING (setting)
ORDER BY s.rl_model, s.benchmark, s.selection LIKE 'random%', s.selection, s.protocol, s.direction,
         s.threshold NULLS LAST, s.budget;
