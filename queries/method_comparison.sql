-- method_comparison: every model compared with base in one table: how much, where and at what entropy it shifts, and its accuracy.
--
-- One row per rl_model of tokens (an RL checkpoint, an SFT or DPO model: any model scored against base),
-- so models trained by different methods from one base compare side by side. Each divergence statistic is
-- given along the model's own answers (suffix _own: tokens with sampler = rl_model) and along base's
-- answers (suffix _base: sampler 'base'); answers of a third model scored against it are not used.
-- "High divergence" = js >= js_threshold. Edges: a position p of an answer of n tokens (n_tokens from
-- generations) is in its first or last edge_fraction when p < edge_fraction * n or n - 1 - p < edge_fraction * n
-- (at least the first and last token); every other position is in the middle. Low base entropy:
-- entropy_base < low_entropy (0.5 nats is about a base that puts 0.8 on one token and 0.2 on another, so
-- a high-divergence position there rewrites a confident base prediction). The *_token_share columns are
-- the same shares over all positions: what the high-divergence shares would be if divergence fell anywhere.
--
-- Accuracy: graded responses sampled by the model (correct not NULL), pooled over benchmarks, with the accuracy
-- recipe's 95% Poisson percentile bootstrap over problems, the Poisson weights of the accuracy recipe (each of the
-- dataset's problems, numbered in prompts.problem_id order, weighs a Poisson(1) draw in each replicate, a function
-- of bootstrap_seed, the replicate and the number; see accuracy): ratio of weighted sums per replicate, replicates
-- with nothing graded left out; base's accuracy the same way, for reference.
-- The weights come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold_low   DOUBLE   0.01   low JS threshold, nats (1 - share_over_low: the near-zero share)
--   js_threshold       DOUBLE   0.1    high-divergence JS threshold, nats (the study's "meaningful divergence")
--   js_threshold_high  DOUBLE   0.2    a stricter JS threshold, nats
--   edge_fraction      DOUBLE   0.05   length of an answer's first / last segment, fraction of its tokens
--   low_entropy        DOUBLE   0.5    base entropy below which a position is confident ("low"), nats
--   bootstrap_reps     INTEGER  1000   bootstrap replicates
--   bootstrap_seed     INTEGER  0      seed of the replicates' weights (>= 0)
--
-- Tables: tokens, generations
--
-- Columns (one row per rl_model; each _own / _base pair as described above):
--   rl_model                                        model compared with base
--   accuracy, accuracy_lo, accuracy_hi              accuracy of the model's answers, fraction, 95% interval
--   n_graded                                        graded answers of the model
--   base_accuracy, base_accuracy_lo, base_accuracy_hi   base's accuracy, fraction, 95% interval
--   n_tokens_own, n_tokens_base                     positions
--   mean_js_own, mean_js_base                       mean JS, nats
--   share_over_low_own, share_over_low_base         share with js >= js_threshold_low, fraction
--   share_over_own, share_over_base                 share with js >= js_threshold, fraction
--   share_over_high_own, share_over_high_base       share with js >= js_threshold_high, fraction
--   over_share_middle_own, over_share_middle_base   share of high-divergence positions outside the first/last
--                                                   edge_fraction of their answer, fraction (NULL if none)
--   middle_token_share_own, middle_token_share_base share of all positions outside the edges, fraction
--   over_share_low_entropy_own, over_share_low_entropy_base   share of high-divergence positions with
--                                                   entropy_base < low_entropy, fraction (NULL if none)
--   low_entropy_token_share_own, low_entropy_token_share_base share of all positions with
--                                                   entropy_base < low_entropy, fraction

SET VARIABLE js_threshold_low = COALESCE(getvariable('js_threshold_low'), 0.01)::DOUBLE;
SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE js_threshold_high = COALESCE(getvariable('js_threshold_high'), 0.2)::DOUBLE;
SET VARIABLE edge_fraction = COALESCE(getvariable('edge_fraction'), 0.05)::DOUBLE;
SET VARIABLE low_entropy = COALESCE(getvariable('low_entropy'), 0.5)::DOUBLE;
SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH models AS (
    SELECT DISTINCT rl_model FROM tokens
),
t AS (
    SELECT tk.rl_model, CASE WHEN tk.sampler = tk.rl_model THEN 'own' ELSE 'base' END AS side,
           tk.js::DOUBLE AS js, tk.js::DOUBLE >= getvariable('js_threshold') AS is_over,
           least(tk.position, g.n_tokens - 1 - tk.position) >= getvariable('edge_fraction') * g.n_tokens AS is_middle,
           tk.entropy_base::DOUBLE < getvariable('low_entropy') AS is_low_entropy
    FROM tokens AS tk JOIN generations AS g USING (generation_id)
    WHERE tk.sampler = tk.rl_model OR tk.sampler = 'base'
),
sides AS (
    SELECT rl_model, side, count(*) AS n_tokens, avg(js) AS mean_js,
           count_if(js >= getvariable('js_threshold_low')) / count(*) AS share_over_low,
           count_if(is_over) / count(*) AS share_over,
           count_if(js >= getvariable('js_threshold_high')) / count(*) AS share_over_high,
           count_if(is_over AND is_middle) / nullif(count_if(is_over), 0) AS over_share_middle,
           count_if(is_middle) / count(*) AS middle_token_share,
           count_if(is_over AND is_low_entropy) / nullif(count_if(is_over), 0) AS over_share_low_entropy,
           count_if(is_low_entropy) / count(*) AS low_entropy_token_share
    FROM t GROUP BY rl_model, side
),
-- accuracy with the accuracy recipe's bootstrap
per_problem AS (
    SELECT sampler, benchmark, problem_id, count(correct) AS n, count_if(correct)::BIGINT AS c
    FROM generations
    WHERE sampler = 'base' OR sampler IN (SELECT rl_model FROM models)
    GROUP BY sampler, benchmark, problem_id
),
sums AS (  -- per sampler, c and n over the dataset's problems (tokenshift_problem_numbers order; 0: not in it)
    SELECT g.sampler,
           list(coalesce(p.c, 0)::DOUBLE ORDER BY pn.p) AS c,
           list(coalesce(p.n, 0)::DOUBLE ORDER BY pn.p) AS n
    FROM (SELECT DISTINCT sampler FROM per_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN per_problem AS p ON p.sampler = g.sampler AND p.problem_id = pn.problem_id
    GROUP BY g.sampler
),
acc AS (
    SELECT sampler, sum(c) / nullif(sum(n), 0) AS accuracy, sum(n)::BIGINT AS n_graded
    FROM per_problem GROUP BY sampler
),
acc_ci AS (
    SELECT sampler, quantile_cont(value, 0.025) AS accuracy_lo, quantile_cont(value, 0.975) AS accuracy_hi
    FROM (SELECT s.sampler, w.r, list_dot_product(w.w, s.c) / nullif(list_dot_product(w.w, s.n), 0) AS value
          FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY sampler
),
accuracy AS (
    SELECT a.sampler, a.accuracy, c.accuracy_lo, c.accuracy_hi, a.n_graded
    FROM acc AS a LEFT JOIN acc_ci AS c USING (sampler)
)
SELECT m.rl_model, a.accuracy, a.accuracy_lo, a.accuracy_hi, coalesce(a.n_graded, 0) AS n_graded,
       ba.accuracy AS base_accuracy, ba.accuracy_lo AS base_accuracy_lo, ba.accuracy_hi AS base_accuracy_hi,
       o.n_tokens AS n_tokens_own, b.n_tokens AS n_tokens_base,
       o.mean_js AS mean_js_own, b.mean_js AS mean_js_base,
       o.share_over_low AS share_over_low_own, b.share_over_low AS share_over_low_base,
       o.share_over AS share_over_own, b.share_over AS share_over_base,
       o.share_over_high AS share_over_high_own, b.share_over_high AS share_over_high_base,
       o.over_share_middle AS over_share_middle_own, b.over_share_middle AS over_share_middle_base,
       o.middle_token_share AS middle_token_share_own, b.middle_token_share AS middle_token_share_base,
       o.over_share_low_entropy AS over_share_low_entropy_own, b.over_share_low_entropy AS over_share_low_entropy_base,
       o.low_entropy_token_share AS low_entropy_token_share_own,
       b.low_entropy_token_share AS low_entropy_token_share_base
FROM models AS m
LEFT JOIN accuracy AS a ON a.sampler = m.rl_model
LEFT JOIN accuracy AS ba ON ba.sampler = 'base'
LEFT JOIN sides AS o ON o.rl_model = m.rl_model AND o.side = 'own'
LEFT JOIN sides AS b ON b.rl_model = m.rl_model AND b.side = 'base'
ORDER BY m.rl_model;
