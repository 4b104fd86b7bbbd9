"""The recipe files: names, header summary, required tables and parameters parsed from each .sql."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tokenshift.errors import TokenshiftError

RECIPE_DIR = Path(__file__).resolve().parent

# The study's analyses in reading order; any other .sql file in RECIPE_DIR follows alphabetically.
STUDY_ORDER = (
    "js_distribution", "entropy_vs_divergence", "position_concentration", "reranking",
    "mass_reallocation", "divergent_tokens", "accuracy", "cross_sampling_curve", "criteria_comparison",
    "study_table", "evolution",
)

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
