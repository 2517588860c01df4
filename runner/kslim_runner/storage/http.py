"""Bounded http(s):// downloads into the cache.

Bounds: at most MAX_REDIRECTS redirects (each hop's host checked by `addresses`), connect and read
timeouts, and a size limit ($KSLIM_MAX_DOWNLOAD_BYTES, default 64 GiB) checked on Content-Length and
on the bytes read. A URL whose complete copy (marker, and the spec's sha256 when given) is cached is
not downloaded again.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import urllib3

from kslim_runner.errors import StorageUnavailable, UserError
from kslim_runner.storage import cache
from kslim_runner.storage.addresses import check_host
from kslim_runner.storage.checksum import CHUNK, check_sha256

MAX_REDIRECTS = 5
MAX_BYTES_ENV = "KSLIM_MAX_DOWNLOAD_BYTES"
DEFAULT_MAX_BYTES = 64 << 30
TIMEOUT = urllib3.Timeout(connect=10, read=60)
# Redirects are followed by hand (to check each hop); connection failures are retried here.
RETRIES = urllib3.Retry(total=3, redirect=False, backoff_factor=0.5, status_forcelist=[502, 503, 504])
_POOL = urllib3.PoolManager(timeout=TIMEOUT, retries=RETRIES)


def max_bytes() -> int:
    return int(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)


def file_name(url: str) -> str:
    name = posixpath.basename(urlsplit(url).path)
    return name if name not in ("", ".", "..") else "download"


def fetch_http(url: str, what: str, sha256: str | None = None) -> Path:
    target = cache.cache_root() / "http" / cache.key_of(url) / file_name(url)
    meta = cache.read_marker(target)
    if meta and meta.get("url") == url and (sha256 is None or meta.get("sha256") == sha256):
        return target
    tmp = cache.temp_path(target)
    try:
        digest = _download(url, tmp, what)
        check_sha256(digest, sha256, url, what)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    cache.write_marker(target, {"url": url, "sha256": digest, "size": target.stat().st_size})
    return target


def _open(url: str, what: str) -> urllib3.BaseHTTPResponse:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"{what}: {url} redirects to {current}, which is not http(s)", reason="BadURL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = check_host(parts.hostname, port, current, what)
        try:
            resp = _get(current, parts.scheme, parts.hostname, port, address)
        except urllib3.exceptions.HTTPError as e:
            cause = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            if isinstance(cause, urllib3.exceptions.SSLError):  # a retry would meet the same certificate
                raise UserError(
                    f"{what}: the TLS certificate of {parts.hostname} could not be verified ({cause}): fix "
                    "the URL's host name, or have the server present a certificate a public CA signs",
                    reason="BadURL",
                ) from e
            raise StorageUnavailable(
                f"{what}: {parts.hostname} does not answer ({type(e).__name__}): check the URL and the "
                "network; the job is retried"
            ) from e
        if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
            current = urljoin(current, resp.headers["Location"])
            resp.release_conn()
            continue
        return resp
    raise UserError(f"{what}: {url} redirects more than {MAX_REDIRECTS} times", reason="BadURL")


def _get(url: str, scheme: str, host: str, port: int, address: str | None) -> urllib3.BaseHTTPResponse:
    """GET `url`, connecting to `address` when given (the checked one: see addresses.check_host),
    with the URL's host in the Host header and, for https, in SNI and certificate verification."""
    if address is None:
        return _POOL.request("GET", url, preload_content=False, redirect=False)
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, timeout=TIMEOUT, retries=RETRIES, server_hostname=host, assert_hostname=host
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=TIMEOUT, retries=RETRIES)
    target = urlsplit(url)
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    default_port = port == (443 if scheme == "https" else 80)
    headers = {"Host": host if default_port else f"{host}:{port}"}
    return pool.urlopen(
        "GET", path, headers=headers, preload_content=False, redirect=False, release_conn=True
    )


def _status_error(status: int, url: str, what: str) -> Exception:
    host = urlsplit(url).hostname
    if status in (401, 403):
        return UserError(
            f"{what}: {host} denied access (HTTP {status}): the URL needs credentials the runner does not "
            "send; use a pre-signed URL or s3:// with spec.storage.s3.credentialsSecret",
            reason="StorageAccessDenied",
        )
    if status in (404, 410):
        return UserError(f"{what}: {url} does not exist (HTTP {status}): fix the URL", reason="DataNotFound")
    if status == 429 or status >= 500:
        return StorageUnavailable(f"{what}: {host} answered HTTP {status}; the job is retried")
    return UserError(f"{what}: {url} answered HTTP {status}: fix the URL", reason="BadURL")


def _download(url: str, tmp: Path, what: str) -> str:
    limit = max_bytes()
    resp = _open(url, what)
    try:
        if resp.status != 200:
            raise _status_error(resp.status, url, what)
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise UserError(
                f"{what}: {url} is {int(length)} bytes, over the {limit}-byte download limit "
                f"({MAX_BYTES_ENV})",
                reason="DownloadTooLarge",
            )
        digest, got = hashlib.sha256(), 0
        with open(tmp, "wb") as f:
            try:
                for chunk in resp.stream(CHUNK, decode_content=False):  # the file as served
                    got += len(chunk)
                    if got > limit:
                        raise UserError(
                            f"{what}: {url} sends more than the {limit}-byte download limit "
                            f"({MAX_BYTES_ENV})",
                            reason="DownloadTooLarge",
                        )
                    digest.update(chunk)
                    f.write(chunk)
            except urllib3.exceptions.HTTPError as e:
                raise StorageUnavailable(
                    f"{what}: download of {url} broke off ({type(e).__name__}); retried"
                ) from e
        if length is not None and length.isdigit() and got != int(length):
            raise StorageUnavailable(f"{what}: download of {url} ended at {got} of {length} bytes; retried")
        return digest.hexdigest()
    finally:
        resp.release_conn()
