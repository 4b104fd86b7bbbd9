"""`tokenshift build --completions`: answers from a file, scored like a build's own.

The lm-eval file is written in the layout of lm-evaluation-harness 0.4.13.dev0 (commit 4e7e0d4,
lm_eval/evaluator.py and loggers/evaluation_tracker.py: one line per doc and filter with doc_id,
doc, target, arguments {gen_args_0: {arg_0: prompt, arg_1: gen kwargs}}, resps [[repeats]],
filtered_resps, filter, metrics, doc_hash, prompt_hash, target_hash and the metric keys, in
OUTPUT/<model>/samples_<task>_<date>.jsonl). The TRL file follows trl 1.16.0's GRPOTrainer.log
(trainer/grpo_trainer.py): OUTPUT/completions/completions_<step:05d>.parquet with columns step,
prompt, completion, one column per reward function, advantage.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tokenshift.builders.engines.models import ModelSpec, load_tokenizer
from tokenshift.builders.pipeline.build import BuildConfig, run_build
from tokenshift.builders.pipeline.import_build import run_import
from tokenshift.cli import cli
from tokenshift.runtime.embedded_pair import EMBEDDED_PAIR_DIR
from tokenshift.schemas.manifest import public_manifest
from tokenshift.schemas.validate import validate_build

LM_EVAL_VERSION = "0.4.13.dev0"
TRL_VERSION = "1.16.0"
INT_COLUMNS = ["position", "token_id", "rank_base", "rank_rl", "top1_base", "top1_rl", "rl_top1_rank_base"]
FLOAT_COLUMNS = ["logp_base", "logp_rl", "entropy_base", "entropy_rl", "js", "kl_base_rl", "kl_rl_base",
                 "topk_overlap", "rel_position"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_torch_thread):
    """A small build of the embedded pair: its answers are what the tests export and import again."""
    return run_build(BuildConfig(out=str(tmp_path_factory.mktemp("built") / "b"), limit=3, samples=2,
                                 max_new_tokens=48), progress=False)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelSpec("base", str(EMBEDDED_PAIR_DIR / "base")))


def _answers(build):
    """(prompt row, generation row, token ids) of every answer of a build, in generation order."""
    prompts = {r["problem_id"]: r for r in pq.read_table(build / "prompts").to_pylist()}
    tokens = pq.read_table(build / "tokens", columns=["generation_id", "rl_model", "position", "token_id"]).to_pandas()
    tokens = tokens[tokens.rl_model == "rl"].sort_values(["generation_id", "position"])
    ids = tokens.groupby("generation_id").token_id.apply(list).to_dict()
    return [(prompts[g["problem_id"]], g, ids[g["generation_id"]]) for g in pq.read_table(build / "generations").to_pylist()]


def _sorted_tokens(build):
    return pq.read_table(build / "tokens").to_pandas().sort_values(
        ["generation_id", "rl_model", "position"]).reset_index(drop=True)


def test_round_trip_build_export_import_gives_the_same_scores(built, tmp_path, one_torch_thread):
    src = tmp_path / "answers.jsonl"
    with src.open("w") as fh:
        for prompt, gen, ids in _answers(built):
            fh.write(json.dumps({"problem": prompt["problem_id"], "prompt": prompt["prompt"], "ids": ids,
                                 "text": gen["response_text"], "model": gen["sampler"],
                                 "answer": prompt["gold_answer"]}) + "\n")
    out = tmp_path / "imported"
    result = CliRunner().invoke(cli, [
        "build", "--out", str(out), "--completions", str(src), "--format", "fields", "--prompt-field", "prompt",
        "--completion-field", "text", "--token-ids-field", "ids", "--id-field", "problem",
        "--sampler-field", "model", "--gold-field", "answer", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "12 answers imported (fields)" in result.output
    before, after = _sorted_tokens(built), _sorted_tokens(out)
    assert list(before.generation_id) == list(after.generation_id) and list(before.rl_model) == list(after.rl_model)
    for column in INT_COLUMNS:
        assert (before[column].to_numpy() == after[column].to_numpy()).all(), column
    for column in FLOAT_COLUMNS:
        assert np.abs(before[column].to_numpy() - after[column].to_numpy()).max() <= 1e-6, column
    for column in ("topk_base_ids", "topk_rl_ids"):
        assert all((np.asarray(a) == np.asarray(b)).all() for a, b in zip(before[column], after[column]))
    gens_before = pq.read_table(built / "generations").to_pandas().set_index("generation_id")
    gens_after = pq.read_table(out / "generations").to_pandas().set_index("generation_id")
    assert gens_after.correct.equals(gens_before.correct.loc[gens_after.index])  # math-verify against the gold
    assert gens_after.seed.isna().all() and gens_after.finish_reason.isna().all()
    assert set(gens_after.engine) == {"import"}
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["import"]
    assert record["files"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert record["format"] == "fields" and record["fields"]["token_ids"] == "ids"
    published = public_manifest(manifest)  # no local path of the builder in a published version
    assert published["import"]["source"] == published["config"]["completions"] == "answers.jsonl"
    assert str(tmp_path) not in json.dumps(published)
    assert record["tokens"]["token_ids_given"] == 12 and record["grading"]["math_verify"] == 12
    # the build's text is its ids decoded without special tokens, which is what the check compares
    assert record["tokens"]["round_trip"]["given_ids_not_decoding_to_text"]["count"] == 0
    report = validate_build(out)
    assert report.ok, report.failures[:3]
    # the generating build's tables keep their schema: seed and finish_reason stay required there
    schema = pq.read_schema(built / "generations" / "part-00000.parquet")
    assert not schema.field("seed").nullable and not schema.field("finish_reason").nullable
    assert pq.read_schema(out / "generations" / "part-00000.parquet").field("seed").nullable


def _lm_eval_file(built, folder, filters=("strict-match", "flexible-extract"), model="rl-model"):
    """lm-eval --log_samples output for task 'toyarith': each doc's rl answers as its repeats."""
    by_doc = {}
    for prompt, gen, _ in _answers(built):
        if gen["sampler"] == "rl":
            by_doc.setdefault(prompt["problem_id"], (prompt, []))[1].append(gen["response_text"])
    path = folder / model / "samples_toyarith_2026-01-02T03-04-05.678901.jsonl"
    path.parent.mkdir(parents=True)
    lines = []
    for flt in filters:
        for doc_id, (prompt, texts) in enumerate(by_doc.values()):
            doc = {"question": prompt["question"], "answer": prompt["gold_answer"]}
            gen_kwargs = {"until": ["</s>"], "do_sample": True, "temperature": 1.0}
            lines.append({
                "doc_id": doc_id, "doc": doc, "target": prompt["gold_answer"],
                "arguments": {"gen_args_0": {"arg_0": prompt["prompt"], "arg_1": gen_kwargs}},
                "resps": [texts], "filtered_resps": [texts[0]], "filter": flt, "metrics": ["exact_match"],
                "doc_hash": hashlib.sha256(json.dumps(doc, indent=2).encode()).hexdigest(),
                "prompt_hash": hashlib.sha256(prompt["prompt"].encode()).hexdigest(),
                "target_hash": hashlib.sha256(prompt["gold_answer"].encode()).hexdigest(),
                "exact_match": 1.0})
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path, by_doc


def test_lm_eval_samples_are_imported_with_their_repeats_and_targets(built, tmp_path, tokenizer, one_torch_thread):
    path, by_doc = _lm_eval_file(built, tmp_path / "lm-eval-out")
    out = run_import(BuildConfig(out=str(tmp_path / "lm"), benchmark=None, completions=str(tmp_path / "lm-eval-out"),
                                 format="lm-eval", sampler="rl"), progress=False)
    prompts = pq.read_table(out / "prompts").to_pandas().set_index("problem_id")
    gens = pq.read_table(out / "generations").to_pandas()
    docs = list(by_doc.values())
    assert list(prompts.index) == [str(i) for i in range(len(docs))]  # doc_id is the problem id
    assert list(prompts.prompt) == [p["prompt"] for p, _ in docs]  # arg_0 verbatim, no template on top
    assert list(prompts.gold_answer) == [p["gold_answer"] for p, _ in docs]  # target
    assert set(prompts.benchmark) == {"toyarith"}
    assert len(gens) == sum(len(t) for _, t in docs) and set(gens.sampler) == {"rl"}  # the two filters: once
    assert list(gens.response_text) == [t for _, texts in docs for t in texts]
    tokens = pq.read_table(out / "tokens").to_pandas().sort_values(["generation_id", "position"])
    for gen in gens.itertuples():  # the text tokenized with the pair's tokenizer, exactly those ids scored
        ids = tokens[tokens.generation_id == gen.generation_id].token_id.tolist()
        assert ids == tokenizer(gen.response_text, add_special_tokens=False)["input_ids"]
        assert gen.n_tokens == len(ids)
    record = json.loads((out / "manifest.json").read_text())["import"]
    assert record["tokens"]["tokenized"] == len(gens)
    decoded_back = sum(tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"]) == t
                       for t in gens.response_text)
    assert record["tokens"]["round_trip"]["tokenized_text_not_recovered"]["count"] == len(gens) - decoded_back
    assert record["prompts"] == {**record["prompts"], "verbatim": len(docs), "chat_template_rendered": 0}


def test_lm_eval_metric_of_several_repeats_is_not_taken_as_each_answers_verdict(built, tmp_path):
    _lm_eval_file(built, tmp_path / "src", filters=("none",))
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(tmp_path / "src"),
                                      "--format", "lm-eval", "--sampler", "rl", "--correct-field", "exact_match"])
    assert result.exit_code == 2 and "answers (repeats) but one 'exact_match'" in result.output
    assert not (tmp_path / "o").exists()


def _trl_log(built, folder, step=30, reward="accuracy_reward"):
    """A GRPOTrainer completion log of conversational prompts: the base's answers at one step."""
    rows = {"step": [], "prompt": [], "completion": [], reward: [], "advantage": []}
    for prompt, gen, _ in _answers(built):
        if gen["sampler"] != "base":
            continue
        rows["step"].append(step)
        rows["prompt"].append([{"role": "user", "content": prompt["question"] + "\nPlease reason step by step, "
                                "and put your final answer within \\boxed{}."}])
        rows["completion"].append([{"role": "assistant", "content": gen["response_text"]}])
        rows[reward].append(1.0 if gen["correct"] else 0.0)
        rows["advantage"].append(0.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"completions_{step:05d}.parquet"
    pd.DataFrame(rows).to_parquet(path)  # as GRPOTrainer.log writes it (pandas.DataFrame.to_parquet)
    return path


def test_trl_log_with_conversational_prompts_and_reward_verdicts(built, tmp_path, one_torch_thread):
    path = _trl_log(built, tmp_path / "run" / "completions")
    out = tmp_path / "trl"
    result = CliRunner().invoke(cli, ["build", "--out", str(out), "--completions", str(path), "--format", "trl",
                                      "--sampler", "rl-step-030", "--correct-field", "accuracy_reward", "--quiet"])
    assert result.exit_code == 0, result.output
    log = pd.read_parquet(path)
    prompts = pq.read_table(out / "prompts").to_pandas()
    gens = pq.read_table(out / "generations").to_pandas()
    # the same rendering a build gives: the base tokenizer's chat template over the user message
    built_prompts = pq.read_table(built / "prompts").to_pandas()
    assert sorted(prompts.prompt) == sorted(built_prompts.prompt)
    assert set(gens.sampler) == {"rl-step-030"} and len(gens) == len(log)
    assert list(gens.correct) == [r > 0 for r in log.accuracy_reward]  # the source's verdict, as given
    assert prompts.gold_answer.isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["import"]["prompts"]["chat_template_rendered"] == len(prompts)
    assert manifest["import"]["grading"]["source_verdict"] == len(log)
    tokens = pq.read_table(out / "tokens").to_pandas()
    assert set(tokens.rl_model) == {"rl"} and len(tokens) == gens.n_tokens.sum()  # a third sampler vs every RL model
    report = validate_build(out)
    assert report.ok, report.failures[:3]


def test_without_gold_or_verdict_correct_is_null_and_counted(built, tmp_path):
    src = tmp_path / "a.jsonl"
    rows = [{"p": p["prompt"], "c": g["response_text"]} for p, g, _ in _answers(built)[:3]]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(src), "--format",
                                      "fields", "--prompt-field", "p", "--completion-field", "c", "--sampler", "base",
                                      "--benchmark-name", "my-eval", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 answers have no gold answer: correct is null" in result.output
    gens = pq.read_table(tmp_path / "o" / "generations").to_pandas()
    assert gens.correct.isna().all() and set(gens.benchmark) == {"my-eval"}
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["import"]["grading"]["no_gold"] == 3 and manifest["ungraded"] == {"generations": 0}


def _fields_cmd(out, src, *extra):
    return ["build", "--out", str(out), "--completions", str(src), "--format", "fields", "--prompt-field", "p",
            "--completion-field", "c", *extra]


@pytest.mark.parametrize("rows, extra, message", [
    ([{"p": "Q", "x": "A"}], ["--sampler", "base"], "a.jsonl line 1: field 'c' not found (fields: p, x): fix --completion-field"),
    ([{"p": "Q", "c": "A", "ids": [1, 99999]}], ["--sampler", "base", "--token-ids-field", "ids"],
     "a.jsonl line 1: token id 99999 is outside the vocabulary"),
    ([{"p": "Q1", "c": "A", "id": 7}, {"p": "Q2", "c": "B", "id": 7}], ["--sampler", "base", "--id-field", "id"],
     "a.jsonl line 2: duplicate id '7' with another prompt than at a.jsonl line 1"),
    ([{"p": "Q", "c": "A"}], [], "name the model that wrote these answers: --sampler NAME"),
    ([{"p": "Q", "c": "A"}], ["--sampler", "a/b"], "sampler name 'a/b' must be non-empty, without '/'"),
    ([{"p": "Q", "c": "A", "r": "yes"}], ["--sampler", "base", "--correct-field", "r"],
     "a.jsonl line 1: --correct-field value 'yes' is not a number or a boolean"),
    ([{"p": "Q", "c": "A"}], ["--sampler", "base", "--answer-field", "gold"],
     "--answer-field with --completions reads the --benchmark file: pass --benchmark, or drop --answer-field"),
])
def test_bad_answers_are_one_line_errors_and_write_nothing(tmp_path, rows, extra, message):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli, _fields_cmd(tmp_path / "o", src, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_format_is_asked_for_never_guessed(built, tmp_path):
    path, _ = _lm_eval_file(built, tmp_path / "src")
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(path),
                                      "--sampler", "rl"])
    assert result.exit_code == 2 and "it looks like lm-eval output: pass --format lm-eval" in result.output


def test_a_log_of_several_steps_needs_a_sampler_per_step(built, tmp_path, one_torch_thread):
    folder = tmp_path / "completions"
    _trl_log(built, folder, step=10)
    _trl_log(built, folder, step=20)
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(folder),
                                      "--format", "trl", "--sampler", "rl"])
    assert result.exit_code == 2 and "completions of 2 training steps (10, 20)" in result.output
    assert "--sampler-field step" in result.output
    out = run_import(BuildConfig(out=str(tmp_path / "steps"), benchmark=None, completions=str(folder), format="trl",
                                 sampler_field="step", limit=1), progress=False)
    assert set(pq.read_table(out / "generations").column("sampler").to_pylist()) == {"step-10", "step-20"}


def test_empty_and_overlong_answers_are_counted_skips(tmp_path, one_torch_thread):
    src = tmp_path / "a.jsonl"
    rows = [{"p": "Question: 1+1?\nAnswer: ", "c": ""}, {"p": "Question: 1+1?\nAnswer: ", "c": "2 " * 9000},
            {"p": "Question: 1+1?\nAnswer: ", "c": "\\boxed{2}"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli, _fields_cmd(tmp_path / "o", src, "--sampler", "base", "--quiet"))
    assert result.exit_code == 0, result.output
    assert "skipped 1 (empty completion), 1 (prompt plus answer longer than the context)" in result.output
    skipped = json.loads((tmp_path / "o" / "manifest.json").read_text())["import"]["skipped"]
    assert skipped["empty completion"]["rows"] == ["a.jsonl line 1"]
    assert skipped["prompt plus answer longer than the context"]["rows"][0].startswith("a.jsonl line 2 (")
    assert pq.read_table(tmp_path / "o" / "generations").num_rows == 1


def test_plan_counts_scored_tokens_and_decodes_nothing(built, tmp_path, tokenizer):
    path, by_doc = _lm_eval_file(built, tmp_path / "src", filters=("none",))
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(path),
                                      "--format", "lm-eval", "--sampler", "rl", "--plan"])
    assert result.exit_code == 0, result.output
    texts = [t for _, ts in by_doc.values() for t in ts]
    scored = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert f"answers: {len(texts)}" in result.output and f"scored tokens: <= {scored:,}" in result.output
    assert "decoded tokens: <= 0" in result.output and not (tmp_path / "o").exists()


def test_interrupted_import_resumes_to_the_straight_tables_and_refuses_a_changed_source(
        built, tmp_path, monkeypatch, one_torch_thread):
    from tokenshift.builders.pipeline import import_build

    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"p": p["prompt"], "c": g["response_text"], "id": p["problem_id"]}) + "\n"
                           for p, g, _ in _answers(built)))
    config = dict(benchmark=None, completions=str(src), format="fields", prompt_field="p", completion_field="c",
                  id_field="id", sampler="base", shard_size=1)
    straight = run_import(BuildConfig(out=str(tmp_path / "straight"), **config), progress=False)
    calls = []
    real = import_build._tokens

    def dies_on_the_second_shard(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(import_build, "_tokens", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run_import(BuildConfig(out=str(tmp_path / "resumed"), **config), progress=False)
    monkeypatch.setattr(import_build, "_tokens", real)
    src.write_text(src.read_text() + json.dumps({"p": "Q", "c": "A", "id": "x"}) + "\n")
    result = CliRunner().invoke(cli, _fields_cmd(tmp_path / "resumed", src, "--id-field", "id", "--sampler", "base",
                                                 "--shard-size", "1"))
    assert result.exit_code == 2 and "was started from other --completions files" in result.output
    src.write_text("".join(src.read_text().splitlines(keepends=True)[:-1]))
    resumed = run_import(BuildConfig(out=str(tmp_path / "resumed"), **config), progress=False)
    for table in ("prompts", "generations", "tokens"):
        for part in sorted((straight / table).glob("*.parquet")):
            assert part.read_bytes() == (resumed / table / part.name).read_bytes(), part


def test_an_imported_build_goes_through_cross_sampling_card_query_and_viewer(built, tmp_path, one_torch_thread):
    path = _trl_log(built, tmp_path / "completions")
    out = tmp_path / "trl"
    runner = CliRunner()
    steps = [
        ["build", "--out", str(out), "--completions", str(path), "--format", "trl", "--sampler", "rl-step-030",
         "--max-new-tokens", "32", "--samples", "1", "--limit", "2", "--quiet"],
        ["cross-sample", str(out), "--thresholds", "0.1", "--budgets", "0,1", "--direction", "forward", "--quiet"],
        ["validate", str(out)],
        ["card", str(out)],
        ["query", "accuracy", "--data", str(out), "--format", "csv"],
        ["view", "--data", str(out), "--out", str(tmp_path / "view"), "--top", "1"],
    ]
    for args in steps:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args[0], result.output)
    cross = pq.read_table(out / "cross_samples").to_pandas()
    assert len(cross) == 2 * 2 and cross.correct.isna().all()  # 2 prompts x 2 budgets; no gold: null
    card = (out / "README.md").read_text()
    assert "Imported answers" in card and "format `trl`" in card and "rl-step-030" in card
    accuracy = runner.invoke(cli, ["query", "accuracy", "--data", str(out), "--format", "csv"]).output
    assert "rl-step-030" in accuracy
    assert any((tmp_path / "view").glob("*.html"))


def test_a_local_hugging_face_dataset_is_a_source(built, tmp_path, one_torch_thread):
    import datasets

    rows = [{"p": p["prompt"], "c": g["response_text"], "who": g["sampler"]} for p, g, _ in _answers(built)[:4]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    out = run_import(BuildConfig(out=str(tmp_path / "o"), benchmark=None, completions=str(tmp_path / "ds"),
                                 format="fields", prompt_field="p", completion_field="c", sampler_field="who"),
                     progress=False)
    gens = pq.read_table(out / "generations").to_pandas()
    assert sorted(gens.response_text) == sorted(r["c"] for r in rows)
    files = json.loads((out / "manifest.json").read_text())["import"]["files"]
    assert [f["name"] for f in files] == ["data-00000-of-00001.arrow"]


def test_sharded_imports_merge_into_the_single_process_import(built, tmp_path, one_torch_thread):
    from tokenshift.builders.maintenance.merge import merge_builds

    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"p": p["prompt"], "c": g["response_text"], "who": g["sampler"]}) + "\n"
                           for p, g, _ in _answers(built)))
    config = dict(benchmark=None, completions=str(src), format="fields", prompt_field="p", completion_field="c",
                  sampler_field="who", shard_size=1)
    straight = run_import(BuildConfig(out=str(tmp_path / "straight"), **config), progress=False)
    shards = [run_import(BuildConfig(out=str(tmp_path / f"s{i}"), shard=f"{i}/2", **config), progress=False)
              for i in range(2)]
    merged = merge_builds(shards, tmp_path / "merged")
    for table in ("prompts", "generations", "tokens"):
        for part in sorted((straight / table).glob("*.parquet")):
            assert part.read_bytes() == (merged / table / part.name).read_bytes(), part
    grading = json.loads((merged / "manifest.json").read_text())["import"]["grading"]
    assert grading["answers"] == grading["no_gold"] == 12
    assert validate_build(merged).ok


def test_lm_eval_output_of_two_models_under_one_sampler_is_refused(built, tmp_path):
    _lm_eval_file(built, tmp_path / "runs", model="ORG__BASE")
    _lm_eval_file(built, tmp_path / "runs", model="ORG__RL")
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--completions", str(tmp_path / "runs"),
                                      "--format", "lm-eval", "--sampler", "rl"])
    assert result.exit_code == 2 and "lm-eval samples of 2 models (ORG__BASE, ORG__RL)" in result.output
    assert not (tmp_path / "o").exists()
