"""The termination message: the runner's final word on a pod, compact JSON it writes to the
container's termination message path and the operator reads from the pod's status (docs/contracts.md).

A crash before the runner wrote it leaves the log's last lines there instead (the container's
terminationMessagePolicy is FallbackToLogsOnError): the reader keeps those as `raw_text`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kslim_api.contract.exits import Outcome
from kslim_api.contract.reading import TooDeep, loads, reject

#: Kubernetes keeps at most this many bytes of a container's termination message.
LIMIT = 4096
#: How much of a message that is not ours is kept (the end of it: a log's last words).
MAX_RAW_TEXT = 1024
#: The message's shortened length when the whole does not fit.
SHORT_MESSAGE = 512
#: Dropped in this order until the message fits (the report in the output folder has them all).
OPTIONAL_KEYS = ("artifacts", "delta", "result", "baseline", "qualityGate")
REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
WHAT = "termination message"


@dataclass(frozen=True)
class TerminationMessage:
    outcome: str | None = None
    """Succeeded or Failed (`Outcome`)."""
    reason: str | None = None
    """One CamelCase word (`Reason`)."""
    message: str = ""
    stage: str | None = None
    """The stage the run ended in."""
    baseline: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    quality_gate: dict[str, Any] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    raw_text: str | None = None
    """The message when it is not the runner's JSON (a crash; the log's last lines)."""

    @property
    def structured(self) -> bool:
        return self.raw_text is None

    @classmethod
    def failed(cls, reason: str, message: str, stage: str | None) -> TerminationMessage:
        return cls(outcome=Outcome.FAILED, reason=reason, message=message, stage=stage)

    def render(self) -> str:
        """Compact JSON under LIMIT bytes: the message is shortened first, then optional parts dropped."""
        body: dict[str, Any] = {
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
            "stage": self.stage,
        }
        optional = {
            "baseline": self.baseline,
            "result": self.result,
            "delta": self.delta,
            "qualityGate": self.quality_gate,
            "artifacts": self.artifacts or None,
        }
        body |= {k: v for k, v in optional.items() if v is not None}
        text = _compact(body)
        if _fits(text):
            return text
        body["message"] = self.message[:SHORT_MESSAGE]
        for key in OPTIONAL_KEYS:
            text = _compact(body)
            if _fits(text):
                return text
            body.pop(key, None)
        return _compact(body)[: LIMIT - 1]


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _fits(text: str) -> bool:
    return len(text.encode()) < LIMIT


def _dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def _raw(text: str) -> TerminationMessage:
    if len(text) > MAX_RAW_TEXT:
        text = "…" + text[-MAX_RAW_TEXT:]
    return TerminationMessage(raw_text=text)


def parse_termination_message(text: str | None) -> TerminationMessage | None:
    """The runner's report in a container's termination message; None when there is none. Any other
    text is kept (its end) as raw_text; text that should have been ours (JSON-like, cut off, too long)
    is also logged. Never raises."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    if len(text.encode()) > LIMIT:
        reject(WHAT, f"longer than {LIMIT} bytes", raw)
        return _raw(raw)
    try:
        data = loads(text)
    except TooDeep:
        reject(WHAT, "nested too deep", raw)
        return _raw(raw)
    except ValueError:
        if raw.startswith(("{", "[")):
            reject(WHAT, "not JSON (cut off?)", raw)
        return _raw(raw)  # else the log's last lines of a crash: expected, kept quietly
    if not isinstance(data, dict) or not {"outcome", "result", "reason"} & data.keys():
        reject(WHAT, "not the runner's JSON object", raw)
        return _raw(raw)
    reason = data.get("reason")
    artifacts = data.get("artifacts") if isinstance(data.get("artifacts"), dict) else {}
    return TerminationMessage(
        outcome=str(data["outcome"]) if data.get("outcome") else None,
        reason=str(reason) if isinstance(reason, str) and REASON_RE.match(reason) else None,
        message=str(data.get("message") or ""),
        stage=str(data["stage"]) if isinstance(data.get("stage"), str) else None,
        baseline=_dict(data.get("baseline")),
        result=_dict(data.get("result")),
        delta=_dict(data.get("delta")),
        quality_gate=_dict(data.get("qualityGate")),
        artifacts={str(k): str(v) for k, v in (artifacts or {}).items()},
    )
