"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class TokenshiftError(Exception):
    """Bad input or an unmet precondition; the message names the problem and the fix."""
