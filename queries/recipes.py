"""The recipe files: names, header summary, required tables and parameters parsed from each .sql."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError

RECIPE_DIR = Path(__file__).resolve().parent

# The study's analyses in reading order; any other .sql file in RECIPE_DIR follows alphabetically.
STUDY_ORDER = (
    "js_distribution", "entropy_vs_divergence", "position_concentration", "reranking",
    "mass_reallocation", "divergent_tokens", "direction", "accuracy", "cross_sampling_curve", "criteria_comparison",
    "extrapolation", "study_table", "evolution",
)

# The values a recipe parameter may take, by name (a name means the same in every recipe): (lowest, highest),
# inclusive, for each number of a list too; every DOUBLE must be finite. A value outside is refused in one line.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "base_prob_edges": (0, 1), "bootstrap_reps": (1, math.inf), "bootstrap_seed": (0, 2**32 - 1),
    "delta_quantiles": (0, 1), "delta_thresholds": (0, math.inf),
    "edge_fraction": (0, 1), "edge_tokens": (0, math.inf), "entropy_bins": (1, math.inf),
    "fork_quantile": (0, 1), "js_percentiles": (0, 1),
    "js_threshold": (0, math.inf), "js_threshold_high": (0, math.inf), "js_threshold_low": (0, math.inf),
    "js_thresholds": (0, math.inf), "near_zero_js": (0, math.inf), "low_entropy": (0, math.inf),
    "min_occurrences": (1, math.inf), "pass_k": (1, math.inf), "position_bins": (1, math.inf),
    "rank_cutoffs": (1, math.inf), "top_n": (1, math.inf), "top_rank": (1, math.inf), "top_shares": (0, 1),
}


def check_value(recipe: str, name: str, value) -> None:
    """Refuse a parameter value that makes no sense (NaN, pass@0, -5 bins); `value` as DuckDB read it."""
    lo, hi = PARAM_RANGES.get(name, (-math.inf, math.inf))
    for number in value if isinstance(value, list) else [value]:
        if isinstance(number, (int, float)) and not (math.isfinite(number) and lo <= number <= hi):
            allowed = f">= {lo:g}" if math.isinf(hi) else f"from {lo:g} to {hi:g}"
            raise TokenshiftError(f"parameter {name} of recipe {recipe}: {number!r} makes no sense; "
                                  f"use finite numbers {allowed}")


_PARAM = re.compile(
    r"^SET VARIABLE (\w+) = COALESCE\(getvariable\('(\w+)'\), (.+)\)::([A-Z]+(?:\[\])?);\s*$", re.M)
_TABLES = re.compile(r"^-- Tables:\s*(.+)$", re.M)
_SUMMARY = re.compile(r"^-- (\w+): (.+)$")


@dataclass(frozen=True)
class Param:
    name: str
    sql_type: str       # DOUBLE, INTEGER, VARCHAR, DOUBLE[], INTEGER[] ...
    default_sql: str    # the default as written in the recipe

    @property
    def is_list(self) -> bool:
        return self.sql_type.endswith("[]")


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    tables: tuple[str, ...]
    params: dict[str, Param]
    sql: str
    path: Path


def recipe_names() -> list[str]:
    """Every recipe name: the study's analyses in order, then any other .sql files alphabetically."""
    present = {p.stem for p in RECIPE_DIR.glob("*.sql")}
    return [n for n in STUDY_ORDER if n in present] + sorted(present - set(STUDY_ORDER))


def load_recipe(name: str) -> Recipe:
    """Read and parse recipe `name`; an unknown name raises TokenshiftError listing the valid ones."""
    names = recipe_names()
    if name not in names:
        raise TokenshiftError(f"unknown recipe {name!r}; valid recipes: {', '.join(names)}")
    path = RECIPE_DIR / f"{name}.sql"
    return parse_recipe(name, path.read_text(encoding="utf-8"), path)


def bootstrap_defaults() -> tuple[int, int]:
    """(bootstrap_reps, bootstrap_seed) by default: the interval recipes share them (accuracy's are read)."""
    params = load_recipe("accuracy").params
    return int(params["bootstrap_reps"].default_sql), int(params["bootstrap_seed"].default_sql)


def parse_recipe(name: str, sql: str, path: Path | None = None) -> Recipe:
    """Parse a recipe's header (first-line summary, `-- Tables:`) and its SET VARIABLE parameter lines."""
    first = sql.splitlines()[0] if sql else ""
    match = _SUMMARY.match(first)
    if not match or match.group(1) != name:
        raise TokenshiftError(f"recipe {name}: first line must be '-- {name}: <summary>'")
    tables_line = _TABLES.search(sql)
    if not tables_line:
        raise TokenshiftError(f"recipe {name}: header has no '-- Tables:' line")
    tables = tuple(t.strip() for t in tables_line.group(1).split(",") if t.strip())
    params = {}
    for var, var_again, default, sql_type in _PARAM.findall(sql):
        if var != var_again:
            raise TokenshiftError(f"recipe {name}: SET VARIABLE {var} reads getvariable('{var_again}')")
        params[var] = Param(var, sql_type, default.strip())
    return Recipe(name, match.group(2).strip(), tables, params, sql, path or RECIPE_DIR / f"{name}.sql")


@dataclass(frozen=True)
class RecipeDoc:
    """A recipe's header as documentation: what it computes, each parameter's meaning, each output column's."""

    description: str                          # the header's prose between the summary and "Parameters"
    param_meanings: dict[str, str]            # parameter name -> meaning, in the header's order
    rows: str                                 # what one output row is, e.g. "one row per sampler, rl_model"
    columns: tuple[tuple[str, str], ...]      # (column name(s), meaning), in the header's order


_SECTION = re.compile(r"^(Parameters|Tables|Columns)\b")
_PARAM_DOC = re.compile(r"^(\w+)\s+([A-Z]+(?:\[\])?)\s+(.+?)\s{2,}(.+)$")
_COLUMNS_HEAD = re.compile(r"^Columns \((.+)\):$")
_COLUMN = re.compile(r"^(\w+(?:, \w+)*)(?:\s+(.*))?$")


def recipe_doc(recipe: Recipe) -> RecipeDoc:
    """Parse the documentation in recipe's header comment; a header that does not match its SQL raises.

    Every SET VARIABLE parameter must be described in the header's Parameters block with the same type,
    and the header must list its output columns under "-- Columns (one row per ...):".
    """
    header = []
    for line in recipe.sql.splitlines()[1:]:
        if not line.startswith("--"):
            break
        header.append(line[3:] if line.startswith("-- ") else line[2:])
    sections: dict[str, list[str]] = {"description": []}
    current = "description"
    for line in header:
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            sections[current] = [line]
        else:
            sections[current].append(line)
    where = f"recipe {recipe.name} ({recipe.path.name})"

    meanings: dict[str, str] = {}
    for line in sections.get("Parameters", [])[1:]:
        if not line.strip():
            continue
        match = _PARAM_DOC.match(line.strip())
        if line.startswith("     ") and meanings:  # a continuation of the previous parameter's meaning
            last = next(reversed(meanings))
            meanings[last] += " " + line.strip()
        elif match:
            name, sql_type, _default, meaning = match.groups()
            if name in recipe.params and recipe.params[name].sql_type != sql_type:
                raise TokenshiftError(f"{where}: the header gives {name} type {sql_type}, its SET VARIABLE line "
                                      f"{recipe.params[name].sql_type}; make them agree")
            meanings[name] = meaning.strip()
        else:
            raise TokenshiftError(f"{where}: cannot read parameter line {line.strip()!r}; write "
                                  "'--   name   TYPE   default   meaning'")
    if set(meanings) != set(recipe.params):
        raise TokenshiftError(f"{where}: the header's Parameters block lists {sorted(meanings)}, the SET VARIABLE "
                              f"lines {sorted(recipe.params)}; describe each parameter once in the header")

    column_lines = sections.get("Columns", [])
    head = _COLUMNS_HEAD.match(column_lines[0].strip()) if column_lines else None
    if not head:
        raise TokenshiftError(f"{where}: the header has no '-- Columns (one row per ...):' block listing "
                              "the output columns")
    columns: list[list[str]] = []
    indent = None
    for line in column_lines[1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth > indent and columns:  # a continuation of the previous column's meaning
            text = line.strip()
            columns[-1][1] += ("<br>" if text.startswith("'") else " ") + text
            continue
        match = _COLUMN.match(line.strip())
        if not match:
            raise TokenshiftError(f"{where}: cannot read column line {line.strip()!r}; write "
                                  "'--   name[, name ...]   meaning'")
        names, meaning = match.groups()
        columns.append([names.strip(), (meaning or "").strip()])
    description = "\n".join(sections["description"]).strip()
    return RecipeDoc(description, meanings, head.group(1), tuple((n, m.strip()) for n, m in columns))
