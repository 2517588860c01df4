"""Kueue v0.17.0 really admits and queues on the test control plane: its webhooks suspend queued Jobs
and PaddleJobs at creation, its scheduler reserves ClusterQueue quota (GPUs counted from the pod
templates) and unsuspends what fits, and a finished workload frees its quota for the next one.

Jobs finish the real way: the test plays the kubelet, kube-controller-manager's Job controller
marks the Job Complete, training-operator marks the PaddleJob Succeeded, and Kueue sees that.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_objects import GPU, GpuQueue, Objects
from kubernetes import client
from support.engines import (
    QUEUE_LABEL,
    Kueue,
    TrainingOperator,
    batch_job,
    condition,
    has_condition,
    paddlejob,
    set_pod_phase,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.engines]

JOB_POD_SELECTOR = "batch.kubernetes.io/job-name={}"
PADDLE_POD_SELECTOR = "training.kubeflow.org/job-name={}"


def _gpus(count: int) -> dict[str, Any]:
    return {"requests": {"cpu": "1", "memory": "1Gi", GPU: str(count)}, "limits": {GPU: str(count)}}


def _admitted(read: Any, name: str, suspended: Any) -> None:
    wait_for(lambda: suspended(read(name)) is False, f"{name} admitted (unsuspended)", timeout=30)


def _job_suspended(job: dict[str, Any]) -> bool | None:
    suspend: bool | None = job["spec"].get("suspend")
    return suspend


def _paddlejob_suspended(job: dict[str, Any]) -> bool | None:
    suspend: bool | None = job["spec"].get("runPolicy", {}).get("suspend")
    return suspend


def _wait_workers(objects: Objects, name: str) -> None:
    selector = PADDLE_POD_SELECTOR.format(name)
    wait_for(lambda: len(objects.pods(selector)) == 2, f"training-operator makes the 2 workers of {name}")


def _quota_reserved(objects: Objects, kind: str, name: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        workload = objects.workload_of(kind, name)
        return workload if workload and has_condition(workload, "QuotaReserved", status) else None

    return wait_for(check, f"Workload of {kind} {name} with QuotaReserved={status}", timeout=30)


def test_webhook_suspends_a_job_that_names_a_queue(kueue: Kueue, objects: Objects) -> None:
    # Kueue only handles namespaces a test opts in (the session's other tests never meet it).
    ignored = objects.create(batch_job("ignored", objects.namespace, queue="no-such-queue", suspend=False))
    assert ignored["spec"]["suspend"] is False
    kueue.manage(objects.namespace)

    created = objects.create(batch_job("queued", objects.namespace, queue="no-such-queue", suspend=False))
    assert created["spec"]["suspend"] is True  # the object as stored: Kueue's mutating webhook ran

    # Its Workload waits, and says why.
    workload = _quota_reserved(objects, "Job", "queued", "False")
    assert workload["metadata"]["name"].startswith("job-queued-")
    assert workload["spec"]["queueName"] == "no-such-queue"
    reserved = condition(workload, "QuotaReserved")
    assert reserved is not None
    assert (reserved["reason"], reserved["message"]) == (
        "Inadmissible",
        "LocalQueue no-such-queue doesn't exist",
    )

    # Without the label Kueue leaves a Job alone (manageJobsWithoutQueueName: false).
    plain = objects.create(batch_job("plain", objects.namespace, suspend=False))
    assert plain["spec"]["suspend"] is False


def test_gpu_quota_admits_two_jobs_and_the_third_when_one_finishes(
    kueue: Kueue, gpu_queue: GpuQueue, objects: Objects, kube_api: client.ApiClient
) -> None:
    ns = objects.namespace
    for name in ("first", "second"):
        objects.create(batch_job(name, ns, queue=gpu_queue.local_queue, suspend=True, resources=_gpus(4)))
    for name in ("first", "second"):
        _admitted(objects.job, name, _job_suspended)
        workload = _quota_reserved(objects, "Job", name, "True")
        assert has_condition(workload, "Admitted")
        [pod_set] = workload["status"]["admission"]["podSetAssignments"]
        assert pod_set["resourceUsage"][GPU] == "4"
        assert pod_set["flavors"][GPU] == gpu_queue.flavor

    objects.create(batch_job("third", ns, queue=gpu_queue.local_queue, suspend=True, resources=_gpus(4)))
    workload = _quota_reserved(objects, "Job", "third", "False")
    reserved = condition(workload, "QuotaReserved")
    assert reserved is not None
    assert reserved["reason"] == "Pending"
    assert reserved["message"] == (
        f"couldn't assign flavors to pod set main: insufficient unused quota for {GPU} "
        f"in flavor {gpu_queue.flavor}, 4 more needed"
    )
    assert objects.job("third")["spec"]["suspend"] is True

    # "first" runs and succeeds: the Job controller completes it, Kueue frees its 4 GPUs.
    pods = wait_for(lambda: objects.pods(JOB_POD_SELECTOR.format("first")), "the pod of Job first")
    names = [p["metadata"]["name"] for p in pods]
    set_pod_phase(kube_api, ns, names, "Running")
    set_pod_phase(kube_api, ns, names, "Succeeded")
    wait_for(lambda: has_condition(objects.job("first"), "Complete"), "Job first Complete", timeout=30)
    first = objects.job("first")
    assert has_condition(first, "SuccessCriteriaMet")
    assert first["status"]["completionTime"] and first["status"]["startTime"]

    _admitted(objects.job, "third", _job_suspended)
    finished = condition(objects.workload_of("Job", "first") or {}, "Finished")
    assert finished is not None and (finished["status"], finished["reason"]) == ("True", "Succeeded")
    assert has_condition(objects.job("second"), "Complete") is False  # still running, still admitted
    assert objects.job("second")["spec"]["suspend"] is False


def test_gpu_quota_queues_paddlejobs_through_the_kubeflow_integration(
    kueue: Kueue,
    training_operator: TrainingOperator,
    gpu_queue: GpuQueue,
    objects: Objects,
    kube_api: client.ApiClient,
) -> None:
    """Two workers x 2 GPUs = 4 GPUs a PaddleJob: two fit in 8, the third waits."""
    ns = objects.namespace

    def create(name: str) -> dict[str, Any]:
        job = paddlejob(name, ns, workers=2, resources=_gpus(2), queue=gpu_queue.local_queue)
        return objects.create(job)

    for name in ("first", "second"):
        created = create(name)
        assert created["spec"]["runPolicy"]["suspend"] is True  # Kueue's PaddleJob webhook
        assert created["metadata"]["labels"] == {QUEUE_LABEL: gpu_queue.local_queue}
    for name in ("first", "second"):
        _admitted(objects.paddlejob, name, _paddlejob_suspended)
        workload = _quota_reserved(objects, "PaddleJob", name, "True")
        assert workload["metadata"]["name"].startswith(f"paddlejob-{name}-")
        assert [(s["name"], s["count"]) for s in workload["spec"]["podSets"]] == [("worker", 2)]
        [pod_set] = workload["status"]["admission"]["podSetAssignments"]
        assert (pod_set["count"], pod_set["resourceUsage"][GPU]) == (2, "4")
        _wait_workers(objects, name)

    create("third")
    workload = _quota_reserved(objects, "PaddleJob", "third", "False")
    reserved = condition(workload, "QuotaReserved")
    assert reserved is not None
    assert (reserved["reason"], reserved["message"]) == (
        "Pending",
        f"couldn't assign flavors to pod set worker: insufficient unused quota for {GPU} "
        f"in flavor {gpu_queue.flavor}, 4 more needed",
    )
    third = objects.paddlejob("third")
    assert third["spec"]["runPolicy"]["suspend"] is True
    suspended = condition(third, "Suspended")  # training-operator's view of a suspended PaddleJob
    assert suspended is not None
    assert (suspended["status"], suspended["reason"], suspended["message"]) == (
        "True",
        "PaddleJobSuspended",
        "PaddleJob third is suspended.",
    )
    assert objects.pods(PADDLE_POD_SELECTOR.format("third")) == []

    # Both workers of "first" succeed: training-operator marks it Succeeded, Kueue frees 4 GPUs.
    workers = ["first-worker-0", "first-worker-1"]
    set_pod_phase(kube_api, ns, workers, "Running")
    set_pod_phase(kube_api, ns, workers, "Succeeded")
    wait_for(lambda: has_condition(objects.paddlejob("first"), "Succeeded"), "PaddleJob first Succeeded")

    _admitted(objects.paddlejob, "third", _paddlejob_suspended)
    _wait_workers(objects, "third")
    resumed = wait_for(  # training-operator writes the condition a moment after Kueue unsuspends
        lambda: (c := condition(objects.paddlejob("third"), "Suspended")) and c["status"] == "False" and c,
        "PaddleJob third's Suspended condition False",
    )
    assert resumed["reason"] == "PaddleJobResumed"
    finished = condition(objects.workload_of("PaddleJob", "first") or {}, "Finished")
    assert finished is not None and (finished["status"], finished["reason"]) == ("True", "Succeeded")
