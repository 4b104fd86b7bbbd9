"""The documentation: generated reference pages match the code, links resolve, the README's commands are CI's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from tokenshift.cli import cli
from tokenshift.docs import REFERENCE_DIR, cli_page, generate, recipes_page, stale_pages, tables_page
from tokenshift.queries.recipes import load_recipe, parse_recipe, recipe_doc, recipe_names
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.tables import TABLE_FIELDS

ROOT = Path(__file__).resolve().parent.parent


def test_committed_reference_pages_are_what_the_code_generates():
    stale = stale_pages(ROOT)
    assert not stale, (f"{', '.join(str(REFERENCE_DIR / n) for n in stale)} differ from the code: "
                       "run `python -m tokenshift.docs` and commit the pages")


def test_cli_page_lists_every_command_and_option_and_follows_a_new_one(monkeypatch):
    page = cli_page()
    def walk(group, path):
        for name, command in group.commands.items():
            yield f"{path} {name}", command
            if isinstance(command, click.Group):
                yield from walk(command, f"{path} {name}")
    for name, command in walk(cli, "tokenshift"):
        assert f"## {name}\n" in page
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(f"`{opt}" in page for opt in param.opts), (name, param.opts)
    # an option added to a command appears on the page without any other change
    build = cli.commands["build"]
    extra = click.Option(["--brand-new-flag"], type=int, default=7, help="A flag no page names yet.")
    monkeypatch.setattr(build, "params", [*build.params, extra])
    updated = cli_page()
    assert "| `--brand-new-flag INTEGER` | `7` | A flag no page names yet. |" in updated


def test_tables_page_has_every_column_with_type_unit_and_valid_values():
    page = tables_page()
    for table, fields in TABLE_FIELDS.items():
        section = page.split(f"## {table}\n", 1)[1].split("\n## ", 1)[0]
        for f in fields:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{f.name}` |"))
            assert f"`{f.type}`" in row and (f.unit or "–") in row
    js = next(line for line in page.splitlines() if line.startswith("| `js` |"))
    assert js.split(" | ")[2:4] == ["nats", "[0, ln 2]"]
    assert "&lt;sampler&gt;" not in page and "'&lt;sampler>/" in page  # no column text read as an HTML tag


def test_a_new_column_appears_on_the_tables_page(monkeypatch):
    import pyarrow as pa

    from tokenshift.schemas import tables

    new = tables.Field("margin", pa.float32(), "logp_rl - logp_base of the sampled token", True,
                       low=-10.0, unit="nats")
    monkeypatch.setitem(tables.TABLE_FIELDS, "tokens", (*tables.TOKENS, new))
    assert "| `margin` | `float` | nats | >= -10 | yes | logp_rl - logp_base of the sampled token |" in tables_page()


def test_recipes_page_documents_every_parameter_and_column_of_every_recipe():
    page = recipes_page()
    for name in recipe_names():
        recipe = load_recipe(name)
        section = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for param in recipe.params.values():
            assert f"| `{param.name}` | `{param.sql_type}` |" in section
        assert recipe_doc(recipe).columns and "| column | meaning |" in section


def test_a_recipe_header_that_does_not_match_its_sql_is_refused():
    sql = load_recipe("divergent_tokens").sql
    undocumented = sql.replace("--   top_n            INTEGER  50    tokens listed per rl_model\n", "")
    with pytest.raises(TokenshiftError, match=r"describe each parameter once in the header"):
        recipe_doc(parse_recipe("divergent_tokens", undocumented))
    retyped = sql.replace("--   top_n            INTEGER", "--   top_n            DOUBLE ")
    with pytest.raises(TokenshiftError, match=r"the header gives top_n type DOUBLE"):
        recipe_doc(parse_recipe("divergent_tokens", retyped))
    without_columns = sql.replace("-- Columns (one row per rl_model, token):", "-- Output:")
    with pytest.raises(TokenshiftError, match=r"no '-- Columns \(one row per \.\.\.\):' block"):
        recipe_doc(parse_recipe("divergent_tokens", without_columns))


def test_generation_is_deterministic():
    assert generate() == generate()


# ---------------------------------------------------------------- links

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file: lowercase, punctuation dropped, spaces to hyphens."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _broken_links(pages: list[Path], root: Path) -> list[str]:
    """Relative links and images in pages whose file, or whose heading anchor in a markdown file, is missing."""
    broken = []
    for page in pages:
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked offline
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(root)}: {target} (no heading with that anchor)")
    return broken


def test_every_relative_link_and_image_resolves():
    broken = _broken_links(_markdown_files(), ROOT)
    assert not broken, "\n".join(broken)


def test_the_link_check_catches_missing_files_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# The `other` page\n\n## Step 2: run it\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [ok](other.md#the-other-page) [ok](other.md#step-2-run-it)\n"
                    "[gone](missing.md) ![img](none.png) [bad](other.md#nope) [web](https://x.org/a.md)\n"
                    "```\n[in code](not-checked.md)\n```\n", encoding="utf-8")
    assert _broken_links([page], tmp_path) == ["page.md: missing.md (no such file)",
                                               "page.md: none.png (no such file)",
                                               "page.md: other.md#nope (no heading with that anchor)"]


# ---------------------------------------------------------------- the README's two commands

def _readme_quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def _ci_commands(marker: str) -> list[str]:
    """The command lines .ci/run runs right after each comment line `marker`."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [ci[i + 1].strip() for i, line in enumerate(ci) if line.strip() == marker]


def test_the_readme_commands_are_the_ones_ci_runs():
    demo, tests = _readme_quick_start()
    test_runs = _ci_commands("# The README's test command:")
    # in a clean clone; then in place, only the tests that skipped there for lack of ../shared
    assert test_runs == [f'(cd "$clean/repo" && {tests})', f"{tests} -m real_benchmarks"]
    assert _ci_commands("# The README's demo command:") == [f'(cd "$clean/repo" && {demo})']
    # the demo installs the package as the tests do, then runs a command the CLI accepts
    install, run = demo.split(" && ")
    assert install == tests.split(" && ")[0].replace(' -e ".[test]"', " -e .")
    argv = shlex.split(run)
    assert argv[0] == "tokenshift" and argv[1] in cli.commands
    ctx = cli.commands[argv[1]].make_context(argv[1], argv[2:])  # a usage error raises here
    assert ctx.params["out"] is not None


def test_only_the_marked_fixture_reaches_the_shared_folder():
    """CI runs just `-m real_benchmarks` beside ../shared, so a test reaching that folder any other way
    would run nowhere with the files present."""
    path_literal = re.compile(r"""["']shared["']\s*/|/\s*["']shared["']|["']\.\./""" + "shared")
    reaching = [f"{p.name}:{n}" for p in sorted((ROOT / "tests").glob("*.py")) if p.name != "conftest.py"
                for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if path_literal.search(line)]
    assert reaching == []
    for sample in ["ROOT.parent / " + '"shared"', '"../' + 'shared/benchmarks"']:  # the pattern does match
        assert path_literal.search(sample)
