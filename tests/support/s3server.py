"""A real S3-compatible server on loopback: MinIO, built by `hack/s3server.sh` into the test cache.

Library use (tests)::

    with S3Server() as s3:              # starts on a free port with a fresh data folder; always stops
        s3.endpoint                     # http://127.0.0.1:PORT
        s3.client()                     # a minio.Minio with the root credentials
        s3.env()                        # AWS_* variables the runner reads

Command line (`make dev-cluster`)::

    python tests/support/s3server.py up --dir DIR     # detached; DIR/s3.json has endpoint and keys
    python tests/support/s3server.py put --dir DIR PATH s3://bucket/prefix   # a file or a folder
    python tests/support/s3server.py down --dir DIR

Plain HTTP on 127.0.0.1: nothing leaves the machine, and TLS is not what the tests are about.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

if not __package__:  # run as a script (`make dev-cluster`): make `support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.controlplane import _die_with_parent_hook

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "s3server.sh"
START_TIMEOUT_SECONDS = 60.0
ACCESS_KEY = "kslim-test"
DEV_PORT = 9900  # the dev cluster's endpoint, http://127.0.0.1:9900, unless that port is taken
DEV_BUCKETS = ("kslim-data", "kslim-artifacts")  # examples/s3-dev.yaml's input and output


class S3ServerMissing(RuntimeError):
    """The server binary is not built."""


def find_binary() -> Path:
    """KSLIM_S3SERVER_BIN overrides; otherwise `hack/s3server.sh --print` names it (one source of the
    version and the cache layout)."""
    override = os.environ.get("KSLIM_S3SERVER_BIN")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise S3ServerMissing("the S3 test server (MinIO) is not built: run `make s3server`")
    return Path(result.stdout.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    def __init__(
        self, data_dir: Path | None = None, port: int | None = None, secret_key: str | None = None
    ) -> None:
        self.binary = find_binary()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kslim-s3-"))
        self.port = port or free_port()
        self.access_key = ACCESS_KEY
        self.secret_key = secret_key or secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def client(self, secret_key: str | None = None) -> Any:
        from minio import Minio

        return Minio(
            f"127.0.0.1:{self.port}",
            access_key=self.access_key,
            secret_key=secret_key or self.secret_key,
            secure=False,
            region="us-east-1",
        )

    def start(self, *, detach: bool = False) -> None:
        """detach: outlive this process (`up`); else the server is killed when the starting thread
        dies, even by `kill -9` of the test run."""
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",  # no root-drive checks: the data folder is a temp dir
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "minio.log", "ab")  # noqa: SIM115 (kept by Popen)
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "server",
                str(self.data_dir / "data"),
                "--address",
                f"127.0.0.1:{self.port}",
                "--quiet",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, never by name
            preexec_fn=None if detach else _die_with_parent_hook(),
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minio exited with {self.proc.returncode}; log: {log.name}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"minio did not become ready in {START_TIMEOUT_SECONDS:.0f}s; log: {log.name}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def make_bucket(self, name: str) -> None:
        c = self.client()
        if not c.bucket_exists(name):
            c.make_bucket(name)

    def upload_tree(self, local: Path, bucket: str, prefix: str) -> None:
        c = self.client()
        for p in sorted(local.rglob("*")):
            if p.is_file():
                c.fput_object(bucket, f"{prefix.rstrip('/')}/{p.relative_to(local).as_posix()}", str(p))

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _running(info: dict[str, Any]) -> bool:
    try:
        os.kill(int(info["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return False
    return True


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["up", "down", "status", "put"])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("source", nargs="?", type=Path, help="put: a file or folder to upload")
    ap.add_argument("target", nargs="?", help="put: s3://bucket/key (a folder goes under it as a prefix)")
    args = ap.parse_intermixed_args()
    state = args.dir / "s3.json"
    info: dict[str, Any] = json.loads(state.read_text()) if state.exists() else {}
    if args.command == "status":
        print(f"s3: MinIO at {info['endpoint']} (pid {info['pid']})" if _running(info) else "s3: stopped")
        return 0 if _running(info) else 1
    if args.command == "put":
        if not _running(info) or args.source is None or not str(args.target or "").startswith("s3://"):
            print("s3: put needs a running server (make dev-cluster), a PATH and an s3://bucket/key")
            return 2
        server = S3Server(
            data_dir=args.dir / "s3", port=info["port"], secret_key=info["AWS_SECRET_ACCESS_KEY"]
        )
        bucket, _, key = args.target[len("s3://") :].partition("/")
        server.make_bucket(bucket)
        if args.source.is_dir():
            server.upload_tree(args.source, bucket, key)
        else:
            server.client().fput_object(bucket, key or args.source.name, str(args.source))
        print(f"s3: uploaded {args.source} to {args.target}")
        return 0
    if args.command == "down":
        if _running(info):
            os.killpg(int(info.pop("pid")), signal.SIGTERM)
            state.write_text(json.dumps(info, indent=2))  # keys and port stay for the next `up`
        print("s3: stopped")
        return 0
    if _running(info):
        print(f"s3: MinIO already running at {info['endpoint']}")
        return 0
    # The same keys and port on every start: the buckets of an earlier session stay usable.
    args.dir.mkdir(parents=True, exist_ok=True)
    server = S3Server(
        data_dir=args.dir / "s3",
        port=info.get("port") or (DEV_PORT if _port_free(DEV_PORT) else None),
        secret_key=info.get("AWS_SECRET_ACCESS_KEY"),
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start(detach=True)
    assert server.proc is not None
    for bucket in DEV_BUCKETS:
        server.make_bucket(bucket)
    state.write_text(
        json.dumps({"pid": server.proc.pid, "port": server.port, "endpoint": server.endpoint, **server.env()})
    )
    state.chmod(0o600)
    print(f"s3: MinIO at {server.endpoint} (credentials in {state})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
