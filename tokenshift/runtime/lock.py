"""One writer per build folder: an advisory lock (flock) the kernel drops when its holder dies.

A lock left by a killed process is therefore never in force: the next run takes it over at once
and overwrites the holder line. Readers that must not see a build change under them take it shared.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError

WORK_DIR = ".tokenshift"
LOCK_NAME = "lock"


def lock_path(folder: str | os.PathLike, name: str = LOCK_NAME) -> Path:
    return Path(folder) / WORK_DIR / name


def _holder(what: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return f"pid {os.getpid()} on {socket.gethostname()} ({what}, since {stamp} UTC)"


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str, shared: bool = False, wait: bool = False,
                name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the folder's lock (exclusive, or shared with other readers) for the `with` block.

    Refuses at once with a one-line error naming the holder when another process holds it
    (unless `wait`, for short critical sections such as a manifest update).
    """
    path = lock_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise TokenshiftError(f"{folder} is in use by {holder}: wait for it to finish or stop it, "
                                  "then rerun (a killed holder's lock is released automatically)") from None
        os.ftruncate(fd, 0)  # shared holders too: the line names whoever came last
        os.pwrite(fd, (_holder(what) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
