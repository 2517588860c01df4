"""A remote URI of the spec (s3://, http(s)://) to a local path in the cache.

Which shape a field takes decides how: configs bring their `_BASE_` tree along, weights stay files,
and the folder fields (images, annotations, inferenceModel) unpack an archive they name. The spec's
sha256 for a URI is checked on the downloaded bytes before anything uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kslim_api.contract import S3_SCHEME

from kslim_runner.errors import UserError
from kslim_runner.storage.archive import extract, is_archive
from kslim_runner.storage.http import fetch_http
from kslim_runner.storage.s3 import S3Settings
from kslim_runner.storage.s3_fetch import S3Fetcher

CONFIG_FIELDS = ("model.config", "distill.teacher.config")


def checksums(spec: Any) -> dict[str, str]:
    """uri -> sha256 for every reference of the spec that carries one."""
    refs: list[Any] = [spec.model.weights]
    try:
        refs.append(spec.resolved_weights())
        steps = spec.resolved_steps()
    except ValueError:  # a slimConfig the validator already refused; nothing to add
        steps = []
    refs += [s.distill.teacher.weights for s in steps if getattr(s, "distill", None) is not None]
    sums = {r.uri: r.sha256 for r in refs if r is not None and r.sha256}
    for split in (spec.dataset.train, spec.dataset.val):
        if split is not None and split.images_sha256:
            sums[split.images] = split.images_sha256
    return sums


class Remote:
    """Fetches a job's remote URIs with the job's storage settings."""

    def __init__(self, spec: Any) -> None:
        self.s3 = S3Fetcher(S3Settings.from_spec(spec))
        self.sums = checksums(spec)
        self.sources: dict[str, str] = {}  # local path -> the URI it came from (the report names URIs)

    def fetch(self, uri: str, what: str) -> Path:
        sha256 = self.sums.get(uri)
        config = what in CONFIG_FIELDS
        if uri.startswith(S3_SCHEME):
            path = self.s3.fetch_config_tree(uri, what) if config else self.s3.fetch(uri, what, sha256)
        elif config:
            raise UserError(
                f"{what}: a PaddleDetection config over http(s):// cannot bring its _BASE_ includes: put the "
                "configs/ tree in a bucket (s3://) or a volume (pvc://)",
                reason="InvalidSpec",
            )
        else:
            path = fetch_http(uri, what, sha256)
        if path.is_file() and is_archive(path.name) and not config and not what.endswith("weights"):
            path = extract(path, uri, what)
        self.sources[str(path.resolve())] = uri
        return path

    def source_of(self, path: Path) -> str | None:
        return self.sources.get(str(Path(path).resolve()))
