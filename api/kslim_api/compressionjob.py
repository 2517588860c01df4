"""The CompressionJob object (kslim.dev/v1alpha1): its spec, put together from the parts in
v1alpha1.py with the rules across them, and the immutability of a started job.

This module sits above slimconfig.py: spec.slimConfig is converted to strategy steps (v1alpha1's
StrategyStep) when the spec is validated, so the converter imports the parts and this module imports
the converter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from kslim_api.cel import CelRule
from kslim_api.slimconfig import SlimConversion, convert_slim_config, slim_location
from kslim_api.status import CompressionJobStatus
from kslim_api.v1alpha1 import (
    MAX_NAME_LENGTH,
    MAX_WORKERS,
    PPDET_DISTILL_LOSSES,
    BenchmarkSpec,
    DatasetSpec,
    EvaluationSpec,
    ExportSpec,
    ModelSpec,
    OutputSpec,
    PodTemplateSpec,
    QualityGateSpec,
    ResourcesSpec,
    Rule,
    RuleViolation,
    RunPolicySpec,
    Spec,
    StorageSpec,
    StrategyStep,
    SyntheticDataSpec,
    TrainSpec,
    WeightsRef,
    cel_in,
    quant_is_last,
    sparsify_is_last,
)

# --- the spec ---------------------------------------------------------------------------------------

_SYNTHETIC = "self.dataset.format == 'synthetic'"


def _steps_or_none(m: CompressionJobSpec) -> list[str] | None:
    return None if m.strategy is None else [s.method for s in m.strategy]


def _trains_baseline(m: CompressionJobSpec) -> bool:
    return m.model.architecture is not None and m.model.weights is None


def _has_train(m: CompressionJobSpec) -> bool:
    return m.dataset.format == "synthetic" or m.dataset.train is not None


STRATEGY_SOURCE = Rule(
    rule="has(self.strategy) != has(self.slimConfig)",
    message="set exactly one of spec.strategy (steps) or spec.slimConfig (a PaddleDetection slim config)",
    check=lambda m: (m.strategy is None) != (m.slim_config is None),
)
QUANT_LAST = Rule(
    rule="!has(self.strategy) || self.strategy.filter(s, has(s.qat) || has(s.ptq)).size() == 0 || "
    "(self.strategy.filter(s, has(s.qat) || has(s.ptq)).size() == 1 && "
    "(has(self.strategy[self.strategy.size() - 1].qat) || has(self.strategy[self.strategy.size() - 1].ptq)))",
    message="quantization (qat or ptq) must be the last strategy step, and only one: nothing can train, "
    "prune or re-quantize a quantized model; move the other steps before it",
    field_path=".strategy",
    check=lambda m: m.strategy is None or quant_is_last(s.method for s in m.strategy),
)
INFERENCE_MODEL_PTQ = Rule(
    rule="!has(self.model.inferenceModel) || !has(self.strategy) || "
    "(self.strategy.size() > 0 && self.strategy.all(s, has(s.ptq)))",
    message="model.inferenceModel can only be compressed by ptq: make spec.strategy one ptq step "
    "(prune, distill and qat need model.architecture)",
    field_path=".strategy",
    check=lambda m: (
        m.model.inference_model is None
        or m.strategy is None
        or (len(m.strategy) > 0 and all(s.method == "ptq" for s in m.strategy))
    ),
)


def _ppdet_distill_without_config(model: ModelSpec, steps: Iterable[StrategyStep]) -> bool:
    return model.config is None and any(
        s.distill is not None and s.distill.loss in PPDET_DISTILL_LOSSES for s in steps
    )


_MAX_STEPS = 8
SPARSIFY_LAST = Rule(
    # unrolled over the strategy's positions: CEL's list macros cannot see an item's successor
    rule="!has(self.strategy) || ("
    + " && ".join(
        f"(self.strategy.size() <= {i + 1} || !has(self.strategy[{i}].sparsify) || "
        f"has(self.strategy[{i + 1}].ptq))"
        for i in range(_MAX_STEPS - 1)
    )
    + ")",
    message="sparsify must be the last strategy step, or be followed only by ptq: any later training "
    "(prune, distill, qat) refills the zeroed weights",
    field_path=".strategy",
    check=lambda m: m.strategy is None or sparsify_is_last(s.method for s in m.strategy),
)


PPDET_DISTILL_STUDENT = Rule(
    rule="has(self.model.config) || !has(self.strategy) || self.strategy.all(s, !has(s.distill) || "
    f"!has(s.distill.loss) || !(s.distill.loss in {cel_in(PPDET_DISTILL_LOSSES)}))",
    message="distill.loss ppyoloe, cwd, fgd and ld train a PaddleDetection student: give the model as "
    "model.config (a PaddleDetection model config), or use loss yolov3 / feature",
    field_path=".model",
    check=lambda m: m.strategy is None or not _ppdet_distill_without_config(m.model, m.strategy),
)


PTQ_CALIBRATION = Rule(
    rule=f"{_SYNTHETIC} || has(self.dataset.train) || !has(self.strategy) || "
    "!self.strategy.exists(s, has(s.ptq))",
    message="ptq calibrates on dataset.train: set dataset.train (representative images with their "
    "annotations), or use dataset.format synthetic",
    field_path=".dataset.train",
    check=lambda m: _has_train(m) or "ptq" not in (_steps_or_none(m) or []),
)
TRAIN_DATA = Rule(
    rule=f"{_SYNTHETIC} || has(self.dataset.train) || "
    "(has(self.strategy) && self.strategy.all(s, has(s.ptq)) && "
    "!(has(self.model.architecture) && !has(self.model.weights)))",
    message="dataset.train is required: prune, distill and qat steps and slimConfig train on it, and so "
    "does the baseline when model.weights is not set",
    field_path=".dataset.train",
    check=lambda m: (
        _has_train(m)
        or (m.strategy is not None and all(s.method == "ptq" for s in m.strategy) and not _trains_baseline(m))
    ),
)
_SYNTHETIC_CLASSES = SyntheticDataSpec.model_fields["classes"].default
SYNTHETIC_CLASSES = Rule(
    rule=f"!({_SYNTHETIC}) || !has(self.model.architecture) || self.model.numClasses == "
    f"(has(self.dataset.synthetic) ? self.dataset.synthetic.classes : {_SYNTHETIC_CLASSES})",
    message="model.numClasses must equal the number of synthetic classes (dataset.synthetic.classes, default "
    f"{_SYNTHETIC_CLASSES})",
    field_path=".model.numClasses",
    check=lambda m: (
        m.dataset.format != "synthetic"
        or m.model.architecture is None
        or m.model.num_classes == (m.dataset.synthetic or SyntheticDataSpec()).classes
    ),
)
BENCHMARK_GPU = Rule(
    rule="self.benchmark.device != 'gpu' || self.resources.gpus > 0",
    message="benchmark.device gpu needs a GPU: set resources.gpus to 1 or more, or use device cpu/auto",
    field_path=".benchmark.device",
    check=lambda m: m.benchmark.device != "gpu" or m.resources.gpus > 0,
)
TENSORRT_GPU = Rule(
    rule="!self.benchmark.tensorrt || (self.benchmark.device != 'cpu' && self.resources.gpus > 0)",
    message="benchmark.tensorrt runs on a GPU: set resources.gpus to 1 or more and benchmark.device "
    "gpu or auto, or remove tensorrt",
    field_path=".benchmark.tensorrt",
    check=lambda m: not m.benchmark.tensorrt or (m.benchmark.device != "cpu" and m.resources.gpus > 0),
)
DATA_PARALLEL_GPUS = Rule(
    rule="!has(self.train) || !has(self.train.dataParallel) || !has(self.resources) || "
    "!has(self.resources.gpus) || self.resources.gpus == 0 || self.train.dataParallel <= self.resources.gpus",
    message="train.dataParallel runs one process per GPU: it must not exceed resources.gpus",
    field_path=".train.dataParallel",
    check=lambda m: (
        m.train.data_parallel is None or m.resources.gpus == 0 or m.train.data_parallel <= m.resources.gpus
    ),
)


_MULTI_NODE = "has(self.resources) && has(self.resources.workers) && self.resources.workers > 1"
MULTI_NODE_TRAINS = Rule(
    rule=f"!({_MULTI_NODE}) || has(self.slimConfig) || "
    "(has(self.model.architecture) && !has(self.model.weights)) || "
    "(has(self.strategy) && self.strategy.exists(s, !has(s.ptq)))",
    message="resources.workers > 1 spreads training across pods, and this job trains nothing (ptq only, or "
    "no strategy step with weights given): set resources.workers to 1",
    field_path=".resources.workers",
    check=lambda m: (
        m.resources.workers <= 1
        or m.slim_config is not None
        or _trains_baseline(m)
        or any(s != "ptq" for s in _steps_or_none(m) or [])
    ),
)


class CompressionJobSpec(Spec):
    """Desired state of a CompressionJob: what to compress, how, and how to measure it."""

    model: ModelSpec
    """The detector to compress."""
    dataset: DatasetSpec
    """Training / calibration / evaluation data."""
    strategy: Annotated[list[StrategyStep], Field(max_length=_MAX_STEPS)] | None = None
    """Ordered compression steps. Exactly one of strategy or slimConfig; [] = baseline only."""
    slim_config: Annotated[str, StringConstraints(min_length=1, max_length=65536)] | None = None
    """A PaddleDetection slim config (YAML text, verbatim: slim: Pruner | QAT | PTQ | Distill |
    DistillPrune | PrunerQAT), converted to strategy steps. The API server checks only that it is
    a string; `kslim validate` and the operator check its content."""
    train: TrainSpec = Field(default_factory=TrainSpec)
    """Training of the baseline (when no weights) and defaults for every step's fine-tuning."""
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    """How AP is measured (always on the exported artifact)."""
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)
    """How latency is measured."""
    export: ExportSpec = Field(default_factory=ExportSpec)
    """Artifact formats."""
    quality_gate: QualityGateSpec = Field(default_factory=QualityGateSpec)
    """Limits the result must meet; a miss ends the job Failed/QualityGateFailed, artifacts kept."""
    output: OutputSpec | None = None
    """Where artifacts go. Required on a cluster (the CRD rejects a job without it); `kslim run
    --output DIR` overrides it locally."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Object storage settings (endpoint, region, credentials Secret) for s3:// URIs."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Pod resources."""
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    """Pod scheduling and runtime knobs."""
    run_policy: RunPolicySpec = Field(default_factory=RunPolicySpec)
    """Retries, deadline, suspension and clean-up."""

    rules = (
        STRATEGY_SOURCE,
        QUANT_LAST,
        INFERENCE_MODEL_PTQ,
        PTQ_CALIBRATION,
        TRAIN_DATA,
        SYNTHETIC_CLASSES,
        BENCHMARK_GPU,
        TENSORRT_GPU,
        DATA_PARALLEL_GPUS,
        PPDET_DISTILL_STUDENT,
        SPARSIFY_LAST,
        MULTI_NODE_TRAINS,
    )

    @field_validator("slim_config")
    @classmethod
    def _slim_config_converts(cls, text: str | None) -> str | None:
        if text is not None:
            # Content only (raises SlimConfigError, a ValueError, listing every problem). The model is
            # not known here, so relative `_BASE_` entries resolve in a stand-in tree; the model
            # validator below converts again where the job's model.config says the tree is.
            convert_slim_config(text, "file:///configs/slim/distill/slim.yml")
        return text

    @model_validator(mode="after")
    def _slim_config_fits(self) -> CompressionJobSpec:
        """What CEL cannot see: the steps a slimConfig converts to must fit the rest of the spec."""
        if self.slim_config is None:
            return self
        try:
            conv = self.slim_conversion()
        except ValueError as exc:  # SlimConfigError: only a relative _BASE_ the model cannot place
            raise RuleViolation([CelRule(rule="", message=str(exc))], field_path=".slimConfig") from None
        problems: list[str] = []
        if conv.model_overrides:
            problems += _override_problems(self, conv.model_overrides, conv.override_target)
        methods = [s.method for s in conv.steps]
        if not quant_is_last(methods):
            problems.append(f"slimConfig converts to {' > '.join(methods)}: " + QUANT_LAST.message)
        if self.model.inference_model is not None:
            if any(m != "ptq" for m in methods):
                problems.append(f"slimConfig is slim: {conv.slim}, but " + INFERENCE_MODEL_PTQ.message)
            if conv.weights is not None:
                problems.append(
                    f"slimConfig sets {conv.weights_key}, but the model is model.inferenceModel: remove "
                    f"{conv.weights_key} from the slim config"
                )
        elif (
            conv.weights is not None
            and self.model.weights is not None
            and conv.weights != self.model.weights.uri
        ):
            problems.append(
                f"slimConfig {conv.weights_key} ({conv.weights}) and model.weights.uri "
                f"({self.model.weights.uri}) disagree: remove one"
            )
        trains_baseline = _trains_baseline(self) and conv.weights is None
        if self.resources.workers > 1 and all(m == "ptq" for m in methods) and not trains_baseline:
            problems.append(
                f"slimConfig is slim: {conv.slim}, which trains nothing: " + MULTI_NODE_TRAINS.message
            )
        if _ppdet_distill_without_config(self.model, conv.steps):
            problems.append(f"slimConfig is slim: {conv.slim}, but " + PPDET_DISTILL_STUDENT.message)
        if problems:
            raise RuleViolation([CelRule(rule="", message=p) for p in problems], field_path=".slimConfig")
        return self

    def slim_conversion(self) -> SlimConversion:
        """What spec.slimConfig converts to, its relative `_BASE_` placed in model.config's tree."""
        uri = self.model.config.uri if self.model.config is not None else None
        return convert_slim_config(self.slim_config or "", slim_location(uri))

    def resolved_steps(self) -> list[StrategyStep]:
        """The strategy, or the steps the slimConfig converts to."""
        if self.strategy is not None:
            return list(self.strategy)
        return list(self.slim_conversion().steps)

    def resolved_weights(self) -> WeightsRef | None:
        """model.weights, or the student weights a slimConfig names (pretrain_weights / weights)."""
        if self.model.weights is not None or self.slim_config is None:
            return self.model.weights
        uri = self.slim_conversion().weights
        return WeightsRef(uri=uri) if uri else None


def _override_problems(spec: CompressionJobSpec, overrides: dict[str, Any], target: str) -> list[str]:
    """Module overrides merge over a PaddleDetection config: a built-in architecture has none a user
    can name, so they are refused rather than dropped."""
    names = ", ".join(overrides)
    if target == "model" and spec.model.config is None:
        return [
            f"slimConfig overrides PaddleDetection modules ({names}); they apply to a model.config "
            "(a PaddleDetection model config), not model.architecture: use model.config or remove them"
        ]
    teachers = [s.distill.teacher for s in spec.resolved_steps() if s.distill is not None]
    if target == "teacher" and any(t.config is None for t in teachers):
        return [
            f"slimConfig overrides PaddleDetection modules ({names}) of the teacher, but its _BASE_ is a "
            "built-in architecture: remove them"
        ]
    return []


#: Checked by the API server only: a local `kslim run` may take the output location from --output.
OUTPUT_REQUIRED = CelRule(
    rule="has(self.output)",
    message="spec.output is required on a cluster: set spec.output.uri, e.g. pvc://artifacts/jobs",
    field_path=".output",
)


# --- the object -------------------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The parts of metav1.ObjectMeta kslim reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")
    name: str = "job"
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_fits(cls, name: str) -> str:
        if not NAME_RULE.check(name):
            raise RuleViolation([NAME_RULE], field_path="")
        return name


_DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE = Rule(
    rule=f"!has(self.metadata.name) || (self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
    f"self.metadata.name.matches('{_DNS_LABEL}'))",
    message=f"metadata.name must be a DNS-1123 label of at most {MAX_NAME_LENGTH} characters (lower-case "
    "letters, digits, '-'): the operator derives the Job and pod names from it",
    check=lambda name: len(name) <= MAX_NAME_LENGTH and _re_full(_DNS_LABEL, name),
)


#: `<name>-worker-<index>` names a multi-node job's pods and their Services (DNS labels).
_WORKER_SUFFIX = len(f"-worker-{MAX_WORKERS - 1}")
MAX_MULTI_NODE_NAME_LENGTH = MAX_NAME_LENGTH - _WORKER_SUFFIX
MULTI_NODE_NAME = Rule(
    rule="!has(self.metadata.name) || !has(self.spec.resources) || !has(self.spec.resources.workers) || "
    f"self.spec.resources.workers <= 1 || self.metadata.name.size() <= {MAX_MULTI_NODE_NAME_LENGTH}",
    message=f"metadata.name: at most {MAX_MULTI_NODE_NAME_LENGTH} characters when resources.workers > 1 "
    f"(each worker's pod and Service is <name>-worker-<index>: a DNS label, {MAX_NAME_LENGTH} at most)",
    check=lambda job: job.spec.resources.workers <= 1 or len(job.metadata.name) <= MAX_MULTI_NODE_NAME_LENGTH,
)


def _re_full(pattern: str, value: str) -> bool:
    import re

    return re.fullmatch(pattern.strip("^$"), value) is not None


class CompressionJob(BaseModel):
    """A whole job file / CR as a user writes it (status is the operator's)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)
    api_version: Literal["kslim.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["CompressionJob"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CompressionJobSpec
    status: CompressionJobStatus | None = None

    @model_validator(mode="after")
    def _multi_node_name_fits(self) -> CompressionJob:
        if not MULTI_NODE_NAME.check(self):
            raise RuleViolation([MULTI_NODE_NAME], field_path=".metadata.name")
        return self


# --- immutability once started ------------------------------------------------------------------------

#: CEL: the old object had started (see kslim_api.status: status.startTime is the marker).
STARTED = "has(oldSelf.status) && has(oldSelf.status.startTime)"
#: The one spec field that may change after the job has started (batch/v1 Job suspend semantics).
MUTABLE_AFTER_START = ("runPolicy", "suspend")


def _unchanged(path: str) -> str:
    new, old = f"self.{path}", f"oldSelf.{path}"
    parent, _, leaf = path.rpartition(".")
    return (
        f"has(self.{parent}.{leaf}) == has(oldSelf.{parent}.{leaf}) && "
        f"(!has(self.{parent}.{leaf}) || {new} == {old})"
    )


def _immutable_rule(path: str) -> CelRule:
    return CelRule(
        rule=f"!({STARTED}) || ({_unchanged(path)})",
        message=f"{path} cannot change once the job has started (status.startTime is set); only "
        "spec.runPolicy.suspend can. Delete and re-create the CompressionJob to change it",
        field_path=f".{path}",
        reason="FieldValueForbidden",
    )


def immutable_rules() -> list[CelRule]:
    """Transition rules for the CRD root: every spec field is frozen once the job has started,
    except spec.runPolicy.suspend. One rule per field, so the error names the field."""
    parent, mutable = MUTABLE_AFTER_START
    rules: list[CelRule] = []
    for name, info in CompressionJobSpec.model_fields.items():
        alias = info.alias or name
        if alias != parent:
            rules.append(_immutable_rule(f"spec.{alias}"))
    for name, info in RunPolicySpec.model_fields.items():
        alias = info.alias or name
        if alias != mutable:
            rules.append(_immutable_rule(f"spec.{parent}.{alias}"))
    return rules
