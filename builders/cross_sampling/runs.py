"""Several cross-sampling runs in one build: their files, markers, overlaps, removal and manifest entries.

Run R's rows live in `cross_samples/part-NNNNN-R.parquet` (one part per prompt shard), its shard
markers are `.tokenshift/done/cross_samples-R-NNNNN` and its settings `.tokenshift/cross_runs/R.json`;
R is the run_id. A finished run is listed in the manifest's `cross_sampling_runs` with its exact
command. Two runs may not write the same cross_id (the same settings under other flags).
"""

from __future__ import annotations

from pathlib import Path

from tokenshift.builders.cross_sampling.config import (
    THRESHOLD_CRITERIA,
    CrossSampleConfig,
    _fmt,
    directions,
    recorded_runs,
)
from tokenshift.builders.grading import grade
from tokenshift.builders.pipeline.build import read_work_config, recorded_tables
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.lock import folder_lock
from tokenshift.runtime.seeds import CROSS_SAMPLING_SEEDS
from tokenshift.runtime.shards import WORK_DIR, is_done
from tokenshift.schemas import manifest
from tokenshift.schemas.registry import refuse_published_out
from tokenshift.schemas.versions import build_version, require_current

TABLE = "cross_samples"
RUNS_DIR = "cross_runs"


def part_rel(shard: int, run_id: str) -> str:
    """A run's part of one prompt shard, relative to DIR."""
    return f"{TABLE}/part-{shard:05d}-{run_id}.parquet"


def part_file(out: Path, shard: int, run_id: str) -> Path:
    return out / part_rel(shard, run_id)


def step_name(run_id: str) -> str:
    """The shard-marker step of a run (markers: .tokenshift/done/<step>-NNNNN)."""
    return f"{TABLE}-{run_id}"


def run_file(out: Path, run_id: str) -> Path:
    return out / WORK_DIR / RUNS_DIR / f"{run_id}.json"


def load_build(out: Path) -> dict:
    """The build's manifest; a one-line error when DIR holds no finished build."""
    if not (out / manifest.MANIFEST).is_file():
        raise TokenshiftError(f"{out} holds no finished build (no manifest.json): "
                              "run `tokenshift build --out DIR` first")
    refuse_published_out(out, "DIR")
    try:
        build = manifest.read_manifest(out)
        build["config"]["seed"], build["models"]["rl"][0]["name"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TokenshiftError(f"{out / manifest.MANIFEST} is not a tokenshift build manifest: "
                              "rebuild with `tokenshift build`") from None
    if not manifest.listed_files(build, "prompts"):
        raise TokenshiftError(f"{out} has no prompts table: rebuild with `tokenshift build`")
    require_current(out, build_version(out, build), "cross-sample")  # one build, one schema version
    manifest.verify_tables(out, build, ("prompts",))  # the parts this step reads, as the build wrote them
    return build


def prompt_shards(out: Path) -> list[int]:
    """The build's prompt shards, as its manifest lists their parts."""
    return sorted(int(Path(rel).stem.split("-")[1])
                  for rel in manifest.listed_files(manifest.read_manifest(out), "prompts"))


def unfinished_shards(out: Path, run_id: str) -> list[int]:
    """The build's prompt shards whose part of run `run_id` is not written yet."""
    return [k for k in prompt_shards(out) if not is_done(out, step_name(run_id), k)]


def known_runs(out: Path, build: dict) -> dict[str, CrossSampleConfig]:
    """Every run in DIR, finished (manifest) or started (work file), by run_id."""
    runs = {r["run_id"]: CrossSampleConfig.from_json({**r["config"], "out": str(out)}) for r in recorded_runs(build)}
    for path in sorted((out / WORK_DIR / RUNS_DIR).glob("*.json")):
        runs.setdefault(path.stem, CrossSampleConfig.from_json({**read_work_config(path), "out": str(out)}))
    if not runs and any((out / TABLE).glob("*.parquet")):
        raise TokenshiftError(f"{out} has cross_samples written by an older tokenshift (no run records): "
                              f"move {out / TABLE} away and cross-sample again")
    return runs


def id_prefix(config: CrossSampleConfig, direction: str, threshold: float | None, budget: float,
              rate: float | None = None, control_seed: int | None = None) -> str:
    """A row's cross_id without '/<problem_id>/<sample_index>'.

    js rows with mix weight 1 keep the original layout '<protocol>/<direction>/<rl_model>/<threshold>/
    <budget>'; other runs put their criterion (random: '@<match>' or '/r<rate>'), '/<sign>' (delta_logp),
    '/w<mix weight>' (when not 1) or '/logw<mix weight>' (log space, every W) and '/c<control seed>'
    (random) in front.
    """
    tag = config.criterion
    if config.criterion == "random":
        tag += f"@{config.match}" if config.match else f"/r{_fmt(rate)}"
    if config.sign is not None:
        tag += f"/{config.sign}"
    if config.mix_space == "log":
        tag += f"/logw{_fmt(config.mix_weight)}"
    elif config.mix_weight != 1:
        tag += f"/w{_fmt(config.mix_weight)}"
    if control_seed is not None:
        tag += f"/c{control_seed}"
    th = "na" if threshold is None else _fmt(threshold)
    base = f"{config.protocol}/{direction}/{config.rl_model}/{th}/{_fmt(budget)}"
    return base if tag == "js" else f"{tag}/{base}"


def matched_settings(config: CrossSampleConfig, runs: dict[str, CrossSampleConfig]) -> list[tuple[str, float, float]]:
    """(direction, threshold, budget) of every setting of the runs a --match control matches."""
    out = set()
    for run_id in config.matched_runs:
        other = runs.get(run_id)
        if other is None:
            raise TokenshiftError(f"--match: run {run_id} is no longer in {config.out}: cross-sample its "
                                  "criterion again, then rerun this control")
        for direction in set(directions(other)) & set(directions(config)):
            for threshold in other.thresholds or (None,):
                out |= {(direction, threshold, budget) for budget in other.budgets}
    return sorted(out, key=lambda s: (s[0], -1 if s[1] is None else s[1], s[2]))


def prefixes(config: CrossSampleConfig, runs: dict[str, CrossSampleConfig]) -> set[str]:
    """Every cross_id prefix the (resolved) run writes."""
    out = set()
    seeds = range(config.control_seeds) if config.criterion == "random" else (None,)
    if config.criterion == "random" and config.match:
        for direction, threshold, budget in matched_settings(config, runs):
            out |= {id_prefix(config, direction, threshold, budget, None, c) for c in seeds}
        return out
    budgets = config.budgets
    if config.protocol == "resample":
        budgets = tuple(float(k) for k in range(int(max(config.budgets)) + 1))
    for direction in directions(config):
        if config.criterion == "random":
            out |= {id_prefix(config, direction, None, b, r, c) for r in config.rate for b in budgets for c in seeds}
        else:
            thresholds = config.thresholds if config.criterion in THRESHOLD_CRITERIA else (None,)
            out |= {id_prefix(config, direction, t, b) for t in thresholds or (None,) for b in budgets}
    return out


def check_rerun(out: Path, config: CrossSampleConfig, runs: dict[str, CrossSampleConfig], overwrite: bool) -> list[str]:
    """run_ids this run replaces (itself on --overwrite, and any run writing the same cross_ids).

    Without --overwrite a run whose rows another config already wrote is refused.
    """
    run_id = config.run_id()
    mine = prefixes(config, runs)
    clashing = [k for k, other in runs.items() if k != run_id and mine & prefixes(other, runs)]
    if clashing and not overwrite:
        previous, current = runs[clashing[0]].identity(), config.identity()
        changed = [k for k in sorted(set(previous) | set(current)) if previous.get(k) != current.get(k)]
        k = changed[0] if changed else "settings"
        raise TokenshiftError(f"{out} already has cross_samples from another config ({k}: {previous.get(k)!r} "
                              f"-> {current.get(k)!r}) with the same settings: pass --overwrite to replace that run, "
                              "or rerun with the same flags")
    return ([run_id] if overwrite and run_id in runs else []) + clashing


def remove_runs(out: Path, run_ids: list[str]) -> None:
    """Delete runs' parts, markers and work files, and drop them from the manifest (with its table entries)."""
    if not run_ids:
        return
    for run_id in run_ids:
        for path in (out / TABLE).glob(f"part-*-{run_id}.parquet"):
            path.unlink()
        for path in (out / WORK_DIR / "done").glob(f"{step_name(run_id)}-*"):
            path.unlink()
        run_file(out, run_id).unlink(missing_ok=True)
    with folder_lock(out, "tokenshift cross-sample", wait=True, name="manifest.lock"):
        payload = manifest.read_manifest(out)
        kept = [r for r in recorded_runs(payload) if r["run_id"] not in run_ids]
        _set_runs(payload, kept)
        _set_tables(out, payload)
        manifest.write_manifest(out, payload)


def _set_runs(payload: dict, runs: list[dict]) -> None:
    """The runs list, and `cross_sampling` / `cross_sampling_command` = the latest run (as single-run readers expect)."""
    for key in ("cross_sampling_runs", "cross_sampling", "cross_sampling_command", "cross_sampling_seconds"):
        payload.pop(key, None)
    if not runs:
        return
    payload["cross_sampling_runs"] = runs
    payload["cross_sampling"] = runs[-1]["config"]
    payload["cross_sampling_command"] = runs[-1]["command"]
    payload["cross_sampling_seconds"] = runs[-1]["seconds"]


def record_run(out: Path, config: CrossSampleConfig, seconds: float) -> None:
    """Add (or replace) the finished run in the manifest's runs list and refresh the table entries."""
    run_id = config.run_id()
    with folder_lock(out, "tokenshift cross-sample", wait=True, name="manifest.lock"):
        payload = manifest.read_manifest(out)
        runs = [r for r in recorded_runs(payload) if r["run_id"] != run_id]
        mine = recorded_tables(out, (step_name(run_id),)).get(TABLE, {})
        runs.append({"run_id": run_id, "config": config.as_json(), "command": config.command_line(),
                     "seconds": round(seconds, 1), "rows": mine.get("rows", 0)})
        _set_runs(payload, runs)
        payload.setdefault("seeds", {})["cross_sampling"] = CROSS_SAMPLING_SEEDS
        _set_tables(out, payload, mine.get("files", {}))
        manifest.write_manifest(out, payload)


def _set_tables(out: Path, payload: dict, new: dict[str, dict] | None = None) -> None:
    """The build's entries as recorded; cross_samples = the listed parts of the runs still recorded (as the
    manifest has them, e.g. after a regrade) plus `new`, the parts a finishing run's shards wrote and hashed."""
    kept = tuple(f"-{r['run_id']}.parquet" for r in recorded_runs(payload))
    files = {rel: e for rel, e in manifest.listed_files(payload, TABLE).items() if rel.endswith(kept)}
    files.update(new or {})
    payload["tables"] = {**{t: e for t, e in payload["tables"].items() if t != TABLE},
                         **manifest.tables_from_files(files)}
    if TABLE in payload["tables"]:
        payload.setdefault("ungraded", {})[TABLE] = grade.count_ungraded(out, payload["tables"][TABLE])
    elif isinstance(payload.get("ungraded"), dict):
        payload["ungraded"].pop(TABLE, None)


def is_recorded(build: dict, run_id: str) -> bool:
    return any(r["run_id"] == run_id for r in recorded_runs(build))
