"""Names the operator stamps on objects: labels, annotations, the finalizer, child names."""

from __future__ import annotations

import hashlib

from kslim_api.v1alpha1 import GROUP, PLURAL, VERSION

CJ_GROUP = GROUP
CJ_VERSION = VERSION
CJ_PLURAL = PLURAL

#: Our own prefix for annotations Kopf writes (instead of Kopf's legacy kopf.zalando.org).
ANNOTATION_PREFIX = "kslim.dev"
#: The name Kopf would use for a finalizer. No handler needs one today (see `driver`: children go by
#: garbage collection), so no object carries it; it is set so a future one never uses Kopf's default.
FINALIZER = "kslim.dev/cleanup"

LABEL_JOB_NAME = "kslim.dev/job-name"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
#: Kueue's labels (queue name, priority class) on a CompressionJob are passed on to its Job.
KUEUE_LABEL_PREFIX = "kueue.x-k8s.io/"
LABEL_KUEUE_QUEUE = f"{KUEUE_LABEL_PREFIX}queue-name"
#: Kueue's Workloads (read to tell why a job waits): their API and the label naming their job's uid.
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
KUEUE_JOB_UID_LABEL = f"{KUEUE_LABEL_PREFIX}job-uid"

MANAGED_BY = "kslim-operator"
RUNNER_NAME = "kslim-runner"

ANNOTATION_SPEC_HASH = "kslim.dev/spec-hash"

#: A Job's name becomes a label value on its pods (batch.kubernetes.io/job-name): 63 characters.
MAX_JOB_NAME_LENGTH = 63
#: Volume names are DNS-1123 labels.
MAX_VOLUME_NAME_LENGTH = 63


def job_name(cj_name: str) -> str:
    """The batch/v1 Job of a CompressionJob: same name, so a restarted operator finds it."""
    return cj_name


def configmap_name(cj_name: str) -> str:
    """The ConfigMap holding the job file."""
    return f"{cj_name}-job"


def handover_secret_name(cj_name: str) -> str:
    """The Secret holding a multi-node job's hand-over token."""
    return f"{cj_name}-handover"


def child_labels(cj_name: str) -> dict[str, str]:
    """Labels on every child object (ConfigMap, Job, pods)."""
    return {
        LABEL_NAME: RUNNER_NAME,
        LABEL_INSTANCE: cj_name,
        LABEL_COMPONENT: "runner",
        LABEL_PART_OF: "kslim",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_NAME: cj_name,
    }


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_label(base: str, limit: int = MAX_VOLUME_NAME_LENGTH) -> str:
    """`base` as a DNS-1123 label; too long or odd names get a stable hash suffix."""
    clean = "".join(c if c.isalnum() or c == "-" else "-" for c in base.lower()).strip("-")
    if clean == base and len(clean) <= limit:
        return clean
    suffix = short_hash(base)
    return f"{clean[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"
