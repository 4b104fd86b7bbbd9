"""The two cross-sampling protocols on a loaded pair: threshold (settings decoded as a tree of shared prefixes) and resample.

Protocol 'threshold' (default). forward: base drives; at each step both models' next-token
distributions are computed for the same prefix; where the criterion selects the position (JS, KL,
reverse KL or the driver's entropy >= threshold, in nats over the full temperature- and top-p-free
distributions; Δlog p of the driver's token <= or >= threshold; the argmaxes differ; every position;
or a random draw below a rate) and the answer's budget is not spent, the token is sampled from
(1 − W)·p_driver + W·p_other, or with --mix-space log from softmax((1 − W)·log p_driver + W·log p_other)
(W = 1: from p_rl), otherwise from p_base. reverse: RL drives, base intervenes. Budget 0 is the driver alone; inf intervenes at every
selected position. --budget-unit fraction: a budget b allows at most floor(b × max_new_tokens)
interventions per answer, a cap fixed before decoding (so an early fork can always be taken).
A random control matched to a criterion (--match) intervenes at each answer's realised rate of that
criterion's setting, without a cap.

Protocol 'resample' (as in the related public code, github Hesse73/resample, with JS as the score):
the driver samples a whole answer (step 0, identical to threshold budget 0); the prompt's cutoff is
the 90th percentile of JS over the positions of all its step-0 answers; at each step k = 1..B the
first position after the last intervention whose JS (of the current answer) is above the cutoff
gets one token sampled from the other model (or the mix) and the driver regenerates the rest; an
answer with no such position stays as it is. One row per step k (budget = k).

Randomness: per shard and driver one generator seeded generation_seed(seed, shard, driver), the build's
own formula, over the build's batches; every setting restarts each batch from the generator state
the driver-alone run had there and draws one Exp(1) tensor per step shared by both models (see
decoding/decoder.py). So, with the build's seed and samples, budget 0 reproduces the build's generations
of the driver token for token (so the tree reads it from the build instead: build_answers), and
settings differ from the driver alone only at interventions and what follows them (common random
numbers across criteria, thresholds and budgets). A random
control's selection draws come from their own generator per setting and batch. Resample step
k >= 1 uses resample_seed(seed, shard, driver, k) (tokenshift/runtime/seeds.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from tokenshift.builders.cross_sampling.config import THRESHOLD_CRITERIA, CrossSampleConfig
from tokenshift.builders.decoding.decoder import Decoded, Known, Member, Pair, Rule, decode
from tokenshift.builders.decoding.sampling import supports_forks
from tokenshift.builders.engines import generate, models
from tokenshift.builders.pipeline.build import BuildConfig, model_specs
from tokenshift.runtime.errors import TokenshiftError, warn
from tokenshift.runtime.progress import progress_bar
from tokenshift.runtime.seeds import selection_seed
from tokenshift.schemas.values import CRITERIA

RESAMPLE_PERCENTILE = 90.0
NOT_REPRODUCED = "not reproduced"  # Run.said key: a run that found the build's answers not reproduced reads them no more
TOP1_THRESHOLD = 0.5  # top1_differs scores 1 where the argmaxes differ, 0 where they agree; all scores 1
UNTHRESHOLDED = tuple(c for c in CRITERIA if c not in THRESHOLD_CRITERIA and c != "random")  # score 1 where they select
INF = math.inf


@dataclass
class Run:
    """What every shard needs: configs, the loaded pair, tokenizer and sampling settings."""

    config: CrossSampleConfig
    build: BuildConfig
    tokenizer: object
    base: object
    rl: object
    sampling: generate.SamplingConfig
    progress: bool
    said: set[str] = field(default_factory=set)

    def say_once(self, line: str, key: str | None = None) -> None:
        """A warning this run prints once per key (default: the line), not again from another shard or batch."""
        if (key or line) not in self.said:
            self.said.add(key or line)
            warn(line)

    def roles(self, direction: str) -> tuple[str, object, object]:
        """(driver name, driver, intervening model) of a direction."""
        if direction == "forward":
            return "base", self.base, self.rl
        return self.config.rl_model, self.rl, self.base

    def cap(self, budget: float) -> float:
        """Most interventions per answer a budget allows."""
        if self.config.budget_unit == "tokens" or math.isinf(budget):
            return budget
        return float(math.floor(budget * self.sampling.max_new_tokens + 1e-9))


def build_config(build: dict, trust_remote_code: bool = False) -> BuildConfig:
    """The build's config; trust_remote_code from the current command line, never from the manifest."""
    return BuildConfig.from_manifest(build, trust_remote_code)


def pair_specs(config: CrossSampleConfig, build: dict) -> tuple[models.ModelSpec, models.ModelSpec]:
    """Specs of base and the chosen RL model, from the build's config (a Hub model at its recorded commit)."""
    base_spec, rl_specs = model_specs(build_config(build))
    rl_spec = next((s for s in rl_specs if s.name == config.rl_model), None)
    if rl_spec is None:
        raise TokenshiftError(f"--rl-model {config.rl_model!r} is in the manifest but not in the build "
                              f"config's --rl list ({', '.join(s.name for s in rl_specs)})")
    recorded = _recorded_models(build)
    return models.pinned(base_spec, recorded.get("base")), models.pinned(rl_spec, recorded.get(rl_spec.name))


def _recorded_models(build: dict) -> dict[str, dict]:
    entries = build.get("models") if isinstance(build.get("models"), dict) else {}
    rl = [m for m in entries.get("rl") or [] if isinstance(m, dict) and m.get("name")]
    return {"base": entries.get("base"), **{m["name"]: m for m in rl}}


def check_checkpoints(config: CrossSampleConfig, build: dict) -> None:
    """Refuse checkpoints the manifest does not vouch for: every file that decides the tokens as recorded."""
    recorded = _recorded_models(build)
    for spec in pair_specs(config, build):
        models.verify_checkpoint(spec, recorded.get(spec.name))


def load_run(config: CrossSampleConfig, build: dict, progress: bool, trust_remote_code: bool = False) -> Run:
    """Load base, the chosen RL model and the tokenizer (checked by check_checkpoints first)."""
    bconfig = build_config(build, trust_remote_code)
    base_spec, rl_spec = pair_specs(config, build)
    tokenizer = models.load_tokenizer(base_spec, bconfig.trust_remote_code)
    models.verify_tokenizer(tokenizer, build)
    load = lambda spec: models.load_model(spec, bconfig.device, bconfig.dtype, bconfig.trust_remote_code)  # noqa: E731
    base, rl = load(base_spec), load(rl_spec)
    for name, model in (("base", base), (rl_spec.name, rl)):
        models.fit_head_to_vocabulary(model, len(tokenizer), name)
    sampling = generate.SamplingConfig(bconfig.max_new_tokens, bconfig.temperature, bconfig.top_p,
                                       bconfig.batch_size)
    return Run(config, bconfig, tokenizer, base, rl, sampling, progress)


class PairDecoder:
    """The decoder bound to one direction: driver, intervening model, stop tokens (the driver's), criterion and mix."""

    def __init__(self, run: Run, driver, other):
        self.run, self.driver, self.other = run, driver, other
        self.stop_ids = generate.stop_token_ids(driver, run.tokenizer)
        pad = run.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids)
        config = run.config
        self.pair = Pair(driver, other, run.sampling, frozenset(self.stop_ids), self.pad_id, len(run.tokenizer))
        self.rule = Rule(config.criterion, config.sign if config.criterion == "delta_logp" else "ge",
                         config.mix_weight, config.mix_space)

    def __call__(self, prefixes, limits, generator, threshold=INF, caps=0.0, force_first=None, rates=None,
                 selector=None) -> list[Decoded]:
        """One setting's rows (cap `caps` per answer; a random control: its selector and per-row rates)."""
        if self.run.config.criterion in UNTHRESHOLDED:
            threshold = TOP1_THRESHOLD
        if selector is not None:
            member, selectors, row_rates = Member(caps, group=0), (selector,), (list(rates),)
        else:
            member, selectors, row_rates = Member(caps, threshold), (), ()
        return decode(self.pair, self.rule, prefixes, limits, generator, [member], selectors, row_rates,
                      force_first)[0]

    def shared(self, prefixes, limit: int, generator, settings: list[tuple[Selection | None, float] | None],
               seed: int, batch: int, rows: range, state_of: int | None = None, known=None) -> list[list[Decoded]]:
        """Settings (selection, cap; None: the driver alone) of batch `batch` (prefix rows `rows`) decoded as one
        tree, rows per setting; a random control draws from its generator for (seed, batch); state_of, known:
        see decoding.decoder.decode."""
        groups: dict[tuple, int] = {}
        selectors, row_rates, members = [], [], []
        for sel, cap in settings:
            if sel is None:  # the driver alone
                members.append(Member(0.0))
                continue
            if sel.control_seed is None:
                threshold = TOP1_THRESHOLD if self.run.config.criterion in UNTHRESHOLDED else sel.threshold
                members.append(Member(cap, threshold))
                continue
            key = (sel.label(), sel.control_seed)
            if key not in groups:
                groups[key] = len(selectors)
                selectors.append(_selector(self, seed, sel, batch))
                row_rates.append(_rates(sel, rows))
            members.append(Member(cap, group=groups[key]))
        return decode(self.pair, self.rule, prefixes, [limit] * len(prefixes), generator, members, tuple(selectors),
                      tuple(row_rates), None, state_of, known)

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=models.input_device(self.driver)).manual_seed(seed)


@dataclass(frozen=True)
class Selection:
    """How one family of settings picks positions; each of its budgets is one setting."""

    threshold: float | None  # threshold criteria: the threshold; a matched control: the matched setting's
    budgets: tuple[float, ...]
    rate: float | None = None  # random --rate
    control_seed: int | None = None  # random
    row_rates: tuple[float, ...] | None = None  # random --match: per-row rates, aligned with the prefixes
    uncapped: bool = False  # random --match: the budget names the matched setting and is not applied
    direction: str | None = None  # random --match: the matched setting's direction

    def label(self) -> str:
        """What seeds a random control's selection draws (with the control seed and batch): its rate, or a
        digest of its per-row rates (matched settings with the same rates are one and the same control)."""
        if self.rate is not None:
            return f"r{self.rate!r}"
        return "m" + hashlib.sha256(repr(self.row_rates).encode()).hexdigest()[:16]


def selections(config: CrossSampleConfig) -> list[Selection]:
    """The non-matched settings of a threshold-protocol run, one Selection per threshold or rate."""
    if config.criterion in THRESHOLD_CRITERIA:
        return [Selection(t, config.budgets) for t in config.thresholds]
    if config.criterion in UNTHRESHOLDED:
        return [Selection(None, config.budgets)]
    return [Selection(None, config.budgets, rate=r, control_seed=c)
            for r in config.rate for c in range(config.control_seeds)]


def _batches(n: int, size: int) -> list[range]:
    return [range(lo, min(lo + size, n)) for lo in range(0, n, size)]


def setting_runs(run: Run, decoder: PairDecoder, prefixes: list[list[int]], seed: int, label: str,
                 chosen: list[Selection],
                 known: Sequence[Known | None] | None = None) -> dict[tuple[Selection, float], list[Decoded]]:
    """{(selection, budget): decoded rows aligned with prefixes} for every selection and budget.

    Per batch, the distinct settings (selection and cap; budgets whose cap is 0 are the driver alone,
    as is a matched control whose rates are all 0 there, and a matched control with the same per-row
    rates as an earlier one is that one) decode in trees of at most --max-branches settings, the driver
    alone in the first, each shared prefix once (decoding.decoder.decode: bit-identical to decoding each
    setting alone; a model whose KV cache cannot fork decodes one setting per tree). known: the build's
    answers of the driver aligned
    with prefixes (build_answers): the driver alone ends where only it is left on a row's trunk (a tree
    of the driver alone decodes nothing); a batch where one differs from what the tree decoded is
    decoded again without them, and they are not used for the rest of this call.
    """
    width = run.config.max_branches if supports_forks(decoder.driver) else 1
    limit = run.sampling.max_new_tokens
    batches = _batches(len(prefixes), run.sampling.batch_size)
    generator = decoder.generator(seed)
    bar = progress_bar(total=len(batches) * (1 + sum(len(s.budgets) for s in chosen)), desc=label,
                       unit="batch", leave=False, disable=not run.progress)
    settings = [(sel, budget) for sel in chosen for budget in sel.budgets]
    parts: dict[tuple[Selection, float], list[list[Decoded]]] = {s: [] for s in settings}
    for b, rows in enumerate(batches):
        state = generator.get_state()
        alone = (None, 0.0)  # the driver alone: budgets whose cap is 0, and the trunk of the first tree
        keys, members = {}, {alone: (None, 0.0)}  # setting -> member key; member key -> (selection, cap)
        for sel, budget in settings:
            cap = INF if sel.uncapped else run.cap(budget)
            never = sel.row_rates is not None and not any(sel.row_rates[i] for i in rows)
            key = alone if cap == 0 or never else (_group_key(sel), cap)
            keys[(sel, budget)] = key
            members.setdefault(key, (sel, cap))
        decoded, after = {}, None
        for tree in _trees(list(members), width):
            state_of = tree.index(alone) if alone in tree else None
            batch_known = [known[i] for i in rows] if known is not None and state_of is not None else None
            decode_tree = partial(decoder.shared, [prefixes[i] for i in rows], limit, generator,
                                  [members[k] for k in tree], seed, b, rows, state_of)
            generator.set_state(state)
            rows_of = decode_tree(batch_known)
            if batch_known is not None and _differs(rows_of[state_of], batch_known):
                run.say_once(f"budget 0 (the driver alone): the build's answers were not reproduced (first in {label}, "
                             f"batch {b}): budget 0 is decoded there and from there on", key=NOT_REPRODUCED)
                known = None
                generator.set_state(state)
                rows_of = decode_tree()
            if alone in tree:  # the next batch starts where the driver alone left the generator
                after = generator.get_state()
            decoded.update(zip(tree, rows_of, strict=True))
        generator.set_state(after)
        for setting, key in keys.items():
            parts[setting].append(decoded[key])
        bar.update(1 + sum(len(s.budgets) for s in chosen))
    bar.close()
    return {s: [d for part in parts[s] for d in part] for s in settings}


def _differs(rows: list[Decoded], known: Sequence[Known | None]) -> bool:
    """Whether the driver alone's rows are not the build's answers (a row the tree decoded to its end differs)."""
    return any(k is not None and (d.token_ids != list(k.token_ids) or d.finish_reason != k.finish_reason)
               for d, k in zip(rows, known, strict=True))


def _group_key(sel: Selection) -> tuple:
    """Settings with the same key and cap decode identically: a threshold, or a random control's draws and rates."""
    if sel.control_seed is None:
        return ("threshold", sel.threshold)
    return ("random", sel.label(), sel.control_seed)


def _trees(keys: list, width: int) -> list[list]:
    """The member keys in trees of at most `width`, whole selections together where they fit."""
    by_group: dict[tuple, list] = {}
    for key in keys:
        by_group.setdefault(key[0], []).append(key)
    trees, current = [], []
    for group in by_group.values():
        while group:
            if len(current) + len(group) > width and current:
                trees.append(current)
                current = []
            take = group[:width - len(current)]
            current, group = current + take, group[len(take):]
    return trees + ([current] if current else [])


def _selector(decoder: PairDecoder, seed: int, sel: Selection, b: int) -> torch.Generator:
    """A random control's selection generator for batch b."""
    return decoder.generator(selection_seed(seed, sel.control_seed, sel.label(), b))


def _rates(sel: Selection, rows: range) -> list[float]:
    return [sel.rate] * len(rows) if sel.row_rates is None else [sel.row_rates[i] for i in rows]


def threshold_runs(run: Run, decoder: PairDecoder, prefixes: list[list[int]], seed: int,
                   label: str) -> dict[tuple[float | None, float], list[Decoded]]:
    """{(threshold, budget): decoded rows aligned with prefixes} of a threshold or top1_differs run."""
    return {(sel.threshold, budget): rows
            for (sel, budget), rows in setting_runs(run, decoder, prefixes, seed, label, selections(run.config)).items()}


def resample_runs(run: Run, decoder: PairDecoder, prefixes: list[list[int]], prompt_of: list[int], seed: int,
                  step_seed, label: str) -> list[tuple[int, list[Decoded]]]:
    """[(seed, rows aligned with prefixes)] for steps k = 0..max(budgets) of the resample protocol."""
    limit, size = run.sampling.max_new_tokens, run.sampling.batch_size
    steps = int(max(run.config.budgets))
    bar = progress_bar(total=steps + 1, desc=label, unit="step", leave=False, disable=not run.progress)
    generator = decoder.generator(seed)
    current = []
    for rows in _batches(len(prefixes), size):
        current += decoder([prefixes[i] for i in rows], [limit] * len(rows), generator)
    bar.update(1)
    cutoff = {}
    for p in sorted(set(prompt_of)):
        values = np.concatenate([current[i].js for i in range(len(current)) if prompt_of[i] == p])
        cutoff[p] = float(np.percentile(values, RESAMPLE_PERCENTILE))
    history = [(seed, current)]
    for k in range(1, steps + 1):
        todo = []
        for i, d in enumerate(current):
            start = d.interventions[-1] + 1 if d.interventions else 0
            j = next((t for t in range(start, len(d.token_ids)) if d.js[t] > cutoff[prompt_of[i]]), None)
            if j is not None:
                todo.append((i, j))
        k_seed = step_seed(k)
        generator = decoder.generator(k_seed)
        current = list(current)
        for rows in _batches(len(todo), size):
            part = [todo[r] for r in rows]
            new = decoder([prefixes[i] + current[i].token_ids[:j] for i, j in part], [limit - j for _, j in part],
                          generator, caps=0.0, force_first=[True] * len(part))
            for (i, j), d in zip(part, new, strict=True):
                old = current[i]
                current[i] = Decoded(old.token_ids[:j] + d.token_ids, d.finish_reason, old.js[:j] + d.js,
                                     old.interventions + [j], old.scores[:j] + d.scores)
        history.append((k_seed, current))
        bar.update(1)
    bar.close()
    return history
