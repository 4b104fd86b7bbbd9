-- accuracy: accuracy and unbiased pass@k of each sampler on each benchmark, with 95% bootstrap intervals.
--
-- Per (sampler, benchmark) of generations: accuracy = correct / graded over all graded responses
-- (correct not NULL); responses with correct NULL (grading failed or timed out) are counted in n_ungraded
-- and excluded everywhere else. pass@k per problem with n graded samples, c of them correct, is the
-- unbiased estimator 1 - C(n - c, k) / C(n, k) (Chen et al. 2021), averaged over the problems with n >= k
-- (n_problems_k of them; NULL pass_at_k when none).
--
-- Intervals: Poisson percentile bootstrap over problems (answers to one problem are not independent, so the
-- problem is the unit; Hanley & MacGibbon 2006, Chamandy et al. 2012: each problem's count in a replicate is
-- Poisson(1), independently, instead of a multinomial draw of n problems), bootstrap_reps replicates with a fixed
-- seed. The dataset's problems are numbered p = 0, 1, ... in prompts.problem_id order (validate checks that every
-- answer's problem is there); in replicate r problem p weighs w = how many k = 0..11 have x >= round(2^32 *
-- P(Poisson(1) <= k)), x = lowbias32 of (bootstrap_seed * 3141592653 + r * 1000003 + p) mod 2^32 (x ^= x >> 16; x
-- *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16, all mod 2^32), so the weights can be reproduced
-- outside DuckDB. The same weights serve every group and every interval recipe (groups on the same problems are
-- paired). A replicate's accuracy is its weighted correct / graded (ratio of sums), its pass@k the weighted mean
-- over the problems; replicates with nothing graded (every weight 0) are left out. The interval is the 2.5% and
-- 97.5% quantiles (linear interpolation) of the replicates.
-- The weights come from the macro tokenshift_bootstrap_weights of the preamble (`tokenshift query NAME --print-sql`
-- prints the preamble and the recipe; paste both).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   pass_k           INTEGER[]  [1, 4, 8]   values of k
--   bootstrap_reps   INTEGER    1000        bootstrap replicates
--   bootstrap_seed   INTEGER    0           seed of the replicates' weights (>= 0)
--
-- Tables: generations
--
-- Columns (one row per sampler, benchmark, k):
--   sampler, benchmark            as in generations
--   n_problems                    problems with at least one response
--   n_generations                 responses
--   n_graded                      responses with a verdict
--   n_ungraded                    responses with correct NULL
--   accuracy                      correct / n_graded, fraction (NULL if nothing graded)
--   accuracy_lo, accuracy_hi      95% bootstrap interval of accuracy, fraction
--   k                             k of pass@k
--   pass_at_k                     mean unbiased pass@k over problems with >= k graded samples, fraction
--   pass_at_k_lo, pass_at_k_hi    95% bootstrap interval of pass_at_k, fraction
--   n_problems_k                  problems with >= k graded samples

SET VARIABLE pass_k = COALESCE(getvariable('pass_k'), [1, 4, 8])::INTEGER[];
SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

WITH per_problem AS (
    SELECT sampler, benchmark, problem_id, count(*) AS n_gen, count(correct) AS n,
           count_if(correct)::BIGINT AS c
    FROM generations GROUP BY sampler, benchmark, problem_id
),
overall AS (
    SELECT sampler, benchmark, count(*) AS n_problems, sum(n_gen)::BIGINT AS n_generations,
           sum(n)::BIGINT AS n_graded, sum(n_gen - n)::BIGINT AS n_ungraded,
           sum(c) / nullif(sum(n), 0) AS accuracy
    FROM per_problem GROUP BY sampler, benchmark
),
pass_problem AS (
    SELECT p.sampler, p.benchmark, k.k, p.problem_id,
           CASE WHEN p.n - p.c < k.k THEN 1.0
                ELSE 1.0 - exp(lgamma(p.n - p.c + 1) - lgamma(p.n - p.c - k.k + 1)
                               - lgamma(p.n + 1) + lgamma(p.n - k.k + 1)) END AS pass
    FROM per_problem AS p CROSS JOIN (SELECT unnest(getvariable('pass_k')) AS k) AS k
    WHERE p.n >= k.k
),
pass AS (
    SELECT p.sampler, p.benchmark, k.k, avg(q.pass) AS pass_at_k, count(q.pass) AS n_problems_k
    FROM (SELECT DISTINCT sampler, benchmark FROM per_problem) AS p
    CROSS JOIN (SELECT unnest(getvariable('pass_k')) AS k) AS k
    LEFT JOIN pass_problem AS q ON q.sampler = p.sampler AND q.benchmark = p.benchmark AND q.k = k.k
    GROUP BY p.sampler, p.benchmark, k.k
),
items AS (  -- what a replicate sums over its problems: k NULL: correct and graded; else pass@k and 1
    SELECT sampler, benchmark, NULL::INTEGER AS k, problem_id, c::DOUBLE AS num, n::DOUBLE AS den FROM per_problem
    UNION ALL
    SELECT sampler, benchmark, k, problem_id, pass, 1.0 FROM pass_problem
),
sums AS (  -- per group, num and den over the dataset's problems in tokenshift_problem_numbers order (0: not in it)
    SELECT g.sampler, g.benchmark, g.k, list(coalesce(i.num, 0) ORDER BY pn.p) AS num,
           list(coalesce(i.den, 0) ORDER BY pn.p) AS den
    FROM (SELECT DISTINCT sampler, benchmark, k FROM items) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN items AS i ON i.sampler = g.sampler AND i.benchmark IS NOT DISTINCT FROM g.benchmark
                        AND i.k IS NOT DISTINCT FROM g.k AND i.problem_id = pn.problem_id
    GROUP BY g.sampler, g.benchmark, g.k
),
intervals AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT sampler, benchmark, k, quantile_cont(value, 0.025) AS lo, quantile_cont(value, 0.975) AS hi
    FROM (SELECT s.sampler, s.benchmark, s.k, list_dot_product(w.w, s.num) / nullif(list_dot_product(w.w, s.den), 0) AS value
          FROM sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY sampler, benchmark, k
),
accuracy_ci AS (SELECT sampler, benchmark, lo AS accuracy_lo, hi AS accuracy_hi FROM intervals WHERE k IS NULL),
pass_ci AS (SELECT sampler, benchmark, k, lo AS pass_at_k_lo, hi AS pass_at_k_hi FROM intervals WHERE k IS NOT NULL)
SELECT o.sampler, o.benchmark, o.n_problems, o.n_generations, o.n_graded, o.n_ungraded, o.accuracy,
       a.accuracy_lo, a.accuracy_hi, p.k, p.pass_at_k, c.pass_at_k_lo, c.pass_at_k_hi,
       p.n_problems_k
FROM overall AS o JOIN pass AS p USING (sampler, benchmark)
LEFT JOIN accuracy_ci AS a USING (sampler, benchmark)
LEFT JOIN pass_ci AS c USING (sampler, benchmark, k)
ORDER BY o.sampler <> 'base', o.sampler, o.benchmark, p.k;
