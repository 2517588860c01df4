"""Which transitions a user hears about as Kubernetes Events on the CompressionJob (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kslim_api.contract import Phase

from kslim_operator import conditions as cond
from kslim_operator.observe import Observation
from kslim_operator.refusals import POD_CREATE_REASONS

NORMAL, WARNING = "Normal", "Warning"
#: Pending reasons worth a Warning: the pod cannot start and a person must act.
BLOCKED = frozenset(
    {"ImagePullFailed", "Unschedulable", "PVCNotFound", "ContainerConfigError", *POD_CREATE_REASONS}
)


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def job_created(job_name: str) -> Event:
    return Event(NORMAL, "JobCreated", f"created Job {job_name} and ConfigMap {job_name}-job")


def _running_reason(status: dict[str, Any]) -> str | None:
    c = cond.find(status.get("conditions"), cond.RUNNING)
    return str(c.get("reason")) if c else None


def transition_events(
    before: dict[str, Any], after: dict[str, Any], obs: Observation, job_name: str
) -> list[Event]:
    """Events for the change from status `before` to status `after`."""
    events: list[Event] = []
    was, now = before.get("phase"), after.get("phase")
    if not cond.is_true(before.get("conditions"), cond.ACCEPTED) and cond.is_true(
        after.get("conditions"), cond.ACCEPTED
    ):
        events.append(job_created(job_name))
    reason_was, reason_now = _running_reason(before), _running_reason(after)
    if now == Phase.PENDING and reason_now != reason_was:
        if reason_now == "Queued":
            events.append(Event(NORMAL, "Queued", obs.message))
        elif reason_now in BLOCKED:
            events.append(Event(WARNING, reason_now, obs.message))
    before_attempts, after_attempts = before.get("attempts") or 0, after.get("attempts") or 0
    if after_attempts > before_attempts >= 1 and obs.last_failure:
        events.append(Event(WARNING, "Retrying", f"attempt {after_attempts} after: {obs.last_failure}"))
    if now == Phase.RUNNING and was != Phase.RUNNING:
        events.append(Event(NORMAL, "Started", f"attempt {after_attempts or 1} is running"))
    stage_was, stage_now = before.get("stage"), after.get("stage")
    if stage_now and stage_was != stage_now and now == Phase.RUNNING:
        events.append(
            Event(
                NORMAL, "StageChanged", f"stage {stage_now}" + (f" (after {stage_was})" if stage_was else "")
            )
        )
    if now == Phase.SUSPENDED and was != Phase.SUSPENDED:
        events.append(Event(NORMAL, "Suspended", obs.message))
    if was == Phase.SUSPENDED and now != Phase.SUSPENDED:
        events.append(Event(NORMAL, "Resumed", "resuming from the last stage checkpoint"))
    if now == Phase.SUCCEEDED and was != Phase.SUCCEEDED:
        events.append(Event(NORMAL, "Succeeded", obs.message))
    if now == Phase.FAILED and was != Phase.FAILED:
        events.append(Event(WARNING, obs.reason, obs.message))
    return events
