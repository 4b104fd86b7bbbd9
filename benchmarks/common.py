"""Shared helpers of the benchmarks: peak memory, interleaved best-of-N timing, isolated runs, tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

GIB, MIB = 2**30, 2**20


def _proc_status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def resident_bytes() -> int:
    """This process's resident memory now."""
    return _proc_status_kib("VmRSS") * 1024


class PeakMemory:
    """Peak memory above the level at `start()`.

    CPU: the kernel's resident-set high-water mark (VmHWM), reset to the current resident size by
    writing 5 to /proc/self/clear_refs (Linux), minus that resident size. Torch CPU allocations
    are not tracked by torch, and every array over a few MiB is its own mapping, so this sees
    them all. CUDA: torch.cuda.max_memory_allocated minus the allocated bytes at the start.
    """

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.base = 0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.base = resident_bytes()

    def peak(self) -> int:
        """Bytes above the start level at the highest point since `start()`."""
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return _proc_status_kib("VmHWM") * 1024 - self.base


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_of(calls: dict[str, object], repeats: int, device: str) -> dict[str, float]:
    """Best wall time of each zero-argument call; calls interleaved so noise hits all alike."""
    best = {name: float("inf") for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            sync(device)
            start = time.perf_counter()
            call()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def run_isolated(script: str, args: list[str], timeout: float = 1800) -> dict:
    """Run `script args` in a fresh Python process; its last stdout line is a JSON result."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain fixed-width table (right-aligned numbers)."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells) -> str:
        return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def machine_line(device: str) -> str:
    """Device, threads and load: timings on a shared machine are only comparable within one run."""
    if device.startswith("cuda"):
        return f"device {torch.cuda.get_device_name()} | torch {torch.__version__}"
    load = os.getloadavg()[0]
    return (f"device cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
            f"load average {load:.1f}) | torch {torch.__version__}")
