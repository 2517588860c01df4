"""The operator on the real control plane: given CompressionJobs like these, the cluster ends up so."""

from __future__ import annotations

from pathlib import Path

import pytest
from cj_samples import cj_body, report_text, with_spec
from fakelet import FakeKubelet, JobWatcher, LogServer
from operator_harness import Jobs, operator_running

pytestmark = pytest.mark.cluster


def test_create_makes_configmap_and_job_with_the_pod_template(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="yolo"))
        status = jobs.wait_phase("yolo", "Pending")
        job = jobs.wait("Job yolo", lambda: jobs.job("yolo"))
        cm = jobs.core.read_namespaced_config_map("yolo-job", namespace)
        cr = jobs.get("yolo")
        for obj in (job, cm):
            owner = obj.metadata.owner_references[0]
            assert (owner.kind, owner.name, owner.uid, owner.controller) == (
                "CompressionJob",
                "yolo",
                cr["metadata"]["uid"],
                True,
            )
            assert obj.metadata.labels["kslim.dev/job-name"] == "yolo"
        assert "job.yaml" in cm.data
        assert job.spec.backoff_limit == 2 and job.spec.suspend is False
        assert [r.action for r in job.spec.pod_failure_policy.rules] == ["FailJob", "Ignore"]
        pod_spec = job.spec.template.spec
        container = pod_spec.containers[0]
        assert container.image == "kslim-runner:test"
        assert container.resources.limits["nvidia.com/gpu"] == "1"
        assert container.security_context.read_only_root_filesystem is True
        assert pod_spec.affinity.node_affinity is not None
        assert status["startTime"] and status["strategySummary"]
        accepted = jobs.condition("yolo", "Accepted")
        assert accepted and accepted["status"] == "True"
        pod = kubelet.wait_pod("yolo")
        assert pod.spec.containers[0].command[:2] == ["kslim", "run"]
        jobs.wait("JobCreated event", lambda: ("Normal", "JobCreated") in jobs.events("yolo"))


def test_succeeded_pod_gives_status_figures_and_kubectl_wait_works(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path, control_plane: object
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="yolo"))
        pod = kubelet.wait_pod("yolo")
        kubelet.run(pod)
        jobs.wait_phase("yolo", "Running")
        kubelet.finish(pod, 0, report_text())
        control_plane.kubectl(  # type: ignore[attr-defined]
            "wait", "--for=condition=Succeeded", "-n", namespace, "compressionjob/yolo", "--timeout=30s"
        )
        st = jobs.status("yolo")
        assert st["phase"] == "Succeeded"
        assert st["baseline"]["ap"] == 0.31 and st["result"]["ap"] == 0.306
        assert st["result"]["latencyMs"]["int8"]["p50"] == 1.5
        assert st["delta"]["speedup"] == 2.07 and st["artifacts"]["model"].endswith("/model")
        assert st["attempts"] == 1 and st["completionTime"] and st["progress"]["percent"] == 100
        assert {c["type"]: c["status"] for c in st["conditions"]} == {
            "Accepted": "True",
            "Running": "False",
            "Succeeded": "True",
            "Failed": "False",
            "QualityGatePassed": "True",
        }
        jobs.wait("Succeeded event", lambda: ("Normal", "Succeeded") in jobs.events("yolo"))
        # no finalizer, ever: deleting a CompressionJob is never blocked by the operator
        assert not jobs.get("yolo")["metadata"].get("finalizers")


def test_user_error_exit_fails_without_retry(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path, control_plane: object
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="bad"))
        pod = kubelet.wait_pod("bad")
        kubelet.run(pod)
        kubelet.finish(pod, 2, "Traceback (most recent call last):\n ...\nValueError: something odd")
        control_plane.kubectl(  # type: ignore[attr-defined]
            "wait", "--for=condition=Failed", "-n", namespace, "compressionjob/bad", "--timeout=30s"
        )
        failed = jobs.condition("bad", "Failed")
        assert failed is not None and failed["reason"] == "RunnerError"
        assert "exit code 2" in failed["message"] and "something odd" in failed["message"]
        # the operator decides from the pod; the Job controller agrees a moment later (FailJob)
        jobs.wait(
            "Job Failed",
            lambda: any(
                c.type == "Failed" and c.status == "True" for c in jobs.job("bad").status.conditions or []
            ),  # type: ignore[union-attr]
        )
        assert jobs.job("bad").status.failed == 1  # type: ignore[union-attr]
        assert len(kubelet.pods("bad")) == 1  # no retry
        assert jobs.status("bad")["attempts"] == 1
        jobs.wait("RunnerError event", lambda: ("Warning", "RunnerError") in jobs.events("bad"))


def test_infrastructure_failure_is_retried_and_counted(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="flaky"))
        first = kubelet.wait_pod("flaky")
        kubelet.run(first)
        kubelet.finish(first, 1, "RuntimeError: CUDA error: an illegal memory access was encountered")
        # the Job controller backs off ~10 s before the next pod
        second = kubelet.wait_pod("flaky", timeout=60, exclude={first.metadata.name})
        kubelet.run(second)
        st = jobs.wait("attempt 2 running", lambda: (s := jobs.status("flaky")).get("attempts") == 2 and s)
        assert st["phase"] in ("Running", "Pending")
        jobs.wait("Retrying event", lambda: ("Warning", "Retrying") in jobs.events("flaky"))
        kubelet.finish(second, 0, report_text())
        st = jobs.wait_phase("flaky", "Succeeded")
        assert st["attempts"] == 2


def test_suspend_and_resume(jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="pausable"))
        pod = kubelet.wait_pod("pausable")
        kubelet.run(pod)
        jobs.wait_phase("pausable", "Running")
        jobs.patch("pausable", {"spec": {"runPolicy": {"suspend": True}}})
        st = jobs.wait_phase("pausable", "Suspended")
        assert any(c["type"] == "Suspended" and c["status"] == "True" for c in st["conditions"])
        job = jobs.job("pausable")
        assert job is not None and job.spec.suspend is True
        jobs.wait("pod deleted", lambda: not kubelet.live_pods("pausable"))
        jobs.patch("pausable", {"spec": {"runPolicy": {"suspend": False}}})
        again = kubelet.wait_pod("pausable", exclude={pod.metadata.name})
        kubelet.run(again)
        st = jobs.wait_phase("pausable", "Running")
        resumed = next(c for c in st["conditions"] if c["type"] == "Suspended")
        assert resumed["status"] == "False" and resumed["reason"] == "Resumed"
        jobs.wait(
            "events", lambda: {("Normal", "Suspended"), ("Normal", "Resumed")} <= set(jobs.events("pausable"))
        )


def test_delete_removes_children(jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="gone"))
        kubelet.run(kubelet.wait_pod("gone"))
        jobs.wait_phase("gone", "Running")
        assert not jobs.get("gone")["metadata"].get("finalizers")
        jobs.delete("gone")
        jobs.wait("CR gone", lambda: not jobs.custom.list_namespaced_custom_object(
            "kslim.dev", "v1alpha1", namespace, "compressionjobs")["items"], timeout=30)  # fmt: skip
        # garbage collection of the children (the collector may first need to discover the CRD)
        jobs.wait("Job gone", lambda: jobs.job("gone") is None, timeout=90)
        jobs.wait(
            "ConfigMap gone",
            lambda: (
                not jobs.core.list_namespaced_config_map(namespace, label_selector="kslim.dev/job-name").items
            ),
            timeout=90,
        )


def test_operator_restart_mid_job_makes_no_second_job(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="steady"))
        pod = kubelet.wait_pod("steady")
        kubelet.run(pod)
        jobs.wait_phase("steady", "Running")
    first_uid = jobs.job("steady").metadata.uid  # type: ignore[union-attr]
    kubelet.finish(pod, 0, report_text())  # finishes while no operator runs
    with operator_running(namespace, kubeconfig):
        st = jobs.wait_phase("steady", "Succeeded")
    assert st["result"]["ap"] == 0.306
    all_jobs = jobs.batch.list_namespaced_job(namespace).items
    assert [j.metadata.uid for j in all_jobs] == [first_uid]


def test_deleting_while_the_operator_is_down_is_not_blocked(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="orphan"))
        jobs.wait_phase("orphan", "Pending")
    jobs.delete("orphan")  # no operator running, no finalizer to wait for
    jobs.wait("CR gone", lambda: not jobs.custom.list_namespaced_custom_object(
        "kslim.dev", "v1alpha1", namespace, "compressionjobs")["items"], timeout=10)  # fmt: skip
    jobs.wait("Job gone", lambda: jobs.job("orphan") is None, timeout=90)


def test_image_pull_failure_is_reported_then_fails_the_job(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig, start_timeout_seconds=4):
        jobs.create(cj_body(name="noimg", spec=with_spec(template={"image": "registry.invalid/nope:1"})))
        pod = kubelet.wait_pod("noimg")
        kubelet.wait_image(pod, "ImagePullBackOff", 'Back-off pulling image "registry.invalid/nope:1"')
        running = jobs.wait(
            "ImagePullFailed condition",
            lambda: (c := jobs.condition("noimg", "Running")) and c["reason"] == "ImagePullFailed" and c,
            timeout=10,
        )
        assert "registry.invalid/nope:1" in running["message"]
        failed = jobs.wait("Failed", lambda: jobs.condition("noimg", "Failed"), timeout=30)
        assert failed["reason"] == "ImagePullFailed" and failed["status"] == "True"
        jobs.wait(
            "Job deleted", lambda: jobs.job("noimg") is None or jobs.job("noimg").metadata.deletion_timestamp
        )


def test_max_concurrent_jobs_queues_the_rest_in_creation_order(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    total, limit = 50, 5
    watcher = JobWatcher(jobs.batch, namespace)
    names_ = [f"q-{i:02d}" for i in range(total)]
    with watcher, operator_running(namespace, kubeconfig, max_concurrent_jobs=limit):
        for name in names_:
            jobs.create(cj_body(name=name, spec=with_spec(resources={"gpus": 0})))
        jobs.wait(f"{total} Jobs", lambda: len(watcher.seen) == total, timeout=60)
        queued = jobs.wait(
            "queued jobs", lambda: (s := jobs.status(names_[-1])).get("phase") == "Pending" and s
        )
        running = next(c for c in queued["conditions"] if c["type"] == "Running")
        assert running["reason"] == "Queued"

        def finish_all() -> bool:
            for pod in kubelet.live_pods_all():
                kubelet.run(pod)
                kubelet.finish(pod, 0, report_text())
            return all(jobs.status(n).get("phase") == "Succeeded" for n in names_[-limit:]) and all(
                jobs.status(n).get("phase") == "Succeeded" for n in names_
            )

        jobs.wait("all succeeded", finish_all, timeout=240)
    assert watcher.max_active <= limit, f"{watcher.max_active} Jobs ran at once"
    assert watcher.max_active == limit
    order = watcher.started
    assert sorted(order) == names_
    assert set(order[:limit]) == set(names_[:limit])
    assert all(abs(order.index(n) - i) < limit for i, n in enumerate(names_)), order


def _progress(stage: str, step: int, total: int, loss: float) -> str:
    return (
        f'{{"kslim": "progress", "stage": "{stage}", "step": {step}, "total": {total}, '
        f'"percent": {100.0 * step / total:.1f}, "loss": {loss}, "ap": null, "etaSeconds": 30}}'
    )


def test_progress_travels_through_the_pod_log(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    server = LogServer(tmp_path)
    kubelet.register_node(server.port)
    try:
        with operator_running(namespace, kubeconfig):
            jobs.create(cj_body(name="chatty"))
            pod = kubelet.wait_pod("chatty")
            kubelet.bind(pod)
            server.logs[(namespace, pod.metadata.name)] = "\n".join(
                [
                    "starting",
                    _progress("baseline", 10, 200, 5.5),
                    _progress("baseline", 40, 200, 3.21),
                    "free text",
                ]
            )
            kubelet.run(pod)
            st = jobs.wait(
                "baseline progress",
                lambda: (s := jobs.status("chatty")).get("progress", {}).get("step") == 40 and s,
                timeout=15,
            )
            assert st["stage"] == "baseline"
            assert st["progress"]["stagePercent"] == 20.0 and st["progress"]["loss"] == 3.21
            assert 12.5 < st["progress"]["percent"] < 25  # baseline is the 2nd of 8 planned stages
            server.logs[(namespace, pod.metadata.name)] += "\n" + _progress("prune", 5, 50, 2.9)
            jobs.wait("prune stage", lambda: jobs.status("chatty").get("stage") == "prune", timeout=15)
            jobs.wait("StageChanged", lambda: ("Normal", "StageChanged") in jobs.events("chatty"))
            assert any(
                p.startswith(f"/containerLogs/{namespace}/{pod.metadata.name}/runner")
                for p in server.requests
            )
    finally:
        server.close()
        kubelet.remove_node()


def test_missing_pvc_is_named_in_a_condition(
    jobs: Jobs, kubelet: FakeKubelet, namespace: str, kubeconfig: Path
) -> None:
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="nopvc"))  # its pvc://data and pvc://artifacts claims do not exist
        kubelet.wait_pod("nopvc")
        running = jobs.wait(
            "PVCNotFound",
            lambda: (c := jobs.condition("nopvc", "Running")) and c["reason"] == "PVCNotFound" and c,
            timeout=30,
        )
        assert "artifacts, data" in running["message"] and namespace in running["message"]
        jobs.wait("PVCNotFound event", lambda: ("Warning", "PVCNotFound") in jobs.events("nopvc"))


def test_multi_node_without_training_operator_fails_engine_not_installed(
    jobs: Jobs, namespace: str, kubeconfig: Path
) -> None:
    """This control plane has no kubeflow.org PaddleJob resource (the engine tests run theirs on a
    control plane of their own): the job fails at once, saying what to install; nothing is left."""
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="mn", spec=with_spec(resources={"gpus": 1, "workers": 2})))
        failed = jobs.wait("Failed", lambda: jobs.condition("mn", "Failed"), timeout=30)
        assert failed["reason"] == "EngineNotInstalled", failed
        assert "training-operator" in failed["message"] and "workers to 1" in failed["message"]
        assert jobs.status("mn")["phase"] == "Failed"
        assert jobs.job("mn") is None  # no batch/v1 Job instead
        jobs.wait("EngineNotInstalled event", lambda: ("Warning", "EngineNotInstalled") in jobs.events("mn"))
