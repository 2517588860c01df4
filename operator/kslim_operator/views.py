"""Compact, immutable views of the Jobs and Pods the operator owns (what the indexes keep).

Only what the decisions need is kept, so 1000 jobs cost little memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kslim_api.contract import (
    CONTAINER_NAME,
    PADDLE_CONTAINER_NAME,
    PADDLEJOB_KIND,
    REPLICA_INDEX_LABEL,
    WORKER_REPLICA,
)

from kslim_operator import names


@dataclass(frozen=True)
class Cond:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class JobView:
    name: str
    namespace: str
    uid: str
    cj_name: str
    suspend: bool
    spec_hash: str
    owner_uid: str = ""
    generation: int = 0
    active: int = 0
    ready: int = 0
    failed: int = 0
    succeeded: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    deleting: bool = False
    kueue: bool = False
    conditions: tuple[Cond, ...] = ()
    created: str = ""
    kind: str = "Job"
    """Job (batch/v1), or PaddleJob (kubeflow.org/v1) for a multi-node job."""

    def condition(self, type_: str) -> Cond | None:
        return next((c for c in self.conditions if c.type == type_ and c.status == "True"), None)

    @property
    def complete(self) -> bool:
        return self.condition("Complete") is not None

    @property
    def failed_condition(self) -> Cond | None:
        """The Failed condition, or FailureTarget (set first, while pods still terminate)."""
        return self.condition("Failed") or self.condition("FailureTarget")

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_condition is not None

    @property
    def holds_slot(self) -> bool:
        """Counts against maxConcurrentJobs: unsuspended, unfinished, not being deleted."""
        return not self.suspend and not self.finished and not self.deleting

    @property
    def attempts(self) -> int:
        return self.active + self.failed + self.succeeded


@dataclass(frozen=True)
class PodView:
    name: str
    cj_name: str
    phase: str
    created: str
    node_name: str | None = None
    running: bool = False
    waiting_reason: str | None = None
    waiting_message: str | None = None
    exit_code: int | None = None
    terminated_reason: str | None = None
    termination_message: str | None = None
    unschedulable: str | None = None
    disrupted: bool = False
    deleting: bool = False
    container: str = CONTAINER_NAME
    finished_at: str | None = None
    rank: int | None = None
    """A multi-node job's worker index (0: the leader, whose log and report count); None: a Job's pod."""

    @property
    def leader(self) -> bool:
        return self.rank in (None, 0)

    @property
    def terminated(self) -> bool:
        return self.exit_code is not None or self.phase in ("Succeeded", "Failed")


def _conds(raw: list[dict[str, Any]] | None) -> tuple[Cond, ...]:
    return tuple(
        Cond(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in raw or []
    )


def job_view(body: dict[str, Any]) -> JobView:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    return JobView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        cj_name=str(labels.get(names.LABEL_JOB_NAME, "")),
        suspend=bool(spec.get("suspend", False)),
        owner_uid=next(
            (str(o.get("uid", "")) for o in meta.get("ownerReferences") or [] if o.get("controller")), ""
        ),
        generation=int(meta.get("generation") or 0),
        spec_hash=str((meta.get("annotations") or {}).get(names.ANNOTATION_SPEC_HASH, "")),
        active=int(status.get("active") or 0),
        ready=int(status.get("ready") or 0),
        failed=int(status.get("failed") or 0),
        succeeded=int(status.get("succeeded") or 0),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        deleting=bool(meta.get("deletionTimestamp")),
        kueue=names.LABEL_KUEUE_QUEUE in labels,
        conditions=_conds(status.get("conditions")),
        created=str(meta.get("creationTimestamp") or ""),
    )


#: What training-operator's PaddleJob conditions mean in a batch Job's words.
_PADDLEJOB_CONDITIONS = {"Succeeded": "Complete", "Failed": "Failed"}


def paddlejob_view(body: dict[str, Any]) -> JobView:
    """A PaddleJob seen as the Job the decisions know: Succeeded is Complete, runPolicy.suspend is
    suspend, the workers' counts are the pods'. Its own other conditions (Created, Running,
    Restarting, Suspended) keep their names."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    workers = (status.get("replicaStatuses") or {}).get(WORKER_REPLICA) or {}
    conditions = tuple(
        Cond(_PADDLEJOB_CONDITIONS.get(c.type, c.type), c.status, c.reason, c.message)
        for c in _conds(status.get("conditions"))
    )
    shaped = {
        "metadata": body.get("metadata") or {},
        "spec": {"suspend": bool((spec.get("runPolicy") or {}).get("suspend", False))},
        "status": {
            "active": workers.get("active"),
            "failed": workers.get("failed"),
            "succeeded": workers.get("succeeded"),
            "startTime": status.get("startTime"),
            "completionTime": status.get("completionTime"),
        },
    }
    return dataclasses.replace(job_view(shaped), conditions=conditions, kind=PADDLEJOB_KIND)


def _runner_status(status: dict[str, Any]) -> dict[str, Any]:
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") in (CONTAINER_NAME, PADDLE_CONTAINER_NAME):
            return dict(cs)
    return {}


def _rank(labels: dict[str, Any]) -> int | None:
    value = labels.get(REPLICA_INDEX_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def pod_view(body: dict[str, Any]) -> PodView:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    cs = _runner_status(status)
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    conds = _conds(status.get("conditions"))
    unschedulable = next(
        (c.message or c.reason for c in conds if c.type == "PodScheduled" and c.status == "False"), None
    )
    disrupted = any(c.type == "DisruptionTarget" and c.status == "True" for c in conds)
    return PodView(
        name=str(meta.get("name", "")),
        cj_name=str(labels.get(names.LABEL_JOB_NAME, "")),
        phase=str(status.get("phase") or "Pending"),
        created=str(meta.get("creationTimestamp") or ""),
        node_name=(body.get("spec") or {}).get("nodeName"),
        running="running" in state,
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        exit_code=terminated.get("exitCode") if terminated else None,
        terminated_reason=terminated.get("reason"),
        termination_message=terminated.get("message"),
        unschedulable=unschedulable,
        disrupted=disrupted,
        deleting=bool(meta.get("deletionTimestamp")),
        container=str(cs.get("name") or _container_name(body)),
        finished_at=terminated.get("finishedAt"),
        rank=_rank(labels),
    )


def _container_name(body: dict[str, Any]) -> str:
    """The runner's container before it has a status: a PaddleJob's worker names it `paddle`."""
    names_ = [c.get("name") for c in (body.get("spec") or {}).get("containers") or []]
    return PADDLE_CONTAINER_NAME if PADDLE_CONTAINER_NAME in names_ else CONTAINER_NAME
