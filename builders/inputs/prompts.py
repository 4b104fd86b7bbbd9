"""Turn a benchmark row into its question (optional template), and a question into the exact prompt text."""

from __future__ import annotations

import re
import string

from tokenshift.runtime.errors import TokenshiftError

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def format_prompt(tokenizer, question: str, instruction: str = DEFAULT_INSTRUCTION,
                  use_chat_template: bool = True) -> str:
    """Question + instruction through the tokenizer's chat template, or a plain template without one."""
    content = f"{question.strip()}\n{instruction}" if instruction else question.strip()
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    return f"Question: {content}\nAnswer: "


CHOICES_SPEC = "choices"  # `{options:choices}` in a question template: a list or dict as "(A) …" lines
MAX_CHOICES = 26  # a list's options are lettered A to Z
_LETTERED = re.compile(r"\(?([A-Z])[).:]")


class _RowFormatter(string.Formatter):
    """str.format over one benchmark row: plain field names only, and the `choices` format spec."""

    def get_field(self, field_name, args, kwargs):
        if field_name not in kwargs:
            raise KeyError(field_name)
        return kwargs[field_name], field_name

    def format_field(self, value, format_spec):
        if format_spec == CHOICES_SPEC:
            return choices_text(value)
        return super().format_field(value, format_spec)


def choices_text(options) -> str:
    """Multiple-choice options as lines "(A) …", "(B) …"; options already lettered ("A)21") stay as given;
    a dict {"A": …, "B": …} gives its keys as the letters, in its order."""
    if not options and isinstance(options, (dict, list)):
        raise ValueError("0 options: a multiple-choice row needs at least one; fix the row")
    if isinstance(options, dict):
        return "\n".join(f"({str(key).strip()}) {str(value).strip()}" for key, value in options.items())
    if not isinstance(options, list):
        raise TypeError(f"{{…:{CHOICES_SPEC}}} needs a list or a dict of options, got {type(options).__name__}")
    if len(options) > MAX_CHOICES:
        raise ValueError(f"{len(options)} options: a multiple-choice row needs 1 to {MAX_CHOICES} (lettered A-Z); "
                         "fix the row, or give the options as a dict keyed by their labels")
    letters = [chr(ord("A") + i) for i in range(len(options))]
    text = [str(o).strip() for o in options]
    if all((m := _LETTERED.match(t)) and m.group(1) == letter for t, letter in zip(text, letters)):
        return "\n".join(text)
    return "\n".join(f"({letter}) {t}" for letter, t in zip(letters, text))


def check_template(template: str) -> None:
    """Reject a question template that cannot name row fields (bad braces, `{}`, `{0}`, `{a.b}`, `{a[0]}`)."""
    fix = "use {Field} for a row field and {{ }} for a literal brace"
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise TokenshiftError(f"--question-template {template!r} is not a valid template ({err}): {fix}") from None
    bad = [n for n in names if not n or n.isdigit() or "." in n or "[" in n]
    if bad or not names:
        what = f"field {bad[0]!r} is not a plain field name" if bad else "it names no field"
        raise TokenshiftError(f"--question-template {template!r}: {what}: {fix}")


def render_question(template: str, record: dict, where: str) -> str:
    """The question text of one benchmark row: `template` with the row's fields filled in."""
    try:
        return _RowFormatter().format(template, **record)
    except KeyError as err:
        raise TokenshiftError(f"{where}: --question-template field {err.args[0]!r} not found "
                              f"(fields: {', '.join(record)}): fix --question-template") from None
    except (TypeError, ValueError) as err:
        raise TokenshiftError(f"{where}: --question-template {template!r} does not fit the row ({err}): "
                              "fix --question-template") from None
