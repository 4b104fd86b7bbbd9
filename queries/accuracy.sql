-- accuracy: accuracy and unbiased pass@k of each sampler on each benchmark.
--
-- Per (sampler, benchmark) of generations: accuracy = correct / graded over all graded responses
-- (correct not NULL); responses with correct NULL (grading failed or timed out) are counted in n_ungraded
-- and excluded everywhere else. pass@k per problem with n graded samples, c of them correct, is the
-- unbiased estimator 1 - C(n - c, k) / C(n, k) (Chen et al. 2021), averaged over the problems with n >= k
-- (n_problems_k of them; NULL pass_at_k when none).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   pass_k   INTEGER[]  [1, 4, 8]   values of k
--
-- Tables: generations
--
-- Columns (one row per sampler, benchmark, k):
--   sampler, benchmark   as in generations
--   n_problems           problems with at least one response
--   n_generations        responses
--   n_graded             responses with a verdict
--   n_ungraded           responses with correct NULL
--   accuracy             correct / n_graded, fraction (NULL if nothing graded)
--   k                    k of pass@k
--   pass_at_k            mean unbiased pass@k over problems with >= k graded samples, fraction
--   n_problems_k         problems with >= k graded samples

SET VARIABLE pass_k = COALESCE(getvariable('pass_k'), [1, 4, 8])::INTEGER[];

WITH per_problem AS (
    SELECT sampler, benchmark, problem_id, count(*) AS n_gen, count(correct) AS n,
           count_if(correct) AS c
    FROM generations GROUP BY sampler, benchmark, problem_id
),
overall AS (
    SELECT sampler, benchmark, count(*) AS n_problems, sum(n_gen)::BIGINT AS n_generations,
           sum(n)::BIGINT AS n_graded, sum(n_gen - n)::BIGINT AS n_ungraded,
           sum(c) / nullif(sum(n), 0) AS accuracy
    FROM per_problem GROUP BY sampler, benchmark
),
pass AS (
    SELECT p.sampler, p.benchmark, k.k,
           avg(CASE WHEN p.n - p.c < k.k THEN 1.0
                    ELSE 1.0 - exp(lgamma(p.n - p.c + 1) - lgamma(p.n - p.c - k.k + 1)
                                   - lgamma(p.n + 1) + lgamma(p.n - k.k + 1)) END)
               FILTER (WHERE p.n >= k.k) AS pass_at_k,
           count(*) FILTER (WHERE p.n >= k.k) AS n_problems_k
    FROM per_problem AS p CROSS JOIN (SELECT unnest(getvariable('pass_k')) AS k) AS k
    GROUP BY p.sampler, p.benchmark, k.k
)
SELECT o.sampler, o.benchmark, o.n_problems, o.n_generations, o.n_graded, o.n_ungraded, o.accuracy,
       p.k, p.pass_at_k, p.n_problems_k
FROM overall AS o JOIN pass AS p USING (sampler, benchmark)
ORDER BY o.sampler <> 'base', o.sampler, o.benchmark, p.k;
