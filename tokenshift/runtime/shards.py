"""Shards of prompts with per-shard completion markers, so any run can stop and resume.

The pattern of datatrove's executors: work is cut into fixed shards; a step writes its output
atomically, then a marker; a rerun skips marked shards. Which process runs which shard (one
process, `--shard I/N`, Ray) changes nothing in the output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import write_json_atomic
from tokenshift.runtime.lock import WORK_DIR


@dataclass(frozen=True)
class ShardSpec:
    """This process runs shards k with k % count == index."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "ShardSpec":
        if not text:
            return cls()
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise TokenshiftError(f"--shard {text!r} is not I/N: write e.g. --shard 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise TokenshiftError(f"--shard {text}: need 0 <= I < N, e.g. --shard 0/4")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, shard: int) -> bool:
        return shard % self.count == self.index


def shard_ranges(n_items: int, shard_size: int) -> list[range]:
    """Consecutive blocks of `shard_size` item indices; the partition depends on nothing else."""
    return [range(lo, min(lo + shard_size, n_items)) for lo in range(0, n_items, shard_size)]


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def marker(out: Path, step: str, shard: int) -> Path:
    return out / WORK_DIR / "done" / f"{step}-{shard:05d}"


def is_done(out: Path, step: str, shard: int) -> bool:
    return marker(out, step, shard).exists()


def mark_done(out: Path, step: str, shard: int, files: dict[str, dict] | None = None) -> None:
    """Mark a shard's step done, recording {relpath: sha256/bytes/rows} of the parts it wrote."""
    write_json_atomic(marker(out, step, shard), {"files": files or {}})


def recorded_files(out: Path, step: str, shard: int) -> dict[str, dict]:
    """The parts a done step recorded for a shard, as written; empty for a marker without a record."""
    try:
        record = json.loads(marker(out, step, shard).read_text(encoding="utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise TokenshiftError(f"{marker(out, step, shard)} is damaged: delete it and rerun the same "
                              "command (that shard is redone)") from None
    files = record.get("files") if isinstance(record, dict) else None
    return files if isinstance(files, dict) else {}
