"""Named gold transforms (`--gold-transform`): rewrite golds math-verify misreads into forms it reads.

Each rule is a plain string function; `sci-notation` and `strip-unit` rewrite answers too (the same rule
on both sides), the option-index rules only golds. A rule leaves a string it does not apply to unchanged.
"""

from __future__ import annotations

import re

from tokenshift.runtime.errors import TokenshiftError

SCI_NOTATION = "sci-notation"
STRIP_UNIT = "strip-unit"
OPTION_INDEX0 = "option-index0"
OPTION_INDEX1 = "option-index1"
GOLD_TRANSFORMS = (SCI_NOTATION, STRIP_UNIT, OPTION_INDEX0, OPTION_INDEX1)
ANSWER_TRANSFORMS = (SCI_NOTATION, STRIP_UNIT)  # rules applied to the extracted answer as well

MEANING = {  # the card's and the help's words for each rule
    SCI_NOTATION: "scientific e-notation written as a power of ten (`4.5e33` -> `4.5 \\times 10^{33}`), "
                  "in golds and answers",
    STRIP_UNIT: "a trailing unit or parenthesised note after a number dropped (`9 (apples)` -> `9`, "
                "`30 km/h` -> `30`), in golds and answers",
    OPTION_INDEX0: "an option index counted from 0 written as its letter (`2` -> `C`), in golds",
    OPTION_INDEX1: "an option index counted from 1 written as its letter (`2` -> `B`), in golds",
}

_SCI = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_NUMBER = r"[+-]?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?%?"
_NOTE = re.compile(rf"^({_NUMBER})\s*\([^()]*[^\W\d_][^()]*\)$")
# a unit: words of two letters or more (km/h, m^2, apples), or one \text{}/\mathrm{}/\mbox{} group
_UNIT = re.compile(rf"^({_NUMBER})(?:\s+|~)(?:[^\W\d_]{{2,}}(?:[ /^.]+[^\W_]+)*\.?"
                   r"|\\(?:text|mathrm|mbox|textrm)\s*\{[^{}]*\})$")
_LETTERED = re.compile(r"^\(?([A-Z])\)")
_LETTER = re.compile(r"^[A-Z]$")


def check_transforms(names) -> tuple[str, ...]:
    """The rules as a tuple in the order given; a one-line error for an unknown rule or both index rules."""
    if isinstance(names, str) or not isinstance(names, list | tuple) and names is not None:
        raise TokenshiftError(f"gold transforms must be a list of rule names (got {names!r}): use "
                              f"{', '.join(GOLD_TRANSFORMS)}")
    names = tuple(names or ())
    if not all(isinstance(n, str) for n in names):
        raise TokenshiftError(f"gold transforms must be rule names (got {names!r})")
    unknown = [n for n in names if n not in GOLD_TRANSFORMS]
    if unknown:
        raise TokenshiftError(f"unknown --gold-transform {unknown[0]!r}: use {', '.join(GOLD_TRANSFORMS)}")
    if OPTION_INDEX0 in names and OPTION_INDEX1 in names:
        raise TokenshiftError(f"--gold-transform {OPTION_INDEX0} and {OPTION_INDEX1} both given: the options "
                              "are counted from 0 or from 1, pass the one that fits the file")
    if len(set(names)) != len(names):
        raise TokenshiftError(f"--gold-transform {next(n for n in names if names.count(n) > 1)} given twice: "
                              "pass each rule once")
    return names


def sci_notation(text: str) -> str:
    """`4.5e33` -> `4.5 \\times 10^{33}`, `1.2E-07` -> `1.2 \\times 10^{-7}` (math-verify reads e as Euler's e)."""
    return _SCI.sub(lambda m: f"{m.group(1)} \\times 10^{{{int(m.group(2))}}}", text)


def strip_unit(text: str) -> str:
    """A number followed by a unit or a parenthesised note, as the number alone; anything else unchanged."""
    stripped = text.strip()
    match = _NOTE.match(stripped) or _UNIT.match(stripped)
    return match.group(1) if match else text


def option_letter(text: str, first: int) -> str:
    """An option index (a whole number counted from `first`) as its letter; other text unchanged."""
    stripped = text.strip()
    if not stripped.isdigit():
        return text
    index = int(stripped) - first
    if not 0 <= index < 26:
        raise ValueError(f"option index {stripped} has no letter (options counted from {first})")
    return chr(ord("A") + index)


def apply(text: str, names, side: str = "gold") -> str:
    """`text` through the rules `names` in order; side 'answer' applies only ANSWER_TRANSFORMS."""
    for name in names:
        if side == "answer" and name not in ANSWER_TRANSFORMS:
            continue
        if name == SCI_NOTATION:
            text = sci_notation(text)
        elif name == STRIP_UNIT:
            text = strip_unit(text)
        elif name in (OPTION_INDEX0, OPTION_INDEX1):
            text = option_letter(text, 0 if name == OPTION_INDEX0 else 1)
    return text


def choice_answer(answer: str, gold: str) -> str:
    """`A)` or `A) 21` (an option as printed) as the letter `A` when the gold is one letter; else unchanged."""
    if not _LETTER.match(gold.strip()):
        return answer
    match = _LETTERED.match(answer.strip())
    return match.group(1) if match else answer
