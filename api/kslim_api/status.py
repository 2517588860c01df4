"""CompressionJob status (kslim.dev/v1alpha1): what the operator reports.

Status is written by the operator only (through the status subresource). Unlike the spec,
measured numbers here are JSON numbers: AP values are fractions in [0, 1] as pycocotools
reports them, latencies are milliseconds, sizes are bytes.

When is a job "started"? From the moment `status.startTime` is set. The operator sets it in
the same status patch that sets the `Accepted` condition to True, right after it created the
batch/v1 Job. From then on the spec is immutable except `spec.runPolicy.suspend` (the CRD
enforces it with transition rules; see `compressionjob.immutable_rules`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from kslim_api.contract import ConditionType, Phase, Stage
from kslim_api.openapi import list_map

#: RFC 3339 timestamp, e.g. "2024-05-01T12:00:00Z" (metav1.Time on the wire).
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Status(BaseModel):
    """Base for every status model: camelCase on the wire; unknown fields are errors (the CRD
    schema prunes what it does not know, so a typo would silently vanish otherwise)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
    )


class Condition(Status):
    """A metav1.Condition."""

    type: Annotated[
        str,
        StringConstraints(
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            max_length=316,
        ),
    ]
    """Condition type in CamelCase: Accepted, Running, Suspended, Succeeded, Failed,
    QualityGatePassed."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation of the CompressionJob this condition was set for."""
    last_transition_time: Timestamp
    """When status last changed (not when the condition was last written)."""
    reason: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", min_length=1, max_length=1024),
    ]
    """One CamelCase word a program can switch on, e.g. QualityGateFailed, InvalidSpec."""
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    """What happened, for humans; on failures, what to fix."""


class LatencyStats(Status):
    """Latency of one precision, milliseconds per batch (benchmark.batchSize)."""

    p10: float | None = None
    """10th percentile, ms."""
    p50: float | None = None
    """Median, ms."""
    p90: float | None = None
    """90th percentile, ms."""
    mean: float | None = None
    """Mean, ms."""


class LatencyByPrecision(Status):
    """Latency per benchmarked precision (spec.benchmark.precisions)."""

    fp32: LatencyStats | None = None
    """Float32."""
    fp16: LatencyStats | None = None
    """Float16 (GPU)."""
    int8: LatencyStats | None = None
    """Int8 (quantized models)."""


class ModelMetrics(Status):
    """What was measured on one model (baseline or result), always on the exported artifact."""

    ap: float | None = None
    """COCO box AP@[.50:.95], a fraction in [0, 1]."""
    ap50: float | None = None
    """COCO box AP@.50."""
    ap75: float | None = None
    """COCO box AP@.75."""
    ap_small: float | None = None
    """COCO box AP on small objects."""
    ap_medium: float | None = None
    """COCO box AP on medium objects."""
    ap_large: float | None = None
    """COCO box AP on large objects."""
    gflops: float | None = None
    """Giga floating-point operations of one forward pass at model.inputSize."""
    params: int | None = Field(default=None, ge=0)
    """Number of parameters."""
    size_bytes: int | None = Field(default=None, ge=0)
    """Size of the exported fp32 inference model (model + params files), bytes."""
    int8_size_bytes: int | None = Field(default=None, ge=0)
    """Size of the int8 weights, bytes (quantized results only)."""
    latency_ms: LatencyByPrecision | None = None
    """Latency per precision."""


class Delta(Status):
    """The result compared with the baseline measured in the same job on the same device."""

    ap: float | None = None
    """result.ap - baseline.ap (fraction; -0.004 is a drop of 0.4 points)."""
    gflops_ratio: float | None = None
    """result.gflops / baseline.gflops."""
    params_ratio: float | None = None
    """result.params / baseline.params."""
    size_ratio: float | None = None
    """Result size (int8 size when quantized) / baseline size."""
    speedup: float | None = None
    """Baseline latency / result latency (shipped precision): the median of per-round ratios when
    both were timed side by side in interleaved rounds, else the ratio of p50s."""
    speedup_low: float | None = None
    """10th percentile of the per-round speed-ups; qualityGate.minSpeedup passes only when it does."""
    speedup_high: float | None = None
    """90th percentile of the per-round speed-ups."""
    speedup_rounds: int | None = Field(default=None, ge=0)
    """How many interleaved rounds the speed-up figures come from."""


class QualityGateStatus(Status):
    """The outcome of spec.qualityGate."""

    passed: bool
    """Whether every limit of spec.qualityGate was met."""
    message: str = ""
    """Which limits were checked, with the measured values."""


class Progress(Status):
    """Live progress, from the runner's progress lines."""

    percent: float | None = Field(default=None, ge=0, le=100)
    """Whole-job progress, 0-100."""
    stage_percent: float | None = Field(default=None, ge=0, le=100)
    """Progress of the current stage, 0-100."""
    step: int | None = Field(default=None, ge=0)
    """Step within the current stage."""
    total: int | None = Field(default=None, ge=0)
    """Steps of the current stage."""
    loss: float | None = None
    """Latest training loss."""
    ap: float | None = None
    """Latest evaluated AP (fraction)."""
    eta_seconds: int | None = Field(default=None, ge=0)
    """Estimated seconds left in the current stage."""
    update_time: Timestamp | None = None
    """When this progress was reported."""


class CompressionJobStatus(Status):
    """Observed state of a CompressionJob."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the operator last acted on."""
    phase: Phase | None = None
    """Pending, Running, Suspended, Succeeded or Failed (a print column; use conditions in code)."""
    stage: Stage | None = None
    """The runner stage in progress (or the last one reached)."""
    strategy_summary: Annotated[str, StringConstraints(max_length=256)] | None = None
    """The resolved strategy in one line, e.g. "prune(fpgm 0.3) > qat(pact)"."""
    progress: Progress | None = None
    """Live progress of the running job."""
    conditions: Annotated[list[Condition], list_map("type")] = Field(default_factory=list, max_length=16)
    """Accepted, Running, Suspended, Succeeded, Failed, QualityGatePassed (metav1.Condition)."""
    baseline: ModelMetrics | None = None
    """The uncompressed model, measured in this job."""
    result: ModelMetrics | None = None
    """The compressed model."""
    delta: Delta | None = None
    """Result vs baseline."""
    quality_gate: QualityGateStatus | None = None
    """Outcome of spec.qualityGate (absent when no limit is set)."""
    artifacts: dict[str, Annotated[str, StringConstraints(max_length=2048)]] | None = Field(
        default=None, max_length=32
    )
    """Where the outputs are, by kind: model, report, onnx, ... (URIs under spec.output)."""
    attempts: int | None = Field(default=None, ge=0)
    """Pods started so far (1 + retries)."""
    start_time: Timestamp | None = None
    """When the operator created the Job. Once set, the job has started and its spec is immutable
    except spec.runPolicy.suspend."""
    completion_time: Timestamp | None = None
    """When the job reached Succeeded or Failed."""
    message: Annotated[str, StringConstraints(max_length=32768)] | None = None
    """Human-readable summary of the current state; on failure, what to fix."""

    def condition(self, type_: ConditionType | str) -> Condition | None:
        """The condition of that type, if set."""
        wanted = type_.value if isinstance(type_, ConditionType) else type_
        return next((c for c in self.conditions if c.type == wanted), None)


PRINTER_COLUMNS: list[dict[str, object]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Strategy", "type": "string", "jsonPath": ".status.strategySummary"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage"},
    {
        "name": "Progress",
        "type": "number",
        "jsonPath": ".status.progress.percent",
        "description": "Whole-job progress, percent",
    },
    {
        "name": "Baseline AP",
        "type": "number",
        "jsonPath": ".status.baseline.ap",
        "description": "COCO box AP of the baseline (fraction)",
    },
    {
        "name": "AP",
        "type": "number",
        "jsonPath": ".status.result.ap",
        "description": "COCO box AP of the compressed model (fraction)",
    },
    {
        "name": "Speedup",
        "type": "number",
        "jsonPath": ".status.delta.speedup",
        "description": "Baseline latency / compressed latency",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]
