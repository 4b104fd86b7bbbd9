"""The token meter: decoded tokens against a plan's bound while a run decodes, with an ETA.

The decoders report each batch (`record_decoded`); a command wraps its run in `run_planned`,
which prints the plan when the shards start, the estimate after the first batch, and the measured
speed at the end. One meter is active per process (Ray workers report nothing here).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm.auto import tqdm

from tokenshift.runtime.progress import interactive


def format_seconds(seconds: float) -> str:
    """'3 d 4 h', '2 h 05 min', '4 min 10 s' or '12.3 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days} d {h} h"
    if hours:
        return f"{hours} h {m:02d} min"
    return f"{m} min {s:02d} s"


_METER: "Meter | None" = None


@dataclass
class Meter:
    """Decoded tokens against a plan's bound: a progress bar with an ETA, one estimate after the first batch."""

    bound: int
    echo: Callable[[str], None]
    bar: object = None
    decoded: int = 0
    started: float | None = None
    plan_lines: tuple[str, ...] = ()  # printed once, when the work starts (after the run's own checks)

    def announce(self) -> None:
        for line in self.plan_lines:
            self.echo(line)
        self.plan_lines = ()

    def add(self, tokens: int, seconds: float) -> None:
        self.announce()
        first = self.started is None
        if first:  # the clock starts when the first batch started decoding (model loading excluded)
            self.started = time.perf_counter() - seconds
        self.decoded += tokens
        if self.bar is not None:
            self.bar.update(tokens)
        if first and tokens and seconds > 0:
            rate = tokens / seconds
            self.echo(f"first batch: {tokens:,} decoded tokens in {seconds:.1f} s = {rate:,.0f} tokens/s; "
                      f"at this speed the <= {self.bound:,} decoded tokens take <= "
                      f"{format_seconds(self.bound / rate)}")

    def rate(self) -> float:
        """Decoded tokens per wall second since the first batch started (0 before any)."""
        elapsed = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.decoded / elapsed if elapsed > 0 else 0.0


def work_starts() -> None:
    """The run passed its checks and starts its shards: the active meter prints its plan now."""
    if _METER is not None:
        _METER.announce()


def record_decoded(tokens: int, seconds: float) -> None:
    """Report a decoded batch (tokens sampled, seconds it took) to the active meter, if any."""
    if _METER is not None:
        _METER.add(tokens, seconds)


@contextmanager
def metering(plan, echo: Callable[[str], None], progress: bool = True,
             plan_lines: tuple[str, ...] = ()) -> Iterator[Meter]:
    """Meter the decoded tokens of the block (this process only: Ray workers report nothing here).

    On a terminal a bar of decoded tokens against the bound shows the ETA; a log gets the
    first-batch estimate and the final count as plain lines instead (tokenshift.runtime.progress).
    """
    global _METER
    bar = None
    if progress and interactive():
        bar = tqdm(total=plan.decoded_bound, desc="decoded tokens (bound)", unit="tok", unit_scale=True,
                   leave=False)
    meter = Meter(plan.decoded_bound, echo, bar, plan_lines=plan_lines)
    previous, _METER = _METER, meter
    try:
        yield meter
    finally:
        _METER = previous
        if bar is not None:
            bar.close()


def say(line: str) -> None:
    """A line beside the progress output (stderr, in order with it; tqdm bars are redrawn below it)."""
    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


def run_planned(plan, run: Callable[[], object], tokens_per_second: float | None = None,
                progress: bool = True, echo: Callable[[str], None] = say):
    """Run `run()` metered: the plan is printed when its shards start (so a refusal stays one line),
    the estimate after the first batch, then the decoded tokens and the measured speed."""
    say = echo if progress else (lambda _line: None)
    with metering(plan, say, progress, tuple(plan.lines(tokens_per_second))) as meter:
        result = run()
    if meter.decoded:
        say(f"decoded {meter.decoded:,} tokens (plan bound {plan.decoded_bound:,}) at {meter.rate():,.0f} "
            "decoded tokens/s")
    return result
