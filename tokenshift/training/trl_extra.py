"""TRL is an optional dependency (the `train` extra): import it with a one-line fix when missing."""

from __future__ import annotations

from tokenshift.runtime.errors import TokenshiftError

INSTALL_HINT = "pip install 'tokenshift[train]'"


def require_trl():
    """The `trl` module, or a TokenshiftError naming the extra that installs it."""
    try:
        import trl
    except ImportError as err:
        raise TokenshiftError(f"this command needs TRL, which is not installed ({err.name}); "
                              f"run: {INSTALL_HINT}") from None
    return trl
