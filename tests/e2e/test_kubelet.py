"""The local kubelet on the real control plane, with a stand-in runner (fake_kslim.py, no Paddle):
scheduling, volumes and paths, status, logs through the API server, refusals, deletion, suspension."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.controlplane import ControlPlane
from support.kube import exists, wait_for
from support.kubelet import NODE_NAME, KubeletConfig, LocalKubelet

pytestmark = pytest.mark.cluster

FAKE_RUNNER = Path(__file__).with_name("fake_kslim.py")
CLAIM = "data"


@pytest.fixture(scope="module")
def kubelet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKubelet]:
    """An in-process local kubelet whose `kslim` is the stand-in runner."""
    root = tmp_path_factory.mktemp("kubelet")
    wrapper = root / "bin" / "kslim"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_RUNNER}" "$@"\n')
    wrapper.chmod(0o755)
    config = KubeletConfig(
        kubeconfig=control_plane.kubeconfig, root=root, kslim=wrapper, config_wait_seconds=2
    )
    with LocalKubelet(config) as running:
        yield running
    control_plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false")


@pytest.fixture
def ns(namespace: str, control_plane: ControlPlane, kubelet: LocalKubelet) -> str:
    """The test's namespace, with the claim the runner pods write to."""
    apply(control_plane, namespace, claim(CLAIM))
    return namespace


# ---- manifests


def claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def job_config(name: str, **knobs: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"job.yaml": json.dumps(knobs)},
    }


def runner_container(output_sub_path: str) -> dict[str, Any]:
    return {
        "name": "runner",
        "image": "kslim/runner:test",
        "command": ["kslim", "run", "/etc/kslim/job.yaml", "--output", "/output"],
        "env": [
            {"name": "KSLIM_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"},
            {"name": "KSLIM_PVC_ROOT", "value": "/mnt/pvc"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/kslim", "readOnly": True},
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "claim", "mountPath": "/output", "subPath": output_sub_path},
            {"name": "claim", "mountPath": f"/mnt/pvc/{CLAIM}"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def pod_spec(config: str) -> dict[str, Any]:
    """A runner pod's spec reading ConfigMap `config` and writing to <claim>/<config>."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [runner_container(config)],
        "volumes": [
            {"name": "config", "configMap": {"name": config}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": CLAIM}},
        ],
    }


def runner_pod(name: str, **knobs: Any) -> list[dict[str, Any]]:
    """A ConfigMap with the stand-in's knobs and a runner pod writing to <claim>/<name>."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec(name)}
    return [job_config(name, **knobs), pod]


# ---- helpers


def apply(control_plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(items))


def read_pod(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pod = client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    return dict(api.sanitize_for_serialization(pod))


def wait_phase(
    api: client.ApiClient, namespace: str, name: str, *phases: str, timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pod = read_pod(api, namespace, name)
        return pod if pod.get("status", {}).get("phase") in phases else None

    return wait_for(check, f"pod {name} in phase {' or '.join(phases)}", timeout, interval=0.2)


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"]["terminated"])


def seen(kubelet: LocalKubelet, name: str) -> dict[str, Any]:
    """What the stand-in runner recorded (argv, cwd, env, pid)."""
    path = kubelet.config.pvc_root / CLAIM / name / "seen.json"
    text: str = wait_for(lambda: path.read_text() if path.exists() else None, f"{path}", 20)
    return dict(json.loads(text))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


# ---- tests


def test_the_node_is_ready_with_gpus_and_its_log_port(
    kube_api: client.ApiClient, kubelet: LocalKubelet
) -> None:
    node = dict(kube_api.sanitize_for_serialization(client.CoreV1Api(kube_api).read_node(NODE_NAME)))
    status = node["status"]
    assert status["capacity"]["nvidia.com/gpu"] == "8"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.logs.port
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_a_runner_pod_runs_to_succeeded_with_local_paths(
    control_plane: ControlPlane, kube_api: client.ApiClient, kubelet: LocalKubelet, ns: str
) -> None:
    apply(control_plane, ns, *runner_pod("ok", steps=4))
    pod = wait_phase(kube_api, ns, "ok", "Succeeded")
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["startTime"]
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    assert json.loads(state["message"]) == {
        "outcome": "Succeeded",
        "reason": "Completed",
        "message": "fake runner done",
        "stage": "report",
    }
    record = seen(kubelet, "ok")
    pod_dir = kubelet.config.root / "pods" / pod["metadata"]["uid"]
    output = kubelet.config.pvc_root / CLAIM / "ok"
    assert record["argv"] == ["run", str(pod_dir / "volumes/config/job.yaml"), "--output", str(output)]
    env = record["env"]
    assert env["KSLIM_PVC_ROOT"] == str(kubelet.config.pvc_root)
    assert env["KSLIM_TERMINATION_MESSAGE_PATH"] == str(pod_dir / "termination-log")
    assert env["HOME"] == str(pod_dir / "volumes/scratch")
    assert env["HOSTNAME"] == "ok"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"


def test_logs_are_served_through_the_api_server(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    apply(control_plane, ns, *runner_pod("talky", steps=5))
    wait_phase(kube_api, ns, "talky", "Succeeded")
    lines = control_plane.kubectl("logs", "-n", ns, "talky").stdout.splitlines()
    assert len(lines) == 6
    assert json.loads(lines[4])["step"] == 5
    assert lines[5] == "free text on stderr"
    assert control_plane.kubectl("logs", "-n", ns, "talky", "--tail=1").stdout == "free text on stderr\n"
    response: Any = client.CoreV1Api(kube_api).read_namespaced_pod_log(
        "talky", ns, container="runner", tail_lines=2, limit_bytes=20, _preload_content=False
    )
    assert bytes(response.data) == b'{"kslim": "progress"'
    stamped = control_plane.kubectl("logs", "-n", ns, "talky", "--timestamps", "--tail=1").stdout
    assert stamped.endswith("Z free text on stderr\n")


def test_kubectl_logs_follow_streams_until_the_runner_ends(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    apply(control_plane, ns, *runner_pod("slow", steps=2, sleep=2))
    wait_phase(kube_api, ns, "slow", "Running")
    started = time.monotonic()
    followed = control_plane.kubectl("logs", "-n", ns, "slow", "-f", timeout=30).stdout
    assert followed.splitlines()[-1] == "free text on stderr"
    assert time.monotonic() - started < 20
    assert read_pod(kube_api, ns, "slow")["status"]["phase"] in ("Running", "Succeeded")


def test_a_failing_runner_reports_its_exit_code_and_message(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    apply(
        control_plane, ns, *runner_pod("bad", exitCode=2, reason="DatasetNotFound", message="no such file x")
    )
    state = terminated(wait_phase(kube_api, ns, "bad", "Failed"))
    assert (state["exitCode"], state["reason"]) == (2, "Error")
    assert json.loads(state["message"])["reason"] == "DatasetNotFound"


def test_without_a_termination_message_the_log_tail_is_the_message(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    apply(control_plane, ns, *runner_pod("crash", exitCode=1, writeMessage=False))
    state = terminated(wait_phase(kube_api, ns, "crash", "Failed"))
    assert state["exitCode"] == 1
    assert state["message"].endswith("free text on stderr\n")


@pytest.mark.parametrize(
    ("container", "words"),
    [
        ({"image": "busybox", "command": ["sh", "-c", "echo hi"]}, "only runs kslim's runner"),
        ({"command": ["kslim", "validate", "/etc/kslim/job.yaml"]}, "only runs kslim's runner"),
        ({"image": "busybox"}, "only runs kslim's runner image"),
    ],
)
def test_anything_but_the_runner_is_refused(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str, container: dict[str, Any], words: str
) -> None:
    config, pod = runner_pod("other")
    pod["spec"]["containers"][0].update(container)
    apply(control_plane, ns, config, pod)
    failed = wait_phase(kube_api, ns, "other", "Failed", timeout=10)
    assert failed["status"]["reason"] == "NotKslimRunner"
    assert words in failed["status"]["message"]
    assert terminated(failed)["reason"] == "NotKslimRunner"


def test_pods_it_cannot_run_fail_with_a_reason(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    config, host_path = runner_pod("hostpath")
    host_path["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    _, no_config = runner_pod("noconfig")
    apply(control_plane, ns, config, host_path, no_config)
    unsupported = wait_phase(kube_api, ns, "hostpath", "Failed", timeout=10)
    assert unsupported["status"]["reason"] == "UnsupportedPod"
    assert "hostPath" in unsupported["status"]["message"]
    missing = wait_phase(kube_api, ns, "noconfig", "Failed", timeout=15)
    assert missing["status"]["reason"] == "ConfigError"
    assert 'configMap "noconfig" not found' in missing["status"]["message"]


def test_a_pod_that_does_not_fit_says_why_and_runs_once_it_fits(
    control_plane: ControlPlane, kube_api: client.ApiClient, ns: str
) -> None:
    config, pod = runner_pod("waits")
    pod["spec"]["volumes"][2]["persistentVolumeClaim"]["claimName"] = "later"
    config2, picky = runner_pod("picky")
    picky["spec"]["nodeSelector"] = {"gpu": "h100"}
    apply(control_plane, ns, config, pod, config2, picky)

    def scheduled_condition(name: str) -> dict[str, Any] | None:
        conditions = read_pod(kube_api, ns, name).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    waiting = wait_for(lambda: scheduled_condition("waits"), "PodScheduled=False on waits", 10)
    assert waiting["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "later" not found' in waiting["message"]
    picky_condition = wait_for(lambda: scheduled_condition("picky"), "PodScheduled=False on picky", 10)
    assert "didn't match Pod's node affinity/selector" in picky_condition["message"]
    apply(control_plane, ns, claim("later"))
    assert wait_phase(kube_api, ns, "waits", "Succeeded", timeout=30)["spec"]["nodeName"] == NODE_NAME
    assert not read_pod(kube_api, ns, "picky")["spec"].get("nodeName")


def test_deleting_a_running_pod_stops_its_process(
    control_plane: ControlPlane, kube_api: client.ApiClient, kubelet: LocalKubelet, ns: str
) -> None:
    apply(control_plane, ns, *runner_pod("doomed", sleep=300))
    wait_phase(kube_api, ns, "doomed", "Running")
    pid = int(seen(kubelet, "doomed")["pid"])
    assert pid_alive(pid)
    client.CoreV1Api(kube_api).delete_namespaced_pod("doomed", ns, grace_period_seconds=5)
    core = client.CoreV1Api(kube_api)
    wait_for(lambda: not exists(lambda: core.read_namespaced_pod("doomed", ns)), "pod doomed gone", 20)
    assert not pid_alive(pid)


def test_suspending_the_job_stops_its_pod(
    control_plane: ControlPlane, kube_api: client.ApiClient, kubelet: LocalKubelet, ns: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "paused"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec("paused")}},
    }
    apply(control_plane, ns, job_config("paused", sleep=300), job)
    pid = int(seen(kubelet, "paused")["pid"])
    assert pid_alive(pid)
    client.BatchV1Api(kube_api).patch_namespaced_job("paused", ns, {"spec": {"suspend": True}})
    core = client.CoreV1Api(kube_api)
    wait_for(
        lambda: not core.list_namespaced_pod(ns, label_selector="job-name=paused").items, "pods gone", 20
    )
    assert not pid_alive(pid)
