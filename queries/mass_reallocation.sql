-- mass_reallocation: how much probability RL moves onto its top-1 token, and into / out of base's top-K.
--
-- Notation per position: p = base next-token distribution, q = RL's, S = topk_base_ids (base top-K),
-- R = topk_rl_ids (RL top-K), t* = top1_rl (RL top-1 id), p_K = smallest probability in topk_base_logp,
-- q_K = smallest in topk_rl_logp. Probabilities are exp(logp) (logp in nats).
--
-- 1. Mass moved onto the RL top-1:  gain = q(t*) - p(t*).
--    q(t*) = exp(topk_rl_logp[1]) (exact). p(t*) is exact when t* is in S (its topk_base_logp entry), when
--    rl_top1_rank_base <= K (the entry at that rank: ties share the best rank, so it holds p(t*)), or when
--    t* is the sampled token (exp(logp_base)). Otherwise t* ranks below base's K-th candidate, so
--    0 <= p(t*) <= p_K and the gain is reported as bounds: gain_lo = q(t*) - p_K, gain_hi = q(t*).
-- 2. Mass on base's top-K:  base_mass = sum over S of p (exact); rl_mass = sum over S of q.
--    q(i) for i in S is exact when i is in R or is the sampled token (exp(logp_rl)); every other i in S is
--    outside RL's top-K, so 0 <= q(i) <= q_K. Bounds: rl_mass_lo = known part;
--    rl_mass_hi = min(known part + (number unknown) * q_K, 1 - sum of q over R \ S), never below rl_mass_lo.
--    net = rl_mass - base_mass: > 0 means RL moved mass into base's top-K (concentrating on base's
--    candidates), < 0 means mass left base's top-K for tokens base ranked lower.
-- All means are over positions of the (sampler, rl_model, subset) group, with lo/hi means of the bounds
-- (equal when every position is exact; exact_share says how often they are).
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

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;

-- One scan of tokens; both subsets are aggregated together (GROUPING SETS). Per position, with R's ids distinct:
-- q over R \ S (rl_mass_outside) is q_r weighted by the 0/1 list "not in S"; q over S ∩ R is the rest of R's mass.
WITH t AS (
    SELECT sampler, rl_model, js::DOUBLE >= getvariable('js_threshold') AS is_over,
           exp(topk_rl_logp[1]::DOUBLE) AS q_top1,
           list_contains(topk_base_ids, top1_rl) OR rl_top1_rank_base <= len(topk_base_logp) AS top1_in_base_topk,
           -- tokenshift_p_rl_top1: a macro of the preamble (tokenshift query NAME --print-sql); NULL: not exact
           tokenshift_p_rl_top1(topk_base_ids, topk_base_logp, top1_rl, rl_top1_rank_base, token_id, logp_base)
               AS p_top1_exact,
           -- the lists are most probable first (schemas), so the last entry is the smallest
           exp(topk_base_logp[-1]::DOUBLE) AS p_k,
           exp(topk_rl_logp[-1]::DOUBLE) AS q_k,
           list_sum(list_transform(topk_base_logp, lambda lp: exp(lp::DOUBLE))) AS base_mass,
           list_transform(topk_rl_logp, lambda lp: exp(lp::DOUBLE)) AS q_r,
           list_transform(topk_rl_ids, lambda i: (NOT list_contains(topk_base_ids, i))::DOUBLE) AS not_in_s,
           -- the sampled token's RL probability is known beyond R: it counts when it is in S but not in R
           CASE WHEN list_contains(topk_base_ids, token_id) AND NOT list_contains(topk_rl_ids, token_id)
                THEN exp(logp_rl::DOUBLE) END AS q_token,
           len(topk_base_ids) AS k_s, len(topk_rl_ids) AS k_r
    FROM tokens
),
k AS (
    SELECT sampler, rl_model, is_over, q_top1, top1_in_base_topk, p_top1_exact, p_k, q_k, base_mass,
           list_dot_product(q_r, not_in_s) AS rl_mass_outside,
           list_sum(q_r) - list_dot_product(q_r, not_in_s) + coalesce(q_token, 0.0) AS rl_mass_known,
           k_s - (k_r - list_sum(not_in_s)::INTEGER) - (q_token IS NOT NULL)::INTEGER AS n_unknown
    FROM t
),
m AS (
    SELECT *,
           coalesce(p_top1_exact, 0.0) AS p_top1_lo,
           coalesce(p_top1_exact, p_k) AS p_top1_hi,
           rl_mass_known AS rl_mass_lo,
           greatest(rl_mass_known, least(rl_mass_known + n_unknown * q_k, 1.0 - rl_mass_outside)) AS rl_mass_hi
    FROM k
)
SELECT sampler, rl_model, CASE WHEN grouping(is_over) = 1 THEN 'all' ELSE 'over_threshold' END AS subset,
       count(*) AS n_tokens,
       avg(CASE WHEN top1_in_base_topk THEN 1.0 ELSE 0.0 END) AS rl_top1_in_base_topk,
       avg(q_top1) AS mean_q_rl_top1,
       avg(p_top1_lo) AS mean_p_rl_top1_lo, avg(p_top1_hi) AS mean_p_rl_top1_hi,
       avg(q_top1 - p_top1_hi) AS mean_gain_lo, avg(q_top1 - p_top1_lo) AS mean_gain_hi,
       avg(CASE WHEN p_top1_exact IS NOT NULL THEN 1.0 ELSE 0.0 END) AS exact_top1_share,
       avg(base_mass) AS mean_base_mass_base_topk,
       avg(rl_mass_lo) AS mean_rl_mass_base_topk_lo, avg(rl_mass_hi) AS mean_rl_mass_base_topk_hi,
       avg(rl_mass_lo - base_mass) AS mean_net_into_base_topk_lo,
       avg(rl_mass_hi - base_mass) AS mean_net_into_base_topk_hi,
       avg(CASE WHEN n_unknown = 0 THEN 1.0 ELSE 0.0 END) AS exact_topk_share
FROM m
GROUP BY GROUPING SETS ((sampler, rl_model), (sampler, rl_model, is_over))
HAVING grouping(is_over) = 1 OR is_over
ORDER BY sampler <> 'base', sampler, rl_model, subset;
