"""tokenshift: token-level datasets of how RL fine-tuning shifts a language model's distributions.

The notebook API (torch, DuckDB and pandas load on first use, so `import tokenshift` stays fast):

    con = tokenshift.open("demo/registry@latest")          # DuckDB connection: one view per table
    df = tokenshift.query("js_distribution", "demo/build", js_thresholds=[0.1, 0.2])
    stats = tokenshift.score_pair(base, {"rl": rl}, prompt_ids, response_ids, vocab_size)
    tokenshift.build(tokenshift.BuildConfig(out="b", limit=20))
    tokenshift.cross_sample(tokenshift.CrossSampleConfig(out="b"))
    g = tokenshift.grade("so \\boxed{4.5e33}", "4.5 \\times 10^{33}", rule="sci-notation")  # g.correct: True
"""

from tokenshift.runtime.version import __version__

__all__ = [
    "__version__", "open", "query", "recipes", "score_pair", "ScoreConfig", "BuildConfig", "build",
    "CrossSampleConfig", "cross_sample", "validate", "grade", "TokenshiftError",
]

# name -> (module, attribute), imported on first access
_LAZY = {
    "score_pair": ("tokenshift.builders.scoring.score", "score_pair"),
    "ScoreConfig": ("tokenshift.builders.scoring.score", "ScoreConfig"),
    "BuildConfig": ("tokenshift.builders.pipeline.config", "BuildConfig"),
    "build": ("tokenshift.builders.pipeline.build", "run_build"),
    "CrossSampleConfig": ("tokenshift.builders.cross_sampling.config", "CrossSampleConfig"),
    "cross_sample": ("tokenshift.builders.cross_sampling.runner", "run_cross_sample"),
    "validate": ("tokenshift.schemas.validate", "validate_build"),
    "grade": ("tokenshift.builders.grading.grade", "grade"),
    "TokenshiftError": ("tokenshift.runtime.errors", "TokenshiftError"),
}


def open(source):  # noqa: A001  (tokenshift.open(SRC), like duckdb.connect)
    """A DuckDB connection with one view per table of SRC (build dir, REGISTRY@VERSION or hf://datasets/ORG/NAME@V)."""
    from tokenshift.queries.run import connect

    con, _ = connect(source)
    return con


def query(name: str, source, /, **params):
    """Recipe NAME run on SRC as a pandas DataFrame; keyword arguments override the recipe's parameters."""
    from tokenshift.queries.run import run_recipe

    return run_recipe(name, source, params)


def recipes() -> list[str]:
    """The names of the recipes `query` runs, in the study's order."""
    from tokenshift.queries.recipes import recipe_names

    return recipe_names()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokenshift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
