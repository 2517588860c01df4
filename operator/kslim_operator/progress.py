"""Progress lines the runner prints (docs/contracts.md), found in the tail of the pod log.

Why the log and not a push from the runner: reading the log keeps API credentials out of the GPU
pods (the runner pod mounts no service account token), works with any serviceAccount a user picks,
and costs one small GET per running job per interval; the final result still travels in the
termination message, so a lost log line only delays progress, never the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kslim_api.status import Stage

STAGES = tuple(stage.value for stage in Stage)  # the schema's order (docs/contracts.md)
MARKER = '"kslim"'


@dataclass(frozen=True)
class ProgressLine:
    stage: str
    step: int | None = None
    total: int | None = None
    percent: float | None = None
    loss: float | None = None
    ap: float | None = None
    eta_seconds: int | None = None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    n = _num(value)
    return None if n is None or n < 0 else int(n)


def parse_progress_line(line: str) -> ProgressLine | None:
    """One progress object, or None for any other line."""
    line = line.strip()
    if MARKER not in line or not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kslim") != "progress" or data.get("stage") not in STAGES:
        return None
    percent = _num(data.get("percent"))
    if percent is not None:
        percent = min(max(percent, 0.0), 100.0)
    return ProgressLine(
        stage=str(data["stage"]),
        step=_int(data.get("step")),
        total=_int(data.get("total")),
        percent=percent,
        loss=_num(data.get("loss")),
        ap=_num(data.get("ap")),
        eta_seconds=_int(data.get("etaSeconds")),
    )


def last_progress(log_tail: str) -> ProgressLine | None:
    """The newest progress line in a log tail."""
    for line in reversed(log_tail.splitlines()):
        parsed = parse_progress_line(line)
        if parsed is not None:
            return parsed
    return None


def planned_stages(methods: list[str]) -> list[str]:
    """The stages a job goes through, in order (the runner's pipeline)."""
    return ["prepare", "baseline", *methods, "export", "evaluate", "benchmark", "report"]


def overall_percent(stages: list[str], line: ProgressLine) -> float | None:
    """Whole-job percent: each planned stage is an equal share. Repeated methods (two prune steps)
    count from the first unfinished one, which is what the runner reports next."""
    if line.stage not in stages:
        return None
    index = stages.index(line.stage)
    within = (line.percent or 0.0) / 100.0
    return round(100.0 * (index + within) / len(stages), 1)
