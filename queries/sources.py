"""Where the tables come from (build dir, registry version, Hub dataset) and the SQL preamble that views them."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.runtime.arguments import check_path
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import MANIFEST, listed_files, listed_paths, read_manifest, top_k
from tokenshift.schemas.registry import published_versions, resolve_version
from tokenshift.schemas.tables import OPTIONAL_TABLES as OPTIONAL
from tokenshift.schemas.tables import REQUIRED_TABLES as REQUIRED
from tokenshift.schemas.tables import SCHEMA_VERSION
from tokenshift.schemas.tables import TABLE_NAMES as TABLES
from tokenshift.schemas.versions import build_version, check_parts, missing_columns

# The bootstrap of the interval recipes (accuracy, cross_sampling_curve, criteria_comparison, extrapolation,
# study_table, evolution, method_comparison, position_overlap, direction): the Poisson bootstrap over problems.
# Every problem of the dataset has a number p (its rank among prompts.problem_id, ascending, from 0); in replicate
# r < reps it weighs w = F^-1(u), the Poisson(1) quantile of x = lowbias32((seed * 3141592653 + r * 1000003 + p)
# mod 2^32), i.e. w = how many of the cuts below x reaches, cut k = round(2^32 * P(Poisson(1) <= k)), k = 0..11
# (the 13th rounds to 2^32). One weight vector per replicate, over all the dataset's problems, serves every
# group of every recipe: a group's replicate value is a ratio of dot products of the vector with the group's
# per-problem sums (0 for problems outside the group). All in UBIGINT: a BIGINT operand would widen the arithmetic
# to HUGEINT (twice the time).
POISSON_CUTS = tuple(round(2**32 * math.exp(-1) * sum(1 / math.factorial(i) for i in range(k + 1))) for k in range(12))
PROBLEM_NUMBERS_VIEW = """CREATE OR REPLACE VIEW tokenshift_problem_numbers AS
SELECT problem_id, row_number() OVER (ORDER BY problem_id) - 1 AS p FROM prompts;"""
# The replicates come out of a GROUP BY: DuckDB reads a range() on one thread, but splits an aggregate's groups
# among its threads, and the weights are computed where they are read.
BOOTSTRAP_MACRO = """CREATE OR REPLACE MACRO tokenshift_poisson_weights(reps, seed) AS TABLE
SELECT r, list_transform(list_transform(list_transform(list_transform(list_transform(
        range(n), lambda p: (seed::UBIGINT * 3141592653 + r::UBIGINT * 1000003 + p::UBIGINT) % 4294967296),
        lambda x: xor(x, x >> 16) * 2146121005 % 4294967296), lambda x: xor(x, x >> 15) * 2221713035 % 4294967296),
        lambda x: xor(x, x >> 16)),
        lambda x: (""" + " + ".join(f"(x >= {cut})::UTINYINT" for cut in POISSON_CUTS) + """)::DOUBLE) AS w
FROM (SELECT r FROM range(reps) AS t(r) GROUP BY r), (SELECT count(*) AS n FROM tokenshift_problem_numbers);"""
# What the recipes call: the weights above; a report, which runs every recipe on one connection, replaces it by a
# macro reading them from a table made once (`cache_bootstrap`).
BOOTSTRAP_WEIGHTS_MACRO = """CREATE OR REPLACE MACRO tokenshift_bootstrap_weights(reps, seed) AS TABLE
SELECT r, w FROM tokenshift_poisson_weights(reps, seed);"""
CACHED_WEIGHTS_MACRO = """CREATE OR REPLACE MACRO tokenshift_bootstrap_weights(reps, seed) AS TABLE
SELECT r, w FROM tokenshift_bootstrap_cache WHERE cached_reps = reps AND cached_seed = seed
UNION ALL
SELECT r, w FROM tokenshift_poisson_weights(reps, seed) WHERE reps <> {reps} OR seed <> {seed};"""


def cache_bootstrap(con, reps: int, seed: int) -> None:
    """Make the weights of (reps, seed) once on `con`; its recipes' tokenshift_bootstrap_weights then read them."""
    con.execute("CREATE OR REPLACE TEMP TABLE tokenshift_bootstrap_cache AS "
                "SELECT ?::BIGINT AS cached_reps, ?::BIGINT AS cached_seed, r, w FROM tokenshift_poisson_weights(?, ?)",
                [reps, seed, reps, seed])
    con.execute(CACHED_WEIGHTS_MACRO.format(reps=int(reps), seed=int(seed)))


# p(t*), base's probability of RL's top-1 token t* (mass_reallocation, evolution), where the row says it exactly:
# t*'s own entry in base's top-K, else the entry at t*'s base rank when that is within K (ties share the best rank,
# so that entry holds p(t*)), else the sampled token's when t* is the sampled token; NULL otherwise (t* ranks below
# base's K-th candidate, so 0 <= p(t*) <= the K-th probability).
P_RL_TOP1_MACRO = """CREATE OR REPLACE MACRO tokenshift_p_rl_top1(topk_base_ids, topk_base_logp, top1_rl, rl_top1_rank_base,
                                             token_id, logp_base) AS
coalesce(exp(topk_base_logp[coalesce(list_position(topk_base_ids, top1_rl),
                                     CASE WHEN rl_top1_rank_base <= len(topk_base_logp) THEN rl_top1_rank_base END)]::DOUBLE),
         CASE WHEN top1_rl = token_id THEN exp(logp_base::DOUBLE) END);"""

# What the cross-sampling recipes (cross_sampling_curve, criteria_comparison, study_table) compare with: per
# cross-sampled (rl_model, problem), base's and that RL model's own graded (n) and correct (c) answers in the build.
# A view over cross_samples, so it follows that table's view (created only when the source has it; DuckDB binds
# a view when it is created).
CROSS_REFERENCE_VIEW = """CREATE OR REPLACE VIEW cross_reference AS
SELECT pr.rl_model, g.benchmark, pr.problem_id,
       count_if(g.correct AND g.sampler = 'base') AS c_base, count(g.correct) FILTER (WHERE g.sampler = 'base') AS n_base,
       count_if(g.correct AND g.sampler = pr.rl_model) AS c_rl,
       count(g.correct) FILTER (WHERE g.sampler = pr.rl_model) AS n_rl
FROM (SELECT DISTINCT rl_model, problem_id FROM cross_samples) AS pr JOIN generations AS g ON g.problem_id = pr.problem_id
GROUP BY pr.rl_model, g.benchmark, pr.problem_id;"""

# The exact reallocation columns the scorer writes (schemas/tables.py, version 2.1): filled in every row of a
# build made at that version or later; absent (old versions) or NULL (builds migrated from them) otherwise.
EXACT_COLUMNS = ("p_base_rl_top1", "rl_mass_base_topk", "base_mass_rl_topk")
# The top-K lists' scalars (version 2.2), q(t*) and p(S) without scanning the lists, as view column: (the tokens
# column, the same value from the lists: what the view computes where a build lacks the column, in double precision).
LIST_SCALARS = {"q_top1": ("p_rl_rl_top1", "exp(topk_rl_logp[1]::DOUBLE)"),
                "base_mass": ("base_mass_base_topk", "list_sum(list_transform(topk_base_logp, lambda lp: exp(lp::DOUBLE)))")}

# tokens_reallocation: tokens with the per-position reallocation quantities mass_reallocation and evolution
# average, for RL's top-1 token t* and the top-K sets S (base's) and R (RL's); p = base, q = RL.
#   q_top1 = q(t*), exact (topk_rl_logp[1]); base_mass = p(S), exact (the sum of topk_base_logp's probabilities);
#   top1_in_base_topk: t* in S or rl_top1_rank_base <= K (validation checks the rank against t*'s place in S);
#   p_top1_lo/hi: p(t*); rl_mass_lo/hi: q(S); base_mass_rl_lo/hi: p(R); each *_exact says lo = hi = the value.
# The exact view reads the scorer's columns (lo = hi), and q_top1 and base_mass from the lists' scalars where every
# row has them (LIST_SCALARS). The bounds view is for builds without them: p(t*) is
# exact where the lists say it (macro tokenshift_p_rl_top1), else 0 <= p(t*) <= p_K; q(i) for i in S is exact
# when i is in R or is the sampled token, else 0 <= q(i) <= q_K, and q(S) <= 1 - q(R \ S); p(R) the same way
# with the roles swapped. Where a row has the scorer's column it is used instead (a partly filled build).
EXACT_VIEW = """CREATE OR REPLACE VIEW tokens_reallocation AS
SELECT *, {q_top1} AS q_top1, rl_top1_rank_base <= {k} AS top1_in_base_topk,
       p_base_rl_top1::DOUBLE AS p_top1_lo, p_base_rl_top1::DOUBLE AS p_top1_hi, TRUE AS p_top1_exact,
       {base_mass} AS base_mass,
       rl_mass_base_topk::DOUBLE AS rl_mass_lo, rl_mass_base_topk::DOUBLE AS rl_mass_hi, TRUE AS rl_mass_exact,
       base_mass_rl_topk::DOUBLE AS base_mass_rl_lo, base_mass_rl_topk::DOUBLE AS base_mass_rl_hi,
       TRUE AS base_mass_rl_exact
FROM tokens;"""
BOUNDS_VIEW = """CREATE OR REPLACE VIEW tokens_reallocation AS
WITH t AS (
    SELECT *, exp(topk_rl_logp[1]::DOUBLE) AS q_top1,
           list_contains(topk_base_ids, top1_rl) OR rl_top1_rank_base <= len(topk_base_logp) AS top1_in_base_topk,
           coalesce(p_base_rl_top1::DOUBLE, tokenshift_p_rl_top1(topk_base_ids, topk_base_logp, top1_rl,
                                                                 rl_top1_rank_base, token_id, logp_base)) AS p_known,
           exp(topk_base_logp[-1]::DOUBLE) AS p_k, exp(topk_rl_logp[-1]::DOUBLE) AS q_k,
           list_transform(topk_base_logp, lambda lp: exp(lp::DOUBLE)) AS p_s,
           list_transform(topk_rl_logp, lambda lp: exp(lp::DOUBLE)) AS q_r,
           list_transform(topk_rl_ids, lambda i: (NOT list_contains(topk_base_ids, i))::DOUBLE) AS r_not_in_s,
           list_transform(topk_base_ids, lambda i: (NOT list_contains(topk_rl_ids, i))::DOUBLE) AS s_not_in_r,
           -- the sampled token's probabilities are known beyond the lists: they count where it is in one set only
           list_contains(topk_base_ids, token_id) AND NOT list_contains(topk_rl_ids, token_id) AS token_s_only,
           list_contains(topk_rl_ids, token_id) AND NOT list_contains(topk_base_ids, token_id) AS token_r_only
    FROM tokens
),
k AS (
    SELECT *, list_sum(p_s) AS base_mass,
           list_dot_product(q_r, r_not_in_s) AS q_r_outside,
           list_sum(q_r) - list_dot_product(q_r, r_not_in_s) + CASE WHEN token_s_only THEN exp(logp_rl::DOUBLE) ELSE 0.0 END
               AS q_s_known,
           len(topk_base_ids) - (len(topk_rl_ids) - list_sum(r_not_in_s)::INTEGER) - token_s_only::INTEGER AS q_s_unknown,
           list_dot_product(p_s, s_not_in_r) AS p_s_outside,
           list_sum(p_s) - list_dot_product(p_s, s_not_in_r) + CASE WHEN token_r_only THEN exp(logp_base::DOUBLE) ELSE 0.0 END
               AS p_r_known,
           len(topk_rl_ids) - (len(topk_base_ids) - list_sum(s_not_in_r)::INTEGER) - token_r_only::INTEGER AS p_r_unknown
    FROM t
)
SELECT * EXCLUDE (p_known, p_k, q_k, p_s, q_r, r_not_in_s, s_not_in_r, token_s_only, token_r_only, q_r_outside,
                  q_s_known, q_s_unknown, p_s_outside, p_r_known, p_r_unknown),
       coalesce(p_known, 0.0) AS p_top1_lo, coalesce(p_known, p_k) AS p_top1_hi, p_known IS NOT NULL AS p_top1_exact,
       coalesce(rl_mass_base_topk::DOUBLE, q_s_known) AS rl_mass_lo,
       coalesce(rl_mass_base_topk::DOUBLE, greatest(q_s_known, least(q_s_known + q_s_unknown * q_k, 1.0 - q_r_outside)))
           AS rl_mass_hi,
       rl_mass_base_topk IS NOT NULL OR q_s_unknown = 0 AS rl_mass_exact,
       coalesce(base_mass_rl_topk::DOUBLE, p_r_known) AS base_mass_rl_lo,
       coalesce(base_mass_rl_topk::DOUBLE, greatest(p_r_known, least(p_r_known + p_r_unknown * p_k, 1.0 - p_s_outside)))
           AS base_mass_rl_hi,
       base_mass_rl_topk IS NOT NULL OR p_r_unknown = 0 AS base_mass_rl_exact
FROM k;"""

_HF = re.compile(r"hf://datasets/([\w.-]+)/([\w.-]+)(?:@([^/\s']+))?/?")


@dataclass(frozen=True)
class Source:
    kind: str                   # 'local' or 'hf'
    root: str                   # directory path, or 'hf://datasets/ORG/NAME[@REV]'
    tables: tuple[str, ...]     # tables the source has (hf: assumed, cross_samples checked on connect)
    spec: str                   # what the user gave
    files: tuple[tuple[str, tuple[str, ...]], ...] = ()  # local: (table, the parts its manifest lists)
    version: str = SCHEMA_VERSION  # the schema version it follows (hf: assumed current)
    columns: tuple[tuple[str, tuple[str, ...]], ...] = ()  # local: (table, the columns its parts have)
    exact_rows: bool = False  # local: every tokens row has the exact reallocation columns filled
    scalar_rows: bool = False  # local: every tokens row has the top-K lists' scalars filled (LIST_SCALARS)
    top_k: int | None = None  # local: K of the top-K lists (manifest)

    def glob(self, table: str) -> str:
        """The parquet glob of `table` under this source (a Hub version holds only its own parts)."""
        return f"{self.root.rstrip('/')}/{table}/*.parquet"

    def parquet_arg(self, table: str) -> str:
        """What read_parquet reads for `table`: the listed parts of a local source, the glob of a Hub one."""
        listed = dict(self.files).get(table)
        if listed is None:
            return _quote(self.glob(table))
        return "[" + ", ".join(_quote(literal_path(path)) for path in listed) + "]"


def resolve_source(spec: str | os.PathLike | Source) -> Source:
    """Turn DIR, REGISTRY@VERSION, REGISTRY@latest or hf://datasets/ORG/NAME@VERSION into a Source."""
    if isinstance(spec, Source):
        return spec
    text = check_path(spec, "the source").strip()
    if text.startswith("hf://"):
        if not _HF.fullmatch(text):
            raise TokenshiftError(f"not a Hub dataset source: {text!r}; expected hf://datasets/ORG/NAME@VERSION")
        return Source("hf", text.rstrip("/"), TABLES, text)
    path = Path(text).expanduser()
    if not path.exists() and "@" in text:
        registry, version = text.rsplit("@", 1)
        path = resolve_version(Path(registry).expanduser(), version)
    return _local(path, text)


def _local(path: Path, spec: str) -> Source:
    """A build or version folder: the parts its manifest lists (sha256 verified, the verdict remembered), never a
    folder glob."""
    if not path.is_dir():
        raise TokenshiftError(f"source {spec!r} not found: give a build directory, REGISTRY@VERSION or "
                              f"hf://datasets/ORG/NAME@VERSION")
    if not (path / MANIFEST).is_file():
        hint = f" (it looks like a registry: use {spec}@latest or {spec}@VERSION)" if published_versions(path) else ""
        raise TokenshiftError(f"{spec} is not a tokenshift build: no {MANIFEST} (finish the build first){hint}")
    recorded = read_manifest(path)
    missing = [t for t in REQUIRED if not listed_files(recorded, t)]
    if missing:
        raise TokenshiftError(f"{spec} is not a tokenshift build: its manifest lists no parquet files in "
                              f"{', '.join(m + '/' for m in missing)}")
    root = path.resolve()
    files = tuple((t, tuple(p.as_posix() for p in listed_paths(root, recorded, t, check="cached")))
                  for t in TABLES if listed_files(recorded, t))
    version = build_version(root, recorded)
    check_parts(root, recorded, version)
    columns = tuple((t, tuple(pq.read_schema(paths[0]).names)) for t, paths in files)
    tokens = dict(files).get("tokens", ())
    return Source("local", root.as_posix(), tuple(t for t, _ in files), spec, files, version, columns,
                  exact_rows=_filled_rows(tokens, EXACT_COLUMNS),
                  scalar_rows=_filled_rows(tokens, tuple(column for column, _ in LIST_SCALARS.values())),
                  top_k=top_k(recorded))


def _filled_rows(paths: tuple[str, ...], columns: tuple[str, ...]) -> bool:
    """Whether every row of these tokens parts has `columns` filled (their footers' null counts)."""
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        names = meta.schema.to_arrow_schema().names
        if any(c not in names for c in columns):
            return False
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in columns:
                stats = group.column(names.index(c)).statistics
                if stats is None or not stats.has_null_count or stats.null_count:
                    return False
    return bool(paths)


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return _sql_type(t.value_type) + "[]"
    return {"string": "VARCHAR", "bool": "BOOLEAN", "int32": "INTEGER", "int64": "BIGINT", "float": "FLOAT",
            "double": "DOUBLE"}[str(t)]


def table_view(src: Source, table: str) -> str:
    """The view of a table: its parts, and each current column its version lacks read as NULL (or as implied)."""
    present = dict(src.columns).get(table)
    fills = "" if present is None else "".join(
        f", {'NULL' if value is None else _quote(value) if isinstance(value, str) else repr(value)}::"
        f"{_sql_type(f.type)} AS {f.name}" for f, value in missing_columns(table, set(present)))
    return f"CREATE OR REPLACE VIEW {table} AS SELECT *{fills} FROM read_parquet({src.parquet_arg(table)});"


def reallocation_view(src: Source) -> str:
    """tokens_reallocation for this source: the exact view where every row has the scorer's columns."""
    if src.exact_rows:
        scalars = {name: f"{column}::DOUBLE" if src.scalar_rows else from_lists
                   for name, (column, from_lists) in LIST_SCALARS.items()}
        return EXACT_VIEW.format(k=src.top_k or "len(topk_base_ids)", **scalars)
    return BOUNDS_VIEW


def literal_path(path: str) -> str:
    """`path` as a DuckDB file pattern matching that one file: its glob characters each in a bracket class."""
    return re.sub(r"([\[\]*?])", r"[\1]", path)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def preamble_statements(source: str | os.PathLike | Source) -> list[tuple[str | None, str]]:
    """(table or None, statement) pairs that set up the views; table is None for setup statements, and a view
    derived from a table (cross_reference) carries that table's name after the table's own view."""
    src = resolve_source(source)
    out: list[tuple[str | None, str]] = []
    if src.kind == "hf":
        out += [(None, "INSTALL httpfs;"), (None, "LOAD httpfs;"),
                (None, "CREATE SECRET IF NOT EXISTS tokenshift_hf (TYPE HUGGINGFACE, PROVIDER credential_chain);")]
    for table in src.tables:
        out.append((table, table_view(src, table)))
    if "cross_samples" in src.tables:
        out.append(("cross_samples", CROSS_REFERENCE_VIEW))
    out += [("prompts", PROBLEM_NUMBERS_VIEW), (None, BOOTSTRAP_MACRO), (None, BOOTSTRAP_WEIGHTS_MACRO),
            (None, P_RL_TOP1_MACRO)]
    if "tokens" in src.tables:
        out.append(("tokens", reallocation_view(src)))
    return out


def preamble_sql(source: str | os.PathLike | Source) -> str:
    """The preamble text to paste into the duckdb shell before any recipe: one view per table, the cross-sampling
    reference view (with cross_samples), the bootstrap's problem numbers and weights, and the p(t*) macro."""
    src = resolve_source(source)
    lines = [f"-- tokenshift preamble: views over {src.root} (schema version {src.version})",
             "-- Then paste any recipe (queries/*.sql). Override a parameter first with SET VARIABLE name = value;",
             "-- variables persist for the session (RESET VARIABLE name; restores the recipe default)."]
    if src.kind == "hf":
        lines.append("-- Hub token from HF_TOKEN or ~/.cache/huggingface/token (needed for private/gated datasets).")
    for table, statement in preamble_statements(src):
        if statement == PROBLEM_NUMBERS_VIEW:
            lines.append("-- The Poisson bootstrap of the recipes with intervals (accuracy, cross_sampling_curve, ...): "
                         "problem numbers, each replicate's weights.")
        if statement == P_RL_TOP1_MACRO:
            lines.append("-- Base's probability of RL's top-1 token where a row says it exactly (mass_reallocation, evolution).")
        if statement == CROSS_REFERENCE_VIEW:
            lines.append("-- What the cross-sampling recipes compare with: base's and the RL model's own answers.")
        if table == "tokens" and "tokens_reallocation" in statement:
            lines.append("-- Per-position reallocation quantities (mass_reallocation, evolution): "
                         + ("exact, from the scorer's columns." if src.exact_rows else
                            "bounds from the top-K lists where the scorer's exact columns are missing."))
        if src.kind == "hf" and table in OPTIONAL:
            lines.append(f"-- {table} exists only in datasets with cross-sampling results; drop this line if absent.")
        lines.append(statement)
    return "\n".join(lines) + "\n"
