"""The one decoding loop: two models in lockstep, one Exp(1) draw per step, settings decoded as a tree of shared prefixes.

A decode runs the driver and the other model side by side, each with its own KV cache (prefill
once, then one token per step, as `generate()` feeds a model). At every step `step` computes both
distributions over the full vocabulary, the criterion's score (decoding/criteria.py), the driver's
token under the step's Exp(1) draw (decoding/sampling.py) and, where a setting intervenes, the token
of the mixing rule (decoding/mixing.py) under the same draw. So where the two distributions agree the
tokens agree, and a setting differs from the driver alone only at its interventions.

Several settings (members: a cap, and a threshold or a random control's group) decode at once. They
draw the same random numbers, so they produce the same tokens until one takes another token; there
the trajectory forks. Each member's rows come out exactly as decoding that member alone does, bit for
bit, because every row is computed as it is there:

- a *wave* is a batch of the original n rows with its own two KV caches; row j of every wave holds a
  trajectory of prompt j (or nothing), so each forward pass has the batch size and the row position
  of a one-member decode (a row's logits depend on both, not on the other rows' content: on CPU they
  differ by up to 6e-6 between batch sizes, and are bit-identical across content at a fixed size and
  position);
- all waves move in lockstep and share one Exp(1) draw per step; a random control's selection draws
  come from its group's own generator, one per step;
- a fork copies row j of the KV caches into a wave whose row j is free (a new wave starts as a copy of
  the forking one), and the forked trajectory takes the intervention's token.

One member is the single-setting decode (it never forks, so any KV cache works). Budget 0 from the
build: given the driver's answers as the build sampled them (`known`), a row of the driver alone ends
as soon as nothing else shares its trunk and every token decoded so far is the build's; a decode of
the driver alone alone decodes nothing. Memory: at most one wave per member.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tokenshift.builders.decoding import criteria
from tokenshift.builders.decoding.mixing import intervention_token
from tokenshift.builders.decoding.sampling import (
    Stepper,
    exp_noise,
    left_pad,
    logits_width,
    sampling_probs,
    warpers,
)
from tokenshift.builders.engines.generate import SamplingConfig
from tokenshift.builders.engines.models import input_device
from tokenshift.builders.scoring.score import js_divergence
from tokenshift.runtime.meter import record_decoded


@dataclass(frozen=True)
class Pair:
    """The two models of a decode and how the driver samples: its stop tokens and pad, the vocabulary the criteria
    cover (the tokenizer's; a padded output layer's extra ids are left out)."""

    driver: object
    other: object
    sampling: SamplingConfig
    stop_ids: frozenset[int]
    pad_id: int
    vocab_size: int


@dataclass(frozen=True)
class Rule:
    """How a decode selects positions and what an intervention takes (criteria.py and mixing.py by name)."""

    criterion: str = "js"
    sign: str = "ge"  # threshold criteria select where score >= threshold ('ge') or <= threshold ('le')
    mix_weight: float = 1.0
    mix_space: str = "prob"


@dataclass(frozen=True)
class Member:
    """One setting of a decode: its cap, and its threshold (threshold criteria) or selection group (random)."""

    cap: float  # most interventions per answer (inf: no cap; 0: the driver alone)
    threshold: float = math.inf  # threshold criteria: select where the score >= (sign 'le': <=) threshold
    group: int | None = None  # random: index into the decode's selectors and rates


@dataclass(frozen=True)
class Known:
    """One answer the build sampled: its token ids (stop token included, as Decoded.token_ids) and finish."""

    token_ids: tuple[int, ...]
    finish_reason: str  # 'stop' or 'length'


@dataclass
class Decoded:
    """One decoded row: response tokens (stop token included) and what happened at each position."""

    token_ids: list[int]
    finish_reason: str  # 'stop' or 'length'
    # js and scores cover the positions decoded: a driver-alone row read from the build's answers
    # (`known`) has them only up to where its decoding stopped, or none
    js: list[float] = field(default_factory=list)  # JS(p_driver, p_other) per position, nats
    interventions: list[int] = field(default_factory=list)  # positions whose token came from `other` (or the mix)
    scores: list[float] = field(default_factory=list)  # the criterion's value per position (random: the draw)


@dataclass(eq=False)
class _Branch:
    """One trajectory of one prompt row: the members on it, its own steps, and the branch it forked from."""

    members: list[int]
    start: int = 0  # its first own step; the steps before are the parent's
    parent: _Branch | None = None
    tokens: list[int] = field(default_factory=list)
    js: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def path(self, attr: str, upto: int) -> list:
        """The values of steps 0..upto-1 along this branch (the parent's before `start`)."""
        own = getattr(self, attr)[:upto - self.start]
        return (self.parent.path(attr, self.start) if self.parent is not None else []) + own


class _Wave:
    """n rows and the two models' caches; row j holds a branch of prompt j or nothing."""

    def __init__(self, steppers: list, n: int):
        self.steppers = steppers
        self.slots: list[_Branch | None] = [None] * n
        self.logits: tuple[torch.Tensor, torch.Tensor] | None = None

    def clone(self) -> _Wave:
        """A wave with copies of this wave's caches (every row) that holds no branch yet."""
        steppers = []
        for stepper in self.steppers:
            twin = copy.copy(stepper)
            twin.cache = copy.deepcopy(stepper.cache)
            steppers.append(twin)
        return _Wave(steppers, len(self.slots))

    def copy_row(self, source: _Wave, j: int) -> None:
        """Row j of both models' caches from `source` (same length: the waves move in lockstep)."""
        for mine, theirs in zip(self.steppers, source.steppers, strict=True):
            for dst, src in zip(mine.cache.layers, theirs.cache.layers, strict=True):
                dst.keys[j] = src.keys[j]
                dst.values[j] = src.values[j]


class _Flight:
    """The rows in flight: the waves, each member's interventions so far, and where each member's rows ended."""

    def __init__(self, pair: Pair, rule: Rule, members: list[Member], n: int, forced: list[bool]):
        self.pair, self.rule, self.members = pair, rule, members
        self.warps, self.greedy = warpers(pair.sampling), pair.sampling.temperature == 0
        self.forced = forced
        self.waves: list[_Wave] = []
        self.n_int = [[0] * n for _ in members]
        self.taken: list[list[list[int]]] = [[[] for _ in range(n)] for _ in members]
        self.ended: list[list[tuple[_Branch, int] | None]] = [[None] * n for _ in members]
        self.reused: list[list[Known | None]] = [[None] * n for _ in members]  # rows ended with the build's answer
        self.thresholds = sorted({m.threshold for m in members if m.group is None and m.cap > 0})

    def chooses(self, p: int, j: int, step: int, by_threshold: dict, by_group: list) -> bool:
        """Whether member p intervenes at row j this step (and counts it): forced at step 0, else selected while
        its cap allows."""
        m = self.members[p]
        if not (self.forced[j] and step == 0):
            if self.n_int[p][j] >= m.cap:  # its budget is spent (the driver alone: cap 0)
                return False
            if not (by_threshold[m.threshold][j] if m.group is None else by_group[m.group][j]):
                return False
        self.n_int[p][j] += 1
        self.taken[p][j].append(step)
        return True


def step(flight: _Flight, wave: _Wave, index: int, by_group: list, noise: torch.Tensor | None, generator,
         forks: list) -> torch.Tensor | None:
    """One step of one wave: both distributions, the selection, the mix and the sample under the step's Exp(1)
    draw (made by the first wave, shared by the rest; returned); each branch gets its token, its members their
    interventions, and a branch whose members part ways asks for a fork (appended to `forks`)."""
    pair, rule = flight.pair, flight.rule
    logits_d, logits_o = wave.logits
    lp_d = torch.log_softmax(logits_d[:, :pair.vocab_size], -1)
    lp_o = torch.log_softmax(logits_o[:, :pair.vocab_size], -1)
    js = js_divergence(lp_d, lp_o)
    if flight.greedy:
        token_d = logits_d.argmax(-1)
    else:
        probs_d = sampling_probs(logits_d, pair.sampling, flight.warps)
        if noise is None:
            noise = exp_noise(probs_d, generator)
        token_d = (probs_d / noise).argmax(-1)
    score = criteria.score(rule.criterion, lp_d, lp_o, js, token_d) if rule.criterion != criteria.RANDOM else None
    by_threshold = {t: criteria.selects(score, t, rule.sign).tolist() for t in flight.thresholds}
    swaps = set()  # (row, member) where the member intervenes
    for j, branch in enumerate(wave.slots):
        if branch is not None:
            swaps.update((j, p) for p in branch.members if flight.chooses(p, j, index, by_threshold, by_group))
    d_list = token_d.tolist()
    o_list = d_list
    if swaps:
        o_list = intervention_token(logits_d, logits_o, rule.mix_weight, rule.mix_space, pair.sampling,
                                    flight.warps, flight.greedy, None if flight.greedy else noise).tolist()
    js_list = js.tolist()
    score_list = score.double().tolist() if score is not None else None
    for j, branch in enumerate(wave.slots):
        if branch is None:
            continue
        js_j, score_j = js_list[j], None if score_list is None else score_list[j]
        moving = [p for p in branch.members if (j, p) in swaps] if o_list[j] != d_list[j] else []
        if len(moving) == len(branch.members):  # every member takes the intervention's token: no fork
            token = o_list[j]
        else:
            token = d_list[j]
            if moving:
                branch.members = [p for p in branch.members if (j, p) not in swaps]
                forks.append((wave, j, _Branch(moving, index, branch, [o_list[j]], [js_j], [score_j])))
        branch.tokens.append(token)
        branch.js.append(js_j)
        branch.scores.append(score_j)
    return noise


@torch.inference_mode()
def decode(pair: Pair, rule: Rule, prefixes: list[list[int]], limits: list[int], generator: torch.Generator | None,
           members: list[Member], selectors: tuple = (), rates: tuple = (), force_first: list[bool] | None = None,
           state_of: int | None = None, known: Sequence[Known | None] | None = None) -> list[list[Decoded]]:
    """Per member, its rows aligned with prefixes, from the generator's current state.

    Row j stops at one of the driver's stop tokens or after limits[j] tokens. force_first[j]: row j's
    first token is the intervention's for every member, regardless of criterion and cap (the resample
    protocol's insertion). A random member (group g) selects where selectors[g]'s uniform draw (one per
    row and step) is below rates[g][j]. state_of = p: the generator is left where decoding member p alone
    leaves it (its last draw). known[j]: the driver's answer of row j as the build sampled it, or None:
    members with cap 0 are the driver alone; row j of the trunk they are on is checked against known[j]
    at every step, and once only they are left on it, it ends there with known[j]'s tokens (js and scores
    cover the decoded positions only). A row that differs decodes on: the caller compares. When every
    member has cap 0 and every row is known, nothing is decoded: the generator makes the draws the driver
    alone would.
    """
    started = time.perf_counter()
    device = input_device(pair.driver)
    n = len(prefixes)
    if not n or max(limits) <= 0:
        return [[Decoded([], "length") for _ in prefixes] for _ in members]
    forced = list(force_first) if force_first is not None else [False] * n
    flight = _Flight(pair, rule, members, n, forced)
    alone = {p for p, m in enumerate(members) if m.cap == 0} if not any(forced) else set()
    replay = [k if alone and k is not None and _replayable(k, pair.stop_ids, limit) else None
              for k, limit in zip(known if known is not None else [None] * n, limits, strict=True)]
    if len(alone) == len(members) and all(k is not None for k in replay):
        if not flight.greedy:  # the driver alone's one Exp(1) draw per step until its longest row ends
            probs = torch.empty((n, logits_width(pair.driver)), dtype=torch.float32, device=device)
            for _ in range(max(len(k.token_ids) for k in replay)):
                exp_noise(probs, generator)
        return [[Decoded(list(k.token_ids), k.finish_reason) for k in replay] for _ in members]
    ids, mask = left_pad(prefixes, pair.pad_id, device)
    root = _Wave([Stepper(pair.driver, device), Stepper(pair.other, device)], n)
    root.logits = tuple(s(ids, mask) for s in root.steppers)
    root.slots = [_Branch(list(range(len(members)))) if limit > 0 else None for limit in limits]
    flight.waves = [root]
    rate_t = [torch.tensor(r, dtype=torch.float64, device=device) for r in rates]
    draws: list[list[list[float]]] = [[] for _ in selectors]  # per group and step: the selection draws
    decoded, state, steps, noise = 0, None, 0, None
    for index in range(max(limits)):
        by_group = []
        for g, selector in enumerate(selectors):
            draw = torch.rand(n, generator=selector, dtype=torch.float64, device=device)
            draws[g].append(draw.tolist())
            by_group.append((draw < rate_t[g]).tolist())
        noise, forks = None, []
        for wave in flight.waves:
            noise = step(flight, wave, index, by_group, noise, generator, forks)
        for wave, j, branch in forks:  # each takes row j of a wave where that row is free
            target = next((w for w in flight.waves if w.slots[j] is None), None)
            if target is None:
                target = wave.clone()
                flight.waves.append(target)
            else:
                target.copy_row(wave, j)
            target.slots[j] = branch
        decoded += sum(b is not None for w in flight.waves for b in w.slots)
        mask = torch.cat([mask, mask.new_ones((n, 1))], dim=-1)
        for wave in list(flight.waves):
            tokens = [pair.pad_id] * n
            for j, branch in enumerate(wave.slots):
                if branch is None:
                    continue
                tokens[j] = branch.tokens[-1]
                k = replay[j] if branch.parent is None else None  # the trunk: the driver alone's path
                if k is not None and (index >= len(k.token_ids) or k.token_ids[index] != tokens[j]):
                    replay[j] = k = None  # not the build's answer: decode it
                if tokens[j] in pair.stop_ids or index + 1 >= limits[j]:
                    for p in branch.members:
                        flight.ended[p][j] = (branch, index)
                    wave.slots[j] = None
                elif k is not None and all(p in alone for p in branch.members):
                    for p in branch.members:
                        flight.ended[p][j] = (branch, index)
                        flight.reused[p][j] = k
                    wave.slots[j] = None
            if all(b is None for b in wave.slots):
                flight.waves.remove(wave)
                continue
            token = torch.tensor(tokens, dtype=torch.long, device=device)
            wave.logits = tuple(s(token[:, None], mask) for s in wave.steppers)
        steps = index + 1
        if state_of is not None and state is None and all(
                e is not None or limit <= 0 for e, limit in zip(flight.ended[state_of], limits, strict=True)) \
                and steps >= _alone_steps(flight.ended[state_of], flight.reused[state_of]):
            state = generator.get_state() if generator is not None else None  # member p alone stops here
        if not flight.waves:
            break
    if state_of is not None and state is None and generator is not None:  # rows read from the build end later
        for _ in range(steps, _alone_steps(flight.ended[state_of], flight.reused[state_of])
                       if not flight.greedy else 0):
            exp_noise(noise, generator)  # the shape, dtype and device of every step's draw
        state = generator.get_state()
    if state is not None:
        generator.set_state(state)
    record_decoded(decoded, time.perf_counter() - started)
    return [_member_rows(flight, p, draws, pair.stop_ids, n) for p in range(len(members))]


def _member_rows(flight: _Flight, p: int, draws: list, stop_ids, n: int) -> list[Decoded]:
    member, rows = flight.members[p], []
    for j in range(n):
        if flight.ended[p][j] is None:  # a row with limit 0
            rows.append(Decoded([], "length"))
            continue
        branch, last = flight.ended[p][j]
        tokens = branch.path("tokens", last + 1)
        if flight.reused[p][j] is not None:
            tokens = list(flight.reused[p][j].token_ids)
        scores = ([draws[member.group][t][j] for t in range(last + 1)] if member.group is not None
                  else branch.path("scores", last + 1))
        rows.append(Decoded(tokens, "stop" if tokens[-1] in stop_ids else "length",
                            branch.path("js", last + 1), flight.taken[p][j], scores))
    return rows


def _replayable(known: Known, stop_ids, limit: int) -> bool:
    """Whether the decoder could end a row this way: ended by its only stop token (its last) or at the limit,
    with the finish reason the decoder gives it."""
    tokens = known.token_ids
    if not tokens or len(tokens) > limit or any(t in stop_ids for t in tokens[:-1]):
        return False
    reason = "stop" if tokens[-1] in stop_ids else "length"
    return known.finish_reason == reason and (reason == "stop" or len(tokens) == limit)


def _alone_steps(ended: list, reused: list) -> int:
    """Steps (and Exp(1) draws) the driver alone makes: until its longest row ends (a row read from the
    build ends at its own length; a row with limit 0 makes none)."""
    return max(len(k.token_ids) if k is not None else (e[1] + 1 if e is not None else 0)
               for e, k in zip(ended, reused))
