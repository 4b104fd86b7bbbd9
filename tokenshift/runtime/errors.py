"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class TokenshiftError(Exception):
    """Bad input or an unmet precondition; the message names the problem and the fix."""


def warn(message: str) -> None:
    """A one-line warning on stderr (the run goes on)."""
    import sys

    print(f"Warning: {message}", file=sys.stderr)


def either(values) -> str:
    """'a or b', 'a, b or c': the allowed values as a message's fix lists them."""
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
