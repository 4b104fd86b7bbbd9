"""`write_report`: every recipe as CSV, a PNG for the plotted ones, and an index.md linking them all."""

from __future__ import annotations

import html
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from tokenshift.queries.plots import PLOTTERS, save_plot
from tokenshift.queries.recipes import bootstrap_defaults, load_recipe, recipe_names
from tokenshift.queries.run import MissingTableError, connect, execute_recipe
from tokenshift.queries.sources import Source, cache_bootstrap
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import atomic_path, write_text_atomic
from tokenshift.runtime.version import __version__

MARKER = "<!-- tokenshift report -->"
MAX_MD_ROWS = 100
TITLES = {
    "js_distribution": "How sparse is the shift? JS divergence distribution",
    "entropy_vs_divergence": "Divergence vs base entropy (high-entropy forks)",
    "position_concentration": "Where in the answer divergence happens",
    "reranking": "Re-ranking: RL's top-1 among base's candidates",
    "mass_reallocation": "Probability mass reallocation",
    "divergent_tokens": "Tokens most often at high-divergence positions",
    "accuracy": "Accuracy and pass@k",
    "cross_sampling_curve": "Cross-sampling: accuracy vs tokens swapped",
    "criteria_comparison": "Is it the divergence? Selection criteria vs matched random controls",
    "direction": "Direction, not only magnitude: the sign of Δlog p",
    "extrapolation": "Extrapolation: accuracy against the mix weight W",
    "study_table": "Cross-sampling in the study's layout",
    "evolution": "Evolution across RL checkpoints",
    "method_comparison": "Every model against one base (RL, SFT, ... side by side)",
    "position_overlap": "Do two models shift at the same positions? Jaccard of high-JS sets along base's answers",
}
_REPR_COLUMNS = {"token", "top_divergent_token"}


def is_report_dir(path: Path) -> bool:
    """True when `path` holds an index.md written by write_report."""
    index = path / "index.md"
    if not index.is_file():
        return False
    with index.open(encoding="utf-8") as fh:
        return fh.readline().strip() == MARKER


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if is_report_dir(out):
            for name in recipe_names():
                for suffix in (".csv", ".png"):
                    (out / f"{name}{suffix}").unlink(missing_ok=True)
        elif not overwrite:
            raise TokenshiftError(f"--out {out} is not empty and holds no previous report; "
                                  f"choose an empty directory or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)


def _cell(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if column in _REPR_COLUMNS and isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float):
        text = "inf" if math.isinf(value) and value > 0 else "-inf" if math.isinf(value) else f"{value:.4g}"
    else:
        text = str(value)
    text = html.escape(text, quote=False)  # token text is data: `<script>` shows as text, as on the HTML pages
    return text.replace("|", "\\|").replace("\n", "\\n").replace("\r", "\\r")


def markdown_table(df: pd.DataFrame, max_rows: int = MAX_MD_ROWS) -> str:
    """A GitHub-markdown table of `df` (floats to 4 significant digits), cut at max_rows."""
    if df.empty:
        return "_(no rows)_"
    shown = df.head(max_rows)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, c) for v, c in zip(row, shown.columns)) + " |")
    if len(df) > max_rows:
        lines.append(f"\n_First {max_rows} of {len(df)} rows; all rows in the CSV._")
    return "\n".join(lines)


def _table_counts(con: duckdb.DuckDBPyConnection, src: Source) -> str:
    counts = [f"{t}: {con.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:,}" for t in src.tables]
    return ", ".join(counts)


def write_report(source: str | os.PathLike | Source, out_dir: str | os.PathLike,
                 overwrite: bool = False) -> Path:
    """Run every recipe on `source` and write CSVs, PNGs and index.md into `out_dir`; returns index.md's path.

    The recipes run one after another on one connection; a second thread loads the build's tokenizer,
    writes the viewer's pages (on a cursor of the same database) and then each result's CSV and PNG
    while DuckDB computes the next recipe (DuckDB releases the GIL, and matplotlib is only ever used
    from that thread).
    """
    # transformers (the build's tokenizer, for the most divergent answers' pages) loads only when a report is written
    from tokenshift.queries.viewer import build_tokenizer, report_section

    out = Path(out_dir)
    con, src = connect(source)
    try:
        _prepare_out(out, overwrite)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = [MARKER, "# tokenshift report", "",
                f"- Source: `{src.spec}` (schema version {src.version})", f"- Tables: {_table_counts(con, src)}",
                *([] if src.exact_rows or src.kind != "local" or "tokens" not in src.tables else [
                    "- Reallocation (mass_reallocation, evolution): this build lacks the exact per-position columns "
                    "of schema version 2.1 (p_base_rl_top1, rl_mass_base_topk, base_mass_rl_topk), so those recipes "
                    "give lo/hi bounds from the top-K lists; a build made by this tokenshift gives exact values."]),
                f"- Generated {stamp} by tokenshift {__version__}, DuckDB {duckdb.__version__}",
                "- Units: JS divergence and entropies in nats (natural log; JS ≤ ln 2 ≈ 0.693); shares in the "
                "CSVs are fractions in [0, 1], shown as % in the figures; positions relative to answer length.",
                "- Each section is one recipe run with its default parameters; rerun one with "
                f"`tokenshift query NAME --data {src.spec} --param name=value`, or paste "
                f"`tokenshift query NAME --data {src.spec} --print-sql` into the duckdb shell.", ""]
        toc, body = ["## Contents", ""], []
        names = recipe_names()
        pages = con.cursor()  # a connection of its own to the same database, for the other thread
        with closing(pages), ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenshift-report") as writer:
            tokenizer = writer.submit(build_tokenizer, src)
            # the pages' own queries and HTML, while DuckDB computes the first recipes (the section is numbered
            # after every recipe's, skipped ones included)
            viewer = writer.submit(report_section, pages, src, out / "viewer", len(names) + 1, tokenizer.result)
            cache_bootstrap(con, *bootstrap_defaults())  # the recipes' weights, made once, beside the pages
            written = []
            for number, name in enumerate(names, start=1):
                recipe = load_recipe(name)
                title = TITLES.get(name, name.replace("_", " ").capitalize())
                anchor = name.replace("_", "-")
                section = [f'<a id="{anchor}"></a>', f"## {number}. {title}", "",
                           f"Recipe `{name}`: {recipe.summary}", ""]
                try:
                    df = execute_recipe(con, recipe, src, {})
                except MissingTableError as err:
                    toc.append(f"{number}. [{title}](#{anchor}) — skipped")
                    body += section + [f"**Skipped**: {err}.", ""]
                    continue
                toc.append(f"{number}. [{title}](#{anchor})")
                if recipe.params:
                    defaults = ", ".join(f"`{p.name} = {p.default_sql}`" for p in recipe.params.values())
                    section += [f"Parameters: {defaults}.", ""]
                labels = {p.name: p.default_sql for p in recipe.params.values()}
                written.append(writer.submit(_write_result, name, df, out, labels))
                if name in PLOTTERS:
                    section += [f"![{title}]({name}.png)", ""]
                section += [f"Table ({len(df)} rows; [{name}.csv]({name}.csv)):", "", markdown_table(df), ""]
                body += section
            toc_line, section = viewer.result()
            for job in written:
                job.result()  # a failed CSV or PNG fails the report here
        toc.append(toc_line)
        body += section
        text = "\n".join(head + toc + [""] + body)
        write_text_atomic(out / "index.md", text)
    finally:
        con.close()
    return out / "index.md"


def _write_result(name: str, df: pd.DataFrame, out: Path, labels: dict[str, str]) -> None:
    """One recipe's CSV and, for a plotted recipe, its PNG."""
    with atomic_path(out / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)
    save_plot(name, df, out / f"{name}.png", labels)
