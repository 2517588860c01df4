"""The hand-over between a multi-node job's leader (worker 0) and its followers: a small threaded HTTP
server on the leader, a client on each follower (docs/multinode.md).

Security: the pod network is shared, and what a follower receives (a pickled training recipe,
.pdparams weights: pickles too) would run code when loaded. So every request carries the job's token
(`Authorization: Bearer`, compared in constant time) and every response body is signed:
HMAC-SHA256(token, nonce "\\n" request-target "\\n" body), where the nonce is the client's, fresh per
request; a follower checks the signature (and each file's SHA-256 from the signed session) before it
parses or loads anything, so a replayed, altered or foreign answer is refused. The token itself
travels in clear text (plain HTTP): on a network where others can sniff pod traffic, encrypt it
(a CNI with WireGuard/IPsec).

Routes (all GET but /report): /next?after=SEQ&run=RUN long-polls for the next session or "done";
/file?seq=SEQ&name=NAME streams one of the session's files; /status (the followers' heartbeat: also
tells them "done"); POST /report (a follower's joined/finished/failed note, JSON). Every request names
its node (?node=K), which the leader records as that follower's last word.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SIGNATURE_HEADER = "X-Kslim-Signature"
NONCE_HEADER = "X-Kslim-Nonce"
#: How long /next holds a request open when there is nothing new.
POLL_SECONDS = 20.0
#: A follower's report is small JSON.
MAX_REPORT_BYTES = 1 << 16
CHUNK = 1 << 20


class HandoverRefused(Exception):
    """An answer that is not the leader's (bad signature or digest) or a refused token: never retried."""


class LeaderUnreachable(Exception):
    """No answer (refused connection, DNS, timeout, 5xx): the caller retries within its bound."""


# --- signing -------------------------------------------------------------------------------------------


def signature(token: str, nonce: str, target: str, chunks: Iterable[bytes]) -> str:
    mac = hmac.new(token.encode(), digestmod=hashlib.sha256)
    mac.update(f"{nonce}\n{target}\n".encode())
    for chunk in chunks:
        mac.update(chunk)
    return mac.hexdigest()


def verify(token: str, nonce: str, target: str, body: bytes, signed: str | None) -> bool:
    return signed is not None and hmac.compare_digest(signature(token, nonce, target, [body]), signed)


def bearer_ok(token: str, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    for chunk in file_chunks(path):
        h.update(chunk)
    return h.hexdigest()


# --- the leader's server -------------------------------------------------------------------------------


@dataclass
class Published:
    seq: int
    manifest: dict[str, Any]
    files: dict[str, Path]


@dataclass
class _State:
    seq: int = 0
    current: Published | None = None
    done: dict[str, Any] | None = None
    reports: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    contact: dict[int, float] = field(default_factory=dict)
    told_done: set[int] = field(default_factory=set)


class HandoverServer:
    """The leader's side: publish a session (a JSON manifest plus files), publish "done", read what
    the followers reported and when each was last heard from. Thread-safe."""

    def __init__(
        self, token: str, port: int, nodes: int, *, host: str = "", poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.token, self.port, self.nodes, self.host = token, port, nodes, host
        self.poll_seconds = poll_seconds
        self.run = secrets.token_hex(8)  # this leader process: a restarted leader starts over
        self.cond = threading.Condition()
        self.state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._httpd is not None:
            return
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.handover = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name="kslim-handover", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        with self.cond:  # wake the long polls: they answer "wait" and end
            self.state.current = None
            self.cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd = None

    # --- what the leader does --------------------------------------------------------------------------
    def publish(self, manifest: dict[str, Any], files: dict[str, Path]) -> int:
        with self.cond:
            self.state.seq += 1
            seq = self.state.seq
            body = {**manifest, "kind": "session", "run": self.run, "seq": seq}
            self.state.current = Published(seq, body, dict(files))
            self.cond.notify_all()
            return seq

    def close(self, seq: int) -> None:
        """The session is over: a follower that asks now waits for the next one."""
        with self.cond:
            if self.state.current is not None and self.state.current.seq == seq:
                self.state.current = None
            self.cond.notify_all()

    def finish(self, done: dict[str, Any]) -> None:
        with self.cond:
            self.state.done = {**done, "kind": "done", "run": self.run}
            self.state.current = None
            self.cond.notify_all()

    def wait_until(self, predicate: Callable[[_State], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.state), timeout=timeout)

    def reports(self, node: int) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.state.reports.get(node, []))

    def last_contact(self, node: int) -> float | None:
        with self.cond:
            return self.state.contact.get(node)

    # --- what the handler calls --------------------------------------------------------------------------
    def _touch(self, node: int) -> None:
        with self.cond:
            self.state.contact[node] = time.monotonic()
            self.cond.notify_all()

    def _next(self, node: int, after: int, run: str) -> dict[str, Any]:
        if run != self.run:
            after = 0  # a follower of an earlier leader process: this one counts from 1
        with self.cond:
            st = self.state
            self.cond.wait_for(
                lambda: st.done is not None or (st.current is not None and st.current.seq > after),
                timeout=self.poll_seconds,
            )
            if st.done is not None:
                st.told_done.add(node)
                self.cond.notify_all()  # the leader waits for every follower to have heard it
                return st.done
            if st.current is not None and st.current.seq > after:
                return st.current.manifest
            return {"kind": "wait", "run": self.run}

    def _status(self, node: int) -> dict[str, Any]:
        with self.cond:
            st = self.state
            if st.done is not None:
                st.told_done.add(node)
                self.cond.notify_all()
            return {
                "kind": "status",
                "run": self.run,
                "seq": None if st.current is None else st.current.seq,
                "done": st.done,
            }

    def _file(self, seq: int, name: str) -> Path | None:
        with self.cond:
            current = self.state.current
            if current is None or current.seq != seq:
                return None
            return current.files.get(name)

    def _report(self, node: int, report: dict[str, Any]) -> None:
        with self.cond:
            self.state.reports.setdefault(node, []).append({**report, "node": node})
            self.cond.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server_version = "kslim-handover"

    def log_message(self, format: str, *args: Any) -> None:  # the leader's log is the operator's
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        h: HandoverServer = self.server.handover  # type: ignore[attr-defined]
        nonce = self.headers.get(NONCE_HEADER, "")
        if not bearer_ok(h.token, self.headers.get("Authorization")):
            return self._json(401, {"error": "unauthorized"}, nonce)
        if not 16 <= len(nonce) <= 128:
            return self._json(400, {"error": f"{NONCE_HEADER} missing"}, nonce)
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            node = int(q.get("node", ""))
            if not 0 < node < h.nodes:
                raise ValueError(node)
        except ValueError:
            return self._json(400, {"error": "node must be a follower's rank"}, nonce)
        h._touch(node)
        try:
            if method == "GET" and url.path == "/next":
                return self._json(200, h._next(node, int(q.get("after", "0")), q.get("run", "")), nonce)
            if method == "GET" and url.path == "/status":
                return self._json(200, h._status(node), nonce)
            if method == "GET" and url.path == "/file":
                path = h._file(int(q.get("seq", "0")), q.get("name", ""))
                if path is None or not path.is_file():
                    return self._json(404, {"error": "no such file in the current session"}, nonce)
                return self._stream(path, nonce)
            if method == "POST" and url.path == "/report":
                size = int(self.headers.get("Content-Length", "0"))
                if not 0 < size <= MAX_REPORT_BYTES:
                    return self._json(413, {"error": "report too large"}, nonce)
                report = json.loads(self.rfile.read(size))
                if not isinstance(report, dict):
                    raise ValueError("a report is a JSON object")
                h._report(node, report)
                return self._json(200, {"ok": True}, nonce)
        except ValueError as e:
            return self._json(400, {"error": str(e)[:200]}, nonce)
        return self._json(404, {"error": "no such route"}, nonce)

    def _json(self, code: int, body: dict[str, Any], nonce: str) -> None:
        data = json.dumps(body).encode()
        h: HandoverServer = self.server.handover  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(SIGNATURE_HEADER, signature(h.token, nonce, self.path, [data]))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, path: Path, nonce: str) -> None:
        h: HandoverServer = self.server.handover  # type: ignore[attr-defined]
        # a first pass over the file: the signature header goes before the body
        signed = signature(h.token, nonce, self.path, file_chunks(path))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header(SIGNATURE_HEADER, signed)
        self.end_headers()
        for chunk in file_chunks(path):
            self.wfile.write(chunk)


# --- a follower's client -------------------------------------------------------------------------------


class HandoverClient:
    """A follower's requests to its leader; every answer is verified before it is used."""

    def __init__(self, base_url: str, token: str, node: int, *, timeout: float = 30.0) -> None:
        self.base_url, self.token, self.node, self.timeout = base_url.rstrip("/"), token, node, timeout

    def _target(self, path: str, **query: Any) -> str:
        return f"{path}?{urlencode({**query, 'node': self.node})}"

    def _open(self, target: str, body: bytes | None, timeout: float) -> tuple[Any, str]:
        nonce = secrets.token_hex(16)
        req = urllib.request.Request(
            self.base_url + target,
            data=body,
            method="POST" if body is not None else "GET",
            headers={"Authorization": f"Bearer {self.token}", NONCE_HEADER: nonce},
        )
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=timeout), nonce
        except urllib.error.HTTPError as e:
            if e.code == 401:
                raise HandoverRefused("the leader refused this worker's hand-over token") from None
            if e.code >= 500:
                raise LeaderUnreachable(f"the leader answered {e.code}") from None
            raise HandoverRefused(f"the leader answered {e.code} to {target}") from None
        except (urllib.error.URLError, OSError) as e:  # refused, DNS, timeout, reset
            raise LeaderUnreachable(str(getattr(e, "reason", e))) from None

    def _json(self, target: str, body: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        resp, nonce = self._open(target, data, timeout or self.timeout)
        try:
            with resp:
                raw = resp.read()
                signed = resp.headers.get(SIGNATURE_HEADER)
        except OSError as e:
            raise LeaderUnreachable(str(e)) from None
        if not verify(self.token, nonce, target, raw, signed):
            raise HandoverRefused(f"the answer to {target.split('?')[0]} is not signed with the job's token")
        return json.loads(raw)

    def next(self, after: int, run: str) -> dict[str, Any]:
        return self._json(self._target("/next", after=after, run=run), timeout=POLL_SECONDS + self.timeout)

    def status(self) -> dict[str, Any]:
        return self._json(self._target("/status"))

    def report(self, report: dict[str, Any]) -> None:
        self._json(self._target("/report"), report)

    def download(self, seq: int, name: str, dest: Path, *, size: int, sha256: str) -> None:
        """Stream one file of session `seq` to dest; kept only when signed and of the announced digest."""
        target = self._target("/file", seq=seq, name=name)
        resp, nonce = self._open(target, None, self.timeout)
        mac = hmac.new(self.token.encode(), digestmod=hashlib.sha256)
        mac.update(f"{nonce}\n{target}\n".encode())
        digest = hashlib.sha256()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with resp, open(tmp, "wb") as out:
                signed = resp.headers.get(SIGNATURE_HEADER)
                while chunk := resp.read(CHUNK):
                    mac.update(chunk)
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise LeaderUnreachable(str(e)) from None
        if signed is None or not hmac.compare_digest(mac.hexdigest(), signed):
            tmp.unlink(missing_ok=True)
            raise HandoverRefused(f"the file {name} is not signed with the job's token")
        if digest.hexdigest() != sha256 or tmp.stat().st_size != size:
            tmp.unlink(missing_ok=True)
            raise HandoverRefused(f"the file {name} is not the one the session announced")
        tmp.replace(dest)
