"""One matplotlib figure per recipe result (Agg backend), labelled with units."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from tokenshift.runtime.files import atomic_path  # noqa: E402
from tokenshift.schemas.values import BASE_SAMPLER, DIRECTIONS  # noqa: E402

_FIGSIZE = (12, 4.6)
_DPI = 110
_DIRECTION_STYLES = dict(zip(DIRECTIONS, ("-", "--")))  # line style per cross-sampling direction
# Titles sit on the axes' top edge: no figure has a top axis for matplotlib's automatic title placement to avoid,
# and that placement measures every tick label of every panel again (a seventh of the figures' time; same pixels).
_RC = {"axes.titley": 1.0}


def _series_label(sampler: str, rl_model: str) -> str:
    """'<model> vs base, <sampler>-sampled': group names come from the model names (RL, SFT, ... alike)."""
    return f"{rl_model} vs {BASE_SAMPLER}, {sampler}-sampled"


def _groups(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(sampler, rl_model) series to draw: base- and self-sampled answers, as the study compares them,
    model by model (each model's two series side by side).

    Answers of one model scored against another stay in the CSVs but would only crowd the plot.
    """
    pairs = list(dict.fromkeys(zip(df["sampler"], df["rl_model"])))
    own = [(s, rl) for s, rl in pairs if s in (BASE_SAMPLER, rl)]
    return sorted(own, key=lambda p: (_natural_key(p[1]), p[0] != BASE_SAMPLER)) or pairs


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _legend_below(fig: plt.Figure, ax, ncol: int = 2) -> None:
    """One figure-level legend under the axes (taken from `ax`), so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
        rows = -(-len(handles) // ncol)
        height = fig.get_figheight()
        fig._ts_bottom = min((0.25 + 0.2 * rows) / height, 0.4)  # room kept by save_plot


def _close_panels(fig: plt.Figure, axes, n_panels: int, title: str) -> None:
    """Blank the grid's unused axes, put the fullest panel's legend under the figure and title it."""
    for ax in list(axes.flat)[n_panels:]:
        ax.axis("off")
    _legend_below(fig, max(axes.flat[:n_panels], key=lambda a: len(a.get_legend_handles_labels()[0])), ncol=3)
    fig.suptitle(title, fontsize=11)


def _thr(params: dict[str, str]) -> str:
    return f"JS ≥ {params['js_threshold']} nats" if "js_threshold" in params else "JS ≥ threshold"


def _empty(title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n(no rows)", ha="center", va="center")
    return fig


def _natural_key(name: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", str(name))]


def plot_js_distribution(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Left: JS at each percentile (log scale); right: % of tokens with JS >= each threshold."""
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE)
    for sampler, rl in _groups(df):
        g = df[(df.sampler == sampler) & (df.rl_model == rl)]
        pct = g[g.measure == "js_percentile"].sort_values("level")
        thr = g[g.measure == "share_over"].sort_values("level")
        left.plot(np.arange(len(pct)), pct.value.clip(lower=1e-8), marker="o", label=_series_label(sampler, rl))
        right.plot(np.arange(len(thr)), 100 * thr.value, marker="o", label=_series_label(sampler, rl))
    pct_levels = sorted(df.loc[df.measure == "js_percentile", "level"].unique())
    thr_levels = sorted(df.loc[df.measure == "share_over", "level"].unique())
    left.set_xticks(range(len(pct_levels)), [f"p{100 * p:g}" for p in pct_levels])
    left.set_yscale("log")
    right.set_xticks(range(len(thr_levels)), [f"≥ {t:g}" for t in thr_levels])
    right.set_ylim(bottom=0)
    _style(left, "JS divergence percentile curve", "percentile of token positions", "JS divergence (nats, log scale)")
    _style(right, "Share of tokens over each JS threshold", "JS threshold (nats)", "tokens over threshold (%)")
    _legend_below(fig, right)
    fig.suptitle("Divergence is sparse: most positions have near-zero JS", fontsize=12)
    return fig


def plot_entropy_vs_divergence(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Mean JS and % over threshold per base-entropy bin; legend gives the fork share of high-JS tokens."""
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE)
    for sampler, rl in _groups(df):
        g = df[(df.sampler == sampler) & (df.rl_model == rl)].sort_values("entropy_bin")
        forks = g.over_share_in_forks.iloc[0]
        top = f"top {100 * (1 - float(params['fork_quantile'])):g}% entropy" if "fork_quantile" in params else "forks"
        fork_txt = "n/a" if pd.isna(forks) else f"{100 * forks:.0f}%"
        left.plot(g.entropy_bin, g.mean_js, marker="o", label=_series_label(sampler, rl))
        right.plot(g.entropy_bin, 100 * g.share_over, marker="o",
                   label=f"{_series_label(sampler, rl)}: forks ({top}) hold {fork_txt} of {_thr(params)} tokens")
    n_bins = int(df.entropy_bin.max())
    for ax in (left, right):
        ax.set_xticks(range(1, n_bins + 1))
    _style(left, "Mean JS by base-entropy bin", f"base-entropy bin (1 = lowest of {n_bins}, equal counts)",
           "mean JS divergence (nats)")
    _style(right, "High-divergence share by base-entropy bin", f"base-entropy bin (1 = lowest of {n_bins})",
           f"tokens with {_thr(params)} (%)")
    _legend_below(fig, right)
    fig.suptitle("Divergence concentrates at high-entropy forks", fontsize=12)
    return fig


def plot_position_concentration(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """% over threshold along relative position, and per first / middle / last segment."""
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE, gridspec_kw={"width_ratios": [3, 2]})
    groups = _groups(df)
    width = 0.8 / max(len(groups), 1)
    parts = ["first", "middle", "last"]
    for i, (sampler, rl) in enumerate(groups):
        g = df[(df.sampler == sampler) & (df.rl_model == rl)]
        bins = g[g.segment == "bin"].sort_values("bin")
        centre = (bins.rel_position_lo + bins.rel_position_hi) / 2
        left.plot(centre, 100 * bins.share_over, marker="o", label=_series_label(sampler, rl))
        seg = g[g.segment != "bin"].set_index("segment").reindex(parts)
        right.bar(np.arange(3) + (i - (len(groups) - 1) / 2) * width, 100 * seg.share_over.fillna(0), width,
                  label=_series_label(sampler, rl))
    edge = params.get("edge_tokens", "N")
    right.set_xticks(range(3), [f"first {edge} tokens", "middle", f"last {edge} tokens"])
    _style(left, "High-divergence share along the answer", "relative position in answer (0 = start, 1 = end)",
           f"tokens with {_thr(params)} (%)")
    _style(right, "Start / middle / end of answers", "segment of the answer",
           f"tokens with {_thr(params)} (%)")
    left.set_xlim(0, 1)
    _legend_below(fig, right)
    fig.suptitle("Divergence clusters at the start and end of answers", fontsize=12)
    return fig


def plot_reranking(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """% of positions whose RL top-1 is in base top-k, all positions vs high-divergence ones."""
    ranks = df[df.measure == "rl_top1_in_base_topk"]
    fig, axes = plt.subplots(1, 2, figsize=_FIGSIZE, sharey=True)
    groups = _groups(ranks)
    levels = sorted(ranks.level.unique())
    width = 0.8 / max(len(groups), 1)
    for ax, subset, title in zip(axes, ["all", "over_threshold"], ["all positions", f"positions with {_thr(params)}"]):
        for i, (sampler, rl) in enumerate(groups):
            g = ranks[(ranks.sampler == sampler) & (ranks.rl_model == rl) & (ranks.subset == subset)]
            g = g.set_index("level").reindex(levels)
            ax.bar(np.arange(len(levels)) + (i - (len(groups) - 1) / 2) * width, 100 * g.value.fillna(0), width,
                   label=_series_label(sampler, rl))
        ax.set_xticks(range(len(levels)), [f"top-{int(k)}" for k in levels])
        _style(ax, f"RL top-1 token's rank under base: {title}", "base rank of RL's top-1 token is within",
               "positions (%)")
        ax.set_ylim(0, 105)
    _legend_below(fig, axes[1])
    fig.suptitle("RL re-ranks candidates base already had", fontsize=12)
    return fig


def plot_mass_reallocation(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Mean probability gained by the RL top-1 token and net change of mass on base's top-K (with bounds)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE)
    groups = _groups(df)
    width = 0.8 / max(len(groups), 1)
    subsets = ["all", "over_threshold"]
    for ax, lo, hi in ((left, "mean_gain_lo", "mean_gain_hi"),
                       (right, "mean_net_into_base_topk_lo", "mean_net_into_base_topk_hi")):
        for i, (sampler, rl) in enumerate(groups):
            g = df[(df.sampler == sampler) & (df.rl_model == rl)].set_index("subset").reindex(subsets)
            mid, half = (g[lo] + g[hi]) / 2, (g[hi] - g[lo]).abs() / 2
            ax.bar(np.arange(2) + (i - (len(groups) - 1) / 2) * width, mid.fillna(0), width,
                   yerr=half.fillna(0), capsize=3, label=_series_label(sampler, rl))
        ax.set_xticks(range(2), ["all positions", f"positions with {_thr(params)}"])
        ax.axhline(0, color="black", linewidth=0.8)
    _style(left, "Probability moved onto RL's top-1 token", "",
           "RL − base prob. of RL top-1 (mean)")
    _style(right, "Net mass moved into base's top-K candidates", "",
           "RL − base mass on base top-K (mean)")
    _legend_below(fig, right)
    fig.suptitle("Mass reallocation (error bars: bounds where a token is outside the stored top-K)", fontsize=12)
    return fig


def _yerr(df: pd.DataFrame, value: str, lo: str, hi: str, scale: float = 100) -> np.ndarray:
    """Error-bar lengths below and above `value` from interval columns (0 where an end is missing)."""
    below = (df[value] - df[lo]).clip(lower=0).fillna(0)
    above = (df[hi] - df[value]).clip(lower=0).fillna(0)
    return scale * np.vstack([below.to_numpy(float), above.to_numpy(float)])


def _reference_band(ax, g: pd.DataFrame, column: str, color: str, label: str) -> None:
    """A reference accuracy as a dotted line with its 95% interval as a band."""
    value = g[column].iloc[0]
    if pd.isna(value):
        return
    ax.axhline(100 * value, color=color, linestyle=":", label=f"{label} (band: 95% interval)")
    lo, hi = g[f"{column}_lo"].iloc[0], g[f"{column}_hi"].iloc[0]
    if pd.notna(lo) and pd.notna(hi):
        ax.axhspan(100 * lo, 100 * hi, color=color, alpha=0.08)


def _setting_label(df: pd.DataFrame) -> pd.Series:
    """criterion, '@match' for matched random controls, ' <=' / ' >=' for sign le / ge, ' r=' rate, ' w=' mix
    weight (when not 1), ' log' for mix_space 'log' (as criteria_comparison's selection)."""
    def label(row) -> str:
        text = row.criterion + (f"@{row.match_criterion}" if pd.notna(row.match_criterion) else "")
        text += {"le": " <=", "ge": " >="}.get(getattr(row, "sign", None), "")
        text += f" r={row.rate:g}" if pd.notna(row.rate) else ""
        text += f" w={row.mix_weight:g}" if row.mix_weight != 1 else ""
        return text + (" log" if getattr(row, "mix_space", None) == "log" else "")

    return pd.Series([label(r) for r in df.itertuples()], index=df.index, dtype=object)


def plot_accuracy(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Accuracy per sampler and benchmark, and pass@k against k, each with its 95% bootstrap interval."""
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE)
    acc = df.drop_duplicates(["sampler", "benchmark"])
    samplers = list(dict.fromkeys(acc.sampler))
    benches = list(dict.fromkeys(acc.benchmark.fillna("?")))
    width = 0.8 / max(len(benches), 1)
    for i, bench in enumerate(benches):
        g = acc[acc.benchmark.fillna("?") == bench].set_index("sampler").reindex(samplers)
        left.bar(np.arange(len(samplers)) + (i - (len(benches) - 1) / 2) * width, 100 * g.accuracy.fillna(0), width,
                 yerr=_yerr(g, "accuracy", "accuracy_lo", "accuracy_hi"), capsize=3, label=bench)
    left.set_xticks(range(len(samplers)), samplers, rotation=20 if len(samplers) > 3 else 0, fontsize=8)
    left.set_ylim(0, 105)
    left.legend(title="benchmark", fontsize=8)
    for (sampler, bench), g in df.groupby(["sampler", df.benchmark.fillna("?")], sort=False):
        g = g.dropna(subset=["pass_at_k"]).sort_values("k")
        right.errorbar(g.k, 100 * g.pass_at_k, yerr=_yerr(g, "pass_at_k", "pass_at_k_lo", "pass_at_k_hi"),
                       marker="o", capsize=3, label=f"{sampler}, {bench}")
    right.set_ylim(0, 105)
    right.set_xticks(sorted(df.k.dropna().unique()))
    _style(left, "Accuracy per sampler", "sampler", "accuracy (%)")
    _style(right, "pass@k", "k", "pass@k (%)")
    _legend_below(fig, right, ncol=3)
    fig.suptitle("Accuracy with 95% intervals (bootstrap over problems)", fontsize=12)
    return fig


def plot_cross_sampling_curve(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Accuracy vs % of tokens from the other model, per RL model and benchmark, with base/RL references."""
    panels = list(dict.fromkeys(zip(df.rl_model, df.benchmark.fillna("?"))))
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 1, 4.2 * rows), squeeze=False)
    df = df.assign(selection=_setting_label(df))
    for ax, (rl, bench) in zip(axes.flat, panels):
        g = df[(df.rl_model == rl) & (df.benchmark.fillna("?") == bench)]
        for (protocol, selection, direction), s in g.groupby(["protocol", "selection", "direction"], sort=True):
            s = s.sort_values("mean_intervention_fraction")
            style = _DIRECTION_STYLES.get(direction, ":")
            name = protocol if selection == "js" else f"{protocol} {selection}"
            line = ax.errorbar(100 * s.mean_intervention_fraction, 100 * s.accuracy,
                               yerr=_yerr(s, "accuracy", "accuracy_lo", "accuracy_hi"), fmt=style, marker="o",
                               capsize=2, elinewidth=0.8, label=f"{name}, {direction}").lines[0]
            for row in s.itertuples():
                tag = f"{row.threshold:g}" if pd.notna(row.threshold) else f"{row.budget:g}"
                ax.annotate(tag, (100 * row.mean_intervention_fraction, 100 * row.accuracy), fontsize=6,
                            color=line.get_color(), xytext=(3, 3), textcoords="offset points")
        _reference_band(ax, g, "base_accuracy", "grey", "base accuracy")
        _reference_band(ax, g, "rl_accuracy", "black", f"{rl} accuracy")
        _style(ax, f"{rl} on {bench}", "tokens taken from the other model (% of answer)", "accuracy (%)")
        ax.set_ylim(-2, 102)
    _close_panels(fig, axes, len(panels),
                  "Cross-sampling: forward (base drives) recovers RL, reverse (RL drives) collapses it\n"
                  "(labels: threshold in the criterion's nats; error bars: 95% bootstrap over problems)")
    return fig


def plot_criteria_comparison(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Per pair, benchmark and direction: accuracy against effective % and effective # of swapped tokens,
    one marker per criterion (random controls hollow), with the base and RL references."""
    panels = list(dict.fromkeys(zip(df.rl_model, df.benchmark.fillna("?"), df.direction)))
    fig, axes = plt.subplots(len(panels), 2, figsize=(_FIGSIZE[0], 3.9 * len(panels) + 0.6), squeeze=False)
    selections = sorted(df.selection.unique(), key=lambda s: (s.startswith("random"), s))
    colors = {s: f"C{i % 10}" for i, s in enumerate(selections)}
    markers = {s: "osD^v<>pXh*"[i % 11] for i, s in enumerate(selections)}
    for row, (rl, bench, direction) in zip(axes, panels):
        d = df[(df.rl_model == rl) & (df.benchmark.fillna("?") == bench) & (df.direction == direction)]
        for selection in selections:
            s = d[d.selection == selection]
            if s.empty:
                continue
            control = s.criterion.iloc[0] == "random"
            for ax, x in zip(row, ("effective_pct", "effective_n")):
                ax.errorbar(s[x], 100 * s.accuracy, yerr=_yerr(s, "accuracy", "accuracy_lo", "accuracy_hi"),
                            marker=markers[selection], linestyle="none", capsize=2, elinewidth=0.8,
                            color=colors[selection], markerfacecolor="none" if control else colors[selection],
                            label=selection)
        for ax, xlabel in zip(row, ("effective % of tokens swapped", "effective # swapped per answer")):
            _style(ax, f"{rl} on {bench}, {direction}", xlabel, "accuracy (%)")
            ax.set_ylim(-2, 102)
    _legend_below(fig, axes[0][1], ncol=min(len(selections), 5))
    fig.suptitle("Selection criteria vs random controls (hollow) at the budgets they realise\n"
                 "(error bars: 95% bootstrap over problems)", fontsize=11)
    return fig


def plot_evolution(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """One small panel per headline number across RL checkpoints: RL-sampled answers (solid) and
    base-sampled answers (dashed); answers sampled by other checkpoints are left out. The last two
    panels show how the high-divergence set converges: its Jaccard overlap with the final model's set
    and the JS percentiles (RL-sampled answers)."""
    order = sorted(df.rl_model.unique(), key=lambda m: (pd.isna(df.loc[df.rl_model == m, "checkpoint_step"].iloc[0]),
                                                        _natural_key(m)))
    x = {m: i for i, m in enumerate(order)}
    kinds = {"RL-sampled": df[df.sampler == df.rl_model], f"{BASE_SAMPLER}-sampled": df[df.sampler == BASE_SAMPLER]}
    edge, top = params.get("edge_tokens", "N"), params.get("top_rank", "k")
    final = df.final_model.iloc[0] if "final_model" in df and len(df) else "final"
    panels = [("share_over", f"tokens with {_thr(params)} (%)", 100),
              ("over_share_in_edges", f"high-JS tokens in first/last {edge} (%)", 100),
              ("over_share_in_forks", "high-JS tokens at forks (%)", 100),
              ("rl_top1_in_base_top", f"RL top-1 in base top-{top} (%)", 100),
              ("mean_js", "mean JS (nats)", 1),
              ("rl_accuracy", "RL accuracy (%, 95% interval)", 100),
              ("jaccard_final", f"Jaccard of high-JS set with {final}'s", 1),
              ("js_percentiles", "JS p50 / p95 / p99, RL-sampled (nats)", 1)]
    fig, axes = plt.subplots(2, 4, figsize=(_FIGSIZE[0] * 4 / 3, 6.4), sharex=True)
    for ax, (col, title, scale) in zip(axes.flat, panels):
        if col == "js_percentiles":
            g = kinds["RL-sampled"].assign(x=lambda d: d.rl_model.map(x)).sort_values("x")
            for level, color in (("p50", "tab:gray"), ("p95", "tab:blue"), ("p99", "tab:red")):
                ax.plot(g.x, g[f"{level}_js"], "-o", color=color, label=level)
            if (g[["p50_js", "p95_js", "p99_js"]] > 0).all().all():
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:
            for (kind, g), style in zip(kinds.items(), ("-o", "--^")):
                if col == "rl_accuracy" and kind != "RL-sampled":
                    continue
                g = g.assign(x=g.rl_model.map(x)).sort_values("x")
                ax.plot(g.x, scale * g[col], style, color="black" if col == "rl_accuracy" else "tab:blue",
                        label=kind)
                if col == "rl_accuracy" and "rl_accuracy_lo" in g:  # the recipe's 95% bootstrap interval
                    ax.fill_between(g.x, scale * g.rl_accuracy_lo, scale * g.rl_accuracy_hi, color="black",
                                    alpha=0.15, linewidth=0, label="95% interval")
            lo, hi = ax.get_ylim()
            if scale == 100 and hi - lo < 2:  # a near-constant share: show it within ±1 point, no offset
                mid = (lo + hi) / 2
                ax.set_ylim(mid - 1, mid + 1)
            if col == "jaccard_final":
                ax.set_ylim(-0.05, 1.05)
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_xticks(range(len(order)), order, rotation=20 if len(order) > 3 else 0, fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("RL checkpoint")
    _legend_below(fig, axes.flat[0], ncol=2)
    fig.suptitle("Evolution of the shift over RL training", fontsize=12)
    return fig


def _percent(text: str | None, default: str) -> str:
    """A fraction parameter's value as a percentage label ('0.05' -> '5%')."""
    try:
        return f"{100 * float(text):g}%"
    except (TypeError, ValueError):
        return default


def plot_method_comparison(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Every model compared with base side by side: accuracy (95% interval), share over each JS threshold,
    mean JS, and where high-JS positions fall (middle of the answer, low base entropy) against the share of
    all positions there; solid bars along the model's own answers, hatched along base's answers."""
    df = df.iloc[sorted(range(len(df)), key=lambda i: _natural_key(df.rl_model.iloc[i]))]
    models = list(df.rl_model)
    x = np.arange(len(models))
    sides = (("own", {}), (BASE_SAMPLER, {"hatch": "//", "alpha": 0.5}))  # column suffix, bar style
    edge = _percent(params.get("edge_fraction"), "edge")
    low = params.get("low_entropy", "low")
    fig, axes = plt.subplots(2, 3, figsize=(_FIGSIZE[0], 7.6))
    acc = axes[0][0]
    acc.bar(x, 100 * df.accuracy.fillna(0), 0.6, yerr=_yerr(df, "accuracy", "accuracy_lo", "accuracy_hi"),
            capsize=3, color="tab:gray")
    _reference_band(acc, df, "base_accuracy", "black", f"{BASE_SAMPLER} accuracy")
    acc.set_ylim(0, 105)
    if acc.get_legend_handles_labels()[0]:
        acc.legend(fontsize=7, loc="upper left")
    _style(acc, "Accuracy (95% bootstrap interval)", "", "accuracy (%)")
    thresholds = [("share_over_low", params.get("js_threshold_low", "low")),
                  ("share_over", params.get("js_threshold", "threshold")),
                  ("share_over_high", params.get("js_threshold_high", "high"))]
    width = 0.8 / (2 * len(thresholds))
    for k, (column, _) in enumerate(thresholds):
        for j, (side, style) in enumerate(sides):
            offset = (2 * k + j - (2 * len(thresholds) - 1) / 2) * width
            axes[0][1].bar(x + offset, 100 * df[f"{column}_{side}"].fillna(0), width, color=f"C{k}",
                           edgecolor=f"C{k}", **style)
    _style(axes[0][1], "Positions over each JS threshold", "", "positions (%)")
    panels = [(axes[0][2], "mean_js", None, "Mean JS", "mean JS (nats)"),
              (axes[1][0], "over_share_middle", "middle_token_share",
               f"High-JS positions outside the first/last {edge}", "high-JS positions (%)"),
              (axes[1][1], "over_share_low_entropy", "low_entropy_token_share",
               f"High-JS positions at base entropy < {low} nats", "high-JS positions (%)")]
    for ax, column, reference, title, ylabel in panels:
        scale = 1 if column == "mean_js" else 100
        for j, (side, style) in enumerate(sides):
            ax.bar(x + (j - 0.5) * 0.4, scale * df[f"{column}_{side}"].fillna(0), 0.4, color="tab:purple",
                   edgecolor="tab:purple", **style)
            if reference:
                ax.scatter(x + (j - 0.5) * 0.4, 100 * df[f"{reference}_{side}"], marker="_", s=300,
                           color="black", zorder=3)
        if reference:
            ax.set_ylim(0, 105)
        _style(ax, title, "", ylabel)
    for ax in list(axes.flat)[:5]:
        ax.set_xticks(x, models, rotation=20 if len(models) > 3 else 0, fontsize=8)
        ax.title.set_fontsize(10)
    key = axes[1][2]
    key.axis("off")
    handles = [Patch(facecolor=f"C{k}", label=f"JS ≥ {level} nats (top middle)") for k, (_, level) in enumerate(thresholds)]
    handles += [Patch(facecolor="white", edgecolor="black", label="solid: along the model's own answers"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label=f"hatched: along {BASE_SAMPLER}'s answers")]
    handles += [Line2D([], [], color="black", marker="_", linestyle="none", markersize=14,
                       label="black dash: share of all positions there\n(where high-JS ones would fall by chance)"),
                Patch(facecolor="tab:gray", label="model accuracy; dotted line and band: base")]
    key.legend(handles=handles, loc="center", fontsize=8, frameon=False)
    fig.suptitle("Every model against one base: how much, where and at what base entropy it shifts", fontsize=12)
    return fig


def plot_direction(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Per sampler and RL model: the shares with Δlog p >= +t and <= -t, where the |Δ| sits by base probability,
    and the overlap of the top |Δ| and top JS positions, each with its 95% interval."""
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(_FIGSIZE[0] + 3, _FIGSIZE[1]))
    for i, (sampler, rl) in enumerate(_groups(df)):
        g = df[(df.sampler == sampler) & (df.rl_model == rl)]
        label, color = _series_label(sampler, rl), f"C{i % 10}"
        for measure, style in (("share_ge", "-"), ("share_le", "--")):
            s = g[g.measure == measure].sort_values("level")
            left.errorbar(s.level, 100 * s.value, yerr=_yerr(s, "value", "value_lo", "value_hi"), fmt=style,
                          marker="o", capsize=2, color=color, label=f"{label}, {'+' if measure == 'share_ge' else '-'}t")
        for measure, x_shift, hatch in (("bin_token_share", -0.2, None), ("bin_abs_share", 0.2, "//")):
            s = g[g.measure == measure].sort_values("level")
            x = np.arange(len(s)) + x_shift + (i - len(_groups(df)) / 2) * 0.05
            mid.bar(x, 100 * s.value, 0.35 / max(len(_groups(df)), 1), color=color, hatch=hatch, alpha=0.8,
                    yerr=_yerr(s, "value", "value_lo", "value_hi"), capsize=2)
            mid.set_xticks(np.arange(len(s)), [f"p_base from {v:g}" for v in s.level], fontsize=8)
        s = g[g.measure == "jaccard_top"].sort_values("level")
        right.errorbar(100 * s.level, s.value, yerr=_yerr(s, "value", "value_lo", "value_hi", 1), marker="o",
                       capsize=2, color=color, label=label)
    _style(left, "Sampled tokens with Δlog p ≥ +t (solid) and ≤ -t (dashed)", "t (nats)", "share of tokens (%)")
    _style(mid, "By base probability: tokens (plain) and |Δlog p| mass (hatched)", "bin", "share (%)")
    _style(right, "Top positions by |Δlog p| vs by JS", "top share of tokens (%)", "Jaccard overlap")
    _legend_below(fig, left, ncol=3)
    fig.suptitle("Direction of the shift: Δlog p = log p_rl - log p_base of the sampled token "
                 "(error bars: 95% bootstrap over problems)", fontsize=11)
    return fig


def plot_extrapolation(df: pd.DataFrame, params: dict[str, str]) -> plt.Figure:
    """Accuracy against the mix weight W per selection rule, one panel per RL model, benchmark and direction,
    with RL's own accuracy (and its interval) as the reference."""
    panels = list(dict.fromkeys(zip(df.rl_model, df.benchmark.fillna("?"), df.direction)))
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols + 1, 4.2 * rows), squeeze=False)
    selections = sorted(df.selection.unique(), key=lambda s: (s.startswith("random"), s))
    colors = {s: f"C{i % 10}" for i, s in enumerate(selections)}
    for ax, (rl, bench, direction) in zip(axes.flat, panels):
        g = df[(df.rl_model == rl) & (df.benchmark.fillna("?") == bench) & (df.direction == direction)]
        for selection in selections:
            s = g[g.selection == selection].sort_values("mix_weight")
            if s.empty:
                continue
            ax.errorbar(s.mix_weight, 100 * s.accuracy, yerr=_yerr(s, "accuracy", "accuracy_lo", "accuracy_hi"),
                        marker="o", capsize=2, color=colors[selection], label=selection,
                        linestyle="--" if selection.startswith("random") else "-")
        _reference_band(ax, g.sort_values("n_samples", ascending=False), "rl_accuracy", "black", f"{rl} accuracy")
        _style(ax, f"{rl} on {bench}, {direction}", "mix weight W (log space; 1 = the other model)", "accuracy (%)")
        ax.set_ylim(-2, 102)
    _close_panels(fig, axes, len(panels),
                  "Extrapolation: accuracy against W, softmax((1 - W) log p_driver + W log p_other) at selected "
                  "positions\n(error bars: 95% bootstrap over problems)")
    return fig


PLOTTERS: dict[str, Callable[[pd.DataFrame, dict[str, str]], plt.Figure]] = {
    "js_distribution": plot_js_distribution,
    "entropy_vs_divergence": plot_entropy_vs_divergence,
    "position_concentration": plot_position_concentration,
    "reranking": plot_reranking,
    "mass_reallocation": plot_mass_reallocation,
    "accuracy": plot_accuracy,
    "cross_sampling_curve": plot_cross_sampling_curve,
    "criteria_comparison": plot_criteria_comparison,
    "extrapolation": plot_extrapolation,
    "direction": plot_direction,
    "evolution": plot_evolution,
    "method_comparison": plot_method_comparison,
}


def _tight_layout(fig: plt.Figure, rect: tuple[float, float, float, float]) -> None:
    """`fig.tight_layout(rect=rect)`, measuring each axes' tight box once.

    Given a rect, matplotlib's tight layout measures every axes twice at the same positions (the second pass only
    moves the rect; nothing is redrawn between them), and measuring the tick labels is the largest part of a
    figure's time. The second pass gets the first's boxes; the layout and the pixels are the same.
    """
    def measured_once(original):
        boxes = {}

        def get_tightbbox(*args, **kwargs):
            key = (tuple(map(id, args)), tuple(sorted(kwargs.items())))
            try:
                hash(key)
            except TypeError:  # an unhashable argument: measured each time, as matplotlib does
                return original(*args, **kwargs)
            if key not in boxes:
                boxes[key] = original(*args, **kwargs)
            return boxes[key]
        return get_tightbbox

    for ax in fig.axes:
        ax.get_tightbbox = measured_once(ax.get_tightbbox)
    try:
        fig.tight_layout(rect=rect)
    finally:
        for ax in fig.axes:
            ax.__dict__.pop("get_tightbbox", None)  # the class's method again


def save_plot(name: str, df: pd.DataFrame, path: Path, params: dict[str, str] | None = None) -> bool:
    """Draw recipe `name`'s figure into PNG `path` (params: the values used, for labels); False if no plot."""
    plotter = PLOTTERS.get(name)
    if plotter is None:
        return False
    with plt.rc_context(_RC):
        fig = _empty(name) if df.empty else plotter(df, dict(params or {}))
    try:
        _tight_layout(fig, rect=(0, getattr(fig, "_ts_bottom", 0.0), 1, 0.93))
        with atomic_path(path) as tmp:  # a reader never sees half a PNG; a failed write names the file
            fig.savefig(tmp, dpi=_DPI, format="png")
    finally:
        plt.close(fig)
    return True
