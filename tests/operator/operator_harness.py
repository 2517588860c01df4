"""Helpers for the operator's cluster tests: the operator in-process (Kopf's KopfRunner) against the
real control plane, and reading CompressionJobs. A module of its own (not conftest) so tests import it
by a unique name."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner
from kubernetes import client

GROUP, VERSION, PLURAL = "kslim.dev", "v1alpha1", "compressionjobs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def operator_running(namespace: str, kubeconfig: Path, **settings: Any) -> Iterator[KopfRunner]:
    """The operator in a thread, watching `namespace`, with KSLIM_OPERATOR_* from `settings`."""
    env = {
        "KUBECONFIG": str(kubeconfig),
        "KSLIM_OPERATOR_IMAGE": "kslim-runner:test",
        "KSLIM_OPERATOR_METRICS_PORT": "0",
        "KSLIM_OPERATOR_STATUS_MIN_INTERVAL_SECONDS": "0.2",
        "KSLIM_OPERATOR_PROGRESS_INTERVAL_SECONDS": "0.5",
    }
    env.update({f"KSLIM_OPERATOR_{k.upper()}": str(v) for k, v in settings.items()})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    args = ["run", "-m", "kslim_operator.handlers", "--standalone", "--namespace", namespace]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield runner
        if runner.exception is not None:
            raise runner.exception
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Jobs:
    """CompressionJobs of one namespace, through the custom objects API."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "metadata": {**body["metadata"], "namespace": self.namespace}}
        body["metadata"].pop("uid", None)
        body["metadata"].pop("creationTimestamp", None)
        body["metadata"].pop("generation", None)
        body.pop("status", None)
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == type_), None)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def wait_phase(self, name: str, phase: str, timeout: float = 30.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if st.get("phase") == phase else None

        try:
            return dict(self.wait(f"{name} phase {phase}", check, timeout))
        except TimeoutError as error:
            raise TimeoutError(f"{error}; status: {self.status(name)}") from None

    def job(self, name: str) -> client.V1Job | None:
        try:
            return self.batch.read_namespaced_job(name, self.namespace)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [(e.type, e.reason) for e in items]
