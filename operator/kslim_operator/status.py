"""The status a CompressionJob should have, and the minimal merge patch towards it (pure).

Everything written is normalised through the API's status models first: the CRD's structural
schema prunes unknown fields, so writing anything it would drop would look like a change forever
(and patch forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kslim_api.contract import Phase, ProgressLine, Reason, planned_stages, redact
from kslim_api.status import CompressionJobStatus, Delta, ModelMetrics, QualityGateStatus
from kslim_api.summary import strategy_summary as summarize_steps
from pydantic import BaseModel, ValidationError

from kslim_operator import conditions as cond
from kslim_operator.observe import Observation
from kslim_operator.request import JobRequest

#: Status keys the operator owns: the status model's (others, e.g. Kopf's, are left alone).
OWNED_KEYS = tuple(field.alias or name for name, field in CompressionJobStatus.model_fields.items())


@dataclass(frozen=True)
class Inputs:
    """What the desired status is computed from, besides the request and the observation."""

    now: str
    job_created: bool
    progress: ProgressLine | None = None
    progress_time: str | None = None
    job_created_at: str | None = None
    """The Job's creationTimestamp: the start time, also when another operator process created it."""


def clean(model: type[BaseModel], data: dict[str, Any] | None) -> dict[str, Any] | None:
    """`data` reduced to what `model` accepts (field by field), in wire form; None if nothing is left."""
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data).model_dump(mode="json", by_alias=True, exclude_none=True) or None
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if alias not in data:
            continue
        try:
            one = model.model_validate({alias: data[alias]})
        except ValidationError:
            continue
        kept.update(one.model_dump(mode="json", by_alias=True, exclude_none=True, include={name}))
    return kept or None


def strategy_summary(req: JobRequest) -> str:
    """The strategy in one line, e.g. 'prune(fpgm 0.3) > qat(pact)' (slimConfig: its steps)."""
    try:
        return summarize_steps(req.spec.resolved_steps())
    except ValueError:
        return "slimConfig"


def overall_percent(stages: list[str], line: ProgressLine) -> float | None:
    """Whole-job percent: each planned stage is an equal share. Repeated methods (two prune steps)
    count from the first unfinished one, which is what the runner reports next."""
    if line.stage not in stages:
        return None
    index = stages.index(line.stage)
    within = (line.percent or 0.0) / 100.0
    return round(100.0 * (index + within) / len(stages), 1)


def build_progress(req: JobRequest, line: ProgressLine, when: str | None) -> dict[str, Any]:
    try:
        methods = [s.method for s in req.spec.resolved_steps()]
    except ValueError:
        methods = []
    data: dict[str, Any] = {
        "percent": overall_percent(planned_stages(methods), line),
        "stagePercent": line.percent,
        "step": line.step,
        "total": line.total,
        "loss": round(line.loss, 5) if line.loss is not None else None,
        "ap": round(line.ap, 5) if line.ap is not None else None,
        "etaSeconds": line.eta_seconds,
        "updateTime": when,
    }
    return {k: v for k, v in data.items() if v is not None}


def desired_conditions(
    obs: Observation, current: list[dict[str, Any]], job_created: bool
) -> list[cond.Desired]:
    out: list[cond.Desired] = []
    if obs.reason == Reason.INVALID_SPEC or (obs.phase == Phase.FAILED and not job_created):
        out.append(cond.Desired(cond.ACCEPTED, False, obs.reason, obs.message))
    elif job_created:
        out.append(cond.Desired(cond.ACCEPTED, True, "JobCreated", "the ConfigMap and the Job are created"))
    running = obs.phase == Phase.RUNNING
    out.append(cond.Desired(cond.RUNNING, running, obs.reason if not running else "Running", obs.message))
    if obs.phase == Phase.SUSPENDED:
        out.append(cond.Desired(cond.SUSPENDED, True, "Suspended", obs.message))
    elif cond.find(current, cond.SUSPENDED) is not None:
        out.append(cond.Desired(cond.SUSPENDED, False, "Resumed", "spec.runPolicy.suspend is false"))
    if obs.phase == Phase.SUCCEEDED:
        out.append(cond.Desired(cond.SUCCEEDED, True, obs.reason, obs.message))
        out.append(cond.Desired(cond.FAILED, False, obs.reason, obs.message))
    elif obs.phase == Phase.FAILED:
        out.append(cond.Desired(cond.FAILED, True, obs.reason, obs.message))
        out.append(cond.Desired(cond.SUCCEEDED, False, obs.reason, obs.message))
    gate = obs.report.quality_gate if obs.report else None
    if gate is not None and isinstance(gate.get("passed"), bool):
        passed = gate["passed"]
        # a gate the latency spread could not decide is not reported as a miss
        unstable = obs.reason == Reason.MEASUREMENT_UNSTABLE
        missed = Reason.MEASUREMENT_UNSTABLE if unstable else Reason.QUALITY_GATE_FAILED
        out.append(
            cond.Desired(
                cond.QUALITY_GATE_PASSED,
                passed,
                "QualityGateMet" if passed else missed,
                str(gate.get("message") or ""),
            )
        )
    return out


def build_status(
    req: JobRequest, obs: Observation, current: dict[str, Any], inputs: Inputs
) -> dict[str, Any]:
    """The whole status the job should have now (operator-owned keys only)."""
    status: dict[str, Any] = {k: current[k] for k in OWNED_KEYS if k in current}
    status["observedGeneration"] = req.generation
    status["phase"] = obs.phase
    status["message"] = redact(obs.message)[: cond.MAX_MESSAGE]
    status["strategySummary"] = strategy_summary(req)
    if inputs.job_created and not status.get("startTime"):
        status["startTime"] = inputs.job_created_at or inputs.now
    if obs.attempts is not None:
        status["attempts"] = max(obs.attempts, int(current.get("attempts") or 0))
    if obs.phase == Phase.RUNNING and inputs.progress is not None:
        status["stage"] = inputs.progress.stage
        status["progress"] = build_progress(req, inputs.progress, inputs.progress_time or inputs.now)
    report = obs.report
    if obs.terminal:
        if not status.get("completionTime"):
            status["completionTime"] = inputs.now
        if report is not None and report.stage:
            status["stage"] = report.stage
        if obs.phase == Phase.SUCCEEDED:
            status["progress"] = {"percent": 100.0, "stagePercent": 100.0, "updateTime": inputs.now}
    if report is not None and report.structured:
        for key, model, value in (
            ("baseline", ModelMetrics, report.baseline),
            ("result", ModelMetrics, report.result),
            ("delta", Delta, report.delta),
            ("qualityGate", QualityGateStatus, report.quality_gate),
        ):
            cleaned = clean(model, value)
            if cleaned is not None:
                status[key] = cleaned
        if report.artifacts:
            status["artifacts"] = dict(list(report.artifacts.items())[:32])
    status["conditions"] = cond.merge(
        current.get("conditions"),
        desired_conditions(obs, current.get("conditions") or [], inputs.job_created),
        generation=req.generation,
        now=inputs.now,
    )
    return status


def invalid_spec_status(
    current: dict[str, Any], message: str, generation: int, now: str, reason: str = Reason.INVALID_SPEC
) -> dict[str, Any]:
    """The status of a job that never got a Job: its spec bypassed validation, or the API server
    refused a child built from it. Failed with `reason`, once."""
    obs = Observation(Phase.FAILED, reason, message, terminal=True)
    status: dict[str, Any] = {k: current[k] for k in OWNED_KEYS if k in current}
    status.update(
        observedGeneration=generation,
        phase=Phase.FAILED,
        message=redact(message)[: cond.MAX_MESSAGE],
        completionTime=current.get("completionTime") or now,
    )
    status["conditions"] = cond.merge(
        current.get("conditions"),
        desired_conditions(obs, current.get("conditions") or [], False),
        generation=generation,
        now=now,
    )
    return status


def diff(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A merge patch for status: changed or new keys; owned keys that should go are set to None."""
    patch = {k: v for k, v in desired.items() if current.get(k) != v}
    for key in OWNED_KEYS:
        if key in current and key not in desired and current[key] is not None:
            patch[key] = None
    return patch


def is_terminal(status: dict[str, Any] | None) -> bool:
    conditions = (status or {}).get("conditions")
    return cond.is_true(conditions, cond.SUCCEEDED) or cond.is_true(conditions, cond.FAILED)
