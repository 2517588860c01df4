"""The local kubelet's pure parts: command check, path mapping, env, scheduling, logs, statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.kubelet import (
    LogEntry,
    Outcome,
    PathMap,
    PodRejected,
    check_pod_supported,
    container_argv,
    container_env,
    exit_code_of,
    expand,
    fallback_message,
    image_repository,
    is_runner_image,
    mount_paths,
    parse_log_query,
    parse_quantity,
    render_entries,
    runner_args,
    select_entries,
    service_env,
    terminated_status,
    unschedulable_reason,
    volume_dirs,
)

ACCEPTED = ("kslim/runner", "kslim-runner")
RUNNER = {
    "name": "runner",
    "image": "kslim/runner:0.1.0",
    "command": ["kslim", "run", "/etc/kslim/job.yaml", "--output", "/output"],
}


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
        "spec": {"restartPolicy": "Never", "containers": [RUNNER], **spec},
    }


# ---- images and commands


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("kslim/runner", "kslim/runner"),
        ("kslim/runner:0.1.0", "kslim/runner"),
        ("registry:5000/team/kslim-runner:dev", "registry:5000/team/kslim-runner"),
        ("ghcr.io/x/kslim/runner@sha256:abc", "ghcr.io/x/kslim/runner"),
        ("registry:5000/busybox", "registry:5000/busybox"),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    ("image", "accepted"),
    [
        ("kslim/runner:0.1.0", True),
        ("kslim-runner:0.1.0", True),
        ("ghcr.io/acme/kslim/runner:1", True),
        ("busybox", False),
        ("evil-kslim-runner:1", False),
        ("kslim/runner-debug:1", False),
    ],
)
def test_runner_images(image: str, accepted: bool) -> None:
    assert is_runner_image(image, ACCEPTED) is accepted


def test_runner_args_are_what_follows_kslim_run() -> None:
    assert runner_args(RUNNER, ACCEPTED) == ["/etc/kslim/job.yaml", "--output", "/output"]
    absolute = {**RUNNER, "command": ["/usr/local/bin/kslim", "run"], "args": ["/j.yaml"]}
    assert runner_args(absolute, ACCEPTED) == ["/j.yaml"]


def test_the_image_entry_point_fills_in_a_missing_command() -> None:
    assert container_argv({"image": "kslim/runner"}) == [
        "kslim",
        "run",
        "/etc/kslim/job.yaml",
        "--output",
        "/output",
    ]
    assert container_argv({"args": ["/x.yaml"]}) == ["kslim", "run", "/x.yaml"]


@pytest.mark.parametrize(
    "container",
    [
        {**RUNNER, "command": ["sh", "-c", "kslim run /etc/kslim/job.yaml"]},
        {**RUNNER, "command": ["kslim", "validate", "/etc/kslim/job.yaml"]},
        {**RUNNER, "command": ["python", "-m", "kslim_runner.cli", "run", "x"]},
        {**RUNNER, "image": "busybox"},
    ],
)
def test_anything_but_the_runner_is_refused(container: dict[str, Any]) -> None:
    with pytest.raises(PodRejected) as refused:
        runner_args(container, ACCEPTED)
    assert refused.value.reason == "NotKslimRunner"
    assert "only runs kslim's runner" in refused.value.message


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"initContainers": [RUNNER]}, "init containers"),
        ({"containers": [RUNNER, {**RUNNER, "name": "b"}]}, "exactly one container"),
        ({"restartPolicy": "OnFailure"}, "restartPolicy OnFailure"),
    ],
)
def test_unsupported_pods(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(PodRejected, match=words):
        check_pod_supported(_pod(**spec))


# ---- volumes, paths, env


def test_path_map_takes_the_longest_mount_and_leaves_the_rest() -> None:
    paths = PathMap.of(
        {"/mnt/pvc/data": Path("/r/pvc/data"), "/mnt": Path("/r/mnt"), "/output/": Path("/r/o")}
    )
    assert paths.local("/mnt/pvc/data/x/y") == Path("/r/pvc/data/x/y")
    assert paths.local("/mnt/other") == Path("/r/mnt/other")
    assert paths.local("/output") == Path("/r/o")
    assert paths.local("/outputs") is None
    assert paths.rewrite("/output") == "/r/o"
    assert paths.rewrite("--output=/output/a") == "--output=/r/o/a"
    assert paths.rewrite("relative/output") == "relative/output"
    assert paths.rewrite("pvc://data/x") == "pvc://data/x"


def test_volumes_and_mounts_map_to_local_folders(tmp_path: Path) -> None:
    pod = _pod(
        volumes=[
            {"name": "config", "configMap": {"name": "job"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "pvc-data", "persistentVolumeClaim": {"claimName": "data"}},
        ]
    )
    dirs = volume_dirs(pod, tmp_path / "pod", tmp_path / "pvc")
    assert dirs == {
        "config": tmp_path / "pod/volumes/config",
        "scratch": tmp_path / "pod/volumes/scratch",
        "pvc-data": tmp_path / "pvc/data",
    }
    container = {
        **RUNNER,
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/kslim"},
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "pvc-data", "mountPath": "/output", "subPath": "jobs/q"},
            {"name": "pvc-data", "mountPath": "/mnt/pvc/data"},
        ],
        "terminationMessagePath": "/dev/termination-log",
    }
    paths = mount_paths(container, dirs, tmp_path / "pod/termination-log")
    assert paths.local("/etc/kslim/job.yaml") == tmp_path / "pod/volumes/config/job.yaml"
    assert paths.local("/output") == tmp_path / "pvc/data/jobs/q"
    assert paths.local("/dev/termination-log") == tmp_path / "pod/termination-log"


def test_unsupported_volumes_and_escaping_sub_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PodRejected, match="hostPath"):
        volume_dirs(_pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), tmp_path, tmp_path)
    escaping = {**RUNNER, "volumeMounts": [{"name": "v", "mountPath": "/o", "subPath": "../x"}]}
    with pytest.raises(PodRejected, match="leaves its volume"):
        mount_paths(escaping, {"v": tmp_path}, tmp_path / "t")


def test_env_is_the_pods_with_paths_rewritten() -> None:
    paths = PathMap.of({"/tmp": Path("/r/scratch"), "/dev/termination-log": Path("/r/term")})
    container = {
        **RUNNER,
        "env": [
            {"name": "KSLIM_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"},
            {"name": "KSLIM_PVC_ROOT", "value": "/mnt/pvc"},
            {"name": "HOME", "value": "/tmp"},
            {"name": "CACHE", "value": "$(HOME)/.cache"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "PLAIN", "value": "a $$(HOME) b"},
        ],
    }
    env = container_env(
        container,
        _pod(),
        paths,
        base={"PATH": "/bin"},
        pvc_root=Path("/r/pvc"),
        node_name="n",
        lookup_key=lambda kind, name, key: f"{kind}/{name}/{key}",
    )
    assert env == {
        "PATH": "/bin",
        "KSLIM_TERMINATION_MESSAGE_PATH": "/r/term",
        "KSLIM_PVC_ROOT": "/r/pvc",
        "HOME": "/r/scratch",
        "CACHE": "/r/scratch/.cache",
        "POD": "p",
        "APP": "x",
        "FROM_CM": "configMap/cm/k",
        "PLAIN": "a $(HOME) b",
    }


def test_a_missing_env_key_is_a_config_error() -> None:
    container = {**RUNNER, "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    with pytest.raises(PodRejected) as refused:
        container_env(
            container,
            _pod(),
            PathMap(),
            base={},
            pvc_root=Path("/p"),
            node_name="n",
            lookup_key=lambda *_: None,
        )
    assert refused.value.reason == "ConfigError"


def test_expand_leaves_unknown_references() -> None:
    assert expand("$(A)/$(B)", {"A": "1"}) == "1/$(B)"


# ---- scheduling


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2.0), ("500m", 0.5), ("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("1e3", 1000.0), ("1k", 1000.0)],
)
def test_parse_quantity(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


def test_parse_quantity_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_quantity("lots")


LABELS = {"kubernetes.io/hostname": "n", "nvidia.com/gpu.compute.major": "8"}
ALLOCATABLE = {"cpu": 2.0, "memory": 8 * 2.0**30, "nvidia.com/gpu": 8.0}


def _with_resources(requests: dict[str, str], **spec: Any) -> dict[str, Any]:
    return _pod(containers=[{**RUNNER, "resources": {"requests": requests, "limits": requests}}], **spec)


def _gpu_affinity(operator: str, values: list[str]) -> dict[str, Any]:
    expression = {"key": "nvidia.com/gpu.compute.major", "operator": operator, "values": values}
    terms = [{"matchExpressions": [expression]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def test_a_pod_that_fits_is_scheduled() -> None:
    pod = _with_resources(
        {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}, affinity=_gpu_affinity("In", ["6", "7", "8"])
    )
    assert unschedulable_reason(pod, "n", LABELS, ALLOCATABLE) is None


@pytest.mark.parametrize(
    ("pod", "words"),
    [
        (_pod(nodeSelector={"gpu": "a100"}), "didn't match Pod's node affinity/selector"),
        (_pod(affinity=_gpu_affinity("In", ["9"])), "didn't match Pod's node affinity/selector"),
        (_with_resources({"cpu": "8"}), "Insufficient cpu"),
        (_with_resources({"amd.com/gpu": "1"}), "Insufficient amd.com/gpu"),
    ],
)
def test_a_pod_that_does_not_fit_says_why(pod: dict[str, Any], words: str) -> None:
    reason = unschedulable_reason(pod, "n", LABELS, ALLOCATABLE)
    assert reason is not None and words in reason


def test_match_fields_select_the_node_by_name() -> None:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]}
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    assert unschedulable_reason(_pod(affinity=affinity), "n", LABELS, ALLOCATABLE) is not None
    assert unschedulable_reason(_pod(affinity=affinity), "other", LABELS, ALLOCATABLE) is None


# ---- logs


ENTRIES = [LogEntry(100.0 + i, f"line {i}".encode()) for i in range(5)]


def test_log_selection_by_time_then_tail() -> None:
    assert [e.line for e in select_entries(ENTRIES, tail_lines=2, since=None)] == [b"line 3", b"line 4"]
    assert [e.line for e in select_entries(ENTRIES, tail_lines=None, since=103.0)] == [b"line 3", b"line 4"]
    assert select_entries(ENTRIES, tail_lines=0, since=None) == []
    assert len(select_entries(ENTRIES, tail_lines=-1, since=None)) == 5


def test_log_rendering_with_timestamps() -> None:
    assert render_entries(ENTRIES[:1], timestamps=False) == b"line 0\n"
    assert render_entries(ENTRIES[:1], timestamps=True) == b"1970-01-01T00:01:40.000000000Z line 0\n"


def test_log_query_parameters() -> None:
    query = parse_log_query({"tailLines": ["10"], "sinceSeconds": ["5"], "limitBytes": ["99"]}, now=1000.0)
    assert (query.tail_lines, query.since, query.limit_bytes, query.follow) == (10, 995.0, 99, False)
    assert parse_log_query({"sinceTime": ["1970-01-01T00:00:10Z"]}, now=0).since == 10.0
    with pytest.raises(ValueError, match="previous"):
        parse_log_query({"previous": ["true"]}, now=0)


def test_fallback_message_is_the_logs_last_bytes() -> None:
    many = [LogEntry(0, b"x" * 100) for _ in range(100)]
    assert len(fallback_message(many).encode()) == 2048
    assert fallback_message(ENTRIES).endswith("line 4\n")


# ---- statuses


def test_exit_codes_of_signals_are_128_plus_the_signal() -> None:
    assert (exit_code_of(0), exit_code_of(2), exit_code_of(-15), exit_code_of(-9)) == (0, 2, 143, 137)


def test_terminated_status_carries_exit_code_reason_and_message() -> None:
    outcome = Outcome(2, "Error", '{"reason": "DatasetNotFound"}')
    status = terminated_status(RUNNER, outcome, started=0.0, finished=60.0, container_id="kslim-local://x")
    assert status["phase"] == "Failed"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {
        "exitCode": 2,
        "reason": "Error",
        "message": '{"reason": "DatasetNotFound"}',
        "startedAt": "1970-01-01T00:00:00Z",
        "finishedAt": "1970-01-01T00:01:00Z",
        "containerID": "kslim-local://x",
    }
    assert "reason" not in status
    done = terminated_status(RUNNER, Outcome(0, "Completed", ""), started=0, finished=1, container_id=None)
    assert done["phase"] == "Succeeded"
    refused = terminated_status(
        RUNNER,
        Outcome(128, "NotKslimRunner", "no", "NotKslimRunner"),
        started=0,
        finished=0,
        container_id=None,
    )
    assert (refused["phase"], refused["reason"], refused["message"]) == ("Failed", "NotKslimRunner", "no")


def test_service_env_points_at_the_api_server() -> None:
    assert service_env("https://127.0.0.1:6443") == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "6443",
        "KUBERNETES_PORT": "tcp://127.0.0.1:6443",
    }
