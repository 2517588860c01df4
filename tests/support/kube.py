"""Helpers for tests against the control plane: waiting, namespaces, CRDs. Free of pytest."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .controlplane import ControlPlane

T = TypeVar("T")

NAMESPACE_MAX_LENGTH = 63


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call `check` until it returns something truthy, and return that; TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def namespace_name(hint: str) -> str:
    """A unique, valid namespace name derived from `hint` (for example a test name)."""
    suffix = secrets.token_hex(3)
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-") or "test"
    return f"{base[: NAMESPACE_MAX_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


def create_namespace(api: client.ApiClient, name: str, timeout: float = 30.0) -> None:
    """Create `name` and wait for its `default` ServiceAccount (the ServiceAccount admission plugin
    rejects pods until the serviceaccount controller has made it, as on a real cluster)."""
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: exists(lambda: core.read_namespaced_service_account("default", name)),
        f"ServiceAccount {name}/default",
        timeout,
    )


def delete_namespace(api: client.ApiClient, name: str) -> None:
    """Start deleting `name` (the namespace controller finishes it); does not wait."""
    try:
        client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise


def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An API client for the kubeconfig, closed when the generator ends (a fixture's body)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    with api:
        yield api


api_client_for = contextlib.contextmanager(api_client)


def temporary_namespace(api: client.ApiClient, hint: str) -> Iterator[str]:
    """A fresh namespace named after `hint`, deleted (without waiting) when the generator ends."""
    name = namespace_name(hint)
    create_namespace(api, name)
    yield name
    delete_namespace(api, name)


def exists(read: Callable[[], object]) -> bool:
    """Whether `read()` finds its object (False on 404)."""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def apply_crds(control_plane: ControlPlane, directory: Path, timeout: float = 60.0) -> list[str]:
    """Server-side apply every YAML file in `directory` and wait until each CRD is Established.

    Returns the applied CRD names (`customresourcedefinition.apiextensions.k8s.io/<name>`).
    """
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        return []
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=kslim-tests", "-o", "name"]
    for path in files:
        args += ["-f", str(path)]
    names = control_plane.kubectl(*args).stdout.split()
    crds = [name for name in names if name.startswith("customresourcedefinition")]
    if crds:
        # `kubectl wait --for=condition` fails at once (not waits) on an object that has no conditions
        # yet, as a just-created CRD may: wait for the list to exist first.
        jsonpath = "{.status.conditions[*].type}"

        def have_conditions() -> bool | None:
            for crd in crds:
                result = control_plane.kubectl("get", crd, "-o", f"jsonpath={jsonpath}", check=False)
                if not result.stdout.split():
                    return None
            return True

        wait_for(have_conditions, "CRD conditions", timeout=timeout, interval=0.2)
        wait = ["wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *crds]
        control_plane.kubectl(*wait, timeout=timeout + 10)
    return crds
