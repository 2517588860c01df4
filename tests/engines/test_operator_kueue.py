"""kslim's operator with a real Kueue (v0.17.0) on the engines' control plane: a ClusterQueue of 8
GPUs admits two 4-GPU CompressionJobs, the third waits with Kueue's own reason in its status and runs
when one finishes; a multi-node job (2 workers x 4 GPUs, a PaddleJob) queues and runs the same way
through Kueue's Kubeflow integration. The fake kubelet plays the pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cj_samples import cj_body, report_text, with_spec
from engine_objects import GpuQueue, Objects
from fakelet import FakeKubelet
from kubernetes import client
from operator_harness import Jobs, operator_running
from support.engines import Kueue, TrainingOperator

pytestmark = [pytest.mark.cluster, pytest.mark.engines]

QUEUE = "kueue.x-k8s.io/queue-name"


def _queued_job(name: str, queue: str, **resources: Any) -> dict[str, Any]:
    return cj_body(name=name, spec=with_spec(resources={"gpus": 4, **resources}), labels={QUEUE: queue})


def _admitted(jobs: Jobs, name: str) -> bool:
    job = jobs.job(name)
    return job is not None and job.spec.suspend is False


def test_kueue_admits_two_of_three_and_the_third_says_why_then_runs(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path, gpu_queue: GpuQueue
) -> None:
    names = ["ka", "kb", "kc"]
    with operator_running(namespace, kubeconfig):
        for name in names:
            jobs.create(_queued_job(name, gpu_queue.local_queue))
        admitted = jobs.wait(
            "two admitted",
            lambda: (a := [n for n in names if _admitted(jobs, n)]) and len(a) == 2 and a,
            timeout=60,
        )
        (waiting,) = set(names) - set(admitted)
        status = jobs.wait(
            "Kueue's reason in the status",
            lambda: "insufficient unused quota" in (s := jobs.status(waiting)).get("message", "") and s,
            timeout=60,
        )
        assert status["phase"] == "Pending"
        assert "waiting for Kueue to admit the Job (queue gpu)" in status["message"]
        assert "nvidia.com/gpu" in status["message"]
        queued = jobs.condition(waiting, "Running")
        assert queued is not None and queued["reason"] == "Queued"
        # one admitted job finishes: Kueue releases its quota and admits the third
        first = kubelet.wait_pod(admitted[0])
        kubelet.run(first)
        kubelet.finish(first, 0, report_text())
        jobs.wait_phase(admitted[0], "Succeeded")
        jobs.wait("third admitted", lambda: _admitted(jobs, waiting), timeout=60)
        third = kubelet.wait_pod(waiting)
        kubelet.run(third)
        jobs.wait_phase(waiting, "Running")
        assert "waiting for Kueue" not in jobs.status(waiting).get("message", "")


def test_a_multi_node_job_queues_through_kueues_kubeflow_integration(
    jobs: Jobs,
    kubelet: FakeKubelet,
    objects: Objects,
    namespace: str,
    kubeconfig: Path,
    gpu_queue: GpuQueue,
    training_operator: TrainingOperator,
    kueue: Kueue,
    kube_api: client.ApiClient,
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(_queued_job("single", gpu_queue.local_queue))
        jobs.wait("single admitted", lambda: _admitted(jobs, "single"), timeout=60)
        jobs.create(_queued_job("multi", gpu_queue.local_queue, workers=2))  # 2 x 4 GPUs: no room yet
        status = jobs.wait(
            "the PaddleJob waits for quota",
            lambda: "insufficient unused quota" in (s := jobs.status("multi")).get("message", "") and s,
            timeout=60,
        )
        assert "waiting for Kueue to admit the PaddleJob (queue gpu)" in status["message"]
        paddlejob = objects.paddlejob("multi")
        assert paddlejob["spec"]["runPolicy"]["suspend"] is True
        assert paddlejob["metadata"]["labels"][QUEUE] == gpu_queue.local_queue
        assert not kubelet.live_pods("multi")  # no pods while suspended
        # the single-node job finishes; the 8-GPU PaddleJob is admitted and its 2 workers start
        pod = kubelet.wait_pod("single")
        kubelet.run(pod)
        kubelet.finish(pod, 0, report_text())
        jobs.wait(
            "PaddleJob admitted",
            lambda: objects.paddlejob("multi")["spec"]["runPolicy"]["suspend"] is False,
            timeout=60,
        )
        workers = jobs.wait(
            "2 worker pods", lambda: (p := kubelet.live_pods("multi")) and len(p) == 2 and p, timeout=60
        )
        by_name = {p.metadata.name: p for p in workers}
        assert set(by_name) == {"multi-worker-0", "multi-worker-1"}
        for worker in workers:
            kubelet.run(worker)
        jobs.wait_phase("multi", "Running")
        # the follower ends first (exit 0): not yet success; then the leader with the report
        kubelet.finish(by_name["multi-worker-1"], 0, '{"outcome":"Succeeded","message":"worker 1 of 2"}')
        kubelet.finish(by_name["multi-worker-0"], 0, report_text())
        done = jobs.wait_phase("multi", "Succeeded", timeout=60)
        assert done["result"]["ap"] == pytest.approx(0.306)
