"""`tokenshift cross-sample DIR`: swap (or mix) a budget of token decisions between base and RL, graded, as a table.

Each invocation is one run: its settings (criterion, thresholds, budgets, mix weight, random
controls, ...) decide its rows, which it appends to `cross_samples` beside the other runs'. The
same settings again resume (or, when finished, change nothing); --overwrite replaces that run.
The modules of this package: config (settings, checks, defaults), runs (files, markers, manifest of
several runs), protocols (the threshold and resample protocols, over builders/decoding), rows (rows,
grading), build_answers (budget 0 read from the build).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from tokenshift.builders.cross_sampling.config import (  # noqa: F401
    DEFAULT_THRESHOLDS,
    EXECUTION_FIELDS,
    INF,
    THRESHOLD_UNITS,
    CrossSampleConfig,
    default_thresholds,
    directions,
    parse_numbers,
    resolve,
    validate_config,
)
from tokenshift.builders.cross_sampling.protocols import (  # noqa: F401
    RESAMPLE_PERCENTILE,
    PairDecoder,
    Run,
    check_checkpoints,
    load_run,
    resample_runs,
    setting_runs,
    threshold_runs,
)
from tokenshift.builders.cross_sampling.rows import shard_rows
from tokenshift.builders.cross_sampling.runs import (
    TABLE,
    check_rerun,
    is_recorded,
    known_runs,
    load_build,
    part_rel,
    prompt_shards,
    record_run,
    remove_runs,
    run_file,
    step_name,
)
from tokenshift.builders.cross_sampling.runs import unfinished_shards as _unfinished
from tokenshift.runtime import executor
from tokenshift.runtime.files import clean_leftovers, write_json_atomic
from tokenshift.runtime.lock import folder_lock
from tokenshift.runtime.shards import WORK_DIR, ShardSpec, mark_done, part_name
from tokenshift.schemas import manifest
from tokenshift.schemas.registry import refuse_published_out
from tokenshift.schemas.tables import to_arrow


def run_cross_sample(config: CrossSampleConfig, overwrite: bool = False, progress: bool = True,
                     trust_remote_code: bool = False) -> Path:
    """Add (or resume) one run's rows in the cross_samples table of the build in config.out; returns DIR.

    trust_remote_code comes from this run's command line only, never from the build's manifest.
    """
    validate_config(config)
    out = Path(config.out)
    if not (out / manifest.MANIFEST).is_file():
        load_build(out)  # its one-line error, before the lock would create anything in DIR
    refuse_published_out(out, "DIR")
    with folder_lock(out, "tokenshift cross-sample", shared=True):  # --shard runs and other runs may share DIR
        clean_leftovers(out)
        return _run_locked(config, out, overwrite, progress, trust_remote_code)


def _run_locked(config: CrossSampleConfig, out: Path, overwrite: bool, progress: bool,
                trust_remote_code: bool) -> Path:
    started_at = time.time()
    build = load_build(out)
    config = resolve(config, build)
    run_id = config.run_id()
    runs = known_runs(out, build)
    replaced = check_rerun(out, config, runs, overwrite)
    if not replaced and is_recorded(build, run_id) and not _unfinished(out, run_id):
        return out  # the very same run, finished: nothing to do
    check_checkpoints(config, build)
    placement = executor.ray_placement(config.ray, config.ray_workers, str(build["config"].get("device", "cpu")))
    with executor.session(placement):
        remove_runs(out, replaced)
        write_json_atomic(run_file(out, run_id), config.identity())
        spec = ShardSpec.parse(config.shard)
        todo = [k for k in _unfinished(out, run_id) if spec.owns(k)]
        job = CrossSampleShards(config, build, progress=progress and config.ray is None,
                                trust_remote_code=trust_remote_code)
        executor.run_shards(job, todo, placement, progress, "cross-sample shards")
    if not _unfinished(out, run_id):  # the process that finishes the last shard records the run
        record_run(out, config, time.time() - started_at)
    return out


def unfinished_shards(out: Path, config: CrossSampleConfig | None = None) -> list[int]:
    """The build's prompt shards whose part of this run (resolved config; None: the latest run) is not written."""
    if config is None:
        recorded = manifest.read_manifest(out).get("cross_sampling_runs") or []
        if not recorded:
            return prompt_shards(out)
        return _unfinished(out, recorded[-1]["run_id"])
    return _unfinished(out, config.run_id())


@dataclass
class CrossSampleShards:
    """One prompt shard's cross-sampled, graded rows of one run, written as a part and marked done.

    Picklable before `setup()`, so a Ray actor can receive it and load the pair itself.
    """

    config: CrossSampleConfig
    build: dict
    progress: bool = False
    run: Run | None = None
    trust_remote_code: bool = False  # from the current command line only

    def setup(self) -> None:
        executor.check_visible(run_file(Path(self.config.out), self.config.run_id()), "DIR")
        if self.run is None:
            self.run = load_run(self.config, self.build, self.progress, self.trust_remote_code)

    def __call__(self, k: int) -> None:
        out = Path(self.config.out)
        prompts = pq.read_table(out / "prompts" / part_name(k)).to_pylist()
        rows = shard_rows(self.run, k, prompts)
        run_id = self.config.run_id()
        mark_done(out, step_name(run_id), k, manifest.write_part(out, part_rel(k, run_id), to_arrow(TABLE, rows)))


__all__ = ["CrossSampleConfig", "CrossSampleShards", "PairDecoder", "Run", "WORK_DIR", "check_checkpoints",
           "directions", "load_build", "load_run", "parse_numbers", "resample_runs", "resolve",
           "run_cross_sample", "setting_runs", "shard_rows", "threshold_runs", "unfinished_shards",
           "validate_config"]
