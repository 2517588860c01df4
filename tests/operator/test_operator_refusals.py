"""A child the API server refuses ends the CompressionJob with the server's message, never a retry
loop; a Job that cannot create its pod says why on the CR and fails after the start timeout."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cj_samples import cj_body, with_spec
from kslim_api.contract import Phase
from kslim_api.podpolicy import service_account_message
from kslim_operator.observe import observe_pod_create_failure
from kslim_operator.refusals import creation_refused, pod_create_failure
from kslim_operator.views import JobView
from kubernetes import client
from operator_harness import Jobs, operator_running

# --- pure -------------------------------------------------------------------------------------------


def test_refusals_are_sorted_by_cause_and_redacted() -> None:
    obs = creation_refused("Job", 422, 'Job.batch "x" is invalid: spec.template.spec.tolerations[0]')
    assert (obs.phase, obs.reason, obs.terminal) == (Phase.FAILED, "InvalidSpec", True)
    assert "tolerations[0]" in obs.message
    quota = creation_refused("Job", 403, 'jobs.batch "x" is forbidden: exceeded quota: q, requested: ...')
    assert quota.reason == "QuotaExceeded"
    assert creation_refused("ConfigMap", 403, "denied by webhook").reason == "CreateRefused"
    assert "pw" not in creation_refused("Job", 422, "bad https://u:pw@h/x").message


def test_failed_create_event_is_the_waiting_reason_then_the_failure() -> None:
    msg = 'Error creating: pods "x-1" is forbidden: violates PodSecurity "restricted:latest": hostPath'
    failure = pod_create_failure(["older", msg])
    assert failure is not None and failure[0] == "PodSecurityViolation" and "PodSecurity" in failure[1]
    assert pod_create_failure([]) is None
    job = JobView(
        name="x",
        namespace="n",
        uid="u",
        cj_name="x",
        suspend=False,
        spec_hash="",
        created="2026-01-01T00:00:00Z",
    )
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    waiting = observe_pod_create_failure(job, failure, start + datetime.timedelta(seconds=5), 300, 0)
    assert waiting.phase == Phase.PENDING and waiting.reason == "PodSecurityViolation"
    done = observe_pod_create_failure(job, failure, start + datetime.timedelta(seconds=301), 300, 0)
    assert done.phase == Phase.FAILED and done.terminal and done.stop_job and "waited 301 s" in done.message


# --- on the control plane ---------------------------------------------------------------------------


def _failed(jobs: Jobs, name: str) -> dict[str, str]:
    jobs.wait_phase(name, "Failed", timeout=15)
    cond = jobs.condition(name, "Failed")
    assert cond is not None and cond["status"] == "True"
    return cond


def _quota(core: client.CoreV1Api, namespace: str, resource: str) -> None:
    """A quota of 0 that admission enforces at once (no quota controller here: we write its status)."""
    body = {"metadata": {"name": "zero"}, "spec": {"hard": {resource: "0"}}}
    core.create_namespaced_resource_quota(namespace, body)
    status = {"status": {"hard": {resource: "0"}, "used": {resource: "0"}}}
    core.patch_namespaced_resource_quota_status("zero", namespace, status)


@pytest.mark.cluster
def test_refused_children_fail_the_job_at_once(jobs: Jobs, namespace: str, kubeconfig: Path) -> None:
    bad_toleration = with_spec(template={"tolerations": [{"key": "gpu", "operator": "Sometimes"}]})
    clashing_volume = with_spec(template={"volumes": [{"name": "config", "emptyDir": {}}]})
    account = with_spec(template={"serviceAccountName": "admin"})
    allowed = with_spec(template={"serviceAccountName": "runner-ok"})
    with operator_running(namespace, kubeconfig, allowed_service_accounts="runner-ok"):
        for name, spec in (
            ("tol", bad_toleration),
            ("vol", clashing_volume),
            ("sa", account),
            ("ok", allowed),
        ):
            jobs.create(cj_body(name=name, spec=spec))
        tol = _failed(jobs, "tol")
        assert tol["reason"] == "InvalidSpec" and "tolerations[0].operator" in tol["message"], tol
        vol = _failed(jobs, "vol")
        assert vol["reason"] == "InvalidSpec" and "Duplicate value" in vol["message"], vol
        sa = _failed(jobs, "sa")
        assert sa["reason"] == "InvalidSpec"
        assert sa["message"] == f"spec.template.serviceAccountName: {service_account_message(['runner-ok'])}"
        jobs.wait("Job ok", lambda: jobs.job("ok"))
        for name in ("tol", "vol", "sa"):
            assert jobs.job(name) is None
            accepted = jobs.condition(name, "Accepted")
            assert accepted is not None and accepted["status"] == "False"
            jobs.wait(f"{name} Failed event", lambda n=name: ("Warning", "InvalidSpec") in jobs.events(n))


@pytest.mark.cluster
def test_quota_refusing_the_job_fails_it_as_quota_exceeded(
    jobs: Jobs, namespace: str, kubeconfig: Path
) -> None:
    _quota(jobs.core, namespace, "count/jobs.batch")
    with operator_running(namespace, kubeconfig):
        jobs.create(cj_body(name="q"))
        cond = _failed(jobs, "q")
    assert cond["reason"] == "QuotaExceeded" and "exceeded quota" in cond["message"], cond


@pytest.mark.cluster
def test_failed_pod_creation_shows_then_fails_after_the_start_timeout(
    jobs: Jobs, namespace: str, kubeconfig: Path
) -> None:
    _quota(jobs.core, namespace, "pods")
    with operator_running(namespace, kubeconfig, start_timeout_seconds=6):
        jobs.create(cj_body(name="nopod"))

        def waiting_reason() -> str | None:
            cond = jobs.condition("nopod", "Running")
            return cond["message"] if cond and cond["reason"] == "QuotaExceeded" else None

        message = jobs.wait("the FailedCreate reason on the CR", waiting_reason, timeout=15)
        assert "the Job cannot create its pod" in message and "exceeded quota" in message
        assert jobs.status("nopod")["phase"] == "Pending"
        cond = _failed(jobs, "nopod")
        assert cond["reason"] == "QuotaExceeded" and "waited" in cond["message"]
        jobs.wait("the Job deleted", lambda: jobs.job("nopod") is None)


@pytest.mark.cluster
def test_an_adopted_job_is_not_counted_and_keeps_its_start_time(
    jobs: Jobs, namespace: str, kubeconfig: Path
) -> None:
    """A previous operator created the Job (and for `told`, wrote the status too) and died before its
    status patch or its Event went out."""
    import urllib.request

    from kslim_operator.builders import build_configmap, build_job
    from kslim_operator.request import parse_request
    from kslim_operator.settings import Settings
    from operator_harness import free_port

    created = {}
    for name in ("silent", "told"):
        cr = jobs.create(cj_body(name=name))
        req = parse_request(cr)
        jobs.core.create_namespaced_config_map(namespace, build_configmap(req))
        created[name] = jobs.batch.create_namespaced_job(namespace, build_job(req, Settings(), suspend=True))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    accepted = {"type": "Accepted", "status": "True", "reason": "JobCreated", "message": "m",
                "lastTransitionTime": now, "observedGeneration": 1}  # fmt: skip
    jobs.custom.patch_namespaced_custom_object_status(
        "kslim.dev", "v1alpha1", namespace, "compressionjobs", "told",
        {"status": {"startTime": now, "phase": "Pending", "conditions": [accepted]}},
    )  # fmt: skip
    port = free_port()
    with operator_running(namespace, kubeconfig, metrics_port=port):
        for name in ("silent", "told"):
            jobs.wait(f"{name} JobCreated", lambda n=name: ("Normal", "JobCreated") in jobs.events(n))
        jobs.wait("silent started", lambda: jobs.status("silent").get("startTime"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    assert "kslim_jobs_created_total 0.0" in text
    job_created = created["silent"].metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert jobs.status("silent")["startTime"] == job_created
    for name in ("silent", "told"):
        assert jobs.events(name).count(("Normal", "JobCreated")) == 1, name
