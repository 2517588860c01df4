"""http(s):// downloads against a local server: checksums, cache reuse, bounded redirects and size,
status codes, and the refusal of internal addresses."""

from __future__ import annotations

import hashlib
import http.server
import io
import ipaddress
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from kslim_api.contract import EXIT_INTERNAL, EXIT_USER
from kslim_runner.errors import KslimError, StorageUnavailable, UserError
from kslim_runner.storage.addresses import is_internal
from kslim_runner.storage.http import fetch_http

WEIGHTS = b"pretend pdparams" * 100


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("images/a.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"jpg"))
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    files: ClassVar[dict[str, bytes]] = {"/w.pdparams": WEIGHTS, "/train.tar.gz": _archive()}

    def do_GET(self) -> None:
        Handler.hits.append(self.path)
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/w.pdparams")
            self.end_headers()
        elif self.path == "/broken":
            self.send_response(500)
            self.end_headers()
        elif self.path in self.files:
            body = self.files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSLIM_ALLOW_PRIVATE_URLS", "1")  # the operator's setting, for a loopback server


def test_internal_addresses_are_refused_unless_allowed(server: str) -> None:
    with pytest.raises(UserError) as e:
        fetch_http(f"{server}/w.pdparams", "model.weights")
    assert e.value.reason == "AddressNotAllowed" and "127.0.0.1" in str(e.value)


@pytest.mark.parametrize(
    ("ip", "internal"),
    [
        ("169.254.169.254", True),
        ("10.0.0.1", True),
        ("100.64.0.10", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1", True),
        ("8.8.8.8", False),
        ("2606:4700::1111", False),
    ],
)
def test_which_addresses_are_internal(ip: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(ip)) is internal


def test_a_checked_download_is_cached(server: str, allowed: None) -> None:
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    Handler.hits.clear()
    path = fetch_http(f"{server}/moved", "model.weights", digest)  # one redirect, followed
    assert path.read_bytes() == WEIGHTS
    assert fetch_http(f"{server}/moved", "model.weights", digest) == path
    assert Handler.hits == ["/moved", "/w.pdparams"]  # the second fetch used the cache


def test_a_checksum_mismatch_uses_nothing(server: str, allowed: None, download_cache: Path) -> None:
    with pytest.raises(UserError) as e:
        fetch_http(f"{server}/w.pdparams", "model.weights", "0" * 64)
    assert e.value.reason == "ChecksumMismatch" and e.value.exit_code == EXIT_USER
    assert not [p for p in download_cache.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("path", "kind", "reason", "code"),
    [
        ("/loop", UserError, "BadURL", EXIT_USER),
        ("/missing", UserError, "DataNotFound", EXIT_USER),
        ("/broken", StorageUnavailable, "StorageUnavailable", EXIT_INTERNAL),
    ],
)
def test_failures_are_classified(
    server: str, allowed: None, path: str, kind: type, reason: str, code: int
) -> None:
    with pytest.raises(KslimError) as e:
        fetch_http(f"{server}{path}", "model.weights")
    assert isinstance(e.value, kind) and e.value.reason == reason and e.value.exit_code == code


def test_the_size_limit(server: str, allowed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSLIM_MAX_DOWNLOAD_BYTES", "100")
    with pytest.raises(UserError) as e:
        fetch_http(f"{server}/w.pdparams", "model.weights")
    assert e.value.reason == "DownloadTooLarge"


def test_an_images_archive_is_unpacked(server: str, allowed: None) -> None:
    from kslim_api import load_job  # noqa: F401  (the schema the Remote reads its settings from)
    from kslim_api.compressionjob import CompressionJobSpec
    from kslim_runner.storage.fetch import Remote

    spec = CompressionJobSpec.model_validate(
        {
            "model": {"architecture": "yolov3_mobilenet_v1"},
            "dataset": {
                "train": {"images": f"{server}/train.tar.gz", "annotations": "file://a.json"},
                "val": {"images": f"{server}/train.tar.gz", "annotations": "file://a.json"},
            },
            "strategy": [],
        }
    )
    folder = Remote(spec).fetch(f"{server}/train.tar.gz", "dataset.train.images")
    assert folder.name == "images" and (folder / "a.jpg").read_bytes() == b"jpg"


def test_a_name_that_rebinds_to_an_internal_address_is_never_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers a public address when checked and an internal one when the
    connection would resolve it again. The download connects to the checked address, never to a
    second answer. Stand-ins: 127.0.0.2 plays the public address (is_internal says so here) and
    127.0.0.1 the internal one, each with its own server."""
    import socket

    from kslim_runner.storage import addresses

    class Public(Handler):
        files: ClassVar[dict[str, bytes]] = {"/w.pdparams": b"public weights"}

    class Internal(Handler):
        files: ClassVar[dict[str, bytes]] = {"/w.pdparams": b"instance credentials"}

    public = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Public)
    internal = http.server.ThreadingHTTPServer(("127.0.0.1", public.server_address[1]), Internal)
    internal_hits: list[str] = []
    Internal.do_GET = lambda self: (internal_hits.append(self.path), Handler.do_GET(self))[1]  # type: ignore[method-assign]
    for srv in (public, internal):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = public.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2"])

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        if host == "weights.example":  # first answer public, every later one internal
            ip = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(addresses, "is_internal", lambda ip: str(ip) != "127.0.0.2")
    try:
        path = fetch_http(f"http://weights.example:{port}/w.pdparams", "model.weights")
        assert path.read_bytes() == b"public weights"
        assert not internal_hits
    finally:
        public.shutdown()
        internal.shutdown()


def test_https_to_the_checked_address_still_verifies_the_names_certificate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Connecting to the checked address must not weaken TLS: SNI and the certificate check use the
    URL's host name (a certificate for another name is refused)."""
    import socket
    import ssl
    import subprocess

    from kslim_runner.storage import addresses

    def certificate(name: str) -> tuple[Path, Path]:
        key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return key, cert

    key, cert = certificate("weights.example")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    real = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        if host in ("weights.example", "other.example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(addresses, "is_internal", lambda ip: str(ip) != "127.0.0.2")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's certificate, as a CA would be
    try:
        path = fetch_http(f"https://weights.example:{port}/w.pdparams", "model.weights")
        assert path.read_bytes() == WEIGHTS
        with pytest.raises(UserError) as e:  # the same server under a name its certificate does not carry
            fetch_http(f"https://other.example:{port}/w.pdparams", "model.weights")
        assert e.value.reason == "BadURL" and "certificate of other.example could not be verified" in str(
            e.value
        )
    finally:
        httpd.shutdown()
