"""kslim's operator with Kubeflow training-operator v1.8.1 (no Kueue) on the engines' control plane,
the fake kubelet playing the pods: what a user does by hand to a running multi-node job."""

from __future__ import annotations

from pathlib import Path

import pytest
from cj_samples import cj_body, with_spec
from engine_objects import KUBEFLOW, Objects
from fakelet import FakeKubelet
from kubernetes import client
from operator_harness import Jobs, operator_running
from support.engines import TrainingOperator

pytestmark = [pytest.mark.cluster, pytest.mark.engines]


def test_a_paddlejob_deleted_by_hand_fails_the_job_and_leaves_nothing_running(
    jobs: Jobs,
    kubelet: FakeKubelet,
    objects: Objects,
    namespace: str,
    kubeconfig: Path,
    kube_api: client.ApiClient,
    training_operator: TrainingOperator,
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="byhand", spec=with_spec(resources={"gpus": 1, "workers": 2})))
        workers = jobs.wait(
            "2 workers", lambda: (p := kubelet.live_pods("byhand")) and len(p) == 2 and p, timeout=60
        )
        for worker in workers:
            kubelet.run(worker)
        jobs.wait_phase("byhand", "Running")
        assert objects.paddlejob("byhand")["metadata"]["ownerReferences"][0]["kind"] == "CompressionJob"
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
            *KUBEFLOW, namespace, "paddlejobs", "byhand", propagation_policy="Background"
        )
        failed = jobs.wait("Failed", lambda: jobs.condition("byhand", "Failed"), timeout=60)
        assert failed["reason"] == "JobDeleted" and "re-create" in failed["message"]
        # the workers go with their PaddleJob (garbage collection), and are not replaced
        jobs.wait("workers gone", lambda: not kubelet.live_pods("byhand"), timeout=60)
