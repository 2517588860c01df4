"""Kubeflow training-operator v1.8.1 really runs PaddleJobs on the test control plane.

The test plays the kubelet (pods/status); the operator's own controller makes the pods and Services
and derives the PaddleJob's conditions from the pod phases. What these tests pin down is what kslim's
operator relies on: names, labels, env, ports, conditions and the failure rules of v1.8.1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from engine_objects import Objects
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.engines import TrainingOperator, condition, has_condition, paddlejob, set_pod_phase, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.engines]

SELECTOR = "training.kubeflow.org/job-name={}"
MASTER_PORT = 36543  # PaddleJobDefaultPort; the container port is named "master"


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


def _workers(objects: Objects, name: str, count: int = 2) -> list[dict[str, Any]]:
    def live() -> list[dict[str, Any]] | None:
        pods = [p for p in objects.pods(SELECTOR.format(name)) if not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == count else None

    return wait_for(live, f"{count} worker pods of {name}", timeout=30)


def _wait_condition(objects: Objects, name: str, kind: str, status: str = "True") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = condition(objects.paddlejob(name), kind)
        return found if found and found["status"] == status else None

    return wait_for(check, f"PaddleJob {name} condition {kind}={status}", timeout=30)


def test_paddlejob_gets_worker_pods_services_env_and_conditions(
    training_operator: TrainingOperator, objects: Objects, kube_api: client.ApiClient
) -> None:
    ns = objects.namespace
    objects.create(paddlejob("pj", ns, workers=2))
    pods = _workers(objects, "pj")

    assert [p["metadata"]["name"] for p in pods] == ["pj-worker-0", "pj-worker-1"]
    for index, pod in enumerate(pods):
        assert pod["metadata"]["labels"] == {
            "training.kubeflow.org/job-name": "pj",
            "training.kubeflow.org/operator-name": "paddlejob-controller",
            "training.kubeflow.org/replica-index": str(index),
            "training.kubeflow.org/replica-type": "worker",
        }
        [owner] = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("PaddleJob", "pj", True)
        container = pod["spec"]["containers"][0]
        assert (container["name"], container["image"]) == ("paddle", "kslim/runner:test")
        assert container["ports"] == [{"containerPort": MASTER_PORT, "name": "master", "protocol": "TCP"}]
        assert pod["spec"]["restartPolicy"] == "OnFailure"  # the PaddleJob default

    env0, env1 = _env(pods[0]), _env(pods[1])
    # Collective mode (no Master replica): worker 0 is the rendezvous; it learns its own pod IP.
    assert env0["PADDLE_MASTER"] == f"$(POD_IP_DUMMY):{MASTER_PORT}"
    assert env0["POD_IP_DUMMY"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}
    assert env1["PADDLE_MASTER"] == f"pj-worker-0:{MASTER_PORT}"  # the headless Service's name
    assert "POD_IP_DUMMY" not in env1
    for env in (env0, env1):
        assert (env["PADDLE_NNODES"], env["PADDLE_JOB_ID"], env["PYTHONUNBUFFERED"]) == ("2", "pj", "1")
        assert "PADDLE_TRAINER_NUM" not in env and "PADDLE_SERVER_NUM" not in env  # PS mode only

    def two_services() -> list[dict[str, Any]] | None:
        services = objects.services(SELECTOR.format("pj"))
        return services if len(services) == 2 else None

    services = wait_for(two_services, "the 2 Services")
    assert [s["metadata"]["name"] for s in services] == ["pj-worker-0", "pj-worker-1"]
    for index, service in enumerate(services):
        assert service["spec"]["clusterIP"] == "None"  # headless: the name resolves to the pod
        assert service["spec"]["ports"] == [
            {"name": "master", "port": MASTER_PORT, "protocol": "TCP", "targetPort": MASTER_PORT}
        ]
        assert service["spec"]["selector"]["training.kubeflow.org/replica-index"] == str(index)

    created = _wait_condition(objects, "pj", "Created")
    assert (created["reason"], created["message"]) == ("PaddleJobCreated", "PaddleJob pj is created.")

    set_pod_phase(kube_api, ns, ["pj-worker-0", "pj-worker-1"], "Running")
    running = _wait_condition(objects, "pj", "Running")
    assert (running["reason"], running["message"]) == ("PaddleJobRunning", f"PaddleJob {ns}/pj is running.")

    set_pod_phase(kube_api, ns, ["pj-worker-0", "pj-worker-1"], "Succeeded")
    succeeded = _wait_condition(objects, "pj", "Succeeded")
    assert (succeeded["reason"], succeeded["message"]) == (
        "PaddleJobSucceeded",
        f"PaddleJob {ns}/pj successfully completed.",
    )
    job = objects.paddlejob("pj")
    assert has_condition(job, "Running", "False")
    assert job["status"]["replicaStatuses"]["Worker"]["succeeded"] == 2
    assert job["status"]["completionTime"]


def test_failed_worker_fails_the_job_with_restart_policy_never(
    training_operator: TrainingOperator, objects: Objects, kube_api: client.ApiClient
) -> None:
    ns = objects.namespace
    objects.create(paddlejob("pj", ns, workers=2, restart_policy="Never"))
    _workers(objects, "pj")
    set_pod_phase(kube_api, ns, ["pj-worker-0", "pj-worker-1"], "Running")
    _wait_condition(objects, "pj", "Running")

    set_pod_phase(kube_api, ns, ["pj-worker-1"], "Failed", exit_code=1)
    failed = _wait_condition(objects, "pj", "Failed")
    assert (failed["reason"], failed["message"]) == (
        "PaddleJobFailed",
        "PaddleJob pj is failed because 1 Worker replica(s) failed.",
    )
    # runPolicy.cleanPodPolicy defaults to None for PaddleJobs: the other worker is left running.
    phases = {p["metadata"]["name"]: p["status"]["phase"] for p in objects.pods(SELECTOR.format("pj"))}
    assert phases == {"pj-worker-0": "Running", "pj-worker-1": "Failed"}


def test_on_failure_makes_a_failed_worker_again(
    training_operator: TrainingOperator, objects: Objects, kube_api: client.ApiClient
) -> None:
    """restartPolicy OnFailure (the default), no backoffLimit: a pod that ends Failed is deleted
    and made again under the same name, every time; the PaddleJob stays Running."""
    ns = objects.namespace
    objects.create(paddlejob("pj", ns, workers=2, restart_policy="OnFailure"))
    _workers(objects, "pj")
    set_pod_phase(kube_api, ns, ["pj-worker-0", "pj-worker-1"], "Running")
    _wait_condition(objects, "pj", "Running")

    for _ in range(2):
        [old] = [p for p in objects.pods(SELECTOR.format("pj")) if p["metadata"]["name"] == "pj-worker-1"]
        set_pod_phase(kube_api, ns, ["pj-worker-1"], "Failed", exit_code=1)

        def made_again(uid: str = old["metadata"]["uid"]) -> dict[str, Any] | None:
            pods = objects.pods(SELECTOR.format("pj"))
            new = [p for p in pods if p["metadata"]["name"] == "pj-worker-1" and p["metadata"]["uid"] != uid]
            return new[0] if new and not new[0]["metadata"].get("deletionTimestamp") else None

        wait_for(made_again, "pj-worker-1 made again", timeout=30)
        wait_for(lambda: (p := made_again()) and p["status"]["phase"] == "Pending", "a fresh pj-worker-1")
        set_pod_phase(kube_api, ns, ["pj-worker-1"], "Running")
    job = objects.paddlejob("pj")
    assert condition(job, "Failed") is None
    assert has_condition(job, "Running")


def test_validating_webhook_refuses_a_paddlejob_without_a_paddle_container(
    training_operator: TrainingOperator, objects: Objects
) -> None:
    job = paddlejob("pj", objects.namespace)
    job["spec"]["paddleReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] = "runner"
    with pytest.raises(ApiException) as refused:
        objects.create(job)
    assert refused.value.status == 403  # a webhook denial
    message = json.loads(str(refused.value.body))["message"]
    assert message.startswith('admission webhook "validator.paddlejob.training-operator.kubeflow.org" denied')
    assert message.endswith('must have at least one container with name "paddle"')
