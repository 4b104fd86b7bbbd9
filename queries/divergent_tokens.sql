-- divergent_tokens: the tokens most often at high-divergence positions, and how context-dependent that is.
--
-- For every rl_model (pooling the selected samplers): per sampled token (token_id, token text), the number
-- of positions where it was sampled (n_occurrences), how many of those have js >= js_threshold (n_over),
-- its rate over threshold when it occurs (rate_over = n_over / n_occurrences: near 1 = divergent wherever it
-- appears, low = divergent only in some contexts) and its share of all over-threshold positions.
-- Tokens with fewer than min_occurrences occurrences are left out; the top_n per rl_model by n_over
-- (then rate_over, then token_id) are returned.
--
-- Parameters (override with SET VARIABLE name = value; before pasting):
--   js_threshold     DOUBLE   0.1   JS threshold, nats
--   min_occurrences  INTEGER  5     least occurrences for a token to be listed
--   top_n            INTEGER  50    tokens listed per rl_model
--   sampler          VARCHAR  '*'   only responses sampled by this model ('*' = all samplers)
--
-- Tables: tokens
--
-- Columns (one row per rl_model, token):
--   rl_model          as in tokens
--   rank              1-based rank of the token within rl_model
--   token_id, token   sampled token id and its text
--   n_occurrences     positions where the token was sampled
--   n_over            of which js >= js_threshold
--   rate_over         n_over / n_occurrences, fraction
--   share_of_over     n_over / all over-threshold positions of the rl_model, fraction
--   mean_js           mean JS at its positions, nats

SET VARIABLE js_threshold = COALESCE(getvariable('js_threshold'), 0.1)::DOUBLE;
SET VARIABLE min_occurrences = COALESCE(getvariable('min_occurrences'), 5)::INTEGER;
SET VARIABLE top_n = COALESCE(getvariable('top_n'), 50)::INTEGER;
SET VARIABLE sampler = COALESCE(getvariable('sampler'), '*')::VARCHAR;

WITH t AS (
    SELECT rl_model, token_id, token, js::DOUBLE AS js, js::DOUBLE >= getvariable('js_threshold') AS is_over
    FROM tokens
    WHERE getvariable('sampler') = '*' OR sampler = getvariable('sampler')
),
totals AS (
    SELECT rl_model, count_if(is_over) AS n_over_total FROM t GROUP BY rl_model
),
per_token AS (
    SELECT rl_model, token_id, any_value(token) AS token, count(*) AS n_occurrences,
           count_if(is_over)::BIGINT AS n_over, avg(js) AS mean_js
    FROM t GROUP BY rl_model, token_id
)
SELECT p.rl_model,
       row_number() OVER (PARTITION BY p.rl_model ORDER BY p.n_over DESC,
                          p.n_over / p.n_occurrences DESC, p.token_id) AS rank,
       p.token_id, p.token, p.n_occurrences, p.n_over,
       p.n_over / p.n_occurrences AS rate_over,
       p.n_over / nullif(o.n_over_total, 0) AS share_of_over,
       p.mean_js
FROM per_token AS p JOIN totals AS o USING (rl_model)
WHERE p.n_occurrences >= getvariable('min_occurrences')
QUALIFY rank <= getvariable('top_n')
ORDER BY p.rl_model, rank;
