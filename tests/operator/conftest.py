"""Fixtures for the operator's cluster tests; the helpers live in operator_harness."""

from __future__ import annotations

import pytest
from fakelet import FakeKubelet
from kubernetes import client
from operator_harness import Jobs


@pytest.fixture
def jobs(kube_api: client.ApiClient, namespace: str, crds_installed: list[str]) -> Jobs:
    return Jobs(kube_api, namespace)


@pytest.fixture
def kubelet(kube_api: client.ApiClient, namespace: str) -> FakeKubelet:
    return FakeKubelet(kube_api, namespace)
