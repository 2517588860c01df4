"""Shared fixtures: a real control plane (etcd + kube-apiserver + kube-controller-manager).

Fixtures (the logic lives in tests/support/, which has no pytest in it):

- ``control_plane`` (session): a started ``support.controlplane.ControlPlane``; it is started on
  first use only, once per session, and stopped at the end. Missing binaries FAIL the test with
  "run `make testbin`" (never a skip: a silently skipped cluster suite is a hidden red).
- ``kubeconfig`` (session): path of its admin kubeconfig.
- ``kube_api`` (session): a ``kubernetes.client.ApiClient`` for that kubeconfig.
- ``crds_installed`` (session): the CRD names applied from ``crds/`` (Established), possibly none.
- ``namespace`` (function): name of a fresh namespace (its ``default`` ServiceAccount exists);
  deletion starts after the test, without waiting for it to finish.

Tests that use them are marked ``cluster``. The control-plane start time is printed in the summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from support import kube
from support.controlplane import BinariesMissing, ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTROL_PLANE_SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane()
    except BinariesMissing as error:
        message = f"{error} (cluster tests need the binaries; they are never skipped)"
        raise pytest.fail.Exception(message, pytrace=False) from None
    with plane:
        pytestconfig.stash[CONTROL_PLANE_SUMMARY] = plane.summary()
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    with api:
        yield api


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> list[str]:
    return kube.apply_crds(control_plane, REPO_ROOT / "crds")


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    name = kube.namespace_name(request.node.name)
    kube.create_namespace(kube_api, name)
    yield name
    kube.delete_namespace(kube_api, name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    summary = config.stash.get(CONTROL_PLANE_SUMMARY, None)
    if summary:
        terminalreporter.write_line(summary)
