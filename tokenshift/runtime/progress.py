"""Progress of long steps: tqdm bars on a terminal; in a log (stderr not a terminal), plain lines.

A log cannot hold redrawn bars (carriage returns, cursor-control codes, nested bars), so there an
outer bar prints one line per update (a shard, a step) and a nested one (`leave=False`) prints one
summary line when it closes.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def interactive() -> bool:
    """Progress goes to a terminal (or a notebook), where tqdm's redrawn bars belong."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
                 leave: bool = True, disable: bool = False):
    """tqdm's bar on a terminal, else a `LineProgress` with the same update / set_postfix / close / iteration."""
    if disable or interactive():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable)
    return LineProgress(iterable, total, desc, unit, nested=not leave)


class LineProgress:
    """Plain-line progress: `desc: n/total unit (elapsed)` per update, or one line at close when nested."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
                 nested: bool = False):
        self.iterable, self.desc, self.unit, self.nested = iterable, desc, unit, nested
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.n, self.postfix, self.closed, self.start = 0, "", False, time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.nested:
            self._print(f"{self.n}/{self.total}" if self.total is not None else str(self.n))

    def close(self) -> None:
        if self.nested and not self.closed:
            self._print(str(self.n))
        self.closed = True

    def _print(self, count: str) -> None:
        postfix = f", {self.postfix}" if self.postfix else ""
        line = f"{self.desc}: {count} {self.unit} ({time.monotonic() - self.start:.1f} s{postfix})"
        print(line, file=sys.stderr, flush=True)
