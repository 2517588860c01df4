"""Object GETs for downloads: a presigned URL fetched over a connection each worker thread keeps.

Why not minio's get_object: its request machinery (urllib3's pool, retry and header objects) costs
about 0.3 ms of CPU per request more than this (0.9 vs 0.6 ms per 100 kB object written to disk,
docs/BENCHMARKS.md), on the order of MinIO's own work per GET. minio still decides the URL (region,
path or virtual-host style, session token) and signs it, locally; the GET itself is one http.client
request on a kept-alive connection, streamed into the file through one reused buffer. Answers other
than 200 become the exceptions `s3.storage_error` maps, as minio's do.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import SplitResult, urlsplit

from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from kslim_runner.storage.s3 import READ_TIMEOUT, S3Settings, connect_timeout

BUFFER = 1 << 20
#: As make_client's urllib3.Retry: a dropped connection or a 5xx is tried again, after 0, 1, 2 s.
RETRIES = 3
BACKOFF = 0.5
EXPIRES = timedelta(hours=1)  # a URL is used at once; the bound only limits a leaked one
ERROR_BYTES = 1 << 16  # an S3 error document is a few hundred bytes


class _Cut(Exception):
    """The body stopped before its end (reset, timeout, closed early): the GET is tried again."""


class Getter:
    def __init__(self, client: Minio, settings: S3Settings) -> None:
        self.client = client
        self.settings = settings
        self._tls: ssl.SSLContext | None = None  # made on the first https connection (loads the CAs)
        self._local = threading.local()

    def get(self, bucket: str, key: str, dest: Path, *, sha256: bool = False) -> tuple[int, str | None]:
        """Writes the object to dest: (bytes written, their sha256 if asked)."""
        url = urlsplit(self.client.get_presigned_url("GET", bucket, key, expires=EXPIRES))
        target = f"{url.path}?{url.query}" if url.query else url.path
        failure: Exception = ConnectionError("no attempt made")
        for attempt in range(RETRIES + 1):
            if attempt > 1:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                # Host exactly as signed (http.client would drop a default port the URL names).
                conn = self._conn(url)
                conn.request("GET", target, headers={"Host": url.netloc})
                resp = conn.getresponse()
                refusal = None if resp.status == 200 else _answer(resp, bucket, key)
                if refusal is not None and not resp.isclosed():
                    self._drop()  # the rest of a long error body is not read: the connection is spent
            except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, bad answer
                self._drop()
                failure = ConnectionError(f"{type(e).__name__}: {e}")
                continue
            if refusal is None:
                try:
                    return self._save(resp, dest, sha256)
                except _Cut as e:
                    self._drop()
                    failure = ConnectionError(str(e))
                    continue
            if resp.status < 500:  # the request's own fault: asking again gets the same answer
                raise refusal
            failure = refusal
        raise failure

    def _save(self, resp: http.client.HTTPResponse, dest: Path, sha256: bool) -> tuple[int, str | None]:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(BUFFER)
        view = memoryview(buf)
        digest = hashlib.sha256() if sha256 else None
        with open(dest, "wb") as f:  # local write errors are not the store's: they are not retried
            while n := _read(resp, buf):
                if digest is not None:
                    digest.update(view[:n])
                f.write(view[:n])
            size = f.tell()
        if resp.length:  # http.client ends early, without an error, when the server closes
            raise _Cut(f"the connection closed {resp.length} bytes before the end")
        return size, None if digest is None else digest.hexdigest()

    def _conn(self, url: SplitResult) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and self._local.netloc == (url.scheme, url.netloc):
            return cast(http.client.HTTPConnection, conn)
        self._drop()
        host = url.hostname or ""
        if url.scheme == "https":
            self._tls = self._tls or _tls_context(self.settings)
            conn = http.client.HTTPSConnection(host, url.port, timeout=connect_timeout(), context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, url.port, timeout=connect_timeout())
        conn.connect()
        conn.sock.settimeout(READ_TIMEOUT)  # the connect bound is short; a large read may wait longer
        self._local.conn, self._local.netloc = conn, (url.scheme, url.netloc)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None


def _read(resp: http.client.HTTPResponse, buf: bytearray) -> int:
    try:
        return resp.readinto(buf)
    except (OSError, http.client.HTTPException) as e:
        raise _Cut(f"{type(e).__name__}: {e}") from e


def _tls_context(settings: S3Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
    if settings.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _answer(resp: http.client.HTTPResponse, bucket: str, key: str) -> Exception:
    """The exception minio would raise for a non-200 answer (an S3 error document, or a bare status)."""
    body = resp.read(ERROR_BYTES)
    fields: dict[str, str | None] = {}
    try:
        root = ET.fromstring(body) if body else None
    except ET.ParseError:
        root = None
    if root is not None and root.tag.rsplit("}", 1)[-1] == "Error":
        fields = {child.tag.rsplit("}", 1)[-1]: child.text for child in root}
    code = fields.get("Code") or {403: "AccessDenied", 404: "NoSuchKey"}.get(resp.status)
    if code is None:
        if resp.status >= 500:
            return ServerError(f"server failed with HTTP status code {resp.status}", resp.status)
        return InvalidResponseError(
            resp.status, resp.getheader("Content-Type"), body.decode(errors="replace")
        )
    return S3Error(
        cast(Any, resp),  # minio keeps its response object only for callers that ask for it
        code,
        fields.get("Message"),
        fields.get("Resource"),
        fields.get("RequestId"),
        fields.get("HostId"),
        bucket_name=bucket,
        object_name=key,
    )
