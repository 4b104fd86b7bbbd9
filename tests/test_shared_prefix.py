"""Shared-prefix decoding: the tree of settings equals each setting decoded alone, bit for bit, and decodes less."""
# ruff: noqa: F811  (pytest fixtures imported from test_cross_sample are parameters here, by design)

import math
import shutil

import pytest
import torch
from oracle_decode import decode_batch, setting_decode, tree_decode
from test_cross_sample import MAX_NEW, QUESTIONS, build, crossed, pair, thresholds  # noqa: F401

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders.decoding.decoder import Member
from tokenshift.builders.engines import generate, models

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS = 14


@pytest.fixture(scope="module")
def loaded(pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, rls = pair
    tok = AutoTokenizer.from_pretrained(base)
    b, r = (AutoModelForCausalLM.from_pretrained(p).eval() for p in (base, rls[0]))
    prefixes = [tok(q, add_special_tokens=False)["input_ids"] for q in QUESTIONS for _ in range(3)]
    return b, r, tok, prefixes


def _alone(loaded, sampling, stop, member, criterion="js", mix=1.0, rates=None, selector_seed=None):
    b, r, tok, prefixes = loaded
    n = len(prefixes)
    selector = None if selector_seed is None else torch.Generator().manual_seed(selector_seed)
    return decode_batch(b, r, prefixes, [STEPS] * n, sampling, stop, tok.pad_token_id, len(tok),
                        torch.Generator().manual_seed(3), member.threshold, [member.cap] * n, criterion=criterion,
                        mix_weight=mix, rates=rates, selector=selector)


def _quantiles(loaded, sampling, stop, criterion):
    """Thresholds at the 50th and 80th percentile of the criterion over the driver-alone positions."""
    values = [v for d in _alone(loaded, sampling, stop, Member(0.0), criterion) for v in d.scores]
    return tuple(float(q) for q in torch.quantile(torch.tensor(values), torch.tensor([0.5, 0.8])))


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
@pytest.mark.parametrize("criterion, mix", [("js", 1.0), ("kl", 0.5), ("entropy", 1.0), ("top1_differs", 1.0)])
def test_tree_equals_every_setting_decoded_alone(loaded, temperature, top_p, criterion, mix):
    """Every field of every row (tokens, finish, js, interventions, scores) equals the per-setting decode's."""
    b, r, tok, prefixes = loaded
    sampling = generate.SamplingConfig(STEPS, temperature, top_p, 16)
    stop = set(range(2, 40))  # many stop tokens: branches end at different steps
    ths = (0.5,) if criterion == "top1_differs" else _quantiles(loaded, sampling, stop, criterion)
    members = [Member(0.0)] + [Member(cap, t) for t in ths for cap in (1.0, 2.0, 4.0, math.inf)]
    generator = torch.Generator().manual_seed(3)
    got = tree_decode(b, r, prefixes, STEPS, sampling, stop, tok.pad_token_id, len(tok), generator, members,
                        criterion, mix, state_of=0)
    counts = []
    for member, rows in zip(members, got, strict=True):
        assert rows == _alone(loaded, sampling, stop, member, criterion, mix)
        counts.append(sum(len(d.interventions) for d in rows))
    assert len(set(counts)) > 2  # the caps bind: the members did part
    # the generator is left where the driver alone (member 0) leaves it: the next batch draws the same numbers
    reference = torch.Generator().manual_seed(3)
    decode_batch(b, r, prefixes, [STEPS] * len(prefixes), sampling, stop, tok.pad_token_id, len(tok), reference)
    assert torch.equal(generator.get_state(), reference.get_state())
    assert temperature == 0 or not torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_tree_of_random_controls_equals_each_control_alone(loaded, temperature):
    b, r, tok, prefixes = loaded
    n = len(prefixes)
    sampling = generate.SamplingConfig(STEPS, temperature, 1.0, 16)
    stop = set(range(2, 40))
    rates = ([0.1] * n, [0.4 * (i % 3 > 0) for i in range(n)])  # one group with per-row rates, some 0
    members = [Member(cap, group=g) for g in (0, 1) for cap in (1.0, 3.0, math.inf)]
    got = tree_decode(b, r, prefixes, STEPS, sampling, stop, tok.pad_token_id, len(tok),
                        torch.Generator().manual_seed(3), members, "random", 1.0,
                        tuple(torch.Generator().manual_seed(100 + g) for g in (0, 1)), rates)
    for member, rows in zip(members, got, strict=True):
        assert rows == _alone(loaded, sampling, stop, member, "random", rates=rates[member.group],
                              selector_seed=100 + member.group)
    assert all(not d.interventions for i, d in enumerate(got[-1]) if i % 3 == 0)


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
@pytest.mark.parametrize("settings", [
    dict(criterion="delta_logp", threshold=-0.2, sign="le", cap=2.0, mix_space="log", mix_weight=1.5),
    dict(criterion="kl_reverse", threshold=0.05, cap=math.inf, mix_weight=0.3),
    dict(criterion="all", threshold=0.5, cap=math.inf, mix_space="log", mix_weight=0.0),
    dict(criterion="js", threshold=math.inf, cap=0.0, forced=True),  # the resample protocol's insertion
])
def test_one_setting_equals_the_oracle_with_row_limits_and_forced_tokens(loaded, temperature, top_p, settings):
    """One member with per-row limits (some 0) and, for resample, a forced first token: every field of every row,
    and the generator's state after, equal the per-setting oracle's."""
    b, r, tok, prefixes = loaded
    n = len(prefixes)
    sampling = generate.SamplingConfig(STEPS, temperature, top_p, 16)
    stop = set(range(2, 40))
    limits = [(STEPS - 3 * (i % 4)) if i % 5 else 0 for i in range(n)]
    settings = dict(settings)
    cap, forced = settings.pop("cap"), [settings.pop("forced", False)] * n
    want_gen, got_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    want = decode_batch(b, r, prefixes, limits, sampling, stop, tok.pad_token_id, len(tok), want_gen,
                        caps=[cap] * n, force_first=forced, **settings)
    got = setting_decode(b, r, prefixes, limits, sampling, stop, tok.pad_token_id, len(tok), got_gen,
                         caps=[cap] * n, force_first=forced, **settings)
    assert got == want
    assert torch.equal(got_gen.get_state(), want_gen.get_state())
    assert any(d.interventions for d in got) and not any(d.token_ids for d, limit in zip(got, limits) if not limit)


def _counting_forward_rows(monkeypatch) -> list[int]:
    """Rows of every one-token forward pass of the loaded models (a paired step runs two: both are counted)."""
    counted = []
    real = models.load_model

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[1] == 1:
            counted.append(ids.shape[0])

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    monkeypatch.setattr(models, "load_model", load)
    return counted


def _parts(out):
    return {p.name: p.read_bytes() for p in sorted((out / "cross_samples").glob("*.parquet"))}


CONFIGS = {
    "js tokens": dict(budgets=(0, 1, 2, 4, math.inf)),
    "js fraction": dict(budgets=(0, 0.1, 0.25, 0.5, math.inf), budget_unit="fraction"),
    "kl mix": dict(criterion="kl", thresholds=(0.01, 0.05), budgets=(0, 1, 3, math.inf), mix_weight=0.5),
    "top1_differs": dict(criterion="top1_differs", thresholds=None, budgets=(0, 1, 2, math.inf)),
    "delta_logp le log": dict(criterion="delta_logp", thresholds=(-0.05, 0.0), budgets=(0, 1, 3, math.inf),
                              mix_space="log", mix_weight=1.5),
    "delta_logp ge": dict(criterion="delta_logp", sign="ge", thresholds=(0.0, 0.05), budgets=(0, 2, math.inf)),
    "all log": dict(criterion="all", thresholds=None, budgets=(0, 1, 4, math.inf), mix_space="log",
                    mix_weight=1.1),
    "random rates": dict(criterion="random", thresholds=None, rate=(0.05, 0.2), control_seeds=2,
                         budgets=(0, 1, 2, math.inf)),
    "resample": dict(protocol="resample", thresholds=None, budgets=(0, 1, 2)),
}


@pytest.mark.parametrize("name, width", [(name, 8) for name in CONFIGS] + [("js tokens", 2), ("random rates", 3)])
def test_cross_samples_parts_are_byte_identical_to_the_per_setting_path(tmp_path, build, thresholds, monkeypatch,
                                                                         name, width):
    """run_cross_sample with the tree (--max-branches N) and setting by setting (--max-branches 1) writes the
    same parquet bytes; the tree computes fewer paired rows (counted at the models' forward passes) wherever
    settings share prefixes."""
    kw = dict(CONFIGS[name])
    if "thresholds" not in kw:
        kw["thresholds"] = thresholds
    counted = _counting_forward_rows(monkeypatch)
    rows = {}
    for branches in (1, width):
        out = tmp_path / str(branches) / "b"
        shutil.copytree(build, out)
        counted.clear()
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), max_branches=branches, **kw), progress=False)
        rows[branches] = sum(counted)
        assert _parts(out)
    assert _parts(tmp_path / str(width) / "b") == _parts(tmp_path / "1" / "b")
    if kw.get("protocol") == "resample":  # no settings to share: the same decodes
        assert rows[width] == rows[1]
    else:
        assert rows[width] < rows[1]


def test_matched_control_is_byte_identical_to_the_per_setting_path(tmp_path, crossed):
    """random --match js (matched rates, uncapped, equal-rate settings deduplicated) under both paths."""
    for branches in (1, 8):
        out = tmp_path / str(branches) / "b"
        shutil.copytree(crossed, out)
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), criterion="random", match="js", control_seeds=2,
                                                 max_branches=branches), progress=False)
    assert _parts(tmp_path / "8" / "b") == _parts(tmp_path / "1" / "b")


def test_max_branches_is_how_a_run_executes_not_what_it_writes(crossed, thresholds):
    """--max-branches keeps the run_id (resume with another value), shows in the command, and must be >= 1."""
    from click.testing import CliRunner

    from tokenshift.cli import cli

    config = cs.CrossSampleConfig(out=str(crossed), thresholds=thresholds)
    other = cs.CrossSampleConfig(out=str(crossed), thresholds=thresholds, max_branches=2)
    assert config.run_id() == other.run_id()
    assert "--max-branches 2" in other.command_line() and "--max-branches" not in config.command_line()
    result = CliRunner().invoke(cli, ["cross-sample", str(crossed), "--quiet", "--max-branches", "0"])
    assert result.exit_code == 2 and "--max-branches must be >= 1 (got 0)" in result.output, result.output


def test_tree_reaches_the_token_limit_and_stops_like_the_per_setting_decoder(loaded):
    """No stop token: every branch runs to the limit ('length'); limit 0 gives empty rows."""
    b, r, tok, prefixes = loaded
    sampling = generate.SamplingConfig(MAX_NEW, 1.0, 1.0, 16)
    members = [Member(1.0, 0.0), Member(math.inf, 0.0)]
    got = tree_decode(b, r, prefixes, MAX_NEW, sampling, set(), tok.pad_token_id, len(tok),
                        torch.Generator().manual_seed(4), members)
    assert all(len(d.token_ids) == MAX_NEW and d.finish_reason == "length" for rows in got for d in rows)
    assert all(d.interventions == list(range(MAX_NEW)) for d in got[1])
    assert tree_decode(b, r, prefixes, 0, sampling, set(), tok.pad_token_id, len(tok), None, members)[0][0] \
        .token_ids == []


def test_caches_without_plain_key_value_layers_decode_setting_by_setting(tmp_path, build, thresholds, monkeypatch):
    """A model whose cache rows cannot be copied (supports_forks False) decodes one setting per tree (no fork is
    ever needed): the same bytes as --max-branches 1, with fewer rows computed, because its budget 0 (a tree of the
    driver alone) is read from the build's answers while --max-branches 1 decodes every setting."""
    from tokenshift.builders.cross_sampling import protocols as cross_protocols

    counted = _counting_forward_rows(monkeypatch)
    rows = {}
    for name, branches, forks in (("plain", 1, True), ("no-forks", 8, False)):
        monkeypatch.setattr(cross_protocols, "supports_forks", lambda _model, ok=forks: ok)
        out = tmp_path / name / "b"
        shutil.copytree(build, out)
        counted.clear()
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), thresholds=thresholds, budgets=(0, 1, math.inf),
                                                 direction="forward", max_branches=branches), progress=False)
        rows[name] = sum(counted)
    assert _parts(tmp_path / "no-forks" / "b") == _parts(tmp_path / "plain" / "b")
    assert 0 < rows["no-forks"] < rows["plain"]
