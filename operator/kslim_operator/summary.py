"""A compact summary of each CompressionJob (what the CR index keeps): queue order and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kslim_operator import names
from kslim_operator.status import is_terminal


@dataclass(frozen=True)
class JobSummary:
    namespace: str
    name: str
    uid: str
    created: str
    phase: str
    terminal: bool
    suspend: bool
    kueue: bool
    invalid: bool
    attempts: int | None = None
    baseline_ap: float | None = None
    result_ap: float | None = None
    speedup: float | None = None
    gflops_ratio: float | None = None
    progress_percent: float | None = None
    latency_ms: tuple[tuple[str, str, float], ...] = ()
    """(model, precision, p50 ms) for baseline and result."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def wants_to_run(self) -> bool:
        return not (self.terminal or self.suspend or self.kueue or self.invalid)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _latencies(status: dict[str, Any]) -> tuple[tuple[str, str, float], ...]:
    out = []
    for model in ("baseline", "result"):
        for precision, stats in sorted(((status.get(model) or {}).get("latencyMs") or {}).items()):
            p50 = _num((stats or {}).get("p50"))
            if p50 is not None:
                out.append((model, str(precision), p50))
    return tuple(out)


def summarize_job(body: dict[str, Any]) -> JobSummary:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    run_policy = spec.get("runPolicy") if isinstance(spec, dict) else None
    failed: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Failed"), {}
    )
    return JobSummary(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        created=str(meta.get("creationTimestamp") or ""),
        phase=str(status.get("phase") or "Pending"),
        terminal=is_terminal(status),
        suspend=bool((run_policy or {}).get("suspend", False)) if isinstance(run_policy, dict) else False,
        kueue=names.LABEL_KUEUE_QUEUE in (meta.get("labels") or {}),
        invalid=failed.get("reason") == "InvalidSpec",
        attempts=status.get("attempts") if isinstance(status.get("attempts"), int) else None,
        baseline_ap=_num((status.get("baseline") or {}).get("ap")),
        result_ap=_num((status.get("result") or {}).get("ap")),
        speedup=_num((status.get("delta") or {}).get("speedup")),
        gflops_ratio=_num((status.get("delta") or {}).get("gflopsRatio")),
        progress_percent=_num((status.get("progress") or {}).get("percent")),
        latency_ms=_latencies(status),
    )
