-- position_overlap: do two models shift at the same positions? Jaccard overlap of their high-JS position sets along base's answers.
--
-- One row per pair of rl_models of tokens (model_a < model_b by name). A model's high-divergence set is its
-- (generation_id, position) pairs with js >= js_threshold among base's answers (sampler 'base', scored
-- against that model); the pair is compared on the positions both models scored, so along the same base
-- answers. jaccard = |A ∩ B| / |A ∪ B| (NULL when both sets are empty). Two RL seeds give the noise floor
-- of "which positions"; an SFT model against RL says whether the methods pick the same positions.
-- jaccard_chance is the overlap two independent sets of the same sizes would have on those positions:
-- (n_a n_b / n) / (n_a + n_b - n_a n_b / n).
--
-- Interval: 95% Poisson percentile bootstrap over problems (problem_id of base's answers), the Poisson weights of
-- the accuracy recipe (each of the dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1)
-- draw in each replicate, a function of bootstrap_seed, the replicate and the number; see accuracy) (macro
-- tokenshift_bootstrap_weights of the preamble; `tokenshift query NAME --print-sql` prints it), jaccard = sum of
-- |A ∩ B| / sum of |A ∪ B| weighted over the problems; replicates with both sets empty left out.
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold    DOUBLE   0.1    high-divergence JS threshold, nats
--   bootstrap_reps  INTEGER  1000   bootstrap replicates
--   bootstrap_seed  INTEGER  0      seed of the replicates' weights (>= 0)
--
-- Tables: tokens, generations
--
-- Columns (one row per model_a, model_b):
--   model_a, model_b                 the two rl_models compared (model_a < model_b)
--   n_problems                       problems with base answers both models scored
--   n_tokens                         positions both models scored along base's answers
--   n_over_a, n_over_b               positions in each model's high-divergence set
--   n_both, n_either                 positions in both sets / in at least one
--   jaccard, jaccard_lo, jaccard_hi  n_both / n_either, fraction, and its 95% interval
--   jaccard_chance                   Jaccard of independent sets of sizes n_over_a, n_over_b, fraction

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH models AS (SELECT min(rl_model) AS first, max(rl_model) AS last FROM tokens WHERE sampler = 'base'),
a AS MATERIALIZED (  -- every model but the last by name, the pairs' model_a (a model without a partner joins nothing)
    SELECT rl_model, generation_id, position, js::DOUBLE >= getvariable('js_threshold') AS is_over
    FROM tokens WHERE sampler = 'base' AND rl_model < (SELECT last FROM models)
),
b AS MATERIALIZED (  -- every model but the first, the pairs' model_b
    SELECT rl_model, generation_id, position, js::DOUBLE >= getvariable('js_threshold') AS is_over
    FROM tokens WHERE sampler = 'base' AND rl_model > (SELECT first FROM models)
),
per_problem AS (
    SELECT a.rl_model AS model_a, b.rl_model AS model_b, g.benchmark, g.problem_id, count(*) AS n,
           count_if(a.is_over) AS n_a, count_if(b.is_over) AS n_b,
           count_if(a.is_over AND b.is_over) AS n_both, count_if(a.is_over OR b.is_over) AS n_either
    FROM a
    JOIN b ON b.generation_id = a.generation_id AND b.position = a.position AND a.rl_model < b.rl_model
    JOIN generations AS g ON g.generation_id = a.generation_id
    GROUP BY a.rl_model, b.rl_model, g.benchmark, g.problem_id
),
sums AS (  -- per pair, n_both and n_either over the dataset's problems (tokenshift_problem_numbers order; 0: not in it)
    SELECT g.model_a, g.model_b, list(coalesce(p.n_both, 0)::DOUBLE ORDER BY pn.p) AS n_both,
           list(coalesce(p.n_either, 0)::DOUBLE ORDER BY pn.p) AS n_either
    FROM (SELECT DISTINCT model_a, model_b FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN per_problem AS p ON p.model_a = g.model_a AND p.model_b = g.model_b AND p.problem_id = pn.problem_id
    GROUP BY g.model_a, g.model_b
),
ci AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT model_a, model_b, quantile_cont(value, 0.025) AS jaccard_lo, quantile_cont(value, 0.975) AS jaccard_hi
    FROM (SELECT s.model_a, s.model_b, w.r,
                 list_dot_product(w.w, s.n_both) / nullif(list_dot_product(w.w, s.n_either), 0) AS value
          FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY model_a, model_b
),
totals AS (
    SELECT model_a, model_b, count(*) AS n_problems, sum(n)::BIGINT AS n_tokens, sum(n_a)::BIGINT AS n_over_a,
           sum(n_b)::BIGINT AS n_over_b, sum(n_both)::BIGINT AS n_both, sum(n_either)::BIGINT AS n_either
    FROM per_problem GROUP BY model_a, model_b
)
SELECT s.model_a, s.model_b, s.n_problems, s.n_tokens, s.n_over_a, s.n_over_b, s.n_both, s.n_either,
       s.n_both / nullif(s.n_either, 0) AS jaccard, c.jaccard_lo, c.jaccard_hi,
       (s.n_over_a * s.n_over_b / s.n_tokens)
           / nullif(s.n_over_a + s.n_over_b - s.n_over_a * s.n_over_b / s.n_tokens, 0) AS jaccard_chance
FROM totals AS s LEFT JOIN ci AS c USING (model_a, model_b)
ORDER BY s.model_a, s.model_b;
