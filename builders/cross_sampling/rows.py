"""One prompt shard of a cross-sampling run as graded cross_samples rows."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq

from tokenshift.builders.cross_sampling import build_answers
from tokenshift.builders.cross_sampling.config import directions
from tokenshift.builders.cross_sampling.protocols import (
    NOT_REPRODUCED,
    PairDecoder,
    Run,
    Selection,
    resample_runs,
    selections,
    setting_runs,
)
from tokenshift.builders.cross_sampling.runs import id_prefix, part_file
from tokenshift.builders.decoding.decoder import Decoded
from tokenshift.builders.grading import grade
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.progress import progress_bar
from tokenshift.runtime.seeds import generation_seed, resample_seed


def shard_rows(run: Run, shard: int, prompts: list[dict]) -> list[dict]:
    """Every cross-sampled, graded row of one prompt shard (all directions and settings)."""
    config, tok = run.config, run.tokenizer
    prompt_ids = [tok(p["prompt"], add_special_tokens=False)["input_ids"] for p in prompts]
    jobs = [(i, s) for i in range(len(prompts)) for s in range(config.samples)]
    matched = matched_rates(run, shard, prompts, jobs) if config.match else {}
    answers = known_answers(run, shard, prompts, jobs)
    rows = []
    for direction in directions(config):
        driver_name, driver, other = run.roles(direction)
        decoder = PairDecoder(run, driver, other)
        seed = generation_seed(config.seed, shard, driver_name)
        prefixes = [prompt_ids[i] for i, _ in jobs]
        label = f"{direction} shard {shard}"
        if config.protocol == "resample":
            steps = resample_runs(run, decoder, prefixes, [i for i, _ in jobs], seed,
                                  lambda k, name=driver_name: resample_seed(config.seed, shard, name, k),
                                  label)
            for k, (step_seed, states) in enumerate(steps):
                rows += [_row(run, direction, Selection(None, ()), float(k), prompts[i], s, step_seed, d)
                         for (i, s), d in zip(jobs, states, strict=True)]
            continue
        chosen = selections(config) if not config.match else [
            Selection(t, (b,), control_seed=c, row_rates=rates, uncapped=True, direction=d)
            for (d, t, b), rates in matched.items() if d == direction for c in range(config.control_seeds)]
        known = answers.get(driver_name) if NOT_REPRODUCED not in run.said else None  # said in this shard
        for (sel, budget), decoded in setting_runs(run, decoder, prefixes, seed, label, chosen, known).items():
            rows += [_row(run, direction, sel, budget, prompts[i], s, seed, d,
                          None if sel.row_rates is None else sel.row_rates[j])
                     for j, ((i, s), d) in enumerate(zip(jobs, decoded, strict=True))]
    _grade(run, rows, {p["problem_id"]: p["gold_answer"] for p in prompts})
    return rows


def known_answers(run: Run, shard: int, prompts: list[dict], jobs: list[tuple[int, int]]) -> dict[str, tuple]:
    """{driver name: the build's answers aligned with jobs} of the drivers whose budget 0 is read from the build;
    why another's is not is said once (a reason every shard shares is in the plan's line instead)."""
    if build_answers.why_decoded(run.config, run.build) is not None or NOT_REPRODUCED in run.said:
        return {}
    drivers = [run.roles(d)[0] for d in directions(run.config)]
    found = build_answers.shard_answers(run, shard, prompts, jobs, drivers)
    for name, answers in found.items():
        if isinstance(answers, str):
            run.say_once(f"budget 0 (the driver alone) of {name}: decoded, not read from the build: {answers}")
    return {name: answers for name, answers in found.items() if not isinstance(answers, str)}


def matched_rates(run: Run, shard: int, prompts: list[dict],
                  jobs: list[tuple[int, int]]) -> dict[tuple[str, float | None, float], tuple[float, ...]]:
    """{(direction, threshold, budget): per-answer rates aligned with jobs} from the matched runs' rows.

    The rate of an answer is the intervention_fraction the matched criterion realised on the same
    problem and sample index at that setting.
    """
    config, out = run.config, Path(run.config.out)
    wanted = set(directions(config))
    found: dict[tuple, dict[tuple[str, int], float]] = {}
    columns = ["direction", "threshold", "budget", "problem_id", "sample_index", "intervention_fraction"]
    for run_id in config.matched_runs:
        path = part_file(out, shard, run_id)
        if not path.is_file():
            raise TokenshiftError(f"--match: {path} is missing: finish or rerun the matched run {run_id} first")
        for r in pq.read_table(path, columns=columns).to_pylist():
            if r["direction"] in wanted:
                key = (r["direction"], r["threshold"], r["budget"])
                found.setdefault(key, {})[(r["problem_id"], r["sample_index"])] = r["intervention_fraction"]
    out_rates = {}
    for key in sorted(found, key=lambda k: (k[0], -1.0 if k[1] is None else k[1], k[2])):
        try:
            out_rates[key] = tuple(found[key][(prompts[i]["problem_id"], s)] for i, s in jobs)
        except KeyError:
            raise TokenshiftError(f"--match {config.match}: the matched run has fewer than --samples "
                                  f"{config.samples} answers per prompt: use its --samples or fewer") from None
    return out_rates


def _row(run: Run, direction: str, sel: Selection, budget: float, problem: dict, sample: int,
         seed: int, decoded: Decoded, rate: float | None = None) -> dict:
    config, positions = run.config, decoded.interventions
    n = len(decoded.token_ids)
    prefix = id_prefix(config, direction, sel.threshold, budget, sel.rate, sel.control_seed)
    return {
        "cross_id": f"{prefix}/{problem['problem_id']}/{sample}",
        "problem_id": problem["problem_id"], "rl_model": config.rl_model, "protocol": config.protocol,
        "direction": direction, "threshold": sel.threshold, "budget": budget, "budget_unit": config.budget_unit,
        "sample_index": sample, "seed": seed,
        "response_text": run.tokenizer.decode(decoded.token_ids, skip_special_tokens=True),
        "n_tokens": n, "n_interventions": len(positions), "intervention_positions": list(positions),
        "intervention_fraction": len(positions) / n if n else 0.0,
        "extracted_answer": None, "correct": None, "finish_reason": decoded.finish_reason,
        "criterion": config.criterion, "mix_weight": config.mix_weight,
        "rate": sel.rate if rate is None else rate, "match_criterion": config.match,
        "control_seed": sel.control_seed, "run_id": _run_id(config),
        "sign": config.sign, "mix_space": config.mix_space,
    }


@lru_cache(maxsize=16)
def _run_id(config) -> str:
    return config.run_id()


def _grade(run: Run, rows: list[dict], gold: dict[str, str]) -> None:
    """Grade each distinct (gold, response) once with math-verify; settings often repeat answers."""
    pairs = sorted({(gold[r["problem_id"]], r["response_text"]) for r in rows})
    bar = progress_bar(total=len(pairs), desc="grade", unit="answer", leave=False, disable=not run.progress)
    grades = dict(zip(pairs, grade.grade_many(pairs, timeout_s=run.build.grade_timeout_s, progress=bar,
                                              transforms=run.build.gold_transform), strict=True))
    bar.close()
    for r in rows:
        g = grades[(gold[r["problem_id"]], r["response_text"])]
        r["extracted_answer"], r["correct"] = g.extracted_answer, g.correct
