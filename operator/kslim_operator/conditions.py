"""metav1.Condition helpers. lastTransitionTime changes only when a condition's status flips."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from kslim_api.contract import redact
from kslim_api.status import ConditionType

# The types are the schema's (kslim_api.status.ConditionType); plain strings here for dict keys.
ACCEPTED = ConditionType.ACCEPTED.value
RUNNING = ConditionType.RUNNING.value
SUSPENDED = ConditionType.SUSPENDED.value
SUCCEEDED = ConditionType.SUCCEEDED.value
FAILED = ConditionType.FAILED.value
QUALITY_GATE_PASSED = ConditionType.QUALITY_GATE_PASSED.value

#: The order conditions are listed in (stable output, stable patches).
ORDER = (ACCEPTED, RUNNING, SUSPENDED, SUCCEEDED, FAILED, QUALITY_GATE_PASSED)
MAX_MESSAGE = 4096


@dataclass(frozen=True)
class Desired:
    """A condition as a decision says it should be (without times)."""

    type: str
    status: bool
    reason: str
    message: str = ""


def now_rfc3339(now: datetime.datetime | None = None) -> str:
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    c = find(conditions, type_)
    return c is not None and c.get("status") == "True"


def merge(
    current: list[dict[str, Any]] | None,
    desired: list[Desired],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Apply `desired` to `current`: unchanged status keeps its lastTransitionTime; conditions not in
    `desired` stay as they are. Output is sorted by ORDER (unknown types last, by name)."""
    by_type = {c["type"]: dict(c) for c in current or [] if c.get("type")}
    for want in desired:
        status = "True" if want.status else "False"
        old = by_type.get(want.type)
        flipped = old is None or old.get("status") != status
        by_type[want.type] = {
            "type": want.type,
            "status": status,
            "observedGeneration": generation,
            "lastTransitionTime": now
            if flipped or not old or not old.get("lastTransitionTime")
            else old["lastTransitionTime"],
            "reason": want.reason,
            "message": redact(want.message)[:MAX_MESSAGE],  # like status.message: no user:pass@
        }
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(by_type.values(), key=lambda c: (rank.get(c["type"], len(ORDER)), c["type"]))
