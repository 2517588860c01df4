"""Resolve the URIs of a job file to local paths.

pvc://claim/path -> $KSLIM_PVC_ROOT/claim/path (the operator mounts each claim at /mnt/pvc/<claim>,
kslim_api.contract);
file:///abs or file://rel -> a path; a bare path is taken relative to the job file's folder;
s3:// and http(s):// -> their copy in the download cache, through `remote` (kslim_runner.storage).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kslim_api import pretrained
from kslim_api.contract import (
    DOTDOT_MESSAGE,
    FILE_SCHEME,
    PVC_ROOT,
    PVC_ROOT_ENV,
    PVC_SCHEME,
    Reason,
    has_dotdot,
    is_remote,
    parse_pvc_uri,
    redact,
)

from kslim_runner.errors import UserError
from kslim_runner.pretrained import pretrained_path


def pvc_root() -> Path:
    """Where the claims are mounted: $KSLIM_PVC_ROOT (a local run points it at a folder)."""
    return Path(os.environ.get(PVC_ROOT_ENV) or PVC_ROOT)


def _inside(path: Path, root: Path) -> bool:
    """Whether path, with `.` and `..` folded (no I/O), is root or under it."""
    folded, top = os.path.normpath(path), os.path.normpath(root)
    return folded == top or folded.startswith(top.rstrip(os.sep) + os.sep)


def resolve_uri(uri: str, base_dir: Path, *, what: str = "path", remote: Any = None) -> Path:
    """Map a job-file URI to a local path. Relative paths are relative to base_dir. s3:// and
    http(s):// are downloaded by `remote` (kslim_runner.storage.fetch.Remote), else refused.

    The schema already refuses `..` segments; this refuses them again (a job file may not have been
    validated by this version), so a pvc:// path never leaves its claim's folder, locally included."""
    if has_dotdot(uri):
        raise UserError(f"{what}: {redact(uri)!r} {DOTDOT_MESSAGE}", reason=Reason.INVALID_INPUT)
    if uri.startswith(PVC_SCHEME):
        ref = parse_pvc_uri(uri)
        if ref is None:
            raise UserError(f"{what}: {redact(uri)!r} names no claim; write pvc://<claim>/<path>")
        root = pvc_root() / ref.claim
        path = root / ref.path if ref.path else root
        if not _inside(path, root):
            raise UserError(f"{what}: {redact(uri)!r} leaves its claim's folder", reason=Reason.INVALID_INPUT)
        return path
    if uri.startswith(pretrained.SCHEME):
        return pretrained_path(uri, what)
    if uri.startswith(FILE_SCHEME):
        path = Path(uri[len(FILE_SCHEME) :])
    elif remote is not None and is_remote(uri):
        return Path(remote.fetch(uri, what))
    elif "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise UserError(
            f"{what}: {scheme}:// URIs are not supported by this runner yet ({redact(uri)}); "
            "copy the data to a volume and use pvc:// or a local path"
        )
    else:
        path = Path(uri)
    return path if path.is_absolute() else (base_dir / path)
