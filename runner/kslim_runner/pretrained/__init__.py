"""The weights files behind `kslim://pretrained/<name>` (kslim_api.pretrained lists them)."""

from __future__ import annotations

from pathlib import Path

from kslim_api import pretrained
from kslim_api.contract import Reason

from kslim_runner.errors import KslimError, UserError
from kslim_runner.storage.checksum import sha256_file

HERE = Path(__file__).resolve().parent


def pretrained_path(uri: str, what: str) -> Path:
    """The verified local file of a kslim://pretrained/ URI. An unknown name is the job's fault
    (exit 2); a missing or altered file is the installation's (the image or package is broken)."""
    entry = pretrained.lookup(uri)
    if entry is None:
        known = ", ".join(p.uri for p in pretrained.REGISTRY.values())
        raise UserError(
            f"{what}: {uri} is not a weights file kslim ships; known: {known}", reason=Reason.INVALID_SPEC
        )
    path = HERE / entry.filename
    if not path.is_file():
        raise KslimError(
            f"{what}: {uri} is missing from this kslim installation ({entry.filename} not in the runner "
            "package): use a runner image built from the repository, or give the weights file itself"
        )
    got = sha256_file(path)
    if got != entry.sha256:
        raise KslimError(
            f"{what}: {uri} in this installation has sha256 {got}, expected {entry.sha256}: the runner "
            "package is damaged or from another kslim version; reinstall it"
        )
    return path
