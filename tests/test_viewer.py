"""Token viewer: answer selection, safe embedding, CLI errors, and the pages driven in a real headless Chromium."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import zlib
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from synthetic_tables import RL_MODELS, make_tables, write_build, write_manifest

from tokenshift.cli import cli
from tokenshift.queries import write_report
from tokenshift.queries.run import connect
from tokenshift.queries.viewer import (
    DIVERGENT_JS,
    REPORT_TOP,
    Pick,
    page_file,
    script_json,
    select_answers,
    write_viewer,
)
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.tables import to_arrow, write_parquet

# Set both to screenshot the hover test on another dataset (docs/viewer.png: the embedded pair, see docs/guide.md).
DATA_ENV, SHOT_ENV = "TOKENSHIFT_VIEWER_DATA", "TOKENSHIFT_VIEWER_SCREENSHOT"
EVIL_TOKEN = "</script><script>alert('token')</script>"
EVIL_TEXT = "Is <img src=x onerror=\"window.__pwned=1\"> & \"double\" 'single' &amp; \u2028 < > </script>?"
EVIL_ID = "base/<b id=\"x\">evil</b>'/0"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("viewer") / "build", seed=5)


@pytest.fixture(scope="module")
def tokens(build):
    frame = pq.read_table(build / "tokens").to_pandas()
    return frame.assign(over=frame.js.astype("float64") >= DIVERGENT_JS)


@pytest.fixture(scope="module")
def viewer(build, tmp_path_factory) -> Path:
    return write_viewer(build, tmp_path_factory.mktemp("view") / "v", top=2)


@pytest.fixture(scope="module")
def shown_source(build, viewer, tmp_path_factory) -> tuple[Path, Path]:
    """(source, viewer index) for the hover test: the synthetic build, or $TOKENSHIFT_VIEWER_DATA."""
    if not os.environ.get(DATA_ENV):
        return build, viewer
    data = Path(os.environ[DATA_ENV])
    return data, write_viewer(data, tmp_path_factory.mktemp("env") / "v", top=2)


def _expected_picks(tokens, top: int) -> list[tuple[str, str]]:
    stats = (tokens.groupby(["generation_id", "rl_model"])
             .agg(sampler=("sampler", "first"), n_over=("over", "sum"), max_js=("js", "max")).reset_index())
    stats = stats.sort_values(["sampler", "n_over", "max_js", "generation_id", "rl_model"],
                              ascending=[True, False, False, True, True])
    chosen = stats.groupby("sampler").head(top)
    return list(zip(chosen.generation_id, chosen.rl_model, strict=True))


def test_default_selection_is_the_most_divergent_per_sampler(build, tokens):
    con, _ = connect(build)
    try:
        picks = select_answers(con, (), 2)
        only = select_answers(con, (), 1, rl_model="rl-step100")
    finally:
        con.close()
    assert [(p.generation_id, p.rl_model) for p in picks] == _expected_picks(tokens, 2)
    assert len(picks) == 2 * 3  # base, rl-step100, rl-step200
    for p in picks:
        rows = tokens[(tokens.generation_id == p.generation_id) & (tokens.rl_model == p.rl_model)]
        assert (p.n_tokens, p.n_over) == (len(rows), int(rows.over.sum()))
        assert p.max_js == pytest.approx(float(rows.js.max()))
    assert {p.rl_model for p in only} == {"rl-step100"} and {p.sampler for p in only} == {"base", "rl-step100"}


def test_token_frames_are_each_answers_rows_wherever_they_lie(build, tokens):
    """Each page's rows are read by file and row numbers: they equal the answer's rows of the table, in position
    order, for every answer and RL model of a two-part build (both parts), and an answer without rows gets none."""
    from tokenshift.queries.viewer import _token_frames

    assert len(list((build / "tokens").glob("*.parquet"))) == 2
    every = tokens[["generation_id", "rl_model"]].drop_duplicates()
    picks = [Pick(g, m, "base", 0, 0, 0.0, 0.0) for g, m in zip(every.generation_id, every.rl_model, strict=True)]
    picks.append(Pick("base/no-such-answer/0", "rl-step100", "base", 0, 0, 0.0, 0.0))
    con, src = connect(build)
    try:
        frames = _token_frames(con, src, picks)
    finally:
        con.close()
    assert len(frames) == len(picks)
    for pick in picks[:-1]:
        got = frames[(pick.generation_id, pick.rl_model)].to_pandas()
        want = tokens[(tokens.generation_id == pick.generation_id) & (tokens.rl_model == pick.rl_model)]
        want = want.sort_values("position")[got.columns].reset_index(drop=True)
        assert len(got) == len(want) > 0
        for column in ("position", "token_id", "js", "entropy_base", "token"):
            assert got[column].tolist() == want[column].tolist(), column
        assert [list(x) for x in got.topk_rl_ids] == [list(x) for x in want.topk_rl_ids]
    assert frames[("base/no-such-answer/0", "rl-step100")].num_rows == 0

def test_given_generation_gets_a_page_per_rl_model(build, tmp_path):
    con, _ = connect(build)
    try:
        picks = select_answers(con, ("base/bench-a-01/1",))
        with pytest.raises(TokenshiftError, match="--generation 'nope' has no tokens"):
            select_answers(con, ("nope",))
        with pytest.raises(TokenshiftError, match="RL models: rl-step100, rl-step200"):
            select_answers(con, (), 1, rl_model="rl-step999")
    finally:
        con.close()
    assert [p.rl_model for p in picks] == ["rl-step100", "rl-step200"]
    index = write_viewer(build, tmp_path / "v", ("base/bench-a-01/1",), rl_model="rl-step200")
    assert sorted(p.name for p in index.parent.iterdir()) == sorted(
        ["index.html", page_file(Pick("base/bench-a-01/1", "rl-step200", "base", 0, 0, 0.0, 0.0))])


def test_script_json_escapes_what_could_end_the_script():
    payload = {"t": [EVIL_TOKEN, EVIL_TEXT, "\u2029", "\ud800 lone surrogate"]}
    text = script_json(payload)
    assert not re.search("[<>&\u2028\u2029\ud800-\udfff]", text)
    assert json.loads(text) == payload


def test_page_file_names_are_safe_and_distinct():
    a, b = (page_file(Pick(g, "rl", "base", 1, 0, 0.0, 0.0)) for g in ("base/p-1/0", "base_p-1_0"))
    assert a != b and re.fullmatch(r"[A-Za-z0-9._-]+\.html", a) and re.fullmatch(r"[A-Za-z0-9._-]+\.html", b)


def test_cli_view_errors_are_one_line_and_touch_nothing(build, tmp_path):
    runner = CliRunner()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    cases = [(["--out", str(foreign)], "holds no previous viewer output"),
             (["--out", str(tmp_path / "a"), "--generation", "nope"], "has no tokens"),
             (["--out", str(tmp_path / "b"), "--rl-model", "x"], "is not in the tokens table"),
             (["--out", str(tmp_path / "c"), "--top", "0"], "--top must be >= 1"),
             (["--out", str(tmp_path / "d"), "--top", "2", "--generation", "base/bench-a-01/1"], "one or the other")]
    for args, message in cases:
        result = runner.invoke(cli, ["view", "--data", str(build)] + args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    result = runner.invoke(cli, ["view", "--data", str(build), "--out", str(tmp_path / "ok"), "--top", "1"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "ok").glob("*.html"))) == 1 + 3
    result = runner.invoke(cli, ["view", "--data", str(build), "--out", str(tmp_path / "ok"),
                                 "--generation", "base/bench-a-01/1", "--rl-model", "rl-step100"])
    assert result.exit_code == 0 and len(list((tmp_path / "ok").glob("*.html"))) == 2  # old pages replaced


def test_failed_rerun_keeps_the_previous_pages(build, tmp_path, monkeypatch):
    import tokenshift.queries.viewer as viewer_module

    index = write_viewer(build, tmp_path / "v", top=1)
    before = {p.name: p.read_bytes() for p in index.parent.iterdir()}
    calls = []

    def fails_on_second_page(payload):
        calls.append(payload)
        if len(calls) == 2:
            raise TokenshiftError("page cannot be drawn")
        return "<p>new</p>"

    monkeypatch.setattr(viewer_module, "render_page", fails_on_second_page)
    with pytest.raises(TokenshiftError, match="cannot be drawn"):
        write_viewer(build, tmp_path / "v", top=2)
    assert {p.name: p.read_bytes() for p in index.parent.iterdir()} == before


def _payload(page: Path) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>',
                                page.read_text(encoding="utf-8"), re.S).group(1))


def test_unsampled_candidates_are_named_by_the_builds_tokenizer(tmp_path):
    from tiny_pair import make_tokenizer

    from tokenshift.builders.engines.models import tokenizer_sha256
    from tokenshift.schemas.manifest import table_entries

    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(tmp_path / "base")
    tables = make_tables(seed=2, n_per_benchmark=1, n_samples=2, with_cross=False)
    gen = "rl-step100/bench-a-00/1"
    rows = [r for r in tables["tokens"] if r["generation_id"] == gen]
    rows[0]["topk_base_ids"][-1] = 250  # a candidate no answer sampled (the synthetic vocabulary has 40 ids)
    rows[0]["topk_rl_ids"][-1] = 251
    for name, table_rows in tables.items():
        write_parquet(to_arrow(name, table_rows), tmp_path / "b" / name / "part-00000.parquet")
    manifest = {"models": {"base": {"name": "base", "source": str(tmp_path / "base"), "revision": None}},
                "tokenizer": {"sha256": tokenizer_sha256(tokenizer), "vocab_size": len(tokenizer)},
                "tables": table_entries(tmp_path / "b")}  # readers read the parts the manifest lists
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))

    def names() -> dict[int, str | None]:
        index = write_viewer(tmp_path / "b", tmp_path / "v", (gen,))
        payload = _payload(next(p for p in index.parent.glob("*.html") if p.name != "index.html"))
        ids = np.frombuffer(zlib.decompress(base64.b64decode(payload["blob"])), np.uint8)
        _, _, offset, size = next(entry for entry in payload["layout"] if entry[0] == "vocab_ids")
        vocab = ids[offset:offset + size].reshape(4, -1).T.copy().view("<u4").ravel()
        return dict(zip(vocab.tolist(), payload["vocab_text"], strict=True))

    shown = names()
    assert shown[250] == tokenizer.decode([250]) and shown[251] == tokenizer.decode([251]) and shown[250]
    sampled = {r["token_id"]: r["token"] for r in tables["tokens"]}
    assert all(shown[i] == t for i, t in sampled.items() if i in shown)  # the dataset's own text wins
    manifest["tokenizer"]["sha256"] = "0" * 64  # another tokenizer than the build's: never trusted
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    assert names()[250] is None


def test_report_links_viewer_pages_of_its_most_divergent_answers(build, tokens, tmp_path):
    index = write_report(build, tmp_path / "r")
    text = index.read_text(encoding="utf-8")
    links = re.findall(r"\]\((viewer/[^)]+\.html)\)", text)
    assert links[0] == "viewer/index.html"
    expected = [page_file(Pick(g, m, "", 0, 0, 0.0, 0.0)) for g, m in _expected_picks(tokens, REPORT_TOP)]
    assert [link.removeprefix("viewer/") for link in links[1:]] == expected
    assert all((tmp_path / "r" / link).is_file() for link in links)


def test_pages_are_self_contained(viewer):
    for page in viewer.parent.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html), page.name
        assert "Content-Security-Policy" in html and "default-src 'none'" in html


# ---- in a real browser -------------------------------------------------------------------------------------------

def _chromium() -> str | None:
    for candidate in (os.environ.get("TOKENSHIFT_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[test]'")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install -y chromium (or set TOKENSHIFT_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.errors, tab.dialogs, tab.requests = [], [], []
    tab.on("pageerror", lambda err: tab.errors.append(str(err)))
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("request", lambda request: tab.requests.append(request.url))
    yield tab
    assert tab.errors == [] and tab.dialogs == []
    assert all(url.startswith("file://") for url in tab.requests), tab.requests
    context.close()


def _open(page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")


def _first_page(viewer: Path) -> tuple[Path, str]:
    """The index's first page and its generation id."""
    html = viewer.read_text(encoding="utf-8")
    file, gen = re.search(r'<a href="([^"]+)">([^<]+)</a>', html).groups()
    return viewer.parent / file, gen


def _shown(text: str, value: float) -> bool:
    """True when `text` is `value` rounded to 4 significant digits (as the page shows numbers)."""
    if value == 0:
        return text == "0"
    step = 10 ** (math.floor(math.log10(abs(value))) - 3)
    return abs(float(text) - value) <= 0.5 * step * (1 + 1e-9) and len(re.sub(r"e.*|[^0-9]", "", text).lstrip("0")) <= 4


def _rows_of(viewer_source, page_path: Path):
    meta = _payload(page_path)["answer"]
    table = pq.read_table(Path(viewer_source) / "tokens").to_pandas()
    mine = table[(table.generation_id == meta["generation_id"]) & (table.rl_model == meta["rl_model"])]
    return mine.sort_values("position").reset_index(drop=True), table.groupby("token_id").token.first()


def _unsampled_namer(source: Path):
    """How a page names a candidate id no answer sampled: the build's tokenizer's decoding if it is here, else #id."""
    try:
        from transformers import AutoTokenizer

        from tokenshift.schemas.manifest import model_location

        base = json.loads((source / "manifest.json").read_text())["models"]["base"]
        tokenizer = AutoTokenizer.from_pretrained(model_location(base["source"]), local_files_only=True)
        return lambda tid: tokenizer.decode([tid])
    except (OSError, KeyError, ValueError):
        return lambda tid: f"#{tid}"


def test_hover_shows_exactly_the_tokens_rows_values(page, shown_source):
    source, viewer = shown_source
    path, gen = _first_page(viewer)
    rows, texts = _rows_of(source, path)
    _open(page, path)
    assert page.text_content("#title").startswith(gen)
    unsampled = _unsampled_namer(Path(source))
    for i in sorted({0, int(rows.js.idxmax()), len(rows) - 1}):
        row = rows.iloc[i]
        page.hover(f"#t{i}")
        tip = page.locator("#tip")
        assert tip.is_visible() and tip.get_attribute("data-position") == str(i)
        field = lambda name, tip=tip: tip.locator(f"[data-f={name}]").text_content()  # noqa: E731
        assert field("token") == row.token and field("token_id") == str(row.token_id)
        for name in ("js", "kl_base_rl", "kl_rl_base", "entropy_base", "entropy_rl", "logp_base", "logp_rl"):
            assert _shown(field(name), float(row[name])), (name, field(name), row[name])
        assert _shown(field("p_base"), math.exp(float(row.logp_base)))
        assert _shown(field("p_rl"), math.exp(float(row.logp_rl)))
        for name in ("rank_base", "rank_rl", "rl_top1_rank_base"):
            assert field(name) == str(row[name])
        for side in ("base", "rl"):
            cells = tip.locator(f"#cand-{side} tbody tr")
            ids, logps = row[f"topk_{side}_ids"], row[f"topk_{side}_logp"]
            assert cells.count() == len(ids)
            for r, (tid, lp) in enumerate(zip(ids, logps, strict=True)):
                tr = cells.nth(r)
                rank, token, p, logp = (tr.locator("td").nth(c).text_content() for c in range(4))
                assert rank == str(r + 1) and tr.get_attribute("data-id") == str(tid)
                assert tr.locator("code").text_content() == (texts[tid] if tid in texts else unsampled(tid))
                assert _shown(p, math.exp(float(lp))) and _shown(logp, float(lp))
                assert ("sampled" in (tr.get_attribute("class") or "")) == (tid == row.token_id)
    if os.environ.get(SHOT_ENV):
        page.hover(f"#t{int(rows.js.idxmax())}")
        page.screenshot(path=os.environ[SHOT_ENV], full_page=False)


def _luminance(page) -> list[float]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#tokens span'), (s) => {
        const [r, g, b] = getComputedStyle(s).backgroundColor.match(/\\d+/g).map(Number);
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; })""")


def test_colouring_switches_and_follows_each_measure(page, viewer, build):
    path, _ = _first_page(viewer)
    rows, _ = _rows_of(build, path)
    _open(page, path)
    for mode, values in (("js", rows.js), ("entropy_base", rows.entropy_base), ("entropy_rl", rows.entropy_rl)):
        page.check(f"input[name=colour][value={mode}]")
        assert page.get_attribute("body", "data-colour") == mode
        lum = np.array(_luminance(page))
        order = np.argsort(values.to_numpy(), kind="stable")
        assert np.all(np.diff(lum[order]) <= 1.0), mode  # more of the measure, darker (never lighter) colour
        assert lum.max() - lum.min() > 50, mode
    assert "entropy" in page.text_content("#legend-title")
    hmax = float(max(rows.entropy_base.max(), rows.entropy_rl.max()))
    assert _shown(page.text_content("#tick-hi"), hmax)
    page.check("input[name=colour][value=gap]")
    gap = (rows.logp_rl.astype("float64") - rows.logp_base.astype("float64")).to_numpy()
    colours = page.evaluate("""() => Array.from(document.querySelectorAll('#tokens span'),
        (s) => getComputedStyle(s).backgroundColor.match(/\\d+/g).map(Number))""")
    for g, (r, _, b) in zip(gap, colours, strict=True):
        if g > 0.2 * abs(gap).max():
            assert r > b
        elif g < -0.2 * abs(gap).max():
            assert b > r


def test_keyboard_moves_through_tokens(page, viewer, build):
    path, _ = _first_page(viewer)
    rows, _ = _rows_of(build, path)
    _open(page, path)
    page.focus("input[name=colour][value=js]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "tokens"
    position = lambda: page.get_attribute("#tip", "data-position")  # noqa: E731
    assert position() == "0"
    page.keyboard.press("ArrowRight")
    assert position() == "1" and page.get_attribute("#tokens", "aria-activedescendant") == "t1"
    page.keyboard.press("End")
    assert position() == str(len(rows) - 1)
    page.keyboard.press("Home")
    over = [i for i in range(1, len(rows)) if float(rows.js[i]) >= DIVERGENT_JS]
    page.keyboard.press("n")
    assert position() == str(over[0] if over else 0)
    page.keyboard.press("Escape")
    assert not page.locator("#tip").is_visible()


def test_index_links_open_their_pages(page, viewer, build, tokens):
    page.goto(viewer.as_uri())
    links = page.locator("table a")
    assert links.count() == len(list(viewer.parent.glob("*.html"))) - 1
    cells = page.locator("tbody tr").nth(1).locator("td")
    gen, rl_model = cells.nth(0).text_content(), cells.nth(2).text_content()
    rows = tokens[(tokens.generation_id == gen) & (tokens.rl_model == rl_model)]
    assert cells.nth(5).text_content().startswith(f"{int(rows.over.sum())} (")
    links.nth(1).click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.text_content("#title").startswith(gen) and rl_model in page.text_content("#title")
    assert page.locator("#tokens span").count() == len(rows)
    page.click("#index-link")
    assert page.url == viewer.as_uri()


def test_readable_at_phone_width(browser, viewer):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        tab = context.new_page()
        path, _ = _first_page(viewer)
        _open(tab, path)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        tab.tap("#t1")
        box = tab.locator("#tip").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
        assert tab.evaluate("(() => { const t = document.getElementById('tip'); "
                            "return t.scrollWidth <= t.clientWidth; })()")  # nothing cut off at the side
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        tab.goto(viewer.as_uri())  # the index: its table scrolls inside its own box, the page does not
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def _evil_build(out: Path) -> Path:
    tables = make_tables(seed=1, n_per_benchmark=1, n_samples=2)
    victim = "base/bench-a-00/1"
    for name in ("generations", "tokens"):
        for row in tables[name]:
            if row["generation_id"] == victim:
                row["generation_id"] = EVIL_ID
    for row in tables["prompts"]:
        row["question"], row["gold_answer"] = EVIL_TEXT, EVIL_TOKEN
    for row in tables["generations"]:
        row["extracted_answer"] = EVIL_TEXT
    for row in tables["tokens"]:
        if row["generation_id"] == EVIL_ID and row["position"] in (1, 2):
            row["token"] = EVIL_TOKEN if row["position"] == 1 else EVIL_TEXT
    for row in tables["cross_samples"]:
        row["response_text"] = EVIL_TOKEN + EVIL_TEXT
    for name, rows in tables.items():
        write_parquet(to_arrow(name, rows), out / name / "part-00000.parquet")
    return write_manifest(out, seed=1)


def test_untrusted_text_is_shown_literally_and_never_run(page, tmp_path):
    index = write_viewer(_evil_build(tmp_path / "evil"), tmp_path / "v", (EVIL_ID,), rl_model="rl-step100")
    page.goto(index.as_uri())
    assert page.locator("table a").first.text_content() == EVIL_ID
    page.locator("table a").first.click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.text_content("#title").startswith(EVIL_ID)
    assert page.text_content("#t1") == EVIL_TOKEN and page.text_content("#t2") == EVIL_TEXT
    facts = page.locator("#facts dd")
    assert facts.nth(0).text_content() == EVIL_TEXT and facts.nth(1).text_content() == EVIL_TOKEN
    assert facts.nth(2).text_content() == EVIL_TEXT
    page.hover("#t1")
    assert page.text_content("#tip [data-f=token]") == EVIL_TOKEN
    assert page.locator("#cross pre").first.text_content() == EVIL_TOKEN + EVIL_TEXT
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, b#x, #tokens script").count() == 0
    html = Path(url2pathname(urlparse(page.url).path)).read_text(encoding="utf-8")
    assert html.count("</script>") == 2 and html.count("<script") == 2


def _expected_selection(row) -> str:
    """Independent restatement of how a cross row's positions were chosen, from its run columns."""
    parts = [row.criterion + (f" @{row.match_criterion}" if isinstance(row.match_criterion, str) else "")
             + {"le": " <=", "ge": " >="}.get(row.sign, "")]
    if not isinstance(row.match_criterion, str) and not pd.isna(row.rate):
        parts.append(f"rate {row.rate:g}")
    if not pd.isna(row.control_seed):
        parts.append(f"seed {int(row.control_seed)}")
    if row.mix_weight != 1.0:
        parts.append(f"W = {row.mix_weight:g}")
    if row.mix_space == "log":
        parts.append("log space")
    return ", ".join(parts)


def test_cross_rows_name_the_criterion_that_chose_their_positions(page, build, tmp_path):
    rl_model = RL_MODELS[0]  # the synthetic build's criteria and random-control runs are for this model
    index = write_viewer(build, tmp_path / "v", top=1, rl_model=rl_model)
    page.goto(index.as_uri())
    page.locator("table a").first.click()
    page.wait_for_selector("body[data-ready='1']")
    problem = page.text_content("#title").split("/")[1]
    cross = pq.read_table(build / "cross_samples").to_pandas()
    mine = cross[(cross.rl_model == rl_model) & (cross.problem_id == problem)]
    shown = page.locator("#cross tbody tr td:nth-child(2)").all_text_contents()
    assert sorted(shown) == sorted(_expected_selection(r) for r in mine.itertuples())
    assert {"js", "kl", "random @js, seed 0", "random @js, seed 1"} <= set(shown)


def test_selection_labels_tell_apart_runs_differing_only_in_sign_or_mix_space():
    from tokenshift.queries.viewer import selection_label

    run = {"criterion": "delta_logp", "match_criterion": None, "rate": None, "control_seed": None, "mix_weight": 1.0}
    labels = [selection_label({**run, "sign": sign, "mix_space": space})
              for sign, space in (("le", "prob"), ("ge", "prob"), ("le", "log"), ("le", None))]
    assert labels == ["delta_logp <=", "delta_logp >=", "delta_logp <=, log space", "delta_logp <="]
    control = {**run, "criterion": "random", "match_criterion": "delta_logp", "rate": 0.1, "control_seed": 1}
    assert selection_label({**control, "sign": "ge", "mix_weight": 1.5, "mix_space": "log"}) == \
        "random @delta_logp >=, seed 1, W = 1.5, log space"
