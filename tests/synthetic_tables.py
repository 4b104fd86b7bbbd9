"""Small schema-valid tokenshift tables with known structure, written in the build layout, for query tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenshift.schemas.tables import to_arrow, write_parquet

VOCAB = ["<eos>", " the", " is", " so", " we", " wait", " but", " answer", "\\boxed{", "}", "+", "-", "*",
         "=", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " Let", " first", " then", " check",
         " compute", " total", ".", ",", "\n", " step", " sum", " product", " hmm", " yes", " no", " it"]
TOP_K = 5
RL_MODELS = ("rl-step100", "rl-step200")
BENCHMARKS = ("bench-a", "bench-b")


@dataclass(frozen=True)
class ExtraModel:
    """A model added beside RL_MODELS (no cross_samples): sparse RL-like shifts, or dense SFT-like ones."""
    name: str
    accuracy: float
    strength: float = 1.0  # sparse: the boost strength of _rl_logits; dense: the scale of the shift everywhere
    dense: bool = False


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=-1)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * (np.log(np.clip(p, 1e-300, None)) - np.log(np.clip(q, 1e-300, None)))).sum(axis=-1)


def _rank(p: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1-based rank of ids[i] under p[i]; ties share the best rank."""
    chosen = p[np.arange(len(ids)), ids]
    return 1 + (p > chosen[:, None]).sum(axis=-1)


def _topk(p: np.ndarray) -> np.ndarray:
    """Top-K ids per row, most probable first, ties by lower id."""
    return np.argsort(-p, axis=-1, kind="stable")[:, :TOP_K]


def _base_logits(rng: np.random.Generator, length: int) -> np.ndarray:
    scale = rng.choice([0.3, 1.0, 2.5, 6.0], size=(length, 1), p=[0.2, 0.2, 0.3, 0.3])
    return rng.normal(0.0, 1.0, size=(length, len(VOCAB))) * scale


def _rl_logits(rng: np.random.Generator, base: np.ndarray, strength: float) -> np.ndarray:
    """RL = base + tiny noise, plus a sparse boost of a base top-3 (rarely top-10) candidate at forks and edges."""
    length = len(base)
    rl = base + rng.normal(0.0, 0.01, size=base.shape)
    ent = _entropy(_softmax(base))
    pos = np.arange(length)
    edge = (pos < 3) | (pos >= length - 3)
    fork = ent >= np.quantile(ent, 0.8)
    chance = np.where(fork, 0.5, 0.02) + np.where(edge, 0.4, 0.0)
    hit = rng.random(length) < chance * strength
    order = np.argsort(-base, axis=-1)
    for i in np.flatnonzero(hit):
        choice = order[i, rng.integers(1, 3)] if rng.random() < 0.85 else order[i, rng.integers(3, 10)]
        rl[i, choice] += 2.0 + 4.0 * strength * rng.random()
    return rl


def _dense_logits(rng: np.random.Generator, base: np.ndarray, strength: float) -> np.ndarray:
    """SFT-like: every position moved by noise of scale `strength` (many positions far), at any entropy."""
    return base + rng.normal(0.0, strength, size=base.shape)


def _token_rows(gen_id: str, sampler: str, rl_model: str, base_lg: np.ndarray, rl_lg: np.ndarray,
                ids: np.ndarray) -> list[dict]:
    pb, pr = _softmax(base_lg), _softmax(rl_lg)
    lpb, lpr = np.log(pb), np.log(pr)
    m = 0.5 * (pb + pr)
    js = 0.5 * _kl(pb, m) + 0.5 * _kl(pr, m)
    n = len(ids)
    rank_b, rank_r = _rank(pb, ids), _rank(pr, ids)
    top1_b, top1_r = pb.argmax(-1), pr.argmax(-1)
    tk_b, tk_r = _topk(pb), _topk(pr)
    rows = []
    for i in range(n):
        rows.append({
            "generation_id": gen_id, "sampler": sampler, "rl_model": rl_model, "position": i,
            "rel_position": i / (n - 1) if n > 1 else 0.0, "token_id": int(ids[i]), "token": VOCAB[ids[i]],
            "logp_base": float(lpb[i, ids[i]]), "logp_rl": float(lpr[i, ids[i]]),
            "entropy_base": float(_entropy(pb[i])), "entropy_rl": float(_entropy(pr[i])),
            "js": float(max(js[i], 0.0)), "kl_base_rl": float(max(_kl(pb[i], pr[i]), 0.0)),
            "kl_rl_base": float(max(_kl(pr[i], pb[i]), 0.0)),
            "rank_base": int(rank_b[i]), "rank_rl": int(rank_r[i]),
            "top1_base": int(top1_b[i]), "top1_rl": int(top1_r[i]),
            "rl_top1_rank_base": int(_rank(pb[i:i + 1], top1_r[i:i + 1])[0]),
            "topk_base_ids": [int(x) for x in tk_b[i]], "topk_base_logp": [float(lpb[i, x]) for x in tk_b[i]],
            "topk_rl_ids": [int(x) for x in tk_r[i]], "topk_rl_logp": [float(lpr[i, x]) for x in tk_r[i]],
            "topk_overlap": len(set(tk_b[i]) & set(tk_r[i])) / TOP_K,
            "p_base_rl_top1": float(pb[i, top1_r[i]]), "rl_mass_base_topk": float(pr[i, tk_b[i]].sum()),
            "base_mass_rl_topk": float(pb[i, tk_r[i]].sum()),
            "p_rl_rl_top1": float(pr[i, top1_r[i]]), "base_mass_base_topk": float(pb[i, tk_b[i]].sum()),
        })
    return rows


def make_tables(seed: int = 0, n_per_benchmark: int = 5, n_samples: int = 4,
                with_cross: bool = True, extra_models: tuple[ExtraModel, ...] = (),
                cross_scored: bool = False, extrapolation: bool = False) -> dict[str, list[dict]]:
    """Rows of prompts, generations, tokens (and cross_samples) for a base model and two RL checkpoints,
    plus `extra_models` (without them the rows are those of earlier versions, draw for draw).

    Base's answers are scored against every model, a model's answers against itself, or with
    cross_scored against every model too (as the builder does)."""
    rng = np.random.default_rng(seed)
    extras = {m.name: m for m in extra_models}
    models = RL_MODELS + tuple(extras)
    prompts, generations, tokens, cross = [], [], [], []
    strengths = {"rl-step100": 0.5, "rl-step200": 1.0}
    accuracy = {"base": 0.3, "rl-step100": 0.55, "rl-step200": 0.75, **{m.name: m.accuracy for m in extra_models}}
    problems = []
    for bench in BENCHMARKS:
        for j in range(n_per_benchmark):
            pid = f"{bench}-{j:02d}"
            problems.append((pid, bench))
            prompts.append({"problem_id": pid, "benchmark": bench, "question": f"What is {j} + {j}?",
                            "gold_answer": str(2 * j), "prompt": f"Q: What is {j} + {j}? Reason step by step."})
    for sampler in ("base",) + models:
        for pid, bench in problems:
            for s in range(n_samples):
                gen_id = f"{sampler}/{pid}/{s}"
                length = int(rng.integers(8, 100)) if s else 1 + int(rng.integers(0, 2))
                base_lg = _base_logits(rng, length)
                rl_lgs = {m: _rl_logits(rng, base_lg, strengths[m]) for m in RL_MODELS}
                for m in extra_models:
                    shift = _dense_logits if m.dense else _rl_logits
                    rl_lgs[m.name] = shift(rng, base_lg, m.strength)
                driver = base_lg if sampler == "base" else rl_lgs[sampler]
                p = _softmax(driver)
                ids = np.array([rng.choice(len(VOCAB), p=row) for row in p])
                graded = rng.random() > 0.08
                correct = bool(rng.random() < accuracy[sampler]) if graded else None
                text = "".join(VOCAB[i] for i in ids)
                generations.append({
                    "generation_id": gen_id, "problem_id": pid, "benchmark": bench, "sampler": sampler,
                    "sample_index": s, "seed": seed, "response_text": text, "n_tokens": length,
                    "finish_reason": "stop", "extracted_answer": None if correct is None else text[-3:],
                    "correct": correct, "engine": "hf"})
                for m in models if sampler == "base" or cross_scored else (sampler,):
                    tokens.extend(_token_rows(gen_id, sampler, m, base_lg, rl_lgs[m], ids))
    if with_cross:
        settings = [("threshold", th, float("inf"), "tokens") for th in (0.05, 0.1, 0.2)]
        settings += [("resample", None, float(b), "tokens") for b in (1, 2, 4, 8)]
        for m in RL_MODELS:
            for protocol, th, budget, unit in settings:
                for direction in ("forward", "reverse"):
                    level = {0.05: 0.9, 0.1: 0.7, 0.2: 0.4, None: min(budget / 8, 1.0)}[th]
                    p_ok = (accuracy["base"] + level * (accuracy[m] - accuracy["base"]) if direction == "forward"
                            else accuracy[m] - level * (accuracy[m] - accuracy["base"]))
                    for pid, _ in problems:
                        for s in range(2):
                            n_tok = int(rng.integers(10, 40))
                            n_int = min(n_tok, int(rng.integers(0, 4)) if th is None else int(rng.integers(0, 6)))
                            graded = rng.random() > 0.05
                            cross.append({
                                "cross_id": f"{protocol}/{direction}/{m}/{th}/{budget}/{pid}/{s}",
                                "problem_id": pid, "rl_model": m, "protocol": protocol, "direction": direction,
                                "threshold": th, "budget": budget, "budget_unit": unit, "sample_index": s,
                                "seed": seed, "response_text": "x", "n_tokens": n_tok, "n_interventions": n_int,
                                "intervention_positions": sorted(rng.choice(n_tok, n_int, replace=False).tolist()),
                                "intervention_fraction": n_int / n_tok, "extracted_answer": None,
                                "correct": bool(rng.random() < p_ok) if graded else None, "finish_reason": "stop",
                                **_run_columns("js" if protocol == "threshold" else "resample")})
        cross += _criteria_rows(rng, problems, accuracy)
        if extrapolation:
            cross += _extrapolation_rows(np.random.default_rng(seed + 1), problems, accuracy)
    tables = {"prompts": prompts, "generations": generations, "tokens": tokens}
    if with_cross:
        tables["cross_samples"] = cross
    return tables


def _run_columns(run: str, criterion: str = "js", match: str | None = None, control_seed: int | None = None,
                 rate: float | None = None) -> dict:
    """The columns that name a cross-sampling run (criterion, mix weight, random control, run_id)."""
    return {"criterion": criterion, "mix_weight": 1.0, "rate": rate, "match_criterion": match,
            "control_seed": control_seed, "run_id": f"{run}-synthetic"}


def _criteria_rows(rng, problems, accuracy) -> list[dict]:
    """kl runs and a random control matched to the js settings (2 control seeds), for the first RL model."""
    m, rows = RL_MODELS[0], []
    runs = [("kl", th, None, None) for th in (0.5, 1.0)]
    runs += [("random", th, "js", c) for th in (0.05, 0.1, 0.2) for c in (0, 1)]
    for criterion, th, match, c in runs:
        for direction in ("forward", "reverse"):
            level = 0.3 if criterion == "random" else 0.6
            p_ok = (accuracy["base"] + level * (accuracy[m] - accuracy["base"]) if direction == "forward"
                    else accuracy[m] - level * (accuracy[m] - accuracy["base"]))
            for pid, _ in problems:
                for s in range(2):
                    n_tok = int(rng.integers(10, 40))
                    n_int = int(rng.integers(0, 6))
                    tag = f"random@js/c{c}" if criterion == "random" else criterion
                    rows.append({
                        "cross_id": f"{tag}/threshold/{direction}/{m}/{th}/inf/{pid}/{s}", "problem_id": pid,
                        "rl_model": m, "protocol": "threshold", "direction": direction, "threshold": th,
                        "budget": float("inf"), "budget_unit": "tokens", "sample_index": s, "seed": 0,
                        "response_text": "x", "n_tokens": n_tok, "n_interventions": n_int,
                        "intervention_positions": sorted(rng.choice(n_tok, n_int, replace=False).tolist()),
                        "intervention_fraction": n_int / n_tok, "extracted_answer": None,
                        "correct": bool(rng.random() < p_ok) if rng.random() > 0.05 else None,
                        "finish_reason": "stop",
                        **_run_columns(criterion, criterion, match, c, n_int / n_tok if match else None)})
    return rows


def _extrapolation_rows(rng, problems, accuracy) -> list[dict]:
    """A log-space W sweep for the first RL model: every position, delta_logp <= -0.3 (sign le) and its random
    control (2 seeds) at W = 1 (prob space, the swap), 1.1 and 1.5 (log space); js >= 0.05 at W = 1.5 (its W = 1
    rows are the js run's); delta_logp at prob-space W = 0.5 (not part of any sweep)."""
    m, rows = RL_MODELS[0], []
    runs = [("all", None, None, None, None), ("delta_logp", -0.3, "le", None, None)]
    runs += [("random", -0.3, "le", "delta_logp", c) for c in (0, 1)]
    points = [(1.0, "prob"), (1.1, "log"), (1.5, "log")]
    plan = [(run, w, space) for run in runs for w, space in points]
    plan += [(("js", 0.05, None, None, None), 1.5, "log"), (("delta_logp", -0.3, "le", None, None), 0.5, "prob")]
    for (criterion, th, sign, match, c), w, space in plan:
        for direction in ("forward", "reverse"):
            gain = 1.0 + 0.4 * (w - 1.0) - (0.3 if criterion == "random" else 0.0)
            p_ok = float(np.clip(accuracy["base"] + gain * (accuracy[m] - accuracy["base"]) if direction == "forward"
                                 else accuracy[m] - gain * (accuracy[m] - accuracy["base"]), 0, 1))
            for pid, _ in problems:
                for s in range(2 if rng.random() > 0.2 else 1):
                    n_tok = int(rng.integers(10, 40))
                    n_int = n_tok if criterion == "all" else int(rng.integers(0, 6))
                    tag = f"{criterion}/{match}/{sign}/c{c}/{space}{w}"
                    rows.append({
                        "cross_id": f"{tag}/threshold/{direction}/{m}/{th}/inf/{pid}/{s}", "problem_id": pid,
                        "rl_model": m, "protocol": "threshold", "direction": direction, "threshold": th,
                        "budget": float("inf"), "budget_unit": "tokens", "sample_index": s, "seed": 0,
                        "response_text": "x", "n_tokens": n_tok, "n_interventions": n_int,
                        "intervention_positions": sorted(rng.choice(n_tok, n_int, replace=False).tolist()),
                        "intervention_fraction": n_int / n_tok, "extracted_answer": None,
                        "correct": bool(rng.random() < p_ok) if rng.random() > 0.05 else None,
                        "finish_reason": "stop",
                        **_run_columns(f"{criterion}-{w}-{space}", criterion, match, c,
                                       n_int / n_tok if match else None),
                        "mix_weight": w, "mix_space": space, "sign": sign})
    return rows


def write_build(out: Path, seed: int = 0, with_cross: bool = True, parts: int = 2, **kwargs) -> Path:
    """Write synthetic tables as OUT/<table>/part-*.parquet plus a small manifest.json; returns OUT."""
    out = Path(out)
    tables = make_tables(seed=seed, with_cross=with_cross, **kwargs)
    for name, rows in tables.items():
        step = max(1, -(-len(rows) // parts))
        for i in range(parts):
            chunk = rows[i * step:(i + 1) * step]
            if chunk or i == 0:
                write_parquet(to_arrow(name, chunk), out / name / f"part-{i:05d}.parquet")
    return write_manifest(out, seed)


def write_manifest(out: Path, seed: int = 0) -> Path:
    """A small manifest.json listing every part under OUT (readers read only listed parts); returns OUT."""
    from tokenshift.schemas.manifest import table_entries

    manifest = {"synthetic": True, "seed": seed, "top_k_candidates": TOP_K, "tables": table_entries(out)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out
