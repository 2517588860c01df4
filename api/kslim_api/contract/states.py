"""The words status speaks: phases, condition types and the runner's stages, in their order."""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """A one-word summary for `kubectl get`; the conditions are the API."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionType(enum.StrEnum):
    """Condition types the operator sets. `Succeeded`/`Failed` are terminal, so
    `kubectl wait --for=condition=Succeeded cj/NAME` works."""

    ACCEPTED = "Accepted"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    QUALITY_GATE_PASSED = "QualityGatePassed"


class Stage(enum.StrEnum):
    """Runner stages, in the order a job goes through them (docs/contracts.md)."""

    PREPARE = "prepare"
    BASELINE = "baseline"
    PRUNE = "prune"
    DISTILL = "distill"
    SPARSIFY = "sparsify"
    QAT = "qat"
    PTQ = "ptq"
    EXPORT = "export"
    EVALUATE = "evaluate"
    BENCHMARK = "benchmark"
    REPORT = "report"


STAGES = tuple(stage.value for stage in Stage)


def planned_stages(methods: list[str]) -> list[str]:
    """The stages a job with these strategy steps goes through, in order (the runner's pipeline): each
    strategy step is the stage of its method."""
    before = (Stage.PREPARE, Stage.BASELINE)
    after = (Stage.EXPORT, Stage.EVALUATE, Stage.BENCHMARK, Stage.REPORT)
    return [s.value for s in before] + list(methods) + [s.value for s in after]
