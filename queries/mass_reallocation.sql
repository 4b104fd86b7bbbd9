-- mass_reallocation: how much probability RL moves onto its top-1 token, and into / out of base's top-K.
--
-- Notation per position: p = base next-token distribution, q = RL's, S = topk_base_ids (base top-K),
-- R = topk_rl_ids (RL top-K), t* = top1_rl (RL top-1 id), p_K = smallest probability in topk_base_logp,
-- q_K = smallest in topk_rl_logp. Probabilities are exp(logp) (logp in nats).
--
-- 1. Mass moved onto the RL top-1:  gain = q(t*) - p(t*). q(t*) = exp(topk_rl_logp[1]) (exact; tokens.p_rl_rl_top1).
-- 2. Mass on base's top-K:  base_mass = sum over S of p (exact; tokens.base_mass_base_topk); rl_mass = sum over S of q.
--    net = rl_mass - base_mass: > 0 means RL moved mass into base's top-K (concentrating on base's
--    candidates), < 0 means mass left base's top-K for tokens base ranked lower.
-- 3. Base mass on RL's top-K:  sum over R of p (how much of RL's candidates base already held).
-- p(t*), rl_mass and the base mass on R are exact on builds of schema version 2.1 or later: the scorer wrote
-- them from the full distributions (tokens.p_base_rl_top1, rl_mass_base_topk, base_mass_rl_topk). Older builds
-- (and builds migrated from them) lack those columns, and this recipe cannot compute them exactly there: it
-- reports bounds from the top-K lists instead. p(t*) is exact when t* is in S, when rl_top1_rank_base <= K
-- (the entry at that rank: ties share the best rank) or when t* is the sampled token; otherwise
-- 0 <= p(t*) <= p_K. q(i) for i in S is exact when i is in R or is the sampled token, otherwise
-- 0 <= q(i) <= q_K, and rl_mass <= 1 - sum of q over R \ S; the base mass on R the same way with the roles
-- swapped. q(t*) and base_mass are read from their columns on builds of schema version 2.2 or later and computed
-- from the lists on older ones (the same values). (View tokens_reallocation of the preamble: tokenshift query NAME
-- --print-sql.)
-- All means are over positions of the (sampler, rl_model, subset) group, with lo/hi means of the bounds
-- (equal when every position is exact; the exact_*_share columns say how often they are).
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold   DOUBLE  0.1   JS threshold, nats, for the 'over_threshold' subset
--
-- Tables: tokens
--
-- Columns (one row per sampler, rl_model, subset):
--   sampler, rl_model, subset        subset is 'all' or 'over_threshold' (js >= js_threshold)
--   n_tokens                         positions in the subset
--   rl_top1_in_base_topk             share of positions with t* in S (or rl_top1_rank_base <= K), fraction
--   mean_q_rl_top1                   mean q(t*), probability
--   mean_p_rl_top1_lo                mean lower bound of p(t*), probability
--   mean_p_rl_top1_hi                mean upper bound of p(t*), probability
--   mean_gain_lo                     mean lower bound of q(t*) - p(t*), probability
--   mean_gain_hi                     mean upper bound of q(t*) - p(t*), probability
--   exact_top1_share                 share of positions where p(t*) is exact, fraction
--   mean_base_mass_base_topk         mean sum over S of p, probability
--   mean_rl_mass_base_topk_lo        mean lower bound of the sum over S of q, probability
--   mean_rl_mass_base_topk_hi        mean upper bound of the sum over S of q, probability
--   mean_net_into_base_topk_lo       mean lower bound of rl_mass - base_mass, probability
--   mean_net_into_base_topk_hi       mean upper bound of rl_mass - base_mass, probability
--   exact_topk_share                 share of positions where rl_mass is exact, fraction
--   mean_base_mass_rl_topk_lo        mean lower bound of the sum over R of p, probability
--   mean_base_mass_rl_topk_hi        mean upper bound of the sum over R of p, probability
--   exact_rl_topk_share              share of positions where the sum over R of p is exact, fraction

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;

-- One scan of tokens: sums per (sampler, rl_model, over threshold or not); the two subsets and every mean follow
-- from those few rows (gain and net are summed per position: a difference of sums would lose their digits).
WITH sums AS (
    SELECT sampler, rl_model, js::DOUBLE >= getvariable('js_threshold') AS is_over, count(*) AS n,
           sum(top1_in_base_topk::DOUBLE) AS top1_in, sum(q_top1) AS q, sum(p_top1_lo) AS p_lo, sum(p_top1_hi) AS p_hi,
           sum(q_top1 - p_top1_hi) AS gain_lo, sum(q_top1 - p_top1_lo) AS gain_hi, sum(p_top1_exact::DOUBLE) AS p_exact, sum(base_mass) AS base_mass,
           sum(rl_mass_lo) AS rl_lo, sum(rl_mass_hi) AS rl_hi, sum(rl_mass_lo - base_mass) AS net_lo,
           sum(rl_mass_hi - base_mass) AS net_hi, sum(rl_mass_exact::DOUBLE) AS rl_exact,
           sum(base_mass_rl_lo) AS brl_lo, sum(base_mass_rl_hi) AS brl_hi, sum(base_mass_rl_exact::DOUBLE) AS brl_exact
    FROM tokens_reallocation
    GROUP BY ALL
),
subsets AS (
    SELECT sampler, rl_model, CASE WHEN grouping(is_over) = 1 THEN 'all' ELSE 'over_threshold' END AS subset,
           sum(n) AS n, sum(top1_in) AS top1_in, sum(q) AS q, sum(p_lo) AS p_lo, sum(p_hi) AS p_hi,
           sum(gain_lo) AS gain_lo, sum(gain_hi) AS gain_hi, sum(p_exact) AS p_exact, sum(base_mass) AS base_mass, sum(rl_lo) AS rl_lo, sum(rl_hi) AS rl_hi,
           sum(net_lo) AS net_lo, sum(net_hi) AS net_hi, sum(rl_exact) AS rl_exact, sum(brl_lo) AS brl_lo, sum(brl_hi) AS brl_hi, sum(brl_exact) AS brl_exact
    FROM sums
    GROUP BY GROUPING SETS ((sampler, rl_model), (sampler, rl_model, is_over))
    HAVING grouping(is_over) = 1 OR is_over
)
SELECT sampler, rl_model, subset, n AS n_tokens,
       top1_in / n AS rl_top1_in_base_topk,
       q / n AS mean_q_rl_top1,
       p_lo / n AS mean_p_rl_top1_lo, p_hi / n AS mean_p_rl_top1_hi,
       gain_lo / n AS mean_gain_lo, gain_hi / n AS mean_gain_hi,
       p_exact / n AS exact_top1_share,
       base_mass / n AS mean_base_mass_base_topk,
       rl_lo / n AS mean_rl_mass_base_topk_lo, rl_hi / n AS mean_rl_mass_base_topk_hi,
       net_lo / n AS mean_net_into_base_topk_lo, net_hi / n AS mean_net_into_base_topk_hi,
       rl_exact / n AS exact_topk_share,
       brl_lo / n AS mean_base_mass_rl_topk_lo, brl_hi / n AS mean_base_mass_rl_topk_hi,
       brl_exact / n AS exact_rl_topk_share
FROM subsets
ORDER BY sampler <> 'base', sampler, rl_model, subset;
