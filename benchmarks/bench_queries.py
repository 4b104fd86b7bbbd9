"""The report at scale: every recipe's time, the whole report's time and peak memory; older recipes vs the current ones, capped, one scan.

Makes a dataset of `--rows` token rows (default 10M) by replicating a build's parquet parts with
fresh ids (each copy's problem, generation and cross ids get a suffix `~k`; part k of the copy
concatenates the copies of the source's part k, so the part count stays the source's), then
runs `write_report` on it in a fresh process per mode: "before" as "views" but with the SQL of git
revision `--before-ref` (default 0fc0d9d: before direction, evolution and mass_reallocation were rewritten):
its recipe files (queries/*.sql) and its preamble's views and macros (the string constants of its
queries/sources.py), the Python of the working tree; "views" as `tokenshift report` runs
(`connect(source)`: each recipe scans the parquet files it needs, DuckDB's memory uncapped),
"capped" (the same with DuckDB's memory capped at 1.5 GB), "cache" (`connect(source, cache=True)`:
each table read once into a compressed DuckDB file, tokens projected to the columns the recipes
read; DuckDB's memory capped at 1 GB). Per recipe: the seconds of its `execute_recipe` call; "load" is the time of
`connect` (for "cache", the one scan); "report" is the whole `write_report` call (connect, every
recipe, CSVs, PNGs, index.md, the viewer pages). Each time is wall seconds and CPU seconds of the
process (all its threads, so a recipe's CPU seconds include what the report's second thread, which
writes the previous result's CSV and PNG, did meanwhile): on a machine shared with other jobs the CPU
seconds are the steadier figure. "alone s": after the report, each recipe run by itself on one
connection, as `tokenshift query` runs it (`--no-alone` skips it). Peak memory: the process's peak
resident set (ru_maxrss) during the report, Python and the libraries included, and the part above
the resident size before the report.

    python benchmarks/bench_queries.py --build DIR            # a build (or registry version) to replicate
    python benchmarks/bench_queries.py                        # builds one first: embedded pair, 100 prompts
    python benchmarks/bench_queries.py --rows 1000000          # smaller, for a check
    python benchmarks/bench_queries.py --build DIR --modes before views cache
    python benchmarks/bench_queries.py --build DIR --same-problems   # copies add answers, not problems
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

ID_COLUMNS = {  # columns holding ids that must stay unique (and keep joining) across copies
    "prompts": ("problem_id",),
    "generations": ("generation_id", "problem_id"),
    "tokens": ("generation_id",),
    "cross_samples": ("cross_id", "problem_id"),
}
SAME_PROBLEM_IDS = {"prompts": (), "generations": ("generation_id",), "tokens": ("generation_id",),
                    "cross_samples": ("cross_id",)}  # --same-problems: more answers per problem, not more problems
RENUMBERED = {"generations": "sample_index", "cross_samples": "sample_index"}  # --same-problems: copy k's samples follow
MODES = ("before", "views", "capped", "cache")
CAPPED_LIMIT = "1.5GB"
BEFORE_REF = "0fc0d9d"  # the recipes and preamble before direction, evolution and mass_reallocation were rewritten
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", help="build directory or registry version to replicate (default: build one)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="token rows of the replicated dataset")
    parser.add_argument("--data", help="where to write the replicated dataset (default: a temporary directory; "
                                       "reused when it already holds one made from the same --build and --rows)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: DuckDB's, = cores)")
    parser.add_argument("--same-problems", action="store_true",
                        help="copies keep the source's problems (more answers per problem, as a real 10M-row "
                             "dataset of 30 AIME problems x 32 long answers has) instead of fresh problem ids")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["before", "views"])
    parser.add_argument("--before-ref", default=BEFORE_REF, help="git revision whose recipes 'before' runs")
    parser.add_argument("--no-alone", action="store_true",
                        help="skip timing each recipe by itself after the report (about the report's time again)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)  # internal: one measured report
    return parser.parse_args(argv)


def make_source_build(root: Path) -> Path:
    """A build of the embedded pair on 100 toy prompts (the same code path as `tokenshift build`)."""
    from tokenshift.builders.cross_sampling.runner import CrossSampleConfig, run_cross_sample
    from tokenshift.builders.pipeline.build import BuildConfig, run_build

    out = root / "source-build"
    if not (out / "manifest.json").exists():
        run_build(BuildConfig(out=str(out), limit=100), progress=False)
        run_cross_sample(CrossSampleConfig(out=str(out), thresholds=(0.05,), budgets=(0, 2, math.inf), samples=2),
                         progress=False)
    return out


def replicate(source: Path, dest: Path, rows: int, same_problems: bool = False) -> int:
    """Write `dest` as ceil(rows / source token rows) copies of `source` with fresh ids; returns the copies.

    same_problems: problem ids are kept (prompts written once) and copy k's sample_index follows copy k-1's."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tokenshift.runtime.files import write_json_atomic
    from tokenshift.schemas.manifest import table_entries
    from tokenshift.schemas.tables import write_parquet

    source_rows = sum(pq.read_metadata(p).num_rows for p in sorted((source / "tokens").glob("*.parquet")))
    copies = max(1, math.ceil(rows / source_rows))
    stamp = {"source": str(source.resolve()), "rows": rows, "copies": copies, "same_problems": same_problems}
    if (dest / "bench_source.json").is_file() and json.loads((dest / "bench_source.json").read_text()) == stamp:
        return copies
    shutil.rmtree(dest, ignore_errors=True)
    for table, ids in (SAME_PROBLEM_IDS if same_problems else ID_COLUMNS).items():
        for part in sorted((source / table).glob("*.parquet")):
            original = pq.read_table(part)
            step = pc.max(original.column(RENUMBERED[table])).as_py() + 1 if table in RENUMBERED else 0
            pieces = []
            for k in range(1 if same_problems and table == "prompts" else copies):
                piece = original
                if same_problems and table in RENUMBERED:
                    i = piece.schema.get_field_index(RENUMBERED[table])
                    shifted = pc.add(piece.column(i), pa.scalar(k * step, piece.schema.field(i).type))
                    piece = piece.set_column(i, piece.schema.field(i), shifted)
                for column in ids:
                    i = piece.schema.get_field_index(column)
                    fresh = pc.binary_join_element_wise(piece.column(column), pa.scalar(f"~{k}"), "")
                    piece = piece.set_column(i, piece.schema.field(i), fresh.cast(piece.schema.field(i).type))
                pieces.append(piece)
            write_parquet(pa.concat_tables(pieces), dest / table / part.name)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["tables"] = table_entries(dest)
    write_json_atomic(dest / "manifest.json", manifest)
    (dest / "bench_source.json").write_text(json.dumps(stamp))
    return copies


def recipes_at(ref: str, dest: Path) -> Path:
    """Write the recipe files (queries/*.sql) of git revision `ref` into `dest`."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{ref}:queries"],
                            capture_output=True, text=True, check=True).stdout.split()
    dest.mkdir(parents=True, exist_ok=True)
    for name in (n for n in listed if n.endswith(".sql")):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:queries/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (dest / name).write_text(text, encoding="utf-8")
    return dest


def preamble_at(ref: str) -> dict[str, str]:
    """The preamble's SQL at git revision `ref`: the upper-case constants of its queries/sources.py that are text.

    Only those assignments are evaluated (in file order, each from the ones before it), never the module's
    imports, so a revision whose imports no longer resolve still gives its SQL."""
    import ast

    text = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:queries/sources.py"],
                          capture_output=True, text=True, check=True).stdout
    names: dict[str, object] = {}
    for node in ast.parse(text).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id.isupper():
            try:
                names[target.id] = eval(compile(ast.Expression(node.value), "sources.py", "eval"), names)
            except Exception:  # noqa: BLE001 - a constant built from an import (a regex, a tuple of names)
                continue
    return {name: value for name, value in names.items() if name.isupper() and isinstance(value, str)}


def worker(mode: str, data: Path, threads: int | None, before_ref: str = BEFORE_REF,
           with_alone: bool = True) -> dict:
    """One report in this (fresh) process; per-recipe seconds, total seconds and peak memory as a dict."""
    import duckdb

    import tokenshift.queries.recipes as recipes
    import tokenshift.queries.report as report
    from tokenshift.queries import run

    if mode == "before":  # the report reads its recipe files from RECIPE_DIR, the preamble from sources' constants
        import tokenshift.queries.sources as sources

        recipes.RECIPE_DIR = recipes_at(before_ref, Path(tempfile.mkdtemp(prefix="bench-recipes-")))
        old = preamble_at(before_ref)
        for name, sql in old.items():
            if isinstance(getattr(sources, name, None), str):
                setattr(sources, name, sql)
        if "BOOTSTRAP_DRAWS_MACRO" in old:  # a revision with the multinomial bootstrap, drawn per set size
            new_only = {sources.PROBLEM_NUMBERS_VIEW, sources.BOOTSTRAP_WEIGHTS_MACRO}
            statements = sources.preamble_statements

            def old_statements(source):
                out = []
                for table, sql in statements(source):
                    if sql == old["BOOTSTRAP_MACRO"]:
                        out.append((None, old["BOOTSTRAP_DRAWS_MACRO"]))
                    if sql not in new_only:
                        out.append((table, sql))
                return out

            run.preamble_statements = old_statements
            report.cache_bootstrap = lambda con, reps, seed: None  # its recipes call no cached weights

    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    real_connect, real_execute = run.connect, report.execute_recipe

    def connect(source, **report_kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        kwargs = {"before": report_kwargs, "views": report_kwargs,
                  "capped": {**report_kwargs, "memory_limit": CAPPED_LIMIT},
                  "cache": {**report_kwargs, "cache": True}}[mode]
        con, src = real_connect(source, **kwargs)
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        timings["load"], cpu["load"] = time.perf_counter() - start, time.process_time() - start_cpu
        return con, src

    def execute(con, recipe, src, params):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            return real_execute(con, recipe, src, params)
        finally:
            timings[recipe.name] = time.perf_counter() - start
            cpu[recipe.name] = time.process_time() - start_cpu

    report.connect, report.execute_recipe = connect, execute
    out = Path(tempfile.mkdtemp(prefix=f"bench-report-{mode}-"))
    resident = _resident_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    report.write_report(data, out, overwrite=True)
    total, cpu["report"] = time.perf_counter() - start, time.process_time() - start_cpu
    shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    alone = _recipes_alone(connect, data) if with_alone else {}
    if mode == "before":
        shutil.rmtree(recipes.RECIPE_DIR, ignore_errors=True)
    return {"mode": mode, "timings": timings, "cpu": cpu, "report": total, "peak": peak, "above": peak - resident,
            "alone": alone, "duckdb": duckdb.__version__}


def _recipes_alone(connect, data: Path) -> dict[str, float]:
    """Each recipe's wall seconds run by itself on one connection (as `tokenshift query` runs it): inside the
    report a second thread writes the previous result's CSV and PNG beside it."""
    from tokenshift.queries.recipes import load_recipe, recipe_names
    from tokenshift.queries.run import MissingTableError, execute_recipe

    con, src = connect(data)
    out = {}
    try:
        for name in recipe_names():
            start = time.perf_counter()
            try:
                execute_recipe(con, load_recipe(name), src, {})
            except MissingTableError:
                continue
            out[name] = time.perf_counter() - start
    finally:
        con.close()
    return out


def _resident_bytes() -> int:
    text = Path("/proc/self/status").read_text()
    return int(next(line for line in text.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data), args.threads, args.before_ref, not args.no_alone)))
        return
    import pyarrow.parquet as pq

    root = Path(args.data).parent if args.data else Path(tempfile.gettempdir()) / "tokenshift-bench-queries"
    root.mkdir(parents=True, exist_ok=True)
    source = Path(args.build) if args.build else make_source_build(root)
    data = Path(args.data) if args.data else root / f"data-{args.rows}"
    start = time.perf_counter()
    copies = replicate(source, data, args.rows, args.same_problems)
    made = time.perf_counter() - start
    rows = sum(pq.read_metadata(p).num_rows for p in (data / "tokens").glob("*.parquet"))
    size = sum(p.stat().st_size for p in data.rglob("*.parquet"))
    load = os.getloadavg()
    print(f"dataset {data}: {copies} copies of {source} = {rows:,} token rows, {size / 2**20:,.0f} MiB parquet "
          f"(made or found in {made:.0f} s), {'the source' if args.same_problems else 'fresh'} problem ids")
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"(1 / 5 / 15 min) at the start")
    results = {}
    for mode in args.modes:  # a fresh process each, so the peak is the mode's own
        cmd = [sys.executable, __file__, "--worker", mode, "--data", str(data), "--before-ref", args.before_ref]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.no_alone:
            cmd.append("--no-alone")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:  # the other modes' results still print
            print(f"{mode} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    if not results:
        raise SystemExit("every mode failed")
    names = list(dict.fromkeys(n for r in results.values() for n in r["timings"]))
    modes = [m for m in args.modes if m in results]
    units = ("s", "cpu s", "alone s") if any(r["alone"] for r in results.values()) else ("s", "cpu s")
    headers = ["step"] + [f"{m} {unit}" for m in modes for unit in units]
    table = []
    for name in names + ["report", "peak MiB", "above start MiB"]:
        cells = []
        for mode in modes:
            r = results[mode]
            if "MiB" in name:
                cells += [f"{(r['peak'] if name == 'peak MiB' else r['above']) / 2**20:,.0f}"] + ["-"] * (len(units) - 1)
                continue
            wall = r["report"] if name == "report" else r["timings"].get(name, float("nan"))
            cells += [f"{wall:,.2f}", f"{r['cpu'].get(name, float('nan')):,.2f}"]
            if len(units) == 3:
                cells.append(f"{r['alone'][name]:,.2f}" if name in r["alone"] else "-")
        table.append([name] + cells)
    print_table(headers, table)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; duckdb {results[modes[0]]['duckdb']}")
    base = "before" if "before" in results else "views"
    if base in results and len(results) > 1:
        b = results[base]
        print("RATIOS " + " | ".join(
            f"{m}/{base}: report {r['report'] / b['report']:.2f} (cpu {r['cpu']['report'] / b['cpu']['report']:.2f}), "
            f"peak {r['peak'] / b['peak']:.2f}" for m, r in results.items() if m != base))

if __name__ == "__main__":
    main()
