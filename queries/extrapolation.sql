-- extrapolation: accuracy against the mix weight W of each selection rule, forward and reverse, beside RL's own.
--
-- Reads the threshold protocol's rows of cross_samples mixed in log space (mix_space 'log': the token of a
-- selected position is sampled from softmax((1 - W) log p_driver + W log p_other); W = 1 is the other model,
-- W > 1 extrapolates past it) and, for the same settings, the rows with mix weight 1 in prob space (the swap,
-- which is W = 1 in log space exactly). A setting (rl_model, benchmark, direction, criterion, match_criterion,
-- sign, threshold, rate, budget, budget_unit) appears only when it has log-space rows; a random control's
-- repetitions are pooled. Per setting and W: the accuracy; RL's and base's own accuracy on the same problems
-- (generations, as in cross_sampling_curve); accuracy_minus_rl = accuracy - rl_accuracy (forward, base drives:
-- > 0 when extrapolating past RL beats RL itself).
--
-- Intervals: 95% Poisson percentile bootstrap over problems, the Poisson weights of the accuracy recipe (each of
-- the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1) draw in each replicate, a
-- function of bootstrap_seed, the replicate and the number; see accuracy); accuracy_minus_rl is paired (the same
-- weights for both).
-- The weights come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   bootstrap_reps   INTEGER    1000   bootstrap replicates
--   bootstrap_seed   INTEGER    0      seed of the replicates' weights (>= 0)
--
-- Tables: cross_samples, generations, prompts
--
-- Columns (one row per setting and W):
--   rl_model, benchmark, direction      the pair, benchmark and direction
--   selection                criterion ('@' match_criterion for a matched control), its comparison and threshold
--                            (delta_logp: '<=' for sign le, '>=' for ge), and the budget when not inf
--   criterion, match_criterion, sign, threshold, rate, budget, budget_unit   the setting
--   mix_weight               W
--   n_samples                cross-sampled answers
--   effective_pct            mean % of an answer's tokens drawn from the mix
--   accuracy, accuracy_lo, accuracy_hi                  correct / graded and its 95% interval, fraction
--   rl_accuracy, rl_accuracy_lo, rl_accuracy_hi         RL's own answers on the same problems
--   base_accuracy            base's own answers on the same problems
--   accuracy_minus_rl, accuracy_minus_rl_lo, accuracy_minus_rl_hi   paired difference, fraction

SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH cs AS (
    SELECT c.*, p.benchmark, CASE WHEN c.match_criterion IS NULL THEN c.rate END AS rate_setting,
           coalesce(c.mix_space, 'prob') AS space,
           hash(c.rl_model, p.benchmark, c.direction, c.criterion, c.match_criterion, c.sign, c.threshold,
                CASE WHEN c.match_criterion IS NULL THEN c.rate END, c.budget, c.budget_unit) AS setting
    FROM cross_samples AS c LEFT JOIN prompts AS p USING (problem_id)
    WHERE c.protocol = 'threshold'
),
swept AS (SELECT DISTINCT setting FROM cs WHERE space = 'log'),
rows AS (
    SELECT cs.*, hash(cs.setting, cs.mix_weight) AS point
    FROM cs JOIN swept USING (setting)
    WHERE cs.space = 'log' OR cs.mix_weight = 1
),
points AS (
    SELECT rl_model, benchmark, direction, criterion, match_criterion, sign, threshold, rate_setting AS rate, budget,
           budget_unit, mix_weight, point, count(*) AS n_samples, 100 * avg(intervention_fraction) AS effective_pct,
           avg(correct::DOUBLE) AS accuracy
    FROM rows GROUP BY ALL
),
per_problem AS (
    SELECT s.*, r.c_base, r.n_base, r.c_rl, r.n_rl
    FROM (SELECT rl_model, problem_id, point, count_if(correct)::BIGINT AS c, count(correct) AS n
          FROM rows GROUP BY ALL) AS s
    LEFT JOIN cross_reference AS r USING (rl_model, problem_id)  -- a view of the preamble
),
reference AS (
    SELECT point, sum(c_rl) / nullif(sum(n_rl), 0) AS rl_accuracy, sum(c_base) / nullif(sum(n_base), 0) AS base_accuracy
    FROM per_problem GROUP BY point
),
sums AS (  -- per point, each per-problem sum over the dataset's problems (tokenshift_problem_numbers order; 0: not in it)
    SELECT g.point,
           list(coalesce(p.c, 0)::DOUBLE ORDER BY pn.p) AS c,
           list(coalesce(p.n, 0)::DOUBLE ORDER BY pn.p) AS n,
           list(coalesce(p.c_rl, 0)::DOUBLE ORDER BY pn.p) AS c_rl,
           list(coalesce(p.n_rl, 0)::DOUBLE ORDER BY pn.p) AS n_rl
    FROM (SELECT DISTINCT point FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN per_problem AS p ON p.point = g.point AND p.problem_id = pn.problem_id
    GROUP BY g.point
),
replicates AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT s.point, w.r,
           list_dot_product(w.w, s.c) / nullif(list_dot_product(w.w, s.n), 0) AS accuracy,
           list_dot_product(w.w, s.c_rl) / nullif(list_dot_product(w.w, s.n_rl), 0) AS rl_accuracy
    FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w
),
intervals AS (
    SELECT point,
           quantile_cont(accuracy, 0.025) AS accuracy_lo, quantile_cont(accuracy, 0.975) AS accuracy_hi,
           quantile_cont(rl_accuracy, 0.025) AS rl_accuracy_lo, quantile_cont(rl_accuracy, 0.975) AS rl_accuracy_hi,
           quantile_cont(accuracy - rl_accuracy, 0.025) AS minus_lo, quantile_cont(accuracy - rl_accuracy, 0.975) AS minus_hi
    FROM replicates GROUP BY point
)
SELECT s.rl_model, s.benchmark, s.direction,
       CASE WHEN s.criterion = 'random' AND s.match_criterion IS NOT NULL THEN 'random@' || s.match_criterion
            ELSE s.criterion END
           || coalesce(' r=' || s.rate, '')
           || coalesce(CASE WHEN s.sign = 'le' THEN ' <= ' ELSE ' >= ' END || s.threshold, '')
           || CASE WHEN isinf(s.budget) THEN '' ELSE ', budget ' || s.budget END AS selection,
       s.criterion, s.match_criterion, s.sign, s.threshold, s.rate, s.budget, s.budget_unit, s.mix_weight,
       s.n_samples, s.effective_pct, s.accuracy, i.accuracy_lo, i.accuracy_hi,
       r.rl_accuracy, i.rl_accuracy_lo, i.rl_accuracy_hi, r.base_accuracy,
       s.accuracy - r.rl_accuracy AS accuracy_minus_rl, i.minus_lo AS accuracy_minus_rl_lo,
       i.minus_hi AS accuracy_minus_rl_hi
FROM points AS s
LEFT JOIN reference AS r USING (point)
LEFT JOIN intervals AS i USING (point)
ORDER BY s.rl_model, s.benchmark, s.direction, s.criterion = 'random', s.criterion, s.match_criterion NULLS FIRST,
         s.sign NULLS FIRST, s.threshold NULLS FIRST, s.rate NULLS FIRST, s.budget, s.mix_weight;
