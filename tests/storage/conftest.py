"""Fixtures of the object-storage tests: a real S3 server (MinIO, `make s3server`) on loopback, one
per session, and a fresh download cache per test.

A missing server binary FAILS the tests that need it with "run `make s3server`" (never a skip: a
silently skipped storage suite is a hidden red), as the control plane's fixtures do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kslim_runner  # noqa: F401  (must precede paddle)
import pytest
from support.s3server import S3Server, S3ServerMissing


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        server = S3Server()
    except S3ServerMissing as error:
        raise pytest.fail.Exception(f"{error} (storage tests are never skipped)", pytrace=False) from None
    with server:
        yield server


@pytest.fixture(autouse=True)
def download_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("KSLIM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The runner's environment as the operator sets it from a credentials Secret."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return s3_server
