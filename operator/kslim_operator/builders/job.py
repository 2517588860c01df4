"""The batch/v1 Job: retries, deadline, suspension and clean-up are Kubernetes' own."""

from __future__ import annotations

from typing import Any

from kslim_api.contract import CONTAINER_NAME, NO_RETRY_EXIT_CODES

from kslim_operator import names
from kslim_operator.builders.pod import build_pod_template
from kslim_operator.request import JobRequest
from kslim_operator.settings import Settings


def get_pod_failure_policy() -> dict[str, Any]:
    """User errors fail the Job at once; preemption/eviction (DisruptionTarget) does not count
    against backoffLimit; everything else (exit 1, OOM, node loss) is retried."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": list(NO_RETRY_EXIT_CODES),
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def build_job(req: JobRequest, settings: Settings, *, suspend: bool) -> dict[str, Any]:
    """The Job; `suspend` is decided by the caller (user suspension, the operator's queue, Kueue)."""
    policy = req.spec.run_policy
    labels = {**names.child_labels(req.name), **req.kueue_labels}
    spec: dict[str, Any] = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": policy.backoff_limit,
        "podFailurePolicy": get_pod_failure_policy(),
        # A replacement pod starts only once the failed one is gone: never two writers in /output.
        "podReplacementPolicy": "Failed",
        "suspend": suspend,
        "template": build_pod_template(req, settings),
    }
    if policy.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.job_name(req.name),
            "namespace": req.namespace,
            "labels": labels,
            "annotations": {names.ANNOTATION_SPEC_HASH: req.spec_hash},
            "ownerReferences": [req.owner_reference],
        },
        "spec": spec,
    }
