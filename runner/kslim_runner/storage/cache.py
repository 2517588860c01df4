"""Where downloads live, and how a complete one is recognised.

A download is written under a temporary name and renamed into place; a JSON marker written after the
rename records what it is (ETag and size, or sha256). A retried pod that finds file and matching
marker uses it without downloading again; a pod killed mid-download leaves only temp files, which
the next attempt overwrites. A folder (an s3:// prefix) is assembled in a staging folder and renamed
into place whole, under a lock per folder, with one marker listing its objects.

The root is $KSLIM_CACHE_DIR, else $XDG_CACHE_HOME/kslim/downloads (in a pod: the scratch volume,
which outlives container restarts; mount a volume at $KSLIM_CACHE_DIR to share it across pods).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "KSLIM_CACHE_DIR"
MARKER_SUFFIX = ".kslim-complete"


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kslim" / "downloads"


def key_of(*parts: str) -> str:
    """A short, filesystem-safe name for a remote location (endpoint, URL...)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def marker_path(path: Path) -> Path:
    """Markers live in a tree of their own, so a cached folder (images, a config tree, a model)
    holds exactly the bucket's files."""
    root = cache_root()
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.with_name(path.name + MARKER_SUFFIX)
    return root / ".markers" / rel.parent / (rel.name + MARKER_SUFFIX)


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of a complete download at path, or None (missing, half-written, or file gone)."""
    try:
        meta = json.loads(marker_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not path.exists():
        return None
    return meta


def write_marker(path: Path, meta: dict[str, Any]) -> None:
    m = marker_path(path)
    m.parent.mkdir(parents=True, exist_ok=True)
    tmp = m.with_name(f".{m.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, sort_keys=True))
    os.replace(tmp, m)


def temp_path(path: Path) -> Path:
    """A sibling temp name (same filesystem, so the final rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def drop_marker(path: Path) -> None:
    marker_path(path).unlink(missing_ok=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds the lock of a folder being fetched: a second fetch of it (another thread, or a pod sharing
    the cache) waits, then finds it complete. The kernel releases it when a killed process exits."""
    lock = cache_root() / ".locks" / key_of(str(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def staging_dir(path: Path) -> Path:
    """An empty folder to assemble path in, outside the mirrored tree (readers never see it) and on the
    cache's filesystem (the final rename is atomic). Call under `locked(path)`: whatever is there is
    left by a killed fetch."""
    stage = cache_root() / ".staging" / key_of(str(path))
    remove(stage)
    stage.mkdir(parents=True)
    return stage


def install_dir(stage: Path, path: Path) -> None:
    """Moves a finished staging folder to path in one rename; what path held before is removed after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = stage.with_name(stage.name + ".old")
    remove(old)
    if path.exists() or path.is_symlink():
        os.replace(path, old)
    os.replace(stage, path)
    remove(old)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
