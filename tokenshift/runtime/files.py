"""Writing files safely: atomic replacement, one-line OS errors naming the path and free space, leftover cleanup."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError

# Names of temporaries and staging folders; each carries the pid (and host, for temporaries, which
# Ray workers on other nodes also write) of the process that made it, so a later run can tell the
# leftovers of a killed process (pid gone on this host) from a live writer's.
_LEFTOVER = re.compile(r"^\..+\.tmp-(\d+)(?:@([^/]+))?$|^\.publish-.+-p(\d+)-[^-/]+$|^\..+\.merging-(\d+)$")
_HOST = socket.gethostname().replace("/", "_")


def temp_path(path: Path) -> Path:
    """The hidden temporary beside `path` that this process writes before renaming it into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}@{_HOST}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` in one rename, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # a failed write() names no file: name the one being written
            raise with_path(err, path) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def with_path(err: OSError, path: str | os.PathLike) -> OSError:
    """`err` naming `path` (write() and pyarrow's writers report no file name; errno parsed from the text)."""
    code = err.errno
    if code is None:
        found = re.search(r"errno (\d+)", str(err), re.I)
        code = int(found.group(1)) if found else None
    reason = os.strerror(code) if code else (err.strerror or str(err))
    return type(err)(code, reason, os.fspath(path)) if code else OSError(errno.EIO, reason, os.fspath(path))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically: a reader sees the old file or the whole new one."""
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload) -> Path:
    """`payload` as indented JSON, written atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def free_space(path: str | os.PathLike) -> str:
    """Free space on the disk holding `path` (its nearest existing ancestor), e.g. '1.2 GiB'."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"


def describe_os_error(err: OSError) -> str:
    """One line for an OS error: what failed on which path, free space, and that finished work is kept."""
    path = err.filename
    reason = err.strerror or str(err) or type(err).__name__
    if path is None:  # never guess a path (nor the free space of another disk)
        return (f"{reason} (the operating system named no file): check the disk of the output folder, "
                "then rerun the same command (finished parts are kept and resumed)")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space"
    elif err.errno == errno.EFBIG:
        fix = "raise the file-size limit (ulimit -f)"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable (or choose another folder)"
    else:
        fix = "fix the cause"
    return (f"{reason}: {path} ({free_space(path)} free on that disk): {fix}, then rerun the same command "
            "(finished parts are kept and resumed)")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Remove temporaries and staging folders under `folder` left by a killed process; returns what went."""
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(".*") if recursive else root.glob(".*")
    removed = []
    for path in list(candidates):
        match = _LEFTOVER.match(path.name)
        if not match:
            continue
        pid_text, host = match.group(1) or match.group(3) or match.group(4), match.group(2)
        if (host is not None and host != _HOST) or _pid_alive(int(pid_text)):
            continue  # another host's process cannot be checked from here; a live one is writing
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def refuse_symlinks(folder: Path, names) -> None:
    """Refuse (before anything is deleted) when a name under `folder` is a symbolic link: deleting would follow it."""
    for name in names:
        path = folder / name
        if path.is_symlink():
            raise TokenshiftError(f"{path} is a symbolic link: tokenshift never deletes through links; "
                                  "replace it with a real folder or choose another --out")
