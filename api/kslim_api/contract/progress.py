"""The progress line: one JSON object per line on the runner's stdout, read by the operator from the
tail of the pod log (docs/contracts.md). Other stdout lines are free text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from kslim_api.contract.reading import TooDeep, loads, reject
from kslim_api.contract.states import STAGES

KIND = "progress"
#: Free text never contains it; a line with it is ours or a broken copy of ours.
MARKER = '"kslim"'
#: A rendered line has ~150 bytes; anything much longer is not one.
MAX_LINE_BYTES = 1024
WHAT = "progress line"


@dataclass(frozen=True)
class ProgressLine:
    stage: str
    step: int | None = None
    total: int | None = None
    percent: float | None = None
    """Of the stage, 0-100."""
    loss: float | None = None
    ap: float | None = None
    eta_seconds: int | None = None
    """Seconds left in the stage."""

    @classmethod
    def at(
        cls,
        stage: str,
        step: int,
        total: int,
        *,
        loss: float | None = None,
        ap: float | None = None,
        eta_seconds: float | None = None,
    ) -> ProgressLine:
        """The runner's report of `step` of `total`: numbers rounded, NaN and infinities left out."""
        percent = 100.0 * step / total if total > 0 else 100.0
        return cls(
            stage=str(stage),
            step=int(step),
            total=int(total),
            percent=round(percent, 1),
            loss=_rounded(loss),
            ap=_rounded(ap),
            eta_seconds=None if eta_seconds is None else max(0, round(eta_seconds)),
        )

    def render(self) -> str:
        """One compact JSON line."""
        obj: dict[str, Any] = {
            "kslim": KIND,
            "stage": self.stage,
            "step": self.step,
            "total": self.total,
            "percent": self.percent,
            "loss": self.loss,
            "ap": self.ap,
            "etaSeconds": self.eta_seconds,
        }
        return json.dumps(obj, separators=(", ", ": "))


def _rounded(x: float | None, ndigits: int = 5) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), ndigits)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    n = _num(value)
    return None if n is None or n < 0 else int(n)


def parse_progress_line(line: str) -> ProgressLine | None:
    """The progress object of one stdout line, or None. Free text is None quietly; a line that looks
    like ours but is not (cut off, not JSON, too long, another kind, unknown stage) is None and logged."""
    line = line.strip()
    if MARKER not in line or not line.startswith("{"):
        return None
    if len(line.encode()) > MAX_LINE_BYTES:
        reject(WHAT, f"longer than {MAX_LINE_BYTES} bytes", line)
        return None
    try:
        data = loads(line)
    except TooDeep:
        reject(WHAT, "nested too deep", line)
        return None
    except ValueError:
        reject(WHAT, "not JSON (cut off?)", line)
        return None
    if not isinstance(data, dict) or data.get("kslim") != KIND:
        reject(WHAT, f'not a {{"kslim": "{KIND}"}} object', line)
        return None
    if data.get("stage") not in STAGES:
        reject(WHAT, f"unknown stage {data.get('stage')!r}", line)
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
