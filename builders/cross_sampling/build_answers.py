"""The build's own answers of a cross-sampling driver, read so budget 0 (the driver alone) need not be decoded again.

With the build's seed and samples, the HF engine and the build's sampling settings, the driver
alone of one prompt shard draws from the generator the build sampled that driver with
(generation_seed(seed, shard, driver), the same batches of prompts x samples) and reproduces its
answers token for token (protocols). That equality is tested, not provable (kernels,
devices and library versions may differ), so reuse is checked three ways: the conditions below
(`why_decoded`), the parts read against the manifest's sha256 and every row against the derived
seed (`shard_answers`), and at run time every token the tree decodes anyway along the driver's
trunk against the build's (decoding.decoder.decode; a difference turns reuse off).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenshift.builders.decoding.decoder import Known
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.seeds import generation_seed
from tokenshift.runtime.shards import part_name
from tokenshift.schemas import manifest


def why_decoded(config, build) -> str | None:
    """Why budget 0 cannot be read from the build (None: it can, shard by shard), from the configs alone.

    config: the resolved CrossSampleConfig; build: the build's BuildConfig (the sampling settings,
    batch size, device and dtype cross-sampling uses are the build's by construction: Run).
    """
    if config.protocol != "threshold":
        return "the resample protocol needs JS along every step-0 answer, which only decoding gives"
    if build.engine != "hf":
        return f"the build sampled with --engine {build.engine}, whose random stream is not the HF engine's"
    if config.seed != build.seed:
        return f"--seed {config.seed} is not the build's {build.seed}"
    if config.samples != build.samples:
        return f"--samples {config.samples} is not the build's {build.samples} (other batches, other draws)"
    if config.max_branches == 1:
        return "--max-branches 1 decodes every setting (the reference path)"
    return None


def plan_line(config, build) -> str:
    """One line for the plan and a run's first lines: is budget 0 read from the build, and if not, why."""
    why = why_decoded(config, build)
    if why is None:
        return ("budget 0 (the driver alone): read from the build's answers (HF engine, its seed and samples), "
                "checked against the driver's tokens the other settings decode anyway")
    return f"budget 0 (the driver alone): decoded, not read from the build: {why}"


def shard_answers(run, shard: int, prompts: list[dict], jobs: list[tuple[int, int]],
                  drivers: list[str]) -> dict[str, tuple[Known, ...] | str]:
    """Per driver name: the build's answers aligned with jobs (prompt i, sample s), or why they are not read."""
    why = why_decoded(run.config, run.build)
    if why is not None:
        return dict.fromkeys(drivers, why)
    sampling = (run.sampling.max_new_tokens, run.sampling.temperature, run.sampling.top_p, run.sampling.batch_size)
    if sampling != (run.build.max_new_tokens, run.build.temperature, run.build.top_p, run.build.batch_size):
        return dict.fromkeys(drivers, "the sampling settings are not the build's")
    out = Path(run.config.out)
    try:
        generations, tokens = _read_parts(out, shard, drivers, run.config.rl_model)
    except TokenshiftError as err:
        return dict.fromkeys(drivers, str(err))
    return {name: _answers(name, generation_seed(run.config.seed, shard, name), prompts, jobs, generations, tokens)
            for name in drivers}


def _read_parts(out: Path, shard: int, drivers: list[str], rl_model: str):
    """The shard's generations and tokens of the drivers (one RL model's block), each verified against the manifest."""
    build = manifest.read_manifest(out)
    parts = {}
    for table in ("generations", "tokens"):
        rel = f"{table}/{part_name(shard)}"
        entry = manifest.listed_files(build, table).get(rel)
        if entry is None:
            raise TokenshiftError(f"the manifest does not list {rel}")
        manifest.verify_part(out, rel, entry)
        parts[table] = out / rel
    keep = [("sampler", "in", drivers)]
    generations = pq.read_table(parts["generations"], filters=keep, columns=[
        "generation_id", "problem_id", "sampler", "sample_index", "seed", "n_tokens", "finish_reason", "engine"])
    tokens = pq.read_table(parts["tokens"], filters=keep + [("rl_model", "==", rl_model)],
                           columns=["generation_id", "position", "token_id"])
    return generations, tokens.sort_by([("generation_id", "ascending"), ("position", "ascending")])


def _answers(name: str, seed: int, prompts: list[dict], jobs, generations, tokens) -> tuple[Known, ...] | str:
    """One driver's answers aligned with jobs, or why not (a missing answer, another seed or engine, gaps)."""
    mine = generations.filter(pc.equal(generations["sampler"], name)).to_pylist()
    if any(g["engine"] != "hf" for g in mine):
        return f"the build's {name} answers were not sampled with the HF engine"
    if any(g["seed"] != seed for g in mine):
        return f"the build's {name} answers of this shard were not sampled with seed {seed}"
    by_job = {(g["problem_id"], g["sample_index"]): g for g in mine}
    ids = tokens["generation_id"].to_numpy(zero_copy_only=False)
    positions, values = tokens["position"].to_numpy(), tokens["token_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, dtype=int)
    spans = dict(zip(ids[starts].tolist(), zip(starts.tolist(), [*starts[1:].tolist(), len(ids)]), strict=True))
    out = []
    for i, s in jobs:
        g = by_job.get((prompts[i]["problem_id"], s))
        if g is None:
            return f"the build has no {name} answer {prompts[i]['problem_id']}/{s}"
        lo, hi = spans.get(g["generation_id"], (0, 0))
        if hi - lo != g["n_tokens"] or not np.array_equal(positions[lo:hi], np.arange(hi - lo)):
            return f"the build's tokens of {g['generation_id']} are not its {g['n_tokens']} positions"
        out.append(Known(tuple(values[lo:hi].tolist()), g["finish_reason"]))
    return tuple(out)
