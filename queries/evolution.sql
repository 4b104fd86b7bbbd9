-- evolution: the sparse-shift statistics summarised per RL checkpoint (one rl_model = one checkpoint).
--
-- Per (rl_model, sampler) of tokens, the headline numbers of js_distribution, entropy_vs_divergence,
-- position_concentration, reranking, mass_reallocation and divergent_tokens, plus the checkpoint's accuracy.
-- Definitions are those of the individual recipes: "over" = js >= js_threshold; forks = entropy_base >=
-- the fork_quantile quantile within the group; edges = first or last edge_tokens positions of an answer
-- (n_tokens from generations); RL top-1 gain = q(t*) - p(t*), exact on builds of schema version 2.1 or later
-- (mean_gain_lo = mean_gain_hi); on older builds this recipe cannot compute p(t*) exactly where the RL top-1 is
-- outside base's top-K and not otherwise known, and bounds it in [0, p_K] (see mass_reallocation). checkpoint_step is the
-- last number in rl_model (e.g. 'rl-step200' -> 200), for ordering checkpoints; NULL if none.
-- Family: only the checkpoints of one run are shown; a model's stem is its name without its last number
-- and what follows it, and without a separator and 'step' just before that number ('rl-step-020' -> 'rl';
-- an un-numbered name is its own stem), and the run shown is final_model's stem, or by default the stem
-- shared by the most rl_models (ties: first by name), so with 'rl-step-020', ..., 'rl' and 'sft' the run is
-- 'rl' and 'sft' is left out (as rl_model and as sampler).
-- Convergence: the final model is final_model, or by default the run's last rl_model in this order (highest
-- checkpoint_step, a model without a step number after every numbered one, ties by name); a checkpoint's
-- high-divergence set is its (generation_id, position) pairs with js >= js_threshold among the answers of
-- the row's sampler, and jaccard_final = |set ∩ final's set| / |set ∪ final's set| along those same answers.
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold    DOUBLE   0.1    JS threshold, nats
--   near_zero_js    DOUBLE   0.01   JS below which a position counts as unchanged, nats
--   edge_tokens     INTEGER  32     length of the first / last segments, tokens
--   fork_quantile   DOUBLE   0.8    entropy_base quantile above which a position is a fork
--   top_rank        INTEGER  3      base rank k for "RL top-1 is in base top-k"
--   final_model     VARCHAR  ''     rl_model whose high-divergence set the others are compared with ('' = last)
--   bootstrap_reps  INTEGER  1000   bootstrap replicates of rl_accuracy's interval
--   bootstrap_seed  INTEGER  0      seed of the replicates' weights (>= 0)
--
-- Tables: tokens, generations
--
-- Columns (one row per rl_model, sampler):
--   rl_model, checkpoint_step, sampler
--   n_tokens                   positions
--   mean_js, p99_js            mean and 99th percentile of JS, nats
--   p50_js, p95_js             50th and 95th percentile of JS, nats
--   share_near_zero            share with js < near_zero_js, fraction
--   share_over                 share with js >= js_threshold, fraction
--   edge_token_share           share of positions in the first/last edge_tokens, fraction
--   over_share_in_edges        share of over-threshold positions in the first/last edge_tokens, fraction
--   over_share_in_forks        share of over-threshold positions that are forks, fraction
--   rl_top1_in_base_top        share of positions with rl_top1_rank_base <= top_rank, fraction
--   rl_top1_in_base_top_over   the same over over-threshold positions only, fraction
--   mean_topk_overlap          mean topk_overlap, fraction
--   mean_gain_lo, mean_gain_hi mean probability moved onto the RL top-1 (bounds), probability
--   top_divergent_token        token text with the most over-threshold positions (ties: lowest token_id)
--   top_divergent_token_n      its over-threshold positions
--   rl_accuracy                accuracy of responses sampled by rl_model (graded only), fraction
--   final_model                the model the next two columns compare with
--   n_over                     high-divergence positions (js >= js_threshold)
--   jaccard_final              Jaccard overlap of the high-divergence set with final_model's, fraction
--                              (1 for final_model itself; NULL when both sets are empty)
--   rl_accuracy_lo, rl_accuracy_hi  95% interval of rl_accuracy: method_comparison's Poisson bootstrap over the
--                              model's problems, macro tokenshift_bootstrap_weights of the preamble

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE near_zero_js = COALESCE(getvariable('near_zero_js'), 0.01)::DOUBLE;
SET VARIABLE edge_tokens = COALESCE(getvariable('edge_tokens'), 32)::INTEGER;
SET VARIABLE fork_quantile = COALESCE(getvariable('fork_quantile'), 0.8)::DOUBLE;
SET VARIABLE top_rank = COALESCE(getvariable('top_rank'), 3)::INTEGER;
SET VARIABLE final_model = COALESCE(getvariable('final_model'), '')::VARCHAR;
SET VARIABLE bootstrap_reps = COALESCE(getvariable('bootstrap_reps'), 1000)::INTEGER;
SET VARIABLE bootstrap_seed = COALESCE(getvariable('bootstrap_seed'), 0)::INTEGER;

-- Each row of tokens is read once for the summary, and the high-divergence positions once more for the forks,
-- the top token and the convergence.
WITH models AS (
    SELECT rl_model, TRY_CAST(regexp_extract(rl_model, '(\d+)\D*$', 1) AS BIGINT) AS step,
           regexp_replace(rl_model, '([-_./ ]*step)?[-_./ ]*\d+\D*$', '', 'i') AS stem
    FROM (SELECT DISTINCT rl_model FROM tokens)
),
family AS (
    SELECT rl_model, step FROM models
    WHERE stem = coalesce((SELECT stem FROM models WHERE rl_model = getvariable('final_model')),
                          (SELECT stem FROM models GROUP BY stem ORDER BY count(*) DESC, stem LIMIT 1))
),
t AS (  -- the run's (rl_model, sampler) groups
    SELECT tk.rl_model, tk.sampler, tk.js::DOUBLE AS js,
           tk.js::DOUBLE >= getvariable('js_threshold') AS is_over,
           tk.position < getvariable('edge_tokens')
               OR tk.position >= g.n_tokens - getvariable('edge_tokens') AS is_edge,
           tk.entropy_base::DOUBLE AS entropy,
           tk.rl_top1_rank_base <= getvariable('top_rank') AS in_top,
           tk.topk_overlap::DOUBLE AS overlap,
           -- q(t*) and the bounds of p(t*) (equal where exact): view tokens_reallocation of the preamble
           tk.q_top1, tk.p_top1_lo, tk.p_top1_hi
    FROM tokens_reallocation AS tk JOIN generations AS g USING (generation_id)
    WHERE tk.rl_model IN (SELECT rl_model FROM family)
      AND (tk.sampler = 'base' OR tk.sampler IN (SELECT rl_model FROM family))
),
summary AS (
    SELECT rl_model, sampler, count(*) AS n_tokens, avg(js) AS mean_js,
           quantile_cont(js, [0.99, 0.5, 0.95]) AS js_at,
           quantile_cont(entropy, getvariable('fork_quantile')) AS fork_cutoff,
           count_if(js < getvariable('near_zero_js')) / count(*) AS share_near_zero,
           count_if(is_over) / count(*) AS share_over,
           count_if(is_edge) / count(*) AS edge_token_share,
           count_if(is_over AND is_edge) / nullif(count_if(is_over), 0) AS over_share_in_edges,
           count_if(in_top) / count(*) AS rl_top1_in_base_top,
           count_if(is_over AND in_top) / nullif(count_if(is_over), 0) AS rl_top1_in_base_top_over,
           avg(overlap) AS mean_topk_overlap,
           avg(q_top1 - p_top1_hi) AS mean_gain_lo,
           avg(q_top1 - p_top1_lo) AS mean_gain_hi
    FROM t GROUP BY rl_model, sampler
),
over_set AS (  -- the high-divergence positions
    SELECT rl_model, sampler, generation_id, position, token_id, token, entropy_base::DOUBLE AS entropy FROM tokens
    WHERE js::DOUBLE >= getvariable('js_threshold')
),
forks AS (  -- per group, the share of its high-divergence positions (of answers in generations) that are forks
    SELECT o.rl_model, o.sampler, count_if(o.entropy >= s.fork_cutoff) / count(*) AS over_share_in_forks
    FROM over_set AS o JOIN summary AS s USING (rl_model, sampler)
    WHERE o.generation_id IN (SELECT generation_id FROM generations)
    GROUP BY o.rl_model, o.sampler
),
top_token AS (
    SELECT rl_model, sampler, arg_min(token, (-n_over, token_id)) AS top_divergent_token,
           max(n_over) AS top_divergent_token_n
    FROM (SELECT rl_model, sampler, token_id, any_value(token) AS token, count(*)::BIGINT AS n_over
          FROM over_set WHERE generation_id IN (SELECT generation_id FROM generations)
          GROUP BY rl_model, sampler, token_id)
    GROUP BY rl_model, sampler
),
acc_problem AS (  -- per sampler and problem: graded and correct answers
    SELECT sampler, problem_id, count(correct) AS n, count_if(correct)::BIGINT AS c
    FROM generations WHERE sampler IN (SELECT rl_model FROM family) GROUP BY sampler, problem_id
),
acc_sums AS (  -- per sampler, c and n over the dataset's problems (tokenshift_problem_numbers order; 0: not in it)
    SELECT g.sampler, list(coalesce(p.c, 0)::DOUBLE ORDER BY pn.p) AS c, list(coalesce(p.n, 0)::DOUBLE ORDER BY pn.p) AS n
    FROM (SELECT DISTINCT sampler FROM acc_problem) AS g CROSS JOIN tokenshift_problem_numbers AS pn
    LEFT JOIN acc_problem AS p ON p.sampler = g.sampler AND p.problem_id = pn.problem_id
    GROUP BY g.sampler
),
acc_ci AS (  -- tokenshift_bootstrap_weights: a macro of the preamble (tokenshift query NAME --print-sql)
    SELECT sampler AS rl_model, quantile_cont(value, 0.025) AS rl_accuracy_lo,
           quantile_cont(value, 0.975) AS rl_accuracy_hi
    FROM (SELECT s.sampler, w.r, list_dot_product(w.w, s.c) / nullif(list_dot_product(w.w, s.n), 0) AS value
          FROM acc_sums AS s, tokenshift_bootstrap_weights(getvariable('bootstrap_reps'), getvariable('bootstrap_seed')) AS w)
    GROUP BY sampler
),
acc AS (
    SELECT sampler AS rl_model, avg(correct::DOUBLE) AS rl_accuracy FROM generations GROUP BY sampler
),
final AS (
    SELECT coalesce(nullif(getvariable('final_model'), ''),
                    (SELECT rl_model FROM family ORDER BY step DESC NULLS FIRST, rl_model DESC LIMIT 1))
               AS final_model
),
final_set AS (
    SELECT sampler, generation_id, position FROM over_set WHERE rl_model = (SELECT final_model FROM final)
),
convergence AS (
    SELECT o.rl_model, o.sampler, count(*) AS n_over, count(f.position) AS n_shared
    FROM over_set AS o
    LEFT JOIN final_set AS f USING (sampler, generation_id, position)
    GROUP BY o.rl_model, o.sampler
),
final_n AS (
    SELECT sampler, count(*) AS n_final FROM final_set GROUP BY sampler
)
SELECT s.rl_model, TRY_CAST(regexp_extract(s.rl_model, '(\d+)\D*$', 1) AS BIGINT) AS checkpoint_step,
       s.sampler, s.n_tokens, s.mean_js, s.js_at[1] AS p99_js, s.share_near_zero, s.share_over, s.edge_token_share,
       s.over_share_in_edges, fk.over_share_in_forks, s.rl_top1_in_base_top, s.rl_top1_in_base_top_over,
       s.mean_topk_overlap, s.mean_gain_lo, s.mean_gain_hi,
       tt.top_divergent_token, tt.top_divergent_token_n, a.rl_accuracy,
       s.js_at[2] AS p50_js, s.js_at[3] AS p95_js, (SELECT final_model FROM final) AS final_model,
       coalesce(c.n_over, 0) AS n_over,
       coalesce(c.n_shared, 0) / nullif(coalesce(c.n_over, 0) + coalesce(fn.n_final, 0) - coalesce(c.n_shared, 0), 0)
           AS jaccard_final,
       ci.rl_accuracy_lo, ci.rl_accuracy_hi
FROM summary AS s
LEFT JOIN top_token AS tt USING (rl_model, sampler)
LEFT JOIN forks AS fk USING (rl_model, sampler)
LEFT JOIN acc AS a USING (rl_model)
LEFT JOIN acc_ci AS ci USING (rl_model)
LEFT JOIN convergence AS c USING (rl_model, sampler)
LEFT JOIN final_n AS fn USING (sampler)
ORDER BY checkpoint_step NULLS LAST, s.rl_model, s.sampler <> 'base', s.sampler;
