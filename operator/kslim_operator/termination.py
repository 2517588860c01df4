"""The runner's termination message (docs/contracts.md): its final word on a pod."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
#: Longest text of a message that is not our JSON (FallbackToLogsOnError puts the log tail there).
MAX_RAW_TEXT = 1024


@dataclass(frozen=True)
class TerminationReport:
    outcome: str | None = None
    reason: str | None = None
    message: str = ""
    stage: str | None = None
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


def _dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def parse_termination_message(text: str | None) -> TerminationReport | None:
    """The report in a container's termination message; None when there is none. Text that is not
    the runner's JSON is kept (shortened) as raw_text."""
    if text is None or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or (
        "outcome" not in data and "result" not in data and "reason" not in data
    ):
        raw = text.strip()
        if len(raw) > MAX_RAW_TEXT:
            raw = "…" + raw[-MAX_RAW_TEXT:]
        return TerminationReport(raw_text=raw)
    reason = data.get("reason")
    artifacts = data.get("artifacts") if isinstance(data.get("artifacts"), dict) else {}
    return TerminationReport(
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
