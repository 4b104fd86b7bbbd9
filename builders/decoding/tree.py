"""Decode many cross-sampling settings of one batch as a tree: each shared prefix once, a fork where they part.

Settings that differ only in threshold, budget (cap) or random rate draw the same random numbers
(paired_decode's common random numbers), so they produce the same tokens until one of them takes
another token; there the trajectory forks. Each setting's rows come out exactly as `decode_batch`
decodes that setting alone, bit for bit, because every row is computed as it is there:

- a *wave* is a batch of the original n rows with its own two KV caches; row j of every wave holds
  a trajectory of prompt j (or nothing), so each forward pass has the batch size and the row
  position the per-setting decode has (a row's logits depend on both, not on the other rows'
  content: on CPU they differ by up to 6e-6 between batch sizes, and are bit-identical across
  content at a fixed size and position);
- all waves move in lockstep and share one Exp(1) draw per step, the draw the per-setting decode
  makes at that step; a random control's selection draws come from its group's own generator,
  one per step, as there;
- a fork copies row j of the KV caches into a wave whose row j is free (a new wave starts as a
  copy of the forking one), and the forked trajectory takes the other model's token.

Budget 0 from the build: given the driver's answers as the build sampled them (`known`), a row of
the driver alone ends as soon as nothing else shares its trunk and every token decoded so far is
the build's; a tree of the driver alone decodes nothing (cross_protocols, build_answers).

Memory: at most one wave per member (the caller bounds the members of one tree).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tokenshift.builders.decoding.paired import (
    Decoded,
    _left_pad,
    _other_token,
    _Stepper,
    exp_noise,
    sampling_probs,
    selection_score,
    selects,
    warpers,
)
from tokenshift.builders.engines.generate import SamplingConfig
from tokenshift.builders.engines.models import input_device
from tokenshift.builders.scoring.score import js_divergence
from tokenshift.runtime.meter import record_decoded


@dataclass(frozen=True)
class Known:
    """One answer the build sampled: its token ids (stop token included, as Decoded.token_ids) and finish."""

    token_ids: tuple[int, ...]
    finish_reason: str  # 'stop' or 'length'


@dataclass(frozen=True)
class Member:
    """One setting of a tree: its cap, and its threshold (threshold criteria) or selection group (random)."""

    cap: float  # most interventions per answer (inf: no cap)
    threshold: float = math.inf  # threshold criteria: select where the criterion's score >= (sign 'le': <=) threshold
    group: int | None = None  # random: index into the tree's selectors and rates


@dataclass(eq=False)
class _Branch:
    """One trajectory of one prompt row: the members on it, its own steps, and the branch it forked from."""

    members: list[int]
    start: int = 0  # its first own step; the steps before are the parent's
    parent: "_Branch | None" = None
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

    def clone(self) -> "_Wave":
        """A wave with copies of this wave's caches (every row) that holds no branch yet."""
        steppers = []
        for stepper in self.steppers:
            twin = copy.copy(stepper)
            twin.cache = copy.deepcopy(stepper.cache)
            steppers.append(twin)
        return _Wave(steppers, len(self.slots))

    def copy_row(self, source: "_Wave", j: int) -> None:
        """Row j of both models' caches from `source` (same length: the waves move in lockstep)."""
        for mine, theirs in zip(self.steppers, source.steppers, strict=True):
            for dst, src in zip(mine.cache.layers, theirs.cache.layers, strict=True):
                dst.keys[j] = src.keys[j]
                dst.values[j] = src.values[j]


def supports_forks(model) -> bool:
    """Whether the model's KV cache holds only plain key/value layers, whose rows `_Wave.copy_row` copies
    (other layers, e.g. linear-attention states: the per-setting decode instead)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer)
               for layer in DynamicCache(config=model.config).layers)


@torch.inference_mode()
def decode_shared(driver, other, prefixes: list[list[int]], limit: int, sampling: SamplingConfig,
                  stop_ids: set[int], pad_id: int, vocab_size: int, generator: torch.Generator | None,
                  members: list[Member], criterion: str = "js", mix_weight: float = 1.0,
                  selectors: tuple = (), rates: tuple = (), state_of: int | None = None,
                  known: Sequence[Known | None] | None = None, sign: str = "ge",
                  mix_space: str = "prob") -> list[list[Decoded]]:
    """Per member, its rows aligned with prefixes: bit-identical to `decode_batch` of that member alone
    (threshold, caps [cap] * n, sign, mix, and for random its group's rates and selector) from the same
    generator state.

    state_of = p: the generator is left where `decode_batch` of member p alone leaves it (its last draw).
    known[j]: the driver's answer of row j as the build sampled it (build_answers), or None. Members
    with cap 0 are the driver alone; row j of the trunk they are on is checked against known[j] at
    every step, and once only they are left on it, it ends there with known[j]'s tokens (js and
    scores cover the decoded positions only). A row that differs decodes on: the caller compares.
    When every member has cap 0 and every row is known, nothing is decoded: the generator makes the
    draws the driver alone would.
    """
    started = time.perf_counter()
    device = input_device(driver)
    n = len(prefixes)
    if limit <= 0 or not n:
        return [[Decoded([], "length") for _ in prefixes] for _ in members]
    warps, greedy = warpers(sampling), sampling.temperature == 0
    alone = {p for p, m in enumerate(members) if m.cap == 0}
    replay = [k if alone and k is not None and _replayable(k, stop_ids, limit) else None
              for k in (known if known is not None else [None] * n)]
    if len(alone) == len(members) and all(k is not None for k in replay):
        if not greedy:  # the driver alone's one Exp(1) draw per step until its longest row ends
            probs = torch.empty((n, _logits_width(driver)), dtype=torch.float32, device=device)  # as sampling_probs
            for _ in range(max(len(k.token_ids) for k in replay)):
                exp_noise(probs, generator)
        return [[Decoded(list(k.token_ids), k.finish_reason) for k in replay] for _ in members]
    ids, mask = _left_pad(prefixes, pad_id, device)
    root = _Wave([_Stepper(driver, device), _Stepper(other, device)], n)
    root.logits = tuple(s(ids, mask) for s in root.steppers)
    root.slots = [_Branch(list(range(len(members)))) for _ in range(n)]
    waves = [root]
    n_int = [[0] * n for _ in members]
    taken = [[[] for _ in range(n)] for _ in members]
    ended: list[list[tuple[_Branch, int] | None]] = [[None] * n for _ in members]
    thresholds = sorted({m.threshold for m in members if m.group is None and m.cap > 0})
    rate_t = [torch.tensor(r, dtype=torch.float64, device=device) for r in rates]
    draws: list[list[list[float]]] = [[] for _ in selectors]  # per group and step: the selection draws
    reused: list[list[Known | None]] = [[None] * n for _ in members]  # rows ended with the build's answer
    decoded, state, steps = 0, None, 0
    for step in range(limit):
        chosen_by_group = []
        for g, selector in enumerate(selectors):
            draw = torch.rand(n, generator=selector, dtype=torch.float64, device=device)
            draws[g].append(draw.tolist())
            chosen_by_group.append((draw < rate_t[g]).tolist())
        noise, forks = None, []
        for wave in waves:
            noise = _step_wave(wave, step, members, n_int, taken, thresholds, chosen_by_group, forks, criterion,
                               sampling, warps, greedy, generator, noise, (mix_weight, mix_space), vocab_size, sign)
        for wave, j, branch in forks:  # each takes row j of a wave where that row is free
            target = next((w for w in waves if w.slots[j] is None), None)
            if target is None:
                target = wave.clone()
                waves.append(target)
            else:
                target.copy_row(wave, j)
            target.slots[j] = branch
        decoded += sum(b is not None for w in waves for b in w.slots)
        mask = torch.cat([mask, mask.new_ones((n, 1))], dim=-1)
        for wave in list(waves):
            tokens = [pad_id] * n
            for j, branch in enumerate(wave.slots):
                if branch is None:
                    continue
                tokens[j] = branch.tokens[-1]
                k = replay[j] if branch.parent is None else None  # the trunk: the driver alone's path
                if k is not None and (step >= len(k.token_ids) or k.token_ids[step] != tokens[j]):
                    replay[j] = k = None  # not the build's answer: decode it
                if tokens[j] in stop_ids or step + 1 >= limit:
                    for p in branch.members:
                        ended[p][j] = (branch, step)
                    wave.slots[j] = None
                elif k is not None and all(p in alone for p in branch.members):
                    for p in branch.members:
                        ended[p][j] = (branch, step)
                        reused[p][j] = k
                    wave.slots[j] = None
            if all(b is None for b in wave.slots):
                waves.remove(wave)
                continue
            token = torch.tensor(tokens, dtype=torch.long, device=device)
            wave.logits = tuple(s(token[:, None], mask) for s in wave.steppers)
        steps = step + 1
        if state_of is not None and state is None and all(e is not None for e in ended[state_of]) \
                and steps >= _alone_steps(ended[state_of], reused[state_of]):
            state = generator.get_state() if generator is not None else None  # member p alone stops here
        if not waves:
            break
    if state_of is not None and state is None and generator is not None:  # rows read from the build end later
        for _ in range(steps, _alone_steps(ended[state_of], reused[state_of]) if not greedy else 0):
            exp_noise(noise, generator)  # the shape, dtype and device of every step's draw
        state = generator.get_state()
    if state is not None:
        generator.set_state(state)
    record_decoded(decoded, time.perf_counter() - started)
    out = []
    for p, member in enumerate(members):
        rows = []
        for j in range(n):
            branch, last = ended[p][j]
            tokens = branch.path("tokens", last + 1)
            if reused[p][j] is not None:
                tokens = list(reused[p][j].token_ids)
            scores = ([draws[member.group][t][j] for t in range(last + 1)] if member.group is not None
                      else branch.path("scores", last + 1))
            rows.append(Decoded(tokens, "stop" if tokens[-1] in stop_ids else "length",
                                branch.path("js", last + 1), taken[p][j], scores))
        out.append(rows)
    return out


def _replayable(known: Known, stop_ids: set[int], limit: int) -> bool:
    """Whether the decoder could end a row this way: ended by its only stop token (its last) or at the limit,
    with the finish reason the decoder gives it."""
    tokens = known.token_ids
    if not tokens or len(tokens) > limit or any(t in stop_ids for t in tokens[:-1]):
        return False
    reason = "stop" if tokens[-1] in stop_ids else "length"
    return known.finish_reason == reason and (reason == "stop" or len(tokens) == limit)


def _alone_steps(ended: list, reused: list) -> int:
    """Steps (and Exp(1) draws) the driver alone makes: until its longest row ends (a row read from the
    build ends at its own length)."""
    return max(len(k.token_ids) if k is not None else last + 1 for (_branch, last), k in zip(ended, reused))


def _logits_width(model) -> int:
    """Width of the model's next-token logits: its output layer's rows (what exp_noise's draw is shaped by)."""
    head = model.get_output_embeddings()
    return head.weight.shape[0] if head is not None else model.config.vocab_size


def _step_wave(wave: _Wave, step: int, members: list[Member], n_int, taken, thresholds, chosen_by_group, forks,
               criterion, sampling, warps, greedy, generator, noise, mix, vocab_size, sign):
    """One step of one wave: each branch's token, its members' interventions, and the forks it asks for.

    The tensors are the ones `decode_batch` computes at this step; returns the step's Exp(1) draw.
    mix: (mix weight, mix space).
    """
    logits_d, logits_o = wave.logits
    lp_d, lp_o = torch.log_softmax(logits_d[:, :vocab_size], -1), torch.log_softmax(logits_o[:, :vocab_size], -1)
    js = js_divergence(lp_d, lp_o)
    if greedy:
        token_d = logits_d.argmax(-1)
    else:
        probs_d = sampling_probs(logits_d, sampling, warps)
        if noise is None:
            noise = exp_noise(probs_d, generator)
        token_d = (probs_d / noise).argmax(-1)
    score = selection_score(criterion, lp_d, lp_o, js, token_d) if criterion != "random" else None
    chosen_by_threshold = {t: selects(score, t, sign).tolist() for t in thresholds}
    swaps = {}  # (slot, member) -> True where the member intervenes
    for j, branch in enumerate(wave.slots):
        if branch is None:
            continue
        for p in branch.members:
            m = members[p]
            if n_int[p][j] >= m.cap:  # its budget is spent (the driver alone: cap 0)
                continue
            chosen = chosen_by_threshold[m.threshold][j] if m.group is None else chosen_by_group[m.group][j]
            if chosen:
                swaps[(j, p)] = True
                n_int[p][j] += 1
                taken[p][j].append(step)
    d_list = token_d.tolist()
    o_list = d_list
    if swaps:
        o_list = _other_token(logits_d, logits_o, sampling, warps, greedy, None if greedy else noise,
                              *mix).tolist()
    js_list = js.tolist()
    score_list = score.double().tolist() if score is not None else None
    for j, branch in enumerate(wave.slots):
        if branch is None:
            continue
        js_j, score_j = js_list[j], None if score_list is None else score_list[j]
        moving = [p for p in branch.members if (j, p) in swaps] if o_list[j] != d_list[j] else []
        if len(moving) == len(branch.members):  # every member takes the other model's token: no fork
            token = o_list[j]
        else:
            token = d_list[j]
            if moving:
                branch.members = [p for p in branch.members if (j, p) not in swaps]
                fork = _Branch(moving, step, branch, [o_list[j]], [js_j], [score_j])
                forks.append((wave, j, fork))
        branch.tokens.append(token)
        branch.js.append(js_j)
        branch.scores.append(score_j)
    return noise
