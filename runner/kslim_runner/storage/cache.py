"""Where downloads live, and how a complete one is recognised.

A download is written under a temporary name and renamed into place; a JSON marker written after the
rename records what it is (ETag and size, or sha256). A retried pod that finds file and matching
marker uses it without downloading again; a pod killed mid-download leaves only temp files, which
the next attempt overwrites.

The root is $KSLIM_CACHE_DIR, else $XDG_CACHE_HOME/kslim/downloads (in a pod: the scratch volume,
which outlives container restarts; mount a volume at $KSLIM_CACHE_DIR to share it across pods).
"""

from __future__ import annotations

import hashlib
import json
import os
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
