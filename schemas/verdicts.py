"""Remembered sha256 verdicts of a build's parts, so readers verify each part once, not on every query.

A verdict is stored outside the build (a published version is never written to), under the user's
cache folder, and keyed by the part's path, size, modification and status-change times (ns), inode
and device: any write to the part changes at least its ctime, which no user can set back, so the next
read hashes it again. A verdict is recorded only when the part's stat is the same after hashing as
before, and only for a match: a mismatch is refused every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tokenshift.runtime.files import write_json_atomic

CACHE_ENV = "TOKENSHIFT_CACHE_DIR"  # where verdicts live (default $XDG_CACHE_HOME/tokenshift or ~/.cache/tokenshift)


def cache_dir() -> Path:
    """The folder of tokenshift's remembered verdicts."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenshift"


def stat_key(path: Path) -> list[int]:
    """What a verdict is keyed by, besides the path: size, mtime, ctime (ns), inode, device."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class Verdicts:
    """The remembered verdicts of one build folder (one small JSON file), loaded once and saved once."""

    def __init__(self, root: Path):
        root = Path(root).resolve()
        self.root = root.as_posix()
        self.file = cache_dir() / "verified" / f"{hashlib.sha256(self.root.encode()).hexdigest()[:32]}.json"
        self.known: dict[str, dict] = {}
        self.changed = False
        try:
            loaded = json.loads(self.file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and loaded.get("root") == self.root and isinstance(loaded.get("parts"), dict):
                self.known = loaded["parts"]
        except (OSError, ValueError):
            pass  # no verdicts yet, or unreadable ones: every part is hashed

    def vouches(self, rel: str, path: Path, sha256: str) -> bool:
        """True when `path` was verified to have `sha256` and has not been touched since."""
        entry = self.known.get(rel)
        try:
            return isinstance(entry, dict) and entry.get("sha256") == sha256 and entry.get("stat") == stat_key(path)
        except OSError:
            return False

    def remember(self, rel: str, sha256: str, stat: list[int], path: Path) -> None:
        """Record a match found by hashing, unless the part changed while it was hashed."""
        try:
            if stat_key(path) != stat:
                return
        except OSError:
            return
        self.known[rel] = {"sha256": sha256, "stat": stat}
        self.changed = True

    def save(self) -> None:
        """Write the verdicts atomically; a cache folder that cannot be written only costs rehashing."""
        if not self.changed:
            return

        try:
            write_json_atomic(self.file, {"root": self.root, "parts": self.known})
        except OSError:
            pass
        self.changed = False
