"""s3:// prefixes fetched as whole folders against a real S3 server (MinIO): many objects in
parallel, reuse of a complete folder, and a failure of any one object failing the fetch with nothing
left that could be taken for the folder. The GETs' own retries and answers against a local stub."""

from __future__ import annotations

import http.client
import http.server
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kslim_runner.errors import StorageUnavailable, UserError
from kslim_runner.storage import cache, s3_fetch
from kslim_runner.storage.s3 import S3Settings, storage_error
from kslim_runner.storage.s3_fetch import S3Fetcher
from kslim_runner.storage.s3_get import Getter
from minio.datatypes import Object
from minio.error import S3Error, ServerError
from support.s3server import S3Server

BUCKET = "folders"
PREFIX = "set/"


def _body(i: int) -> bytes:
    return os.urandom(i * 997 % 30_000)  # sizes from 0 bytes up, one per object


@pytest.fixture
def s3(s3_env: S3Server) -> S3Server:
    s3_env.make_bucket(BUCKET)
    return s3_env


@pytest.fixture
def objects(s3: S3Server) -> dict[str, bytes]:
    """60 objects, some in sub-folders, uploaded fresh under PREFIX."""
    c = s3.client()
    for o in c.list_objects(BUCKET, PREFIX, recursive=True):
        c.remove_object(BUCKET, o.object_name)
    bodies = {f"{'sub/' if i % 3 == 0 else ''}{i:03d}.jpg": _body(i) for i in range(60)}
    for rel, body in bodies.items():
        c.put_object(BUCKET, PREFIX + rel, io.BytesIO(body), len(body))
    return bodies


def fetcher(s3: S3Server) -> S3Fetcher:
    return S3Fetcher(S3Settings(endpoint=s3.endpoint, path_style=True))


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def counting_gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    keys: list[str] = []
    real = Getter.get

    def get(self: Getter, bucket: str, key: str, dest: Path, **kw: Any) -> tuple[int, str | None]:
        keys.append(key)
        return real(self, bucket, key, dest, **kw)

    monkeypatch.setattr(Getter, "get", get)
    return keys


def with_listing(monkeypatch: pytest.MonkeyPatch, f: S3Fetcher, change: Any) -> None:
    """The bucket's listing as `change` alters it: an object that went away, or changed size,
    between the listing and its GET."""
    real = f.client.list_objects
    monkeypatch.setattr(f.client, "list_objects", lambda *a, **kw: change(list(real(*a, **kw))))


def leftovers(download_cache: Path) -> list[Path]:
    return [p for d in (".staging", ".markers") for p in (download_cache / d).rglob("*") if p.is_file()]


def test_many_objects_arrive_whole_in_one_folder(
    s3: S3Server, objects: dict[str, bytes], download_cache: Path
) -> None:
    folder = fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "dataset.train.images")
    assert files_in(folder) == objects
    # One marker for the folder, none per object; no staging folder left behind.
    assert leftovers(download_cache) == [cache.marker_path(folder)]


def test_the_gets_keep_one_connection_per_worker(
    s3: S3Server, objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    real = http.client.HTTPConnection.connect

    def connect(self: http.client.HTTPConnection) -> None:
        if (
            type(self) is http.client.HTTPConnection
        ):  # the GETs' own (urllib3's, for the listing, subclass it)
            opened.append(self)
        real(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", connect)
    fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    assert 1 <= len(opened) <= s3_fetch.PARALLEL < len(objects)


def test_a_complete_folder_is_reused_without_a_get(
    s3: S3Server, objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    gets = counting_gets(monkeypatch)
    assert fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x") == folder  # a retried pod
    assert gets == [] and files_in(folder) == objects


def test_a_damaged_or_changed_folder_is_fetched_again(s3: S3Server, objects: dict[str, bytes]) -> None:
    folder = fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    (folder / "001.jpg").write_bytes(b"cut")  # a damaged copy is not taken as complete
    assert files_in(fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")) == objects
    c = s3.client()
    c.remove_object(BUCKET, PREFIX + "002.jpg")
    c.put_object(BUCKET, PREFIX + "new.jpg", io.BytesIO(b"new"), 3)
    expected = {k: v for k, v in objects.items() if k != "002.jpg"} | {"new.jpg": b"new"}
    assert files_in(fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")) == expected


def test_one_missing_object_fails_the_fetch_and_leaves_nothing(
    s3: S3Server, objects: dict[str, bytes], download_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = fetcher(s3)
    gone = Object(BUCKET, PREFIX + "gone.jpg", etag="0" * 32, size=5)
    with_listing(monkeypatch, f, lambda listed: [gone, *listed])  # deleted after the listing
    gets = counting_gets(monkeypatch)
    monkeypatch.setattr(s3_fetch, "PARALLEL", 2)  # slow enough that objects are still queued
    with pytest.raises(UserError) as e:
        f.fetch(f"s3://{BUCKET}/{PREFIX}", "dataset.train.images")
    assert e.value.reason == "DataNotFound" and f"s3://{BUCKET}/{PREFIX}gone.jpg" in str(e.value)
    assert not f.local(BUCKET, PREFIX).exists() and leftovers(download_cache) == []
    assert len(gets) < len(objects)  # the queued objects were not fetched after the failure


def test_a_failure_after_a_complete_fetch_leaves_no_folder_to_reuse(
    s3: S3Server, objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    s3.client().put_object(BUCKET, PREFIX + "001.jpg", io.BytesIO(b"changed"), 7)
    f = fetcher(s3)
    # 001.jpg is listed one byte longer than it is: its GET ends short, as a cut stream would.
    with_listing(monkeypatch, f, lambda listed: [_grown(o) if "001" in o.object_name else o for o in listed])
    with pytest.raises(StorageUnavailable) as e:
        f.fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    assert e.value.exit_code == 1 and "got 7 of 8 bytes" in str(e.value)
    assert cache.read_marker(folder) is None  # the old copy is no longer marked complete
    assert files_in(fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x"))["001.jpg"] == b"changed"


def _grown(o: Object) -> Object:
    return Object(o.bucket_name, o.object_name, etag=o.etag, size=(o.size or 0) + 1)


def test_access_denied_during_the_gets_names_the_bucket_not_the_key(
    s3: S3Server, objects: dict[str, bytes], download_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = fetcher(s3)

    def then_revoke(listed: list[Object]) -> list[Object]:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")  # the GETs sign with it
        return listed

    with_listing(monkeypatch, f, then_revoke)
    with pytest.raises(UserError) as e:
        f.fetch(f"s3://{BUCKET}/{PREFIX}", "dataset.train.images")
    msg = str(e.value)
    assert e.value.reason == "StorageAccessDenied" and e.value.exit_code == 2
    assert f"bucket {BUCKET}" in msg and ".jpg" not in msg and PREFIX not in msg
    assert leftovers(download_cache) == []


def test_wrong_credentials_for_a_prefix_name_the_bucket(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(UserError) as e:
        fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    assert e.value.reason == "StorageAccessDenied" and PREFIX not in str(e.value)


def test_an_empty_key_segment_stays_inside_the_folder(
    s3: S3Server, download_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = fetcher(s3)
    # AWS allows `set//x.jpg` (MinIO does not): its local path must not become absolute.
    with_listing(monkeypatch, f, lambda _: [Object(BUCKET, PREFIX + "/x.jpg", etag="e", size=1)])
    written: list[Path] = []

    def get(self: Getter, bucket: str, key: str, dest: Path, **kw: Any) -> tuple[int, str | None]:
        written.append(dest)
        dest.write_bytes(b"x")
        return 1, None

    monkeypatch.setattr(Getter, "get", get)
    folder = f.fetch(f"s3://{BUCKET}/{PREFIX}", "x")
    assert len(written) == 1 and written[0].is_relative_to(download_cache)
    assert files_in(folder) == {"x.jpg": b"x"}


def test_two_fetches_of_one_folder_download_it_once(
    s3: S3Server, objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    gets = counting_gets(monkeypatch)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetcher(s3).fetch(f"s3://{BUCKET}/{PREFIX}", "x")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1] and files_in(results[0]) == objects
    assert sorted(gets) == sorted(PREFIX + k for k in objects)  # the second waited, then reused


def test_a_killed_fetch_leaves_nothing_that_is_used(s3: S3Server, objects: dict[str, bytes]) -> None:
    f = fetcher(s3)
    folder = f.local(BUCKET, PREFIX)
    stage = cache.cache_root() / ".staging" / cache.key_of(str(folder))
    for partial in (folder, stage):  # what a pod killed mid-fetch (or mid-swap) could leave
        (partial / "sub").mkdir(parents=True)
        (partial / "000.jpg").write_bytes(b"half")
        (partial / "stale.jpg").write_bytes(b"x")
    assert files_in(f.fetch(f"s3://{BUCKET}/{PREFIX}", "x")) == objects
    assert not stage.exists()


# --- the GETs themselves, against a stub that misbehaves on purpose -------------------------------
class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as S3 servers keep them
    script: ClassVar[list[tuple[int, bytes, int | None]]] = []  # (status, body, Content-Length)
    requests: ClassVar[int] = 0
    connections: ClassVar[int] = 0

    def setup(self) -> None:
        Stub.connections += 1
        super().setup()

    def do_GET(self) -> None:
        Stub.requests += 1
        status, body, length = Stub.script.pop(0) if Stub.script else (200, b"body", None)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        if length is not None and length != len(body):
            self.close_connection = True  # the stream is cut: fewer bytes than announced

    def log_message(self, *args: object) -> None:
        pass


class StubClient:
    """Stands in for minio's client: only the URL it would sign."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get_presigned_url(self, method: str, bucket: str, key: str, **kw: Any) -> str:
        return f"{self.base}/{bucket}/{key}?X-Amz-Signature=x"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Getter]:
    monkeypatch.setattr("kslim_runner.storage.s3_get.BACKOFF", 0.01)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Stub.script, Stub.requests, Stub.connections = [], 0, 0
    client: Any = StubClient(f"http://127.0.0.1:{httpd.server_address[1]}")
    yield Getter(client, S3Settings())
    httpd.shutdown()


def test_gets_keep_their_connection_and_retry_a_cut_stream_or_a_busy_server(
    stub: Getter, tmp_path: Path
) -> None:
    Stub.script = [(200, b"abc", 10), (503, b"", None)]  # cut short, busy, then the body
    assert stub.get("b", "k", tmp_path / "k", sha256=True)[0] == 4
    assert stub.get("b", "k2", tmp_path / "k2")[0] == 4
    assert (tmp_path / "k").read_bytes() == b"body" and Stub.requests == 4
    assert Stub.connections == 2  # a new one after the cut only


def test_a_get_that_keeps_failing_is_a_retried_outage(stub: Getter, tmp_path: Path) -> None:
    Stub.script = [(200, b"abc", 10)] * 4
    with pytest.raises(ConnectionError, match="closed 7 bytes before the end") as cut:
        stub.get("b", "k", tmp_path / "k")
    Stub.script = [(500, b"", None)] * 4
    with pytest.raises(ServerError) as busy:
        stub.get("b", "k", tmp_path / "k")
    for e in (cut.value, busy.value):
        assert isinstance(storage_error(e, S3Settings(), "b", "k", "x"), StorageUnavailable)
    assert Stub.requests == 8


def test_an_s3_error_document_is_not_retried(stub: Getter, tmp_path: Path) -> None:
    doc = b"<?xml version='1.0'?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>"
    Stub.script = [(404, doc, None)]
    with pytest.raises(S3Error) as e:
        stub.get("b", "k", tmp_path / "k")
    assert e.value.code == "NoSuchBucket" and Stub.requests == 1
