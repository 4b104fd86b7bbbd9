"""README figures for the embedded pair, from a build's tokens and generations tables (DuckDB + numpy).

Usage: python docs/toy_pair/shift_summary.py BUILD_DIR   (e.g. the build of `tokenshift demo --out D`: D/build)

For every compared model and sampler (base, or the model itself): share of positions with JS < 0.01,
>= 0.01 and >= 0.1, mean JS, the share of JS >= 0.1 positions outside the first/last 5% of the answer
and at base entropy < 0.3 nats, RL top-1 in base top-3, and accuracy; 95% bootstrap intervals over
problems (1,000 resamples, seed 0). Then sft, sft-offpolicy and rl-seed1 - rl paired differences (those
in the build) and, along each model's own samples, where its JS >= 0.1 positions sit (position, base entropy, token).
"""

import sys

import duckdb
import numpy as np
import pandas as pd

HIGH, NEAR_ZERO, LOW_ENTROPY = 0.1, 0.01, 0.3
COMPARED_WITH_RL = ("sft", "sft-offpolicy", "rl-seed1")  # paired differences with rl, when in the build


def load(build: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    con = duckdb.connect()
    tokens = con.execute(f"""
        SELECT g.problem_id, t.sampler, t.rl_model, t.js::DOUBLE AS js, t.entropy_base::DOUBLE AS eb,
               t.rel_position::DOUBLE AS rel, t.rl_top1_rank_base AS rank1, t.token
        FROM read_parquet('{build}/tokens/**/*.parquet') AS t
        JOIN read_parquet('{build}/generations/**/*.parquet') AS g USING (generation_id)""").df()
    gens = con.execute(f"SELECT problem_id, sampler, correct::DOUBLE AS correct "
                       f"FROM read_parquet('{build}/generations/**/*.parquet')").df()
    high = tokens.js >= HIGH
    tokens = tokens.assign(one=1.0, near0=(tokens.js < NEAR_ZERO) * 1.0, over01=(tokens.js >= NEAR_ZERO) * 1.0,
                           high=high * 1.0, inner=(high & (tokens.rel > 0.05) & (tokens.rel < 0.95)) * 1.0,
                           lowent=(high & (tokens.eb < LOW_ENTROPY)) * 1.0, top3=(tokens.rank1 <= 3) * 1.0)
    return tokens, gens


def main(build: str) -> None:
    tokens, gens = load(build)
    problems = sorted(tokens.problem_id.unique())
    draws = np.random.default_rng(0).integers(0, len(problems), size=(1000, len(problems)))

    def sums(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        return frame.groupby("problem_id")[cols].sum().reindex(problems, fill_value=0)

    def ratio(num: pd.Series, den: pd.Series) -> np.ndarray:
        n, d = num.to_numpy(float), den.to_numpy(float)
        boot = n[draws].sum(1) / np.maximum(d[draws].sum(1), 1e-12)
        return np.array([n.sum() / d.sum(), *np.percentile(boot, [2.5, 97.5])])

    def fmt(v: np.ndarray, k: float = 100) -> str:
        return f"{v[0] * k:.1f} [{v[1] * k:.1f}, {v[2] * k:.1f}]"

    rows, groups = [], {}
    for model in sorted(tokens.rl_model.unique()):
        for sampler in ("base", model):
            g = sums(tokens[(tokens.rl_model == model) & (tokens.sampler == sampler)],
                     ["one", "near0", "over01", "high", "js", "inner", "lowent", "top3"])
            groups[model, sampler == model] = g
            acc = sums(gens[gens.sampler == sampler].assign(one=1.0), ["correct", "one"])
            rows.append({"model": model, "sampler": sampler, "positions": int(g.one.sum()),
                         "js<0.01 %": fmt(ratio(g.near0, g.one)), "js>=0.01 %": fmt(ratio(g.over01, g.one)),
                         "js>=0.1 %": fmt(ratio(g.high, g.one)), "mean js 1e-3": fmt(ratio(g.js, g.one), 1000),
                         "n js>=0.1": int(g.high.sum()), "inner %": fmt(ratio(g.inner, g.high)),
                         "low entropy %": fmt(ratio(g.lowent, g.high)), "rl top1 in base top3 %": fmt(ratio(g.top3, g.one)),
                         "accuracy %": fmt(ratio(acc.correct, acc.one))})
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(pd.DataFrame(rows).to_string(index=False))

    for other in [m for m in COMPARED_WITH_RL if (m, True) in groups and ("rl", True) in groups]:
        for col, scale in (("high", 100), ("over01", 100), ("js", 1000)):
            for own in (True, False):
                a, b = groups[other, own], groups["rl", own]
                boot = (a[col].to_numpy()[draws].sum(1) / a.one.to_numpy()[draws].sum(1)
                        - b[col].to_numpy()[draws].sum(1) / b.one.to_numpy()[draws].sum(1))
                est = a[col].sum() / a.one.sum() - b[col].sum() / b.one.sum()
                lo, hi = np.percentile(boot, [2.5, 97.5]) * scale
                print(f"{other} - rl, {col} along {'own' if own else 'base'} samples: {est * scale:.2f} "
                      f"[{lo:.2f}, {hi:.2f}] ({'1e-3 nats' if col == 'js' else 'points'})")

    for model in sorted(tokens.rl_model.unique()):
        own = tokens[(tokens.rl_model == model) & (tokens.sampler == model)]
        hi = own[own.js >= HIGH]
        top_fifth = own.eb.quantile(0.8)
        print(f"\n{model}: median js {own.js.median():.2e}, max {own.js.max():.3f}; base top-1 == rl top-1 at "
              f"{(own.rank1 == 1).mean():.1%} of positions, at {(hi.rank1 == 1).mean():.1%} of js >= {HIGH}")
        print(f"  js >= {HIGH} by position: first 5% {(hi.rel < 0.05).mean():.1%}, "
              f"5-70% {((hi.rel >= 0.05) & (hi.rel < 0.7)).mean():.1%}, >= 70% {(hi.rel >= 0.7).mean():.1%}")
        bins = pd.cut(hi.eb, [0, 0.3, 0.5, np.inf], right=False).value_counts(normalize=True).sort_index()
        print(f"  by base entropy (nats): {bins.round(3).to_dict()}; in the top fifth of base entropy "
              f"(>= {top_fifth:.4f}): {(hi.eb >= top_fifth).sum()} of {len(hi)}")
        print(f"  by token: {hi.token.value_counts().head(12).to_dict()}")


if __name__ == "__main__":
    main(sys.argv[1])
