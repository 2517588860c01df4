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
- ``engines_control_plane`` (session): a second control plane, for the engines and the tests that use
  them (tests/engines/, whose conftest makes it their ``control_plane``): training-operator's
  PaddleJob CRD and Kueue's webhooks change a cluster, and the rest of the suite runs on one without
  them (e.g. a multi-node job there must fail EngineNotInstalled).
- ``training_operator`` (session): a started ``support.engines.TrainingOperator`` (Kubeflow
  training-operator v1.8.1, PaddleJob only, all namespaces) on the engines' control plane.
- ``kueue`` (session): a started ``support.engines.Kueue`` (Kueue v0.17.0; frameworks ``batch/job``
  and ``kubeflow.org/paddlejob``, ``manageJobsWithoutQueueName: false``) on the same. Both are
  started on first use only. Missing binaries FAIL with "run `make engines`". Their logs are in the
  session's tmp folder; a failing test that used one gets the log's tail in its report.

Tests that use them are marked ``cluster`` (and ``engines`` for the last three). The control-plane
and engine start times are printed in the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from support import kube
from support.controlplane import BinariesMissing, ControlPlane
from support.engines import Engine, EnginesMissing, Kueue, TrainingOperator

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTROL_PLANE_SUMMARY = pytest.StashKey[list[str]]()
ENGINES_STARTED = pytest.StashKey[list[Engine]]()
ENGINE_LOG_LINES = 60


def started_control_plane(pytestconfig: pytest.Config, label: str) -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane()
    except BinariesMissing as error:
        message = f"{error} (cluster tests need the binaries; they are never skipped)"
        raise pytest.fail.Exception(message, pytrace=False) from None
    with plane:
        pytestconfig.stash.setdefault(CONTROL_PLANE_SUMMARY, []).append(f"{label}{plane.summary()}")
        yield plane


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    yield from started_control_plane(pytestconfig, "")


@pytest.fixture(scope="session")
def engines_control_plane(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    yield from started_control_plane(pytestconfig, "engines: ")


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    yield from kube.api_client(kubeconfig)


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> list[str]:
    return kube.apply_crds(control_plane, REPO_ROOT / "crds")


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from kube.temporary_namespace(kube_api, request.node.name)


def _start_engine(make: Callable[[], Engine], pytestconfig: pytest.Config) -> Engine:
    try:
        engine = make()
    except EnginesMissing as error:
        raise pytest.fail.Exception(f"{error} (engine tests are never skipped)", pytrace=False) from None
    engine.start()
    pytestconfig.stash.setdefault(ENGINES_STARTED, []).append(engine)
    return engine


@pytest.fixture(scope="session")
def training_operator(
    engines_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[TrainingOperator]:
    work_dir = tmp_path_factory.mktemp("training-operator")
    engine = _start_engine(lambda: TrainingOperator(engines_control_plane, work_dir), pytestconfig)
    assert isinstance(engine, TrainingOperator)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def kueue(
    engines_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Kueue]:
    work_dir = tmp_path_factory.mktemp("kueue")
    engine = _start_engine(lambda: Kueue(engines_control_plane, work_dir), pytestconfig)
    assert isinstance(engine, Kueue)
    yield engine
    engine.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used an engine gets the tail of the engine's log in its report."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Engine):
                title = f"{value.name} log (last {ENGINE_LOG_LINES} lines of {value.log})"
                report.sections.append((title, value.log_tail(ENGINE_LOG_LINES)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for summary in config.stash.get(CONTROL_PLANE_SUMMARY, []):
        terminalreporter.write_line(summary)
    for engine in config.stash.get(ENGINES_STARTED, []):
        terminalreporter.write_line(engine.summary())
