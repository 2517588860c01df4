"""A multi-node job (spec.resources.workers > 1) as a Kubeflow PaddleJob, and its hand-over Secret.

kslim does not launch pods across nodes itself: training-operator (v1.8) owns the PaddleJob, creates
one pod and one headless Service per worker and tells each worker where worker 0 is
(PADDLE_MASTER). The worker pods are the single-node runner pod with three changes: the container is
named `paddle` (training-operator's admission requires it), it declares the rendezvous and hand-over
ports, and it gets its rank (from the pod's replica-index label), the worker count and the job's
hand-over token (see kslim_api.contract.nodes).
"""

from __future__ import annotations

import secrets
from typing import Any

from kslim_api.contract import (
    HANDOVER_PORT,
    HANDOVER_PORT_NAME,
    HANDOVER_TOKEN_ENV,
    HANDOVER_TOKEN_KEY,
    MASTER_PORT,
    MASTER_PORT_NAME,
    NODE_RANK_ENV,
    NODES_ENV,
    PADDLE_CONTAINER_NAME,
    PADDLEJOB_GROUP,
    PADDLEJOB_KIND,
    PADDLEJOB_VERSION,
    REPLICA_INDEX_LABEL,
    WORKER_REPLICA,
)

from kslim_operator import names
from kslim_operator.builders.pod import build_pod_template
from kslim_operator.request import JobRequest
from kslim_operator.settings import Settings


def build_handover_secret(req: JobRequest, token: str | None = None) -> dict[str, Any]:
    """The per-job token the workers sign the hand-over with (a fresh random one unless given)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.handover_secret_name(req.name),
            "namespace": req.namespace,
            "labels": names.child_labels(req.name),
            "ownerReferences": [req.owner_reference],
        },
        "immutable": True,
        "stringData": {HANDOVER_TOKEN_KEY: token or secrets.token_urlsafe(32)},
    }


def worker_env(req: JobRequest) -> list[dict[str, Any]]:
    return [
        {"name": NODES_ENV, "value": str(req.spec.resources.workers)},
        {
            "name": NODE_RANK_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{REPLICA_INDEX_LABEL}']"}},
        },
        {
            "name": HANDOVER_TOKEN_ENV,
            "valueFrom": {
                "secretKeyRef": {"name": names.handover_secret_name(req.name), "key": HANDOVER_TOKEN_KEY}
            },
        },
    ]


def build_worker_template(req: JobRequest, settings: Settings) -> dict[str, Any]:
    template = build_pod_template(req, settings)
    container = template["spec"]["containers"][0]
    container["name"] = PADDLE_CONTAINER_NAME
    container["env"] = [*container["env"], *worker_env(req)]
    container["ports"] = [
        {"name": MASTER_PORT_NAME, "containerPort": MASTER_PORT, "protocol": "TCP"},
        {"name": HANDOVER_PORT_NAME, "containerPort": HANDOVER_PORT, "protocol": "TCP"},
    ]
    # training-operator sets the pods' restart policy from the replica spec's.
    template["spec"].pop("restartPolicy", None)
    return template


def build_paddlejob(req: JobRequest, settings: Settings, *, suspend: bool) -> dict[str, Any]:
    """The PaddleJob: collective mode (workers only, worker 0 is the rendezvous), no retries.

    restartPolicy Never: a worker that fails fails the job, with that worker's reason (training-
    operator's other policies restart a worker in place, which cannot rejoin a collective that lost
    it). cleanPodPolicy Running: when the job ends, workers still running are deleted (nothing is
    left for them to do); finished ones stay, so their logs and termination messages can be read."""
    policy = req.spec.run_policy
    # No backoffLimit: with restartPolicy Never the first failed worker fails the PaddleJob anyway,
    # and training-operator's backoff-limit path deletes every pod, the failed one's message with it.
    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "suspend": suspend}
    if policy.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    return {
        "apiVersion": f"{PADDLEJOB_GROUP}/{PADDLEJOB_VERSION}",
        "kind": PADDLEJOB_KIND,
        "metadata": {
            "name": names.job_name(req.name),
            "namespace": req.namespace,
            "labels": {**names.child_labels(req.name), **req.kueue_labels},
            "annotations": {names.ANNOTATION_SPEC_HASH: req.spec_hash},
            "ownerReferences": [req.owner_reference],
        },
        "spec": {
            "runPolicy": run_policy,
            "paddleReplicaSpecs": {
                WORKER_REPLICA: {
                    "replicas": req.spec.resources.workers,
                    "restartPolicy": "Never",
                    "template": build_worker_template(req, settings),
                }
            },
        },
    }
