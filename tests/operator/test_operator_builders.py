"""Given a CompressionJob like this, the operator builds a ConfigMap and a Job like that."""

from __future__ import annotations

import yaml
from cj_samples import cj_body, with_spec
from kslim_api.compressionjob import CompressionJob
from kslim_operator import names
from kslim_operator.builders import build_configmap, build_job
from kslim_operator.request import get_spec_hash, parse_request
from kslim_operator.settings import Settings

SETTINGS = Settings(image="registry.example/kslim-runner:1.2.3")


def _job(body=None, settings=SETTINGS, suspend=False):  # type: ignore[no-untyped-def]
    return build_job(parse_request(body or cj_body()), settings, suspend=suspend)


def _container(job):  # type: ignore[no-untyped-def]
    return job["spec"]["template"]["spec"]["containers"][0]


def test_configmap_holds_the_resolved_job_file_the_runner_can_validate() -> None:
    cm = build_configmap(parse_request(cj_body()))
    assert cm["metadata"]["name"] == "yolo-job"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-yolo"
    assert cm["immutable"] is True
    doc = yaml.safe_load(cm["data"]["job.yaml"])
    assert doc["metadata"] == {"name": "yolo", "namespace": "team-a"}
    assert doc["spec"]["train"]["learningRate"] == "0.001"  # defaults resolved
    parsed = CompressionJob.model_validate(doc)  # the runner reads it with the same schema
    assert parsed.spec.strategy is not None and len(parsed.spec.strategy) == 2


def test_job_is_named_after_the_cr_owned_by_it_and_labelled() -> None:
    job = _job()
    meta = job["metadata"]
    assert meta["name"] == "yolo" and meta["namespace"] == "team-a"
    owner = meta["ownerReferences"][0]
    assert owner == {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "name": "yolo",
        "uid": "uid-yolo",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for labels in (meta["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[names.LABEL_JOB_NAME] == "yolo"
        assert labels["app.kubernetes.io/managed-by"] == "kslim-operator"
        assert labels["app.kubernetes.io/instance"] == "yolo"


def test_run_policy_goes_to_the_job() -> None:
    spec = _job()["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["suspend"] is False
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podReplacementPolicy"] == "Failed"


def test_pod_failure_policy_fails_fast_on_user_errors_and_ignores_disruptions() -> None:
    rules = _job()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "runner", "operator": "In", "values": [2, 3, 4]},
    }
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_container_runs_the_runner_with_the_contract() -> None:
    c = _container(_job())
    assert c["image"] == "registry.example/kslim-runner:1.2.3"
    assert c["command"] == ["kslim", "run", "/etc/kslim/job.yaml", "--output", "/output"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["KSLIM_TERMINATION_MESSAGE_PATH"] == "/dev/termination-log"
    assert env["KSLIM_PVC_ROOT"] == "/mnt/pvc"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_gpu_requests_and_limits() -> None:
    res = _container(_job())["resources"]
    assert res["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert res["requests"] == res["limits"]
    cpu_only = _container(_job(cj_body(spec=with_spec(resources={"gpus": 0}))))["resources"]
    assert "nvidia.com/gpu" not in cpu_only["limits"]


def test_operator_default_resources_apply_only_where_the_spec_is_silent() -> None:
    settings = Settings(default_cpu="8", default_memory="32Gi")
    silent = _container(_job(cj_body(spec=with_spec(resources={"gpus": 1})), settings))["resources"]
    assert silent["limits"]["cpu"] == "8" and silent["limits"]["memory"] == "32Gi"
    explicit = _container(_job(cj_body(), settings))["resources"]
    assert explicit["limits"]["cpu"] == "2" and explicit["limits"]["memory"] == "4Gi"


def test_restricted_security_context() -> None:
    pod = _job()["spec"]["template"]["spec"]
    sc = _container(_job())["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_volumes_config_scratch_shm_output_and_claims() -> None:
    job = _job()
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = _container(job)["volumeMounts"]
    by_path = {m["mountPath"]: m for m in mounts}
    assert volumes["config"]["configMap"]["name"] == "yolo-job"
    assert by_path["/etc/kslim"]["readOnly"] is True
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert by_path["/dev/shm"]["name"] == "dshm"
    assert "emptyDir" in volumes[by_path["/tmp"]["name"]]
    # every claim named by a pvc:// URI, mounted where the runner looks for it
    assert volumes["pvc-data"]["persistentVolumeClaim"] == {"claimName": "data"}
    assert volumes["pvc-artifacts"]["persistentVolumeClaim"] == {"claimName": "artifacts"}
    assert by_path["/mnt/pvc/data"]["name"] == "pvc-data"
    assert by_path["/mnt/pvc/artifacts"]["name"] == "pvc-artifacts"
    # output: <path>/<job name> of the output claim
    assert by_path["/output"] == {"name": "pvc-artifacts", "mountPath": "/output", "subPath": "jobs/yolo"}


def test_non_pvc_output_gets_scratch_space() -> None:
    job = _job(cj_body(spec=with_spec(output={"uri": "s3://bucket-a/jobs"})))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    by_path = {m["mountPath"]: m for m in _container(job)["volumeMounts"]}
    assert by_path["/output"]["name"] == "output" and "emptyDir" in volumes["output"]
    env = {e["name"]: e["value"] for e in _container(job)["env"]}
    assert env["KSLIM_OUTPUT_URI"] == "s3://bucket-a/jobs"


def test_gpu_jobs_get_the_default_architecture_affinity_and_toleration() -> None:
    pod = _job()["spec"]["template"]["spec"]
    expr = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"][0]
    assert expr == {"key": "nvidia.com/gpu.compute.major", "operator": "In", "values": ["6", "7", "8"]}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_user_affinity_replaces_the_default_and_knobs_pass_through() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a100"]}]}
                ]
            }
        }
    }
    template = {
        "affinity": affinity,
        "nodeSelector": {"gpu": "yes"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "priorityClassName": "batch-high",
        "serviceAccountName": "trainer",
        "imagePullSecrets": ["regcred"],
        "image": "my/runner:dev",
        "env": [{"name": "FOO", "value": "bar"}],
    }
    job = _job(cj_body(spec=with_spec(template=template)))
    pod = job["spec"]["template"]["spec"]
    assert pod["affinity"] == affinity
    assert pod["nodeSelector"] == {"gpu": "yes"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["priorityClassName"] == "batch-high"
    assert pod["serviceAccountName"] == "trainer"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert _container(job)["image"] == "my/runner:dev"
    assert {"name": "FOO", "value": "bar"} in _container(job)["env"]


def test_cpu_jobs_get_no_gpu_scheduling() -> None:
    pod = _job(cj_body(spec=with_spec(resources={"gpus": 0})))["spec"]["template"]["spec"]
    assert "affinity" not in pod and "tolerations" not in pod


def test_kueue_labels_pass_through_to_the_job() -> None:
    body = cj_body(labels={"kueue.x-k8s.io/queue-name": "gpu-queue", "team": "a"})
    job = _job(body, suspend=True)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "team" not in job["metadata"]["labels"]
    assert job["spec"]["suspend"] is True


def test_spec_hash_ignores_suspend_only() -> None:
    a = parse_request(cj_body()).spec
    b = parse_request(
        cj_body(spec=with_spec(runPolicy={**cj_body()["spec"]["runPolicy"], "suspend": True}))
    ).spec
    c = parse_request(cj_body(spec=with_spec(train={"iterations": 21, "batchSize": 4}))).spec
    assert get_spec_hash(a) == get_spec_hash(b)
    assert get_spec_hash(a) != get_spec_hash(c)


def test_long_claim_names_make_valid_volume_names() -> None:
    claim = "a" * 70
    job = _job(cj_body(spec=with_spec(output={"uri": f"pvc://{claim}/x"})))
    names_ = [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]]
    assert all(len(n) <= 63 for n in names_)
