"""SHA-256 checks of downloaded files: a mismatch is the user's (wrong digest or wrong file), exit 2."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kslim_runner.errors import UserError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(actual: str, expected: str | None, uri: str, what: str) -> None:
    if expected is not None and actual != expected.lower():
        raise UserError(
            f"{what}: {uri} has sha256 {actual}, but the spec says {expected}: fix the sha256 in the "
            "spec or the file at the URI (nothing downloaded was used)",
            reason="ChecksumMismatch",
        )
