"""Plays the kubelet for the operator's cluster tests: writes pod status (pods/status) and serves
pod logs to the API server (which proxies pods/log to the node's kubelet port).

There is no scheduler or kubelet on the test control plane; the Job controller is real, so a pod
marked Failed/Succeeded here drives the Job's own retry, podFailurePolicy and completion logic.
No pytest in here.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import re
import secrets
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

JOB_LABEL = "kslim.dev/job-name"
LOG_PATH = re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/?]+)")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogServer:
    """A tiny HTTPS 'kubelet' answering GET /containerLogs/<ns>/<pod>/<container>."""

    def __init__(self, workdir: Path) -> None:
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[str] = []
        cert, key = workdir / "kubelet.crt", workdir / "kubelet.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                match = LOG_PATH.match(self.path)
                text = server.logs.get((match.group(1), match.group(2))) if match else None
                if text is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeKubelet:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.node: str | None = None

    # ---- node (only needed for logs)

    def register_node(self, log_port: int) -> str:
        name = f"kslim-fakelet-{secrets.token_hex(3)}"
        self.core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name)))
        self.core.patch_node_status(
            name,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake"}
                    ],
                }
            },
        )
        self.node = name
        return name

    def remove_node(self) -> None:
        if self.node:
            with contextlib.suppress(ApiException):
                self.core.delete_node(self.node)

    # ---- pods

    def pods(self, cj: str) -> list[client.V1Pod]:
        items = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_LABEL}={cj}").items
        return sorted(items, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))

    def live_pods(self, cj: str) -> list[client.V1Pod]:
        return [
            p
            for p in self.pods(cj)
            if p.status.phase not in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp
        ]

    def live_pods_all(self) -> list[client.V1Pod]:
        """Live pods of every CompressionJob in the namespace."""
        items = self.core.list_namespaced_pod(self.namespace, label_selector=JOB_LABEL).items
        return [
            p
            for p in items
            if p.status.phase not in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp
        ]

    def wait_pod(self, cj: str, timeout: float = 60.0, exclude: set[str] | None = None) -> client.V1Pod:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = [p for p in self.live_pods(cj) if p.metadata.name not in (exclude or set())]
            if pods:
                return pods[-1]
            time.sleep(0.1)
        raise TimeoutError(f"no pod for {self.namespace}/{cj} within {timeout:.0f}s")

    def bind(self, pod: client.V1Pod) -> None:
        assert self.node, "register_node first"
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(kind="Node", name=self.node, api_version="v1"),
        )
        self.core.create_namespaced_binding(self.namespace, body, _preload_content=False)

    def _patch(self, pod: client.V1Pod, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, {"status": status})

    def _container(self, pod: client.V1Pod, state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
        image = pod.spec.containers[0].image
        return {
            "name": "runner",
            "image": image,
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }

    def run(self, pod: client.V1Pod) -> None:
        started = _now()
        self._patch(
            pod,
            {
                "phase": "Running",
                "startTime": started,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                    {"type": "Ready", "status": "True", "lastTransitionTime": started},
                ],
                "containerStatuses": [self._container(pod, {"running": {"startedAt": started}}, ready=True)],
            },
        )

    def wait_image(self, pod: client.V1Pod, reason: str, message: str) -> None:
        self._patch(
            pod,
            {
                "phase": "Pending",
                "containerStatuses": [
                    self._container(pod, {"waiting": {"reason": reason, "message": message}})
                ],
            },
        )

    def unschedulable(self, pod: client.V1Pod, message: str) -> None:
        self._patch(
            pod,
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastTransitionTime": _now(),
                    }
                ],
            },
        )

    def finish(self, pod: client.V1Pod, exit_code: int, message: str = "") -> None:
        ended = _now()
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": ended,
            "finishedAt": ended,
        }
        if message:
            terminated["message"] = message
        self._patch(
            pod,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [self._container(pod, {"terminated": terminated})],
            },
        )


class JobWatcher:
    """Watches the namespace's Jobs and records, exactly, how many ran at once (unsuspended and
    unfinished) and the order they were first unsuspended in."""

    def __init__(self, batch: client.BatchV1Api, namespace: str) -> None:
        self.batch, self.namespace = batch, namespace
        self.active: set[str] = set()
        self.seen: set[str] = set()
        self.started: list[str] = []
        self.max_active = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.batch.list_namespaced_job, self.namespace, timeout_seconds=2):
                    self._record(event["type"], event["object"])
                    if self._stop.is_set():
                        break
            finally:
                w.stop()

    def _record(self, kind: str, job: client.V1Job) -> None:
        name = job.metadata.name
        self.seen.add(name)
        finished = any(
            c.type in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget") and c.status == "True"
            for c in job.status.conditions or []
        )
        if kind != "DELETED" and not job.spec.suspend and not finished:
            self.active.add(name)
            if name not in self.started:
                self.started.append(name)
        else:
            self.active.discard(name)
        self.max_active = max(self.max_active, len(self.active))
