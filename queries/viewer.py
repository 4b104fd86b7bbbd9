"""Token viewer: one self-contained HTML page per answer, its tokens coloured by how base and RL differ there.

Pages are static files (no server, network or CDN): the answer's rows are embedded as JSON (numeric columns as
one zlib-compressed base64 stream of little-endian arrays, exact float32 values, which the browser inflates with
its built-in DecompressionStream) and rendered by the page's own script with textContent only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tokenshift.builders.engines.models import tokenizer_sha256
from tokenshift.queries.run import connect
from tokenshift.queries.sources import Source, literal_path
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import write_text_atomic
from tokenshift.runtime.version import __version__
from tokenshift.schemas.manifest import model_location, read_manifest

DIVERGENT_JS = 0.1      # nats; the study's threshold for a "divergent" position
DEFAULT_TOP = 5         # answers per sampler when no --generation is given
REPORT_TOP = 3          # answers per sampler that `tokenshift report` links
GENERATOR = "tokenshift-viewer"
TEMPLATE = Path(__file__).resolve().with_name("viewer.html")
_FLOAT_COLUMNS = ("logp_base", "logp_rl", "entropy_base", "entropy_rl", "js", "kl_base_rl", "kl_rl_base")
_INT_COLUMNS = ("rank_base", "rank_rl", "rl_top1_rank_base")
_TOPK_COLUMNS = ("topk_base_ids", "topk_base_logp", "topk_rl_ids", "topk_rl_logp")
CROSS_TEXT_BUDGET = 200_000  # characters of cross-sampled answer text embedded per page (long answers are cut)
_CROSS_COLUMNS = ("cross_id", "problem_id", "rl_model", "criterion", "match_criterion", "rate", "control_seed",
                  "sign", "mix_weight", "mix_space", "protocol", "direction", "threshold", "budget", "budget_unit", "sample_index", "n_tokens", "n_interventions", "intervention_positions",
                  "extracted_answer", "correct", "finish_reason", "response_text")
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True)
class Pick:
    """One answer compared with one RL model, with the headline numbers the index shows."""
    generation_id: str
    rl_model: str
    sampler: str
    n_tokens: int
    n_over: int
    max_js: float
    mean_js: float


@dataclass(frozen=True)
class Page:
    """A written page: its file name (relative to the viewer folder) and what the index says about it."""
    file: str
    pick: Pick
    problem_id: str
    correct: bool | None
    n_cross: int


def script_json(payload) -> str:
    """JSON safe inside <script type="application/json">: <, >, &, U+2028/9 and lone surrogates as \\u escapes."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def pack_columns(columns: dict[str, np.ndarray]) -> tuple[str, list[list]]:
    """Columns as one base64 zlib stream (each column's bytes grouped by byte plane, which compresses floats
    better) and its layout [name, dtype, offset, bytes]; dtypes are little-endian '<f4', '<u2' or '<u4'."""
    parts, layout, offset = [], [], 0
    for name, array in columns.items():
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1, array.dtype.itemsize).T.tobytes()
        layout.append([name, array.dtype.str, offset, len(raw)])
        parts.append(raw)
        offset += len(raw)
    return base64.b64encode(zlib.compress(b"".join(parts), 6)).decode("ascii"), layout


def _unsigned(values: np.ndarray) -> np.ndarray:
    """Non-negative integers as '<u2' when they fit, else '<u4'."""
    return values.astype("<u2" if len(values) == 0 or values.max() < 0xFFFF else "<u4")


def _float(value) -> float | None:
    if value is None or value is pd.NA:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _bool(value) -> bool | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else bool(value)


def _text(value) -> str | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)


def page_file(pick: Pick) -> str:
    """A file name for the page of (generation, rl_model): readable, filesystem-safe and collision-free."""
    key = f"{pick.generation_id}\x00{pick.rl_model}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{pick.generation_id}__{pick.rl_model}").strip("._")[:80]
    return f"{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}.html"


def select_answers(con: duckdb.DuckDBPyConnection, generations: tuple[str, ...] = (), top: int = DEFAULT_TOP,
                   rl_model: str | None = None) -> list[Pick]:
    """The given answers (every RL model they are scored against, or rl_model), else the `top` per sampler with the
    most positions at JS >= DIVERGENT_JS (then highest max JS, then id)."""
    if top < 1:
        raise TokenshiftError(f"--top must be >= 1 (got {top})")
    models = [r[0] for r in con.execute("SELECT DISTINCT rl_model FROM tokens ORDER BY 1").fetchall()]
    if rl_model is not None and rl_model not in models:
        raise TokenshiftError(f"--rl-model {rl_model!r} is not in the tokens table; RL models: "
                              f"{', '.join(models) or 'none'}")
    where, args = ["(? IS NULL OR rl_model = ?)"], [rl_model, rl_model]
    if generations:
        where.append("list_contains(?, generation_id)")
        args.append(list(generations))
    order = "sampler, n_over DESC, max_js DESC, generation_id, rl_model"
    best = "" if generations else f"QUALIFY row_number() OVER (PARTITION BY sampler ORDER BY {order}) <= {int(top)}"
    stats = con.execute(f"""
        SELECT * FROM (
            SELECT generation_id, rl_model, any_value(sampler) AS sampler, count(*) AS n_tokens,
                   count_if(js >= ?) AS n_over, max(js)::DOUBLE AS max_js, avg(js::DOUBLE) AS mean_js
            FROM tokens WHERE {' AND '.join(where)} GROUP BY generation_id, rl_model)
        {best} ORDER BY {order}""", [DIVERGENT_JS] + args).df()
    if generations:
        missing = [g for g in dict.fromkeys(generations) if g not in set(stats["generation_id"])]
        if missing:
            scope = f" scored against {rl_model}" if rl_model else ""
            raise TokenshiftError(f"--generation {missing[0]!r} has no tokens{scope} in this dataset; ids look like "
                                  f"'SAMPLER/PROBLEM_ID/SAMPLE_INDEX' (generations.generation_id)")
        given = {g: i for i, g in enumerate(dict.fromkeys(generations))}
        stats = stats.assign(_o=stats["generation_id"].map(given)).sort_values(["_o", "rl_model"])
    return [Pick(r.generation_id, r.rl_model, r.sampler, int(r.n_tokens), int(r.n_over), float(r.max_js),
                 float(r.mean_js)) for r in stats.itertuples(index=False)]


def _token_frames(con: duckdb.DuckDBPyConnection, src: Source, picks: list[Pick]) -> dict[tuple[str, str], pa.Table]:
    """The tokens rows of every pick (only the columns a page shows), by (generation_id, rl_model).

    Read from the source's parquet files, not the `tokens` view: a connection made with
    `connect(source, cache=True)` holds only the recipes' columns there. Two steps, because a filter
    on ids alone makes DuckDB decode every wide column (the top-K lists) of every row group: first
    where each pick's rows lie (file and row numbers, from the narrow id columns), then only those rows.
    """
    gens, models = sorted({p.generation_id for p in picks}), sorted({p.rl_model for p in picks})
    # constant IN lists reach the parquet scan (row groups skipped by their statistics); a join would not
    spans = con.execute(f"""SELECT filename, generation_id, rl_model, min(file_row_number), max(file_row_number)
                            FROM read_parquet({src.parquet_arg('tokens')}, filename = true, file_row_number = true)
                            WHERE generation_id IN ({', '.join('?' * len(gens))})
                              AND rl_model IN ({', '.join('?' * len(models))})
                            GROUP BY ALL""", gens + models).fetchall()
    columns = ", ".join(("generation_id", "rl_model", "position", "token_id", "token")
                        + _FLOAT_COLUMNS + _INT_COLUMNS + _TOPK_COLUMNS)
    out = {}
    for filename, generation_id, rl_model, first, last in spans:
        relation = con.sql(f"""SELECT {columns} FROM read_parquet($file, file_row_number = true)
                               WHERE file_row_number BETWEEN $first AND $last
                                 AND generation_id = $generation AND rl_model = $model
                               ORDER BY position""",
                           params={"file": literal_path(filename), "first": first, "last": last, "generation": generation_id,
                                   "model": rl_model})
        table = _arrow(relation)
        key = (generation_id, rl_model)
        out[key] = pa.concat_tables([out[key], table]).sort_by("position") if key in out else table
    missing = [p for p in picks if (p.generation_id, p.rl_model) not in out]
    if missing:  # an answer without token rows: its page shows none
        empty = _arrow(con.sql(f"SELECT {columns} FROM read_parquet({src.parquet_arg('tokens')}) LIMIT 0"))
        out.update({(p.generation_id, p.rl_model): empty for p in missing})
    return {(p.generation_id, p.rl_model): out[(p.generation_id, p.rl_model)] for p in picks}


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation's rows as an arrow table (DuckDB 2 renamed arrow() to to_arrow_table())."""
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


def _token_texts(con: duckdb.DuckDBPyConnection, ids: np.ndarray) -> dict[int, str]:
    """Text of each token id that was sampled anywhere in the dataset (the tables hold no other token text)."""
    con.register("_view_ids", pa.table({"token_id": pa.array(ids, pa.int32())}))
    try:
        rows = con.execute("""SELECT token_id, any_value(token) FROM tokens
                              WHERE token_id IN (SELECT token_id FROM _view_ids) GROUP BY token_id""").fetchall()
    finally:
        con.unregister("_view_ids")
    return {int(i): t for i, t in rows}


def build_tokenizer(src: Source):
    """The build's own tokenizer when this machine has it (its model directory or the Hub cache, never downloaded)
    and it hashes as the manifest says; else None (pages then name ids no answer sampled as #id)."""
    if src.kind != "local":
        return None
    try:
        manifest = read_manifest(src.root)
        base, expected = manifest["models"]["base"], manifest["tokenizer"]["sha256"]
        source, revision = model_location(base["source"]), base.get("revision")
    except (TokenshiftError, KeyError, TypeError, AttributeError):
        return None
    try:
        tokenizer = _local_tokenizer(source, revision)
        if tokenizer is None or tokenizer_sha256(tokenizer) != expected:
            return None
    except Exception:  # noqa: BLE001 - absent, moved or unreadable: the page names such ids by number
        return None
    return tokenizer


def _build_tokenizer_texts(tokenizer, ids: list[int]) -> dict[int, str]:
    """Text of token ids no answer sampled, decoded as the build decodes tokens (none without its tokenizer)."""
    if tokenizer is None:
        return {}
    return {i: tokenizer.decode([i]) for i in ids if 0 <= i < len(tokenizer)}


def _local_tokenizer(source: str, revision: str | None):
    """The tokenizer at `source` if this machine has it (never downloaded), else None.

    A fast tokenizer (tokenizer.json) loads as `PreTrainedTokenizerFast`, whose import does not pull in torch
    (about 2 s of a report); only a tokenizer without tokenizer.json goes through AutoTokenizer.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        fast = (folder / "tokenizer.json").is_file()
    else:
        from huggingface_hub import try_to_load_from_cache

        try:
            fast = isinstance(try_to_load_from_cache(source, "tokenizer.json", revision=revision), str)
            if not fast and not isinstance(try_to_load_from_cache(source, "tokenizer_config.json",
                                                                  revision=revision), str):
                return None  # not in this machine's Hub cache
        except ValueError:  # neither a folder here nor a Hub repo id
            return None
    if fast:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(source, revision=revision, local_files_only=True)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=True)


def _answers(con: duckdb.DuckDBPyConnection, picks: list[Pick]) -> pd.DataFrame:
    ids = sorted({p.generation_id for p in picks})
    return con.execute("""
        SELECT g.generation_id, g.problem_id, g.benchmark, g.sampler, g.n_tokens, g.finish_reason,
               g.extracted_answer, g.correct, p.question, p.gold_answer
        FROM generations AS g LEFT JOIN prompts AS p USING (problem_id)
        WHERE list_contains(?, g.generation_id)""", [ids]).df().set_index("generation_id")


def _cross(con: duckdb.DuckDBPyConnection, src: Source, problems: list[str]) -> pd.DataFrame:
    if "cross_samples" not in src.tables:
        return pd.DataFrame(columns=list(_CROSS_COLUMNS))
    return con.execute(f"""SELECT {', '.join(_CROSS_COLUMNS)} FROM cross_samples
                           WHERE list_contains(?, problem_id)
                           ORDER BY rl_model, direction, protocol, criterion, match_criterion NULLS FIRST,
                                    control_seed NULLS FIRST, sign NULLS FIRST, coalesce(mix_space, 'prob') DESC,
                                    mix_weight DESC, threshold NULLS FIRST, budget_unit,
                                    budget, sample_index""", [problems]).df()


def _topk_matrix(column: pa.ChunkedArray, n: int, dtype) -> np.ndarray:
    """A list column as an n × K array (K = longest list; shorter lists padded: ids with -1, log-probs with NaN)."""
    lists = column.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    k = int(lengths.max()) if n else 0
    fill = -1 if np.issubdtype(dtype, np.integer) else np.nan
    out = np.full((n, k), fill, dtype=dtype)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values
    return out


def page_payload(pick: Pick, rows: pa.Table, answer: dict, cross: pd.DataFrame, texts: dict[int, str],
                 source: str) -> dict:
    """Everything one page shows, as JSON-ready data (numeric columns base64-encoded, exact float32)."""
    n = rows.num_rows
    positions = rows["position"].to_numpy()
    if not np.array_equal(positions, np.arange(n)):
        raise TokenshiftError(f"tokens of {pick.generation_id} vs {pick.rl_model} do not cover positions 0..{n - 1} "
                              "exactly once: run `tokenshift validate` on the source")
    token_ids = rows["token_id"].to_numpy().astype(np.int64)
    topk = {c: _topk_matrix(rows[c], n, np.int64 if c.endswith("_ids") else np.float32) for c in _TOPK_COLUMNS}
    vocab = np.unique(np.concatenate([token_ids] + [topk[c].ravel() for c in ("topk_base_ids", "topk_rl_ids")]))
    vocab = vocab[vocab >= 0]
    width = "<u2" if len(vocab) < 0xFFFF else "<u4"
    missing = np.iinfo(np.dtype(width)).max  # local index of a padded (absent) candidate

    def local(ids: np.ndarray) -> np.ndarray:
        return np.where(ids >= 0, np.searchsorted(vocab, ids), missing).astype(width)

    own = dict(zip(token_ids.tolist(), rows["token"].to_pylist(), strict=True))
    vocab_text = [own.get(int(i), texts.get(int(i))) for i in vocab]
    columns = {c: rows[c].to_numpy(zero_copy_only=False).astype("<f4") for c in _FLOAT_COLUMNS}
    columns.update({c: _unsigned(rows[c].to_numpy(zero_copy_only=False)) for c in _INT_COLUMNS})
    columns["token"] = local(token_ids)
    for c in _TOPK_COLUMNS:
        columns[c] = local(topk[c]).ravel() if c.endswith("_ids") else topk[c].astype("<f4").ravel()
    columns["vocab_ids"] = vocab.astype("<u4")
    blob, layout = pack_columns(columns)
    mine = cross[cross["rl_model"] == pick.rl_model] if len(cross) else cross
    return {
        "generator": GENERATOR, "version": __version__, "source": source, "js_threshold": DIVERGENT_JS,
        "answer": {"generation_id": pick.generation_id, "rl_model": pick.rl_model, "sampler": pick.sampler,
                   "problem_id": _text(answer.get("problem_id")), "benchmark": _text(answer.get("benchmark")),
                   "question": _text(answer.get("question")), "gold_answer": _text(answer.get("gold_answer")),
                   "extracted_answer": _text(answer.get("extracted_answer")), "correct": _bool(answer.get("correct")),
                   "finish_reason": _text(answer.get("finish_reason")), "n_tokens": n,
                   "n_over": pick.n_over, "max_js": pick.max_js, "mean_js": pick.mean_js},
        "n": n, "k": int(topk["topk_base_ids"].shape[1]), "missing": int(missing),
        "vocab_text": vocab_text, "blob": blob, "layout": layout,
        "cross": [_cross_row(r, CROSS_TEXT_BUDGET // max(len(mine), 1))  # rows via Arrow: 4x faster than pandas
                  for r in pa.Table.from_pandas(mine, preserve_index=False).to_pylist()],
    }


def _cut(text: str | None, limit: int) -> str | None:
    """Head and tail of a long text (the tail holds the final answer), with how much was left out."""
    if text is None or len(text) <= max(limit, 400):
        return text
    half = max(limit, 400) // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half:,} characters cut …]\n{text[-half:]}"


def selection_label(row: dict) -> str:
    """How a cross-sampled answer's positions were chosen, e.g. 'js', 'random @js, seed 1', 'kl, W = 0.5',
    'delta_logp <=' (sign le), 'js, W = 1.5, log space' (mix_space 'log')."""
    matched = _text(row.get("match_criterion"))
    label = str(row["criterion"]) + (f" @{matched}" if matched is not None else "")
    sign = {"le": "<=", "ge": ">="}.get(_text(row.get("sign")))
    if sign:
        label += f" {sign}"
    if matched is None and _float(row.get("rate")) is not None:
        label += f", rate {_float(row['rate']):g}"
    seed = row.get("control_seed")
    if seed is not None and not pd.isna(seed):
        label += f", seed {int(seed)}"
    weight = _float(row.get("mix_weight"))
    if weight is not None and weight != 1.0:
        label += f", W = {weight:g}"
    if _text(row.get("mix_space")) == "log":
        label += ", log space"
    return label


def _cross_row(row: dict, text_limit: int) -> dict:
    budget = _float(row["budget"])
    positions = row["intervention_positions"]
    return {"cross_id": row["cross_id"], "selection": selection_label(row),
            "protocol": row["protocol"], "direction": row["direction"],
            "threshold": _float(row["threshold"]),
            "budget": "inf" if budget is not None and math.isinf(budget) else budget,
            "budget_unit": row["budget_unit"], "sample_index": int(row["sample_index"]),
            "n_tokens": int(row["n_tokens"]), "n_interventions": int(row["n_interventions"]),
            "positions": [] if positions is None else [int(p) for p in positions],
            "extracted_answer": _text(row["extracted_answer"]), "correct": _bool(row["correct"]),
            "finish_reason": _text(row["finish_reason"]),
            "response_text": _cut(_text(row["response_text"]), text_limit)}


def render_page(payload: dict) -> str:
    """The page HTML: the template with the payload embedded and a CSP that admits only the page's own script."""
    template = TEMPLATE.read_text(encoding="utf-8")
    script = re.search(r"<script>(.*?)</script>", template, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    title = f"{payload['answer']['generation_id']} vs {payload['answer']['rl_model']} · tokenshift viewer"
    values = {"__SCRIPT_HASH__": f"sha256-{digest}", "__TITLE__": html.escape(title, quote=True),
              "__DATA__": script_json(payload)}
    return re.sub("__SCRIPT_HASH__|__TITLE__|__DATA__", lambda m: values[m.group()], template)


def _is_viewer_dir(path: Path) -> bool:
    index = path / "index.html"
    return index.is_file() and f'<meta name="generator" content="{GENERATOR}">' in index.read_text(
        encoding="utf-8", errors="replace")[:2000]


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not _is_viewer_dir(out):
            raise TokenshiftError(f"--out {out} is not empty and holds no previous viewer output: "
                                  "choose an empty or new directory")
        for old in out.glob("*.html"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def write_pages(con: duckdb.DuckDBPyConnection, src: Source, picks: list[Pick], out: Path,
                tokenizer: Callable[[], object] | None = None) -> list[Page]:
    """Write one page per pick and index.html into `out` (a previous viewer's pages there are replaced, only once
    every new page has been made, so a failure leaves the old ones in place).

    tokenizer: returns the build's tokenizer or None (default: `build_tokenizer(src)`), called only when a
    page shows a candidate no answer sampled.
    """
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} exists and is not a directory")
    try:
        return _write_pages(con, src, picks, out, tokenizer)
    except duckdb.Error as err:  # e.g. a part whose strings are not UTF-8: one line naming the file
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TokenshiftError(f"cannot read {src.spec} ({text}): run `tokenshift validate` on it") from None


def _write_pages(con: duckdb.DuckDBPyConnection, src: Source, picks: list[Pick], out: Path,
                 tokenizer: Callable[[], object] | None) -> list[Page]:
    frames = _token_frames(con, src, picks) if picks else {}
    ids = [frames[(p.generation_id, p.rl_model)][c] for p in picks for c in ("topk_base_ids", "topk_rl_ids")]
    flat = [pc.list_flatten(c.combine_chunks()).to_numpy(zero_copy_only=False) for c in ids]
    candidates = np.unique(np.concatenate(flat)) if flat else np.array([], dtype=np.int64)
    texts = _token_texts(con, candidates) if flat else {}
    unsampled = [int(i) for i in candidates if i >= 0 and int(i) not in texts]
    if unsampled:
        texts.update(_build_tokenizer_texts((tokenizer or (lambda: build_tokenizer(src)))(), unsampled))
    answers = _answers(con, picks) if picks else pd.DataFrame()
    problems = sorted({str(answers.loc[p.generation_id, "problem_id"]) for p in picks
                       if p.generation_id in answers.index})
    cross = _cross(con, src, problems) if picks else pd.DataFrame(columns=list(_CROSS_COLUMNS))
    pages, html_by_file = [], {}
    for pick in picks:
        answer = answers.loc[pick.generation_id].to_dict() if pick.generation_id in answers.index else {}
        mine = cross[cross["problem_id"] == answer.get("problem_id")] if len(cross) else cross
        payload = page_payload(pick, frames[(pick.generation_id, pick.rl_model)], answer, mine, texts, src.spec)
        file = page_file(pick)
        html_by_file[file] = render_page(payload)
        pages.append(Page(file, pick, str(answer.get("problem_id", "")), payload["answer"]["correct"],
                          len(payload["cross"])))
    _prepare_out(out)
    for file, text in html_by_file.items():
        _write(out / file, text)
    _write(out / "index.html", render_index(pages, src.spec))
    return pages


def _verdict(correct: bool | None) -> str:
    return "ungraded" if correct is None else "correct" if correct else "wrong"


def render_index(pages: list[Page], source: str) -> str:
    """index.html: every page with its headline numbers, most divergent first within each sampler."""
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731
    rows = []
    for page in pages:
        p = page.pick
        share = p.n_over / p.n_tokens if p.n_tokens else 0.0
        rows.append(
            f'<tr><td><a href="{e(page.file)}">{e(p.generation_id)}</a></td><td>{e(p.sampler)}</td>'
            f'<td>{e(p.rl_model)}</td><td>{e(page.problem_id)}</td><td class="num">{p.n_tokens}</td>'
            f'<td class="num">{p.n_over} ({share:.1%})</td><td class="num">{p.max_js:.4f}</td>'
            f'<td class="num">{p.mean_js:.2e}</td><td>{_verdict(page.correct)}</td>'
            f'<td class="num">{page.n_cross}</td></tr>')
    total = sum(p.pick.n_tokens for p in pages)
    over = sum(p.pick.n_over for p in pages)
    body = "\n".join(rows) or '<tr><td colspan="10">no answers</td></tr>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{GENERATOR}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>tokenshift viewer · {e(source)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 1rem auto; max-width: 72rem; padding: 0 .75rem;
        color: #1b1b1b; }}
.wrap {{ overflow-x: auto; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: .3rem .55rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }}
td:first-child {{ overflow-wrap: anywhere; min-width: 9rem; }}
code {{ overflow-wrap: anywhere; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
a:focus-visible {{ outline: 3px solid #1f5fbf; outline-offset: 2px; }}
</style>
</head>
<body>
<h1>tokenshift token viewer</h1>
<ul>
<li>Source: <code>{e(source)}</code></li>
<li>{len(pages)} answers, {total:,} tokens; {over:,} positions ({(over / total if total else 0):.1%})
with JS ≥ {DIVERGENT_JS} nats
(JS: Jensen–Shannon divergence of base's and RL's next-token distributions, in nats, at most ln 2 ≈ 0.693).</li>
<li>Each page colours an answer's tokens by JS, base or RL entropy or the log-prob gap; hover, tap or focus a token for
both models' top candidates. Written by tokenshift {e(__version__)}.</li>
</ul>
<div class="wrap"><table>
<thead><tr><th>answer</th><th>sampler</th><th>RL model</th><th>problem</th><th class="num">tokens</th>
<th class="num">JS ≥ {DIVERGENT_JS}</th><th class="num">max JS</th><th class="num">mean JS</th><th>verdict</th>
<th class="num">cross-samples</th></tr></thead>
<tbody>
{body}
</tbody></table></div>
</body>
</html>
"""


def write_viewer(source: str | os.PathLike | Source, out_dir: str | os.PathLike, generations: tuple[str, ...] = (),
                 top: int = DEFAULT_TOP, rl_model: str | None = None) -> Path:
    """Select answers from `source` and write their pages and index.html into `out_dir`; returns index.html."""
    con, src = connect(source)
    try:
        try:
            picks = select_answers(con, tuple(generations), top, rl_model)
        except duckdb.Error as err:
            raise TokenshiftError(f"cannot read {src.spec} ({str(err).strip().splitlines()[0]}): "
                                  "run `tokenshift validate` on it") from None
        write_pages(con, src, picks, Path(out_dir))
    finally:
        con.close()
    return Path(out_dir) / "index.html"


def _md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]()|<>])", r"\\\1", str(text)).replace("\n", " ")


def report_section(con: duckdb.DuckDBPyConnection, src: Source, out: Path, number: int,
                   tokenizer: Callable[[], object] | None = None) -> tuple[str, list[str]]:
    """For `tokenshift report`: write the REPORT_TOP most divergent answers per sampler into `out` and return the
    contents line and the markdown section linking them (tokenizer: as in write_pages)."""
    pages = write_pages(con, src, select_answers(con, (), REPORT_TOP), out, tokenizer)
    title = "Token viewer: the most divergent answers"
    rel = out.name
    lines = ['<a id="token-viewer"></a>', f"## {number}. {title}", "",
             f"The {REPORT_TOP} answers per sampler with the most positions at JS ≥ {DIVERGENT_JS} nats, token by "
             f"token ([{rel}/index.html]({rel}/index.html); static pages, open them in a browser). Others: "
             f"`tokenshift view --data {src.spec} --out DIR [--generation ID ...] [--top N] [--rl-model NAME]`.", "",
             f"| answer | sampler | RL model | tokens | JS ≥ {DIVERGENT_JS} | max JS | verdict |",
             "|---|---|---|---|---|---|---|"]
    for page in pages:
        p = page.pick
        lines.append(f"| [{_md(p.generation_id)}]({rel}/{page.file}) | {_md(p.sampler)} | {_md(p.rl_model)} | "
                     f"{p.n_tokens} | {p.n_over} | {p.max_js:.4f} | {_verdict(page.correct)} |")
    if not pages:
        lines.append("| _(no answers)_ | | | | | | |")
    return f"{number}. [{title}](#token-viewer)", lines + [""]
