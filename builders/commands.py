"""The `tokenshift build`, `merge`, `regrade` and `benchmark check` commands: flags → a frozen config → the run."""

from __future__ import annotations

import click

from tokenshift.builders.engines.generate import ENGINES
from tokenshift.builders.engines.models import DTYPES
from tokenshift.builders.grading.gold_rules import GOLD_TRANSFORMS, MEANING
from tokenshift.builders.inputs.benchmarks import ANSWER_RULES
from tokenshift.builders.inputs.prompts import CHOICES_SPEC
from tokenshift.builders.pipeline.config import BuildConfig
from tokenshift.runtime.arguments import default_of
from tokenshift.runtime.errors import TokenshiftError, warn
from tokenshift.runtime.meter import run_planned
from tokenshift.schemas.manifest import read_manifest
from tokenshift.schemas.values import IMPORT_FORMATS

DEFAULT_BENCHMARK = default_of(BuildConfig, "benchmark")  # what a generating build samples on without --benchmark


def _default(name: str):
    """The default of BuildConfig's field `name` (the option's default is the config's)."""
    return default_of(BuildConfig, name)


_BENCHMARK_OPTIONS = [  # after --benchmark in build, after FILE in benchmark check
    click.option("--question-field", default=None, help="Field holding the question in a custom jsonl."),
    click.option("--answer-field", default=None, help="Field holding the gold answer in a custom jsonl."),
    click.option("--id-field", default=None, help="Field holding the problem id in a custom jsonl."),
    click.option("--question-template", default=None, metavar="TEMPLATE",
                 help="Build each question from the row's fields instead of --question-field, e.g. "
                      f"'{{Body}} {{Question}}' (Python format fields; '{{options:{CHOICES_SPEC}}}' lists a list "
                      "or dict field as (A) ... (B) ... lines; '{{' and '}}' for literal braces)."),
    click.option("--answer-from", type=click.Choice(ANSWER_RULES), default=_default("answer_from"), show_default=True,
                 help="field: the answer field as given (a JSON list of several answers is graded as one "
                      "tuple, in order); boxed: the last \\boxed{} of the answer field (a worked solution)."),
    click.option("--gold-transform", "gold_transform", multiple=True, type=click.Choice(GOLD_TRANSFORMS),
                 metavar="RULE", help="Rewrite golds math-verify misreads, in the order given (repeat for several; "
                 "recorded with counts in the manifest and card): " + "; ".join(
                     f"{name}: {MEANING[name]}" for name in GOLD_TRANSFORMS) + "."),
    click.option("--skip-invalid", is_flag=True, help="Skip (count and list in the manifest) rows with an empty "
                 "gold, no \\boxed{} under --answer-from boxed, or a repeated id (the first is kept), instead "
                 "of refusing the file."),
    click.option("--benchmark-name", default=None, metavar="NAME",
                 help="The benchmark's name in every table and the card. Default: the named benchmark or the "
                 "file's stem (test.jsonl: 'benchmark')."),
    click.option("--limit", type=int, default=None, help="Use only the first N problems."),
]


def benchmark_options(command):
    """The flags that say how a benchmark file is read (shared by build and benchmark check)."""
    for option in reversed(_BENCHMARK_OPTIONS):
        command = option(command)
    return command


def say_name_hint(benchmark: str, fields) -> None:
    """The one-line hint to pass --benchmark-name when the file's stem (test, train, ...) names the benchmark."""
    # the benchmark readers and math-verify load only when a hint is needed
    from tokenshift.builders.inputs.benchmarks import name_hint

    hint = name_hint(benchmark, fields)
    if hint:
        warn(hint)


@click.command("build")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Build directory.")
@click.option("--base", default=None, metavar="MODEL",
              help="Base checkpoint: a local directory or a Hub id (ORG/NAME[@REV]). Default: the embedded toy base.")
@click.option("--rl", multiple=True, metavar="MODEL",
              help="RL checkpoint(s); repeat for several (e.g. training steps). Default: the embedded toy rl.")
@click.option("--revision", default=None, help="Hub revision for models given without @REV.")
@click.option("--benchmark", default=None, metavar="NAME|PATH",
              help=f"toy-arith, aime24, amc23, gsm8k, a .jsonl path, or a Hub dataset id [default: {DEFAULT_BENCHMARK}]. "
                   "With --completions: the problems whose gold answers (and questions) are joined by id; "
                   "none by default.")
@benchmark_options
@click.option("--samples", type=int, default=_default("samples"), show_default=True, help="Responses per prompt per model.")
@click.option("--max-new-tokens", type=int, default=_default("max_new_tokens"), show_default=True)
@click.option("--temperature", type=float, default=_default("temperature"), show_default=True, help="0 = greedy.")
@click.option("--top-p", type=float, default=_default("top_p"), show_default=True)
@click.option("--top-k-candidates", type=int, default=_default("top_k_candidates"), show_default=True,
              help="K of the stored top-K candidate lists.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--device", default=_default("device"), show_default=True,
              help="cpu, cuda, cuda:N, or auto: split each model over all visible GPUs (for pairs too "
                   "large for one GPU).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default=_default("dtype"), show_default=True,
              help="Model weights dtype; statistics are always float32.")
@click.option("--engine", type=click.Choice(list(ENGINES)), default=_default("engine"), show_default=True,
              help="Generation engine (scoring always uses HF).")
@click.option("--instruction", default=_default("instruction"), show_default=True,
              help="Appended to each question.")
@click.option("--no-chat-template", is_flag=True, help="Use a plain 'Question/Answer' prompt.")
@click.option("--batch-size", type=int, default=_default("batch_size"), show_default=True, help="Sequences per generate() call.")
@click.option("--shard-size", type=int, default=_default("shard_size"), show_default=True, help="Prompts per resumable shard.")
@click.option("--shard", default=_default("shard"), show_default=True, metavar="I/N",
              help="Run only shards k with k % N == I (merge the N outputs with `tokenshift merge`).")
@click.option("--score-memory-mb", type=int, default=_default("score_memory_mb"), show_default=True,
              help="Working memory for full-vocabulary statistics; sets the chunk of positions.")
@click.option("--score-batch-tokens", type=int, default=_default("score_batch_tokens"), show_default=True,
              help="Padded tokens per batched decoder pass when scoring (answers longer run alone).")
@click.option("--trust-remote-code", is_flag=True, help="Run model code from the checkpoint (off by default).")
@click.option("--ray", "ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the shards on a Ray cluster (Ray Data actors, one per GPU): ADDRESS as for ray.init "
                   "(auto, HOST:PORT, ray://HOST:PORT); bare --ray: RAY_ADDRESS or a new local instance. "
                   "--out must be on a filesystem every node mounts.")
@click.option("--ray-workers", type=int, default=None, metavar="N",
              help="Ray actors (default: one per GPU with --device cuda, else one per CPU).")
@click.option("--overwrite", is_flag=True, help="Replace a finished build in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars and no plan.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the cost plan (answers, token bounds) and stop; "
              "loads no model.")
@click.option("--tokens-per-second", type=float, default=None, metavar="R",
              help="Decoded tokens per second to expect: the plan adds a wall-time estimate.")
@click.option("--completions", default=None, metavar="SRC",
              help="Score answers you already have instead of generating: a jsonl or parquet file, a folder of "
                   "them, or a local Hugging Face dataset (save_to_disk). Needs --format and a sampler; "
                   "--id-field then names the answers' problem id field.")
@click.option("--format", "format", type=click.Choice(IMPORT_FORMATS), default=None,
              help="Layout of --completions: lm-eval (samples_*.jsonl of --log_samples), trl (GRPOTrainer's "
                   "completions/*.parquet) or fields (named by the --*-field flags).")
@click.option("--prompt-field", default=None, help="With --completions: the field holding the prompt (text used "
              "verbatim, or a list of chat messages rendered with the base chat template). Dotted paths reach "
              "into objects (arguments.gen_args_0.arg_0).")
@click.option("--completion-field", default=None, help="With --completions: the field holding the answer text.")
@click.option("--gold-field", default=None, help="With --completions: the field holding the gold answer "
              "(graded with math-verify).")
@click.option("--token-ids-field", default=None, help="With --completions: the field holding the answer's token "
              "ids; these exact tokens are scored (otherwise the text is tokenized).")
@click.option("--sampler-field", default=None, help="With --completions: the field naming each answer's sampler "
              "(a number becomes FIELD-N, e.g. step-300).")
@click.option("--sampler", default=None, metavar="NAME", help="With --completions: the model that wrote every "
              "answer: 'base', an RL model of the pair, or another name (e.g. rl-step-300).")
@click.option("--correct-field", default=None, help="With --completions: the source's own verdict or reward "
              "(> 0 or true = correct), used instead of math-verify.")
def build(overwrite: bool, quiet: bool, no_chat_template: bool, rl: tuple[str, ...], plan_only: bool,
          tokens_per_second: float | None, **options) -> None:
    """Generate (or import with --completions), grade and score a base/RL pair's answers into versioned tables."""
    # torch and transformers load with the build machinery, only when the command runs
    from tokenshift.builders.pipeline.build import benchmark_fields, run_build
    from tokenshift.builders.pipeline.import_build import run_import
    from tokenshift.builders.plan import build_plan, check_speed, import_plan

    config = build_config(rl, no_chat_template, **options)
    check_speed(tokens_per_second)
    if config.completions is not None:
        plan = import_plan(config, overwrite)
        if plan_only:
            click.echo("\n".join(plan.lines(tokens_per_second)))
            return
        out = run_planned(plan, lambda: run_import(config, overwrite=overwrite, progress=not quiet),
                          tokens_per_second, progress=not quiet)
        click.echo(f"build written to {out}{import_note(out)}{ungraded_note(out)}")
        return
    say_name_hint(config.benchmark, benchmark_fields(config))
    plan = build_plan(config, overwrite)
    if plan_only:
        click.echo("\n".join(plan.lines(tokens_per_second)))
        return
    out = run_planned(plan, lambda: run_build(config, overwrite=overwrite, progress=not quiet),
                      tokens_per_second, progress=not quiet)
    click.echo(f"build written to {out}{ungraded_note(out)}")


def build_config(rl: tuple[str, ...], no_chat_template: bool, **options) -> BuildConfig:
    """The BuildConfig of `tokenshift build`'s parsed flags (a generating build without --benchmark: the default's)."""
    if options["benchmark"] is None and options["completions"] is None:
        options["benchmark"] = DEFAULT_BENCHMARK
    return BuildConfig(rl=tuple(rl), use_chat_template=not no_chat_template, **options)


@click.command("merge")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Merged build directory (new).")
def merge(dirs: tuple[str, ...], out: str) -> None:
    """Join the builds of `tokenshift build --shard I/N` runs into one build."""
    from pathlib import Path

    # pyarrow's dataset readers and the build machinery load when the command runs
    from tokenshift.builders.maintenance.merge import merge_builds

    merged = merge_builds([Path(d) for d in dirs], Path(out))
    click.echo(f"merged {len(dirs)} shard builds into {merged}{ungraded_note(merged)}")


def import_note(out) -> str:
    """'; N answers imported (...)' for the summary line of an imported build: skips, round trips, grading."""
    record = read_manifest(out).get("import") or {}
    grading = record.get("grading") or {}
    parts = [f"{grading.get('answers', 0)} answers imported ({record.get('format')})"]
    skipped = {k: v["count"] for k, v in (record.get("skipped") or {}).items() if v.get("count")}
    if skipped:
        parts.append("skipped " + ", ".join(f"{n} ({k})" for k, n in skipped.items()) + ", listed in the manifest")
    failed = ((record.get("tokens") or {}).get("round_trip") or {}).get("tokenized_text_not_recovered") or {}
    if failed.get("count"):
        parts.append(f"{failed['count']} tokenized answers do not decode back to their text byte for byte")
    if grading.get("no_gold"):
        parts.append(f"{grading['no_gold']} answers have no gold answer: correct is null "
                     "(pass --gold-field, or --benchmark to join one by id)")
    if grading.get("no_verdict"):
        parts.append(f"{grading['no_verdict']} answers have no value in {record.get('fields', {}).get('correct')!r}: "
                     "correct is null")
    return "; " + "; ".join(parts)


def ungraded_note(out) -> str:
    """'; N answers ungraded …' for a summary line when the manifest counts ungraded answers, else ''."""
    counts = read_manifest(out).get("ungraded") or {}
    total = sum(v for v in counts.values() if isinstance(v, int))
    if not total:
        return ""
    where = ", ".join(f"{v} in {t}" for t, v in counts.items() if v)
    return (f"; {total} answers ungraded ({where}: grading crashed or timed out on every try): "
            f"run `tokenshift regrade {out}`")


@click.command("regrade")
@click.argument("build_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--grade-timeout-s", type=float, default=None, help="Per-answer limit. Default: the build's.")
def regrade(build_dir: str, grade_timeout_s: float | None) -> None:
    """Grade again the answers a finished build left ungraded (correct = null); recorded in the manifest."""
    # math-verify loads when the command runs
    from tokenshift.builders.maintenance.regrade import regrade as run_regrade

    result = run_regrade(build_dir, timeout_s=grade_timeout_s)
    click.echo(f"regraded {result.attempted} answers in {build_dir}; {result.still_ungraded} still ungraded"
               + (f": run `tokenshift card {build_dir}` again" if result.attempted else ""))


@click.group("benchmark")
def benchmark() -> None:
    """Look at a benchmark file before building from it."""


@benchmark.command("check")
@click.argument("spec", metavar="FILE")
@benchmark_options
@click.option("--grade-timeout-s", type=float, default=_default("grade_timeout_s"), show_default=True,
              help="Per-gold grading limit.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Examples shown per count.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark_check(spec: str, limit: int | None, grade_timeout_s: float, examples: int, quiet: bool,
                    **options) -> None:
    """Read FILE exactly as `build` would with these flags and grade every gold against itself: counts of
    empty, skipped, transformed and self-failing golds, with examples. Exits 1 when a build would refuse the
    file or a gold is not correct against itself."""
    # math-verify and the benchmark readers load when the command runs
    from tokenshift.builders.inputs.benchmark_check import check_benchmark
    from tokenshift.builders.pipeline.build import benchmark_fields

    if limit is not None and limit < 1:
        raise TokenshiftError(f"--limit must be >= 1 (got {limit})")
    if not grade_timeout_s > 0:
        raise TokenshiftError(f"--grade-timeout-s must be > 0 (got {grade_timeout_s:g})")
    fields = benchmark_fields(BuildConfig(out="", benchmark=spec, **options))
    say_name_hint(spec, fields)
    report = check_benchmark(spec, limit, fields, grade_timeout_s, progress=not quiet)
    click.echo("\n".join(report.lines(examples)))
    if not report.ok:
        raise SystemExit(1)


@click.command("migrate")
@click.argument("build_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Migrated build directory (new).")
def migrate(build_dir: str, out: str) -> None:
    """Rewrite a build of a past schema version as a build of the current one (DIR is left as it is)."""
    from pathlib import Path

    # the build machinery loads when the command runs
    from tokenshift.builders.maintenance.migrate import filled_columns, migrate_build
    written = migrate_build(Path(build_dir), Path(out))
    recorded = read_manifest(written)
    old = recorded["migrated_from"]["schema_version"]
    filled = filled_columns(old)
    words = {"implied": "as the old version implies", "computed": "computed from the top-K lists",
             "derived": "from the manifest", "null": "NULL"}
    gained = "; ".join(f"{words[kind]}: {', '.join(names)}" for kind, names in filled.items() if names)
    rebuild = any(name.startswith("tokens.") for name in filled["null"])
    click.echo(f"migrated {build_dir} (schema version {old}) to {written} (schema version "
               f"{recorded['schema_version']}); columns it lacked: {gained or 'none'}"
               + (" (the NULL tokens columns need the models: rebuild to fill them)" if rebuild else ""))
