"""The end-to-end stack: the test control plane + CRDs + the Helm chart (ServiceAccount and RBAC)
+ the operator as a subprocess under that ServiceAccount + the local kubelet as a subprocess.

This is what `make dev-cluster` runs, started from pytest. The stack lives for one test module
(`stack` is module-scoped), so no kubelet is left binding pods when other modules run; its Node,
release and processes are removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_stack import Stack, running_stack
from kubernetes import client
from support.controlplane import ControlPlane


@pytest.fixture(scope="module")
def stack(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    crds_installed: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    with running_stack(control_plane, kube_api, tmp_path_factory.mktemp("e2e")) as stack:
        yield stack
