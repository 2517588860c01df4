"""The end-to-end stack: the test control plane + CRDs + the Helm chart (ServiceAccount and RBAC)
+ the operator as a subprocess under that ServiceAccount + the local kubelet as a subprocess.

This is what `make dev-cluster` runs, started from pytest. The stack lives for one test module
(`stack` is module-scoped), so no kubelet is left binding pods when other modules run; its Node,
release and processes are removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from e2e_stack import (
    ARTIFACTS_CLAIM,
    RELEASE,
    Stack,
    claim,
    helm,
    install_chart,
    service_account_kubeconfig,
    start_kubelet,
    start_operator,
    stop_process,
)
from kubernetes import client
from support import kube
from support.controlplane import ControlPlane
from support.kubelet import NODE_NAME

RELEASE_NAMESPACE_PREFIX = "kslim-e2e-system"


@pytest.fixture(scope="module")
def stack(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    crds_installed: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("e2e")
    logs = work / "logs"
    logs.mkdir()
    system = f"{RELEASE_NAMESPACE_PREFIX}-{secrets.token_hex(3)}"
    namespace = f"kslim-e2e-{secrets.token_hex(3)}"
    for name in (system, namespace):
        kube.create_namespace(kube_api, name)
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(claim(ARTIFACTS_CLAIM)))
    account = install_chart(control_plane, system)
    operator_kubeconfig = service_account_kubeconfig(
        control_plane, system, account, work / "operator.kubeconfig"
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_kubelet(control_plane, kube_api, work / "kubelet", logs))
        operator, metrics_url = start_operator(operator_kubeconfig, logs)
        processes.append(operator)
        yield Stack(
            control_plane=control_plane,
            api=kube_api,
            namespace=namespace,
            kubelet_root=work / "kubelet",
            metrics_url=metrics_url,
            logs={"operator": logs / "operator.log", "kubelet": logs / "kubelet.log"},
        )
    finally:
        # Delete the jobs while the operator and the kubelet still run: their pods stop cleanly.
        control_plane.kubectl("delete", "cjob", "--all", "-n", namespace, "--timeout=30s", check=False)
        for process in reversed(processes):
            stop_process(process)
        control_plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false", check=False)
        helm(control_plane, "uninstall", RELEASE, "--namespace", system)
        for name in (namespace, system):
            kube.delete_namespace(kube_api, name)
