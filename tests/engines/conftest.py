"""Fixtures of the engine tests (training-operator and Kueue on the test control plane).

The engines themselves are the session fixtures ``training_operator`` and ``kueue`` of
tests/conftest.py, on the session's second control plane (``engines_control_plane``), which is the
``control_plane`` (and ``kubeconfig``, ``kube_api``, ``crds_installed``, ``namespace``) of every test
in this folder.

- ``jobs``, ``kubelet`` (function): the operator tests' CompressionJob client and fake kubelet, here.
- ``objects`` (function): an ``engine_objects.Objects`` for the test's namespace.
- ``gpu_queue`` (function): a ResourceFlavor, a ClusterQueue (8 GPUs) and the LocalQueue ``gpu``
  in the test's namespace, which it opts in to Kueue (``kueue.manage(namespace)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_objects import GPU, KUEUE, GpuQueue, Objects
from fakelet import FakeKubelet
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_harness import Jobs
from support import kube
from support.controlplane import ControlPlane
from support.engines import Kueue

# The engines' own control plane is these tests' cluster (tests/conftest.py says why).


@pytest.fixture(scope="session")
def control_plane(engines_control_plane: ControlPlane) -> ControlPlane:
    return engines_control_plane


@pytest.fixture(scope="session")
def kubeconfig(engines_control_plane: ControlPlane) -> Path:
    return engines_control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube_api(engines_control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    yield from kube.api_client(engines_control_plane.kubeconfig)


@pytest.fixture(scope="session")
def crds_installed(engines_control_plane: ControlPlane) -> list[str]:
    return kube.apply_crds(engines_control_plane, Path(__file__).resolve().parents[2] / "crds")


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from kube.temporary_namespace(kube_api, request.node.name)


@pytest.fixture
def jobs(kube_api: client.ApiClient, namespace: str, crds_installed: list[str]) -> Jobs:
    return Jobs(kube_api, namespace)


@pytest.fixture
def kubelet(kube_api: client.ApiClient, namespace: str) -> FakeKubelet:
    return FakeKubelet(kube_api, namespace)


@pytest.fixture
def objects(kube_api: client.ApiClient, namespace: str) -> Objects:
    return Objects(kube_api, namespace)


@pytest.fixture
def gpu_queue(kube_api: client.ApiClient, namespace: str, kueue: Kueue) -> Iterator[GpuQueue]:
    """A ResourceFlavor, a ClusterQueue (8 GPUs, 64 CPUs, 256 GiB, this namespace only) and the
    LocalQueue `gpu` in the test's namespace, which Kueue manages. The cluster-scoped ones are named
    after the namespace and deleted after the test (Kueue runs once per session)."""
    kueue.manage(namespace)
    custom = client.CustomObjectsApi(kube_api)
    queue = GpuQueue(local_queue="gpu", cluster_queue=f"cq-{namespace}", flavor=f"rf-{namespace}")
    custom.create_cluster_custom_object(
        *KUEUE, "resourceflavors", {"apiVersion": "/".join(KUEUE), "kind": "ResourceFlavor",
                                    "metadata": {"name": queue.flavor}},
    )  # fmt: skip
    quota = [
        {"name": "cpu", "nominalQuota": "64"},
        {"name": "memory", "nominalQuota": "256Gi"},
        {"name": GPU, "nominalQuota": 8},
    ]
    custom.create_cluster_custom_object(
        *KUEUE,
        "clusterqueues",
        {
            "apiVersion": "/".join(KUEUE),
            "kind": "ClusterQueue",
            "metadata": {"name": queue.cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU],
                        "flavors": [{"name": queue.flavor, "resources": quota}],
                    }
                ],
            },
        },
    )
    custom.create_namespaced_custom_object(
        *KUEUE,
        namespace,
        "localqueues",
        {
            "apiVersion": "/".join(KUEUE),
            "kind": "LocalQueue",
            "metadata": {"name": queue.local_queue, "namespace": namespace},
            "spec": {"clusterQueue": queue.cluster_queue},
        },
    )
    yield queue
    for plural, name in (("clusterqueues", queue.cluster_queue), ("resourceflavors", queue.flavor)):
        try:
            custom.delete_cluster_custom_object(*KUEUE, plural, name)
        except ApiException as error:
            if error.status != 404:
                raise
