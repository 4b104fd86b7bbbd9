"""The dataset card of a build: Hub YAML metadata plus a Markdown body (provenance, schema, figures, loading)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
from huggingface_hub import DatasetCard, DatasetCardData

from tokenshift.builders.grading.gold_rules import MEANING
from tokenshift.builders.inputs.benchmarks import answer_rule
from tokenshift.queries.recipes import bootstrap_defaults
from tokenshift.queries.report import markdown_table
from tokenshift.schemas.manifest import listed_tables, rl_model_names, table_entry
from tokenshift.schemas.tables import PRIMARY_KEYS, SCHEMA_VERSION
from tokenshift.schemas.versions import contract

PLACEHOLDER_REPO = "ORG/NAME"
LOCAL_PATH = "path/to/dataset"
TABLE_INTROS = {
    "prompts": "one row per benchmark problem: the question, the reference answer and the exact prompt text.",
    "generations": "one row per sampled response, with its grade.",
    "tokens": "one row per (response, RL model, position): both models' next-token statistics at that position.",
    "cross_samples": "one row per cross-sampled response: one model decodes, the other takes over at chosen positions.",
}
_SIZES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
          (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
          (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a number of rows."""
    return next((label for bound, label in _SIZES if rows < bound), "n>1T")


def card_data(manifest: dict, fingerprint: str, license: str, repo_id: str | None,
              version: str | None = None) -> DatasetCardData:
    """YAML metadata: one config per table (train split = its parquet parts) and the manifest fingerprint."""
    tables = listed_tables(manifest)
    rows = max([table_entry(manifest, t).get("rows", 0) for t in tables] or [0])
    config = manifest.get("config") or {}
    benchmark = str(config.get("benchmark_name") or config.get("benchmark", "unknown"))
    configs = [{"config_name": t, "data_files": [{"split": "train", "path": f"{t}/*.parquet"}],
                **({"default": True} if t == "tokens" else {})} for t in tables]
    marker = {"manifest_sha256": fingerprint, "schema_version": version or manifest.get("schema_version", SCHEMA_VERSION),
              "tokenshift_version": manifest.get("tokenshift_version")}
    if repo_id:
        marker["repo_id"] = repo_id
    return DatasetCardData(
        pretty_name=pretty_name(manifest), license=license, language=["en"], task_categories=["text-generation"],
        tags=["tokenshift", "rlvr", "reinforcement-learning", "token-level", "jensen-shannon", "math",
              f"benchmark:{benchmark}"],
        size_categories=[size_category(rows)], configs=configs, tokenshift=marker)


def pretty_name(manifest: dict) -> str:
    base = ((manifest.get("models") or {}).get("base") or {}).get("name", "base")
    rls = ", ".join(rl_model_names(manifest)) or "RL"
    config = manifest.get("config") or {}
    benchmark = config.get("benchmark_name") or config.get("benchmark", "a benchmark")  # --benchmark-name first
    return f"tokenshift: {base} vs {rls} on {benchmark}"


def render_card(manifest: dict, figures: dict[str, pd.DataFrame], fingerprint: str, license: str = "apache-2.0",
                repo_id: str | None = None, version: str | None = None) -> DatasetCard:
    """The whole card (metadata + body) as huggingface_hub's DatasetCard; `version` is the schema version the
    build follows (schemas/versions.build_version; default the manifest's label), whose contract the card prints."""
    version = version or str(manifest.get("schema_version", SCHEMA_VERSION))
    data = card_data(manifest, fingerprint, license, repo_id, version)
    sections = [f"# {data.pretty_name}", _intro(manifest, version), _provenance(manifest), _figures(figures),
                _schemas(manifest, version), _loading(manifest, repo_id), _rebuild(manifest)]
    body = "\n\n".join(s.strip() for s in sections if s) + "\n"
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _intro(manifest: dict, version: str) -> str:
    past = "" if version == SCHEMA_VERSION else (
        f" Schema version {version} is a past version of the contract (this card's tokenshift writes "
        f"{SCHEMA_VERSION}): its tables are described as {version} defines them; `tokenshift migrate DIR --out NEW` "
        "rewrites it as the current version, with the columns it lacks as that version implies or null.")
    return (
        "Token-level record of how RL fine-tuning shifts a language model's next-token distributions. "
        "Each response sampled by the base or an RL model is scored by both models at every position: "
        "log-probabilities of the sampled token, entropies, Jensen-Shannon divergence, both KL directions, "
        "ranks and top-K candidates. Built with tokenshift "
        f"{manifest.get('tokenshift_version', '')}, "
        f"schema version {version}.{past}\n\n"
        "Units: natural logarithms throughout. JS divergence is in nats, bounded by ln 2 ≈ 0.6931; "
        "entropies are in nats, bounded by ln V (V = tokenizer vocabulary size). Thresholds such as "
        "\"JS >= 0.1\" below are choices of this card, not of the data: use any threshold in queries.")


def _model_line(model: dict) -> str:
    parts = [f"`{model.get('name')}`", f"source `{model.get('source')}`"]
    if model.get("revision"):
        parts.append(f"revision `{model['revision']}`")
    if model.get("sha256"):
        parts.append(f"sha256 `{model['sha256']}`")
    return ", ".join(parts)


def _provenance(manifest: dict) -> str:
    models = manifest.get("models") or {}
    config = manifest.get("config") or {}
    tokenizer = manifest.get("tokenizer") or {}
    sampling = ", ".join(f"{k} = {config[k]}" for k in
                         ("samples", "temperature", "top_p", "max_new_tokens", "top_k_candidates", "engine",
                          "dtype", "device", "seed", "limit", "use_chat_template") if k in config)
    rows = [
        ["Base model", _model_line(models.get("base") or {})],
        *[["RL model", _model_line(m)] for m in models.get("rl") or []],
        ["Benchmark", f"`{config.get('benchmark')}`"
                      + (f" named `{config['benchmark_name']}`" if config.get("benchmark_name") else "")],
        ["Question", _question_source(config)],
        ["Gold answer", answer_rule(config.get("answer_field"), config.get("answer_from", "field"))],
        *_benchmark_rows(manifest),
        ["Sampling and scoring", sampling],
        ["Instruction", config.get("instruction", "–")],
        ["Tokenizer", f"vocabulary size {tokenizer.get('vocab_size')}, sha256 `{tokenizer.get('sha256')}`"],
        ["Grader", f"`{manifest.get('grader')}`"],
        ["Seeds", f"`{json.dumps(manifest.get('seeds'), sort_keys=True)}`"],
        ["Built", f"{manifest.get('created_at')} in {manifest.get('build_seconds')} s"],
        ["Libraries", ", ".join(f"{k} {v}" for k, v in sorted((manifest.get("libraries") or {}).items()))],
    ]
    runs = manifest.get("cross_sampling_runs") or (
        [{"run_id": "", "config": manifest["cross_sampling"]}] if manifest.get("cross_sampling") else [])
    for run in runs:
        rows.append([f"Cross-sampling run {run['run_id']}".strip(), f"`{json.dumps(run['config'], sort_keys=True)}`"])
    if isinstance(manifest.get("ungraded"), dict):
        rows.append(["Ungraded answers", _ungraded(manifest)])
    if isinstance(manifest.get("import"), dict):
        rows += _imported(manifest["import"])
    return "## Provenance\n\n" + _md_table(["", ""], rows)


def _benchmark_rows(manifest: dict) -> list[list[str]]:
    """The card's lines for --gold-transform (each rule, its meaning and the golds it changed) and
    --skip-invalid (rows skipped, by reason); none for a build that used neither."""
    config, record = manifest.get("config") or {}, manifest.get("benchmark_rows") or {}
    rows = []
    counts = record.get("gold_transforms") or {}
    for rule in config.get("gold_transform") or ():
        changed = counts.get(rule, "?")
        rows.append(["Gold transform", f"`{rule}`: {MEANING.get(rule, rule)}; changed {changed} of "
                                       f"{record.get('problems', '?')} golds"])
    if config.get("skip_invalid"):
        skipped = record.get("skipped") or []
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(Counter(s["reason"] for s in skipped).items()))
        rows.append(["Skipped rows", f"{len(skipped)} of {record.get('rows', '?')} rows skipped by --skip-invalid"
                                     + (f" ({reasons}); listed in manifest.json `benchmark_rows.skipped`"
                                        if skipped else "")])
    return rows


def _imported(record: dict) -> list[list[str]]:
    """Rows on imported answers (`tokenshift build --completions`): source, mapping, tokens, skips, grading."""
    files = "; ".join(f"`{f.get('name')}` sha256 `{f.get('sha256')}`" for f in record.get("files") or [])
    tokens = record.get("tokens") or {}
    trips = tokens.get("round_trip") or {}
    grading = record.get("grading") or {}
    skipped = ", ".join(f"{v.get('count')} ({k})" for k, v in (record.get("skipped") or {}).items()) or "none"
    prompts = record.get("prompts") or {}
    return [
        ["Imported answers", f"format `{record.get('format')}`, engine = 'import' (seed and finish_reason null); "
                             f"files: {files}"],
        ["Field mapping", f"`{json.dumps(record.get('fields'), sort_keys=True)}`; samplers: "
                          + ", ".join(f"`{s}`" for s in record.get("samplers") or [])],
        ["Prompts", f"{prompts.get('verbatim', 0)} used verbatim, {prompts.get('chat_template_rendered', 0)} "
                    "conversations rendered with the base tokenizer's chat template"],
        ["Answer tokens", f"{tokens.get('token_ids_given', 0)} answers scored on the token ids given, "
                          f"{tokens.get('tokenized', 0)} tokenized from their text; "
                          f"{(trips.get('tokenized_text_not_recovered') or {}).get('count', 0)} tokenized answers "
                          "do not decode back to their text byte for byte, "
                          f"{(trips.get('given_ids_not_decoding_to_text') or {}).get('count', 0)} given id lists "
                          "do not decode to the given text (special tokens removed)"],
        ["Skipped answers", skipped + " (listed in the manifest)"],
        ["Grading of imported answers", f"{grading.get('by')}: {grading.get('math_verify', 0)} by math-verify, "
                                        f"{grading.get('source_verdict', 0)} by the source's verdict; correct is "
                                        f"null for {grading.get('no_gold', 0)} without a gold answer and "
                                        f"{grading.get('no_verdict', 0)} without a source verdict"],
    ]


def _question_source(config: dict) -> str:
    """Where each question came from: the template (JSON-quoted, exact) or the field."""
    if config.get("question_template"):
        return f"template `{json.dumps(config['question_template'], ensure_ascii=False)}` over the row's fields"
    return f"field `{config['question_field']}`" if config.get("question_field") else "question field (detected)"


def _ungraded(manifest: dict) -> str:
    """Answers left with correct = null (grading crashed or timed out on every try), per table, and regrades."""
    counts = ", ".join(f"{n} in {t}" for t, n in manifest["ungraded"].items()) or "none"
    regrades = manifest.get("regraded") or []
    return counts + (f" (after {len(regrades)} `tokenshift regrade` run(s))" if regrades else "")


FIGURE_TEXT = {  # heading and reading note of each headline recipe's table
    "accuracy": ("Accuracy per sampler",
                 "Accuracy = correct / graded responses; responses whose grading failed or timed out are counted "
                 "in n_ungraded and left out."),
    "js_distribution": ("Share of tokens with JS divergence at or above a threshold (nats)",
                        "Per sampler (the model that wrote the responses) and RL model (compared with base), "
                        "over all scored positions of those responses."),
    "cross_sampling_curve": ("Cross-sampling",
                             "forward: base decodes, the RL model intervenes; reverse: the opposite. Accuracy "
                             "over graded answers; gap_recovered / gap_lost: share of the base-to-RL accuracy gap "
                             "(the recipe also gives the reference accuracies on these problems)."),
}


def _intervals_text() -> str:
    """How the headline intervals are made, with the recipes' bootstrap defaults."""
    reps, seed = bootstrap_defaults()
    return (f"Intervals (`*_lo`, `*_hi`) are 95% Poisson percentile bootstrap intervals over problems "
            f"({reps:,} replicates, seed {seed}): "
            "in each replicate every problem weighs an independent Poisson(1) draw, and the value is recomputed as a "
            "ratio of weighted sums; the recipe `accuracy` states the exact weights.")


def _figures(figures: dict[str, pd.DataFrame]) -> str:
    out = ["## Headline figures", _intervals_text()]
    for name, df in figures.items():
        title, note = FIGURE_TEXT.get(name, (name, ""))
        out.append(f"### {title}\n\n{note} Recipe `{name}` (`tokenshift query {name} --data DIR`).")
        out.append(markdown_table(df, max_rows=max(len(df), 1)))
    return "\n\n".join(out) if len(out) > 2 else ""


def _schemas(manifest: dict, version: str = SCHEMA_VERSION) -> str:
    fields = contract(version)
    out = ["## Tables"]
    imported = isinstance(manifest.get("import"), dict)
    for table in listed_tables(manifest):
        entry = table_entry(manifest, table)
        out.append(f"### `{table}` ({entry.get('rows', '?')} rows, {len(entry.get('files') or {})} parquet "
                   f"file(s) under `{table}/`)\n\n{TABLE_INTROS[table][0].upper()}{TABLE_INTROS[table][1:]} "
                   f"Primary key: ({', '.join(PRIMARY_KEYS[table])}).")
        out.append(_md_table(["column", "type", "nullable", "description", "valid values"], [
            [f"`{f.name}`", f"`{f.type}`", "yes" if f.nullable_in(imported) else "no",
             f.to_arrow(imported).metadata[b"description"].decode(), f.valid_values()]
            for f in fields[table]]))
    return "\n\n".join(out)


def _loading(manifest: dict, repo_id: str | None) -> str:
    repo = repo_id or PLACEHOLDER_REPO
    tables = listed_tables(manifest)
    loads = "\n".join(f'{t} = load_dataset(DATA, "{t}", split="train")' for t in tables)
    return f'''## Loading

Every table is a config of this dataset (one `train` split made of its parquet parts).

```python
from datasets import load_dataset

DATA = "{repo}"  # the Hub repository; or a local copy: "{LOCAL_PATH}"
{loads}
# pin a published version on the Hub: load_dataset(DATA, "tokens", split="train", revision="v1.0.0")
```

DuckDB reads the parquet parts directly, from the Hub (`hf://`, pinned with `@<version tag>`) or a local copy:

```python
import duckdb

duckdb.sql("""
    SELECT sampler, rl_model, avg(CAST(js >= 0.1 AS DOUBLE)) AS share_js_at_least_0_1
    FROM read_parquet('hf://datasets/{repo}@v1.0.0/tokens/*.parquet')
    GROUP BY sampler, rl_model
""").show()
duckdb.sql("SELECT sampler, count_if(correct) / count(correct) AS accuracy "
           "FROM read_parquet('{LOCAL_PATH}/generations/*.parquet') GROUP BY sampler").show()
```

For a private repository, first run `CREATE SECRET (TYPE HUGGINGFACE, PROVIDER credential_chain)` in DuckDB.
A local registry written by `tokenshift publish DIR --to PATH --version V` keeps one folder per version;
`tokenshift.publish.resolve_version("PATH", "latest")` returns the newest one.'''


def _rebuild(manifest: dict) -> str:
    commands = [manifest.get("command") or "(not recorded)"]
    runs = manifest.get("cross_sampling_runs") or []
    commands += [r["command"] for r in runs]
    if not runs and manifest.get("cross_sampling_command"):
        commands.append(manifest["cross_sampling_command"])
    return "## Rebuilding\n\nThe exact commands that produced this build (the build, then each cross-sampling run):\n\n```bash\n" + "\n".join(commands) + "\n```"
