"""The runner pod template: one container running `kslim run`, restricted security context."""

from __future__ import annotations

from typing import Any

from kslim_api.contract import (
    ALLOW_PRIVATE_URLS_ENV,
    CONFIG_DIR,
    CONFIG_FILE,
    CONTAINER_NAME,
    JOB_NAME_ENV,
    JOB_NAMESPACE_ENV,
    NO_TQDM_ENV,
    OUTPUT_URI_ENV,
    PVC_ROOT,
    PVC_ROOT_ENV,
    RUNNER_COMMAND,
    RUNTIME_ENV,
    SCRATCH_DIR,
    SHM_DIR,
    TERMINATION_MESSAGE_PATH,
    TERMINATION_MESSAGE_PATH_ENV,
    parse_pvc_uri,
)
from kslim_api.v1alpha1 import EnvVar

from kslim_operator import names, storage
from kslim_operator.builders.scheduling import build_scheduling
from kslim_operator.request import JobRequest
from kslim_operator.settings import Settings

#: The runner image's user (Dockerfile: USER 65532); set explicitly so runAsNonRoot holds and the
#: volumes are group-writable for it (fsGroup).
RUNNER_UID = 65532

CONFIG_VOLUME = "config"
SCRATCH_VOLUME = "scratch"
SHM_VOLUME = "dshm"
OUTPUT_SCRATCH_VOLUME = "output"


def get_command() -> list[str]:
    return list(RUNNER_COMMAND)


#: Keys of spec.storage.s3.credentialsSecret, each given to the runner as the variable of that name.
S3_SECRET_KEYS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_SESSION_TOKEN", True))


def get_storage_env(req: JobRequest, settings: Settings | None) -> list[dict[str, Any]]:
    """S3 credentials by reference to the Secret (the values never enter the Job, the ConfigMap or
    the CR), and the operator's choice on internal download addresses."""
    env: list[dict[str, Any]] = []
    secret = req.spec.storage.s3.credentials_secret
    if secret:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}}}
            for key, optional in S3_SECRET_KEYS
        ]
    if settings is not None and settings.allow_private_urls:
        env.append({"name": ALLOW_PRIVATE_URLS_ENV, "value": "1"})
    return env


def get_env(req: JobRequest, settings: Settings | None = None) -> list[dict[str, Any]]:
    assert req.spec.output is not None
    ours = [
        {"name": TERMINATION_MESSAGE_PATH_ENV, "value": TERMINATION_MESSAGE_PATH},
        {"name": PVC_ROOT_ENV, "value": PVC_ROOT},
        {"name": OUTPUT_URI_ENV, "value": req.spec.output.uri},
        {"name": JOB_NAME_ENV, "value": req.name},
        {"name": JOB_NAMESPACE_ENV, "value": req.namespace},
        {"name": NO_TQDM_ENV, "value": "1"},
        *({"name": name, "value": value} for name, value in RUNTIME_ENV.items()),
        *get_storage_env(req, settings),
    ]
    # The schema refuses user names the operator owns; dropping them here too keeps a spec that
    # bypassed it (older CRD, edited storage) from replacing ours.
    owned = {e["name"] for e in ours}
    return ours + [user_env(e) for e in req.spec.template.env if e.name not in owned]


def user_env(var: EnvVar) -> dict[str, Any]:
    if var.value_from is None:
        return {"name": var.name, "value": var.value}
    return {"name": var.name, "valueFrom": var.value_from.model_dump(by_alias=True, exclude_none=True)}


def get_resources(req: JobRequest, settings: Settings) -> dict[str, Any]:
    """Requests equal limits (Guaranteed QoS); operator defaults apply where the spec is silent."""
    raw_resources = req.raw_spec.get("resources") or {}
    cpu = req.spec.resources.cpu
    memory = req.spec.resources.memory
    if "cpu" not in raw_resources and settings.default_cpu:
        cpu = settings.default_cpu
    if "memory" not in raw_resources and settings.default_memory:
        memory = settings.default_memory
    amounts: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if req.spec.resources.gpus > 0:
        amounts[settings.gpu_resource_name] = str(req.spec.resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def get_container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def get_pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_UID,
        "fsGroup": RUNNER_UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_volumes(req: JobRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) of the runner container: job file, scratch, /dev/shm, output, claims, user's."""
    assert req.spec.output is not None
    claims = storage.get_claims(req.raw_spec)
    volumes: list[dict[str, Any]] = [
        {
            "name": CONFIG_VOLUME,
            "configMap": {
                "name": names.configmap_name(req.name),
                "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}],
            },
        },
        {"name": SCRATCH_VOLUME, "emptyDir": {}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": req.spec.resources.shm_size}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR},
        {"name": SHM_VOLUME, "mountPath": SHM_DIR},
    ]
    output_uri = req.spec.output.uri
    if parse_pvc_uri(output_uri) is None:
        volumes.append({"name": OUTPUT_SCRATCH_VOLUME, "emptyDir": {}})
    mounts.append(storage.build_output_mount(output_uri, names.job_name(req.name)))
    volumes += storage.build_claim_volumes(claims)
    mounts += storage.build_claim_mounts(claims)
    volumes += [dict(v) for v in req.spec.template.volumes]
    mounts += [m.model_dump(by_alias=True, exclude_none=True) for m in req.spec.template.volume_mounts]
    return volumes, mounts


def build_container(req: JobRequest, settings: Settings, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    template = req.spec.template
    return {
        "name": CONTAINER_NAME,
        "image": template.image or settings.image,
        "imagePullPolicy": template.image_pull_policy or settings.image_pull_policy,
        "command": get_command(),
        "env": get_env(req, settings),
        "resources": get_resources(req, settings),
        "securityContext": get_container_security_context(),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        # A crash before the runner wrote its message still tells something: the log's last lines.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_pod_template(req: JobRequest, settings: Settings) -> dict[str, Any]:
    volumes, mounts = build_volumes(req)
    template = req.spec.template
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The runner needs no API access: progress travels through its log (see reconciler).
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": get_pod_security_context(),
        "containers": [build_container(req, settings, mounts)],
        "volumes": volumes,
        **build_scheduling(req, settings),
    }
    if template.service_account_name:
        spec["serviceAccountName"] = template.service_account_name
    if template.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in template.image_pull_secrets]
    return {"metadata": {"labels": names.child_labels(req.name)}, "spec": spec}
