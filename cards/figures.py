"""Headline figures of a build: the recipes accuracy, js_distribution and cross_sampling_curve, run by the query runner.

The card computes nothing itself, so its figures are the report's figures by construction; here the
recipes' results are only cut to the rows and columns a card shows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tokenshift.queries.recipes import load_recipe
from tokenshift.queries.run import MissingTableError, connect, execute_recipe

HEADLINE_RECIPES = ("accuracy", "js_distribution", "cross_sampling_curve")


def headline_figures(build_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Each headline recipe's result on the build, shaped for the card; a recipe whose table is absent is left out."""
    con, src = connect(build_dir)
    figures: dict[str, pd.DataFrame] = {}
    try:
        for name in HEADLINE_RECIPES:
            try:
                df = execute_recipe(con, load_recipe(name), src, {})
            except MissingTableError:
                continue
            figures[name] = SHAPERS[name](df)
    finally:
        con.close()
    return figures


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (sampler, benchmark): the accuracy columns, without the pass@k rows and columns."""
    first_k = df[df["k"] == df["k"].min()] if len(df) else df
    drop = [c for c in df.columns if c == "k" or c.startswith("pass_at_k") or c.startswith("n_problems_k")]
    return first_k.drop(columns=drop).reset_index(drop=True)


def js_share_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (sampler, rl_model): token count and the share of tokens with js >= each threshold."""
    shares = df[df["measure"] == "share_over"]
    wide = shares.pivot_table(index=["sampler", "rl_model", "n_tokens"], columns="level", values="value",
                              sort=False).reset_index()
    wide.columns = [c if isinstance(c, str) else f"js >= {c:g}" for c in wide.columns]
    return wide


def cross_sampling_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per setting, without the reference accuracies (the accuracy table's figures on these problems)."""
    drop = [c for c in df.columns if c.startswith(("base_accuracy", "rl_accuracy")) or c == "mean_n_interventions"]
    return df.drop(columns=drop)


SHAPERS = {"accuracy": accuracy_table, "js_distribution": js_share_table, "cross_sampling_curve": cross_sampling_table}
