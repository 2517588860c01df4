"""CompressionJob (kslim.dev/v1alpha1): the one source of truth for the job schema.

The CRD in crds/ is generated from these models (`make crds`), the operator parses CRs with them,
and `kslim validate` / `kslim run` validate job files with them. No Paddle import here.

Conventions (Kubernetes API): camelCase field names, no floats in spec (decimals are strings),
durations end in `Seconds`, conditions are metav1.Condition-shaped.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

GROUP = "kslim.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CompressionJob"
PLURAL = "compressionjobs"
SINGULAR = "compressionjob"
SHORT_NAMES = ["cj"]
CATEGORIES = ["kslim"]

# --- scalar types (strings, because the API conventions forbid floats in spec) -----------------

#: A decimal strictly between 0 and 1, e.g. "0.3".
Ratio = Annotated[str, StringConstraints(pattern=r"^0?\.[0-9]*[1-9][0-9]*$")]
#: A non-negative decimal, e.g. "1.0", "0.001", "1e-4".
Decimal = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^\.[0-9]+$")]
#: Where data lives: pvc://<claim>/<path>, s3://<bucket>/<key>, http(s)://..., file://<path>.
Uri = Annotated[
    str,
    StringConstraints(
        pattern=r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/[^\s]*)?"
        r"|https?://[^\s/]+(/[^\s]*)?|file://[^\s]+)$",
        max_length=2048,
    ),
]
#: A Kubernetes resource quantity, e.g. "4", "500m", "16Gi".
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]
#: A DNS-1123 label (names of PVCs, secrets, priority classes...).
DnsName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


class Spec(BaseModel):
    """Base for every spec model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        frozen=True,
    )


# --- model ------------------------------------------------------------------------------------


class Architecture(str, enum.Enum):
    YOLOV3_MOBILENET_V1 = "yolov3_mobilenet_v1"
    YOLOV3_MOBILENET_V3 = "yolov3_mobilenet_v3"
    YOLOV3_DARKNET53 = "yolov3_darknet53"


class WeightsRef(Spec):
    uri: Uri
    """Where the `.pdparams` file is: pvc://claim/path, s3://, http(s):// or file://."""


class InferenceModelRef(Spec):
    uri: Uri
    """Directory holding a Paddle inference model (`model.pdmodel` + `model.pdiparams`) with
    PaddleDetection's exported signature (inputs image, im_shape, scale_factor)."""


class ModelSpec(Spec):
    architecture: Architecture | None = None
    """Built-in detector to build. Exactly one of `architecture` or `inferenceModel`."""
    width: Decimal = "1.0"
    """Backbone width multiplier (MobileNet backbones only), e.g. "0.25", "0.5", "1.0"."""
    num_classes: int = Field(default=80, ge=1, le=1000)
    """Number of object classes the detector predicts."""
    input_size: int = Field(default=320, ge=64, le=1024, multiple_of=32)
    """Square input size in pixels; a multiple of 32 (the detector's largest stride)."""
    weights: WeightsRef | None = None
    """Pretrained weights of the architecture. None: the job trains a baseline first."""
    inference_model: InferenceModelRef | None = None
    """An exported inference model (any PaddleDetection detector); only the `ptq` method can
    compress it."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.architecture is None) == (self.inference_model is None):
            raise ValueError("set exactly one of model.architecture or model.inferenceModel")
        if self.inference_model is not None and self.weights is not None:
            raise ValueError("model.weights belongs to model.architecture; an inferenceModel carries its own")
        return self


# --- dataset ----------------------------------------------------------------------------------


class DataSplit(Spec):
    images: Uri
    """Directory of images."""
    annotations: Uri
    """COCO instances JSON (format coco) or a directory of VOC XML files (format voc)."""


class SyntheticDataSpec(Spec):
    train_images: int = Field(default=400, ge=1, le=100000)
    """Number of training images to generate."""
    val_images: int = Field(default=100, ge=1, le=100000)
    """Number of validation images to generate."""
    image_size: int = Field(default=160, ge=32, le=2048)
    """Side of the square images, pixels."""
    classes: int = Field(default=3, ge=1, le=8)
    """Number of shape classes drawn (circle, square, triangle, ...)."""
    seed: int = Field(default=0, ge=0)
    """Generator seed; the same seed gives the same images."""


class DatasetSpec(Spec):
    format: Literal["coco", "voc", "synthetic"] = "coco"
    """coco: images + instances JSON; voc: images + XML; synthetic: the built-in generator."""
    train: DataSplit | None = None
    """Training split (needed by every method that trains or calibrates)."""
    val: DataSplit | None = None
    """Validation split, used for COCO box AP."""
    synthetic: SyntheticDataSpec | None = None
    """Generator settings when format is synthetic."""

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        if self.format == "synthetic":
            if self.train is not None or self.val is not None:
                raise ValueError("dataset.format synthetic generates its data: remove dataset.train/val")
        else:
            if self.synthetic is not None:
                raise ValueError(f"dataset.synthetic is only for format synthetic, not {self.format}")
            if self.val is None:
                raise ValueError(f"dataset.val is required for format {self.format} (AP is measured on it)")
        return self


# --- training ---------------------------------------------------------------------------------


class TrainSpec(Spec):
    epochs: int | None = Field(default=None, ge=1, le=10000)
    """Passes over the training set. Exactly one of epochs or iterations (default: iterations)."""
    iterations: int | None = Field(default=None, ge=1, le=10_000_000)
    """Optimizer steps."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Images per step (per device)."""
    learning_rate: Decimal = "0.001"
    """Peak learning rate, as a string, e.g. "0.001"."""
    optimizer: Literal["adamw", "momentum"] = "adamw"
    """adamw, or SGD with momentum 0.9."""
    weight_decay: Decimal = "0.0005"
    """L2 weight decay."""
    warmup_iterations: int = Field(default=50, ge=0)
    """Linear warm-up steps before the cosine decay."""
    ema: bool = True
    """Keep an exponential moving average of the weights and evaluate/export it."""
    grad_clip_norm: Decimal = "10"
    """Clip gradients to this global norm ("0" disables)."""
    seed: int = Field(default=0, ge=0)
    """Random seed for weights init, data order and augmentation."""
    workers: int = Field(default=2, ge=0, le=64)
    """Data loader worker processes (0 = load in the training process)."""
    log_every_iterations: int = Field(default=10, ge=1)
    """How often a progress line (JSON) is printed."""
    checkpoint_every_iterations: int = Field(default=100, ge=1)
    """How often a resumable checkpoint is written to the output."""

    @model_validator(mode="after")
    def _one_length(self) -> TrainSpec:
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("set only one of train.epochs or train.iterations")
        return self


class FineTuneSpec(Spec):
    """Training settings for one strategy step; unset fields inherit spec.train."""

    epochs: int | None = Field(default=None, ge=1, le=10000)
    """Fine-tuning passes over the training set."""
    iterations: int | None = Field(default=None, ge=1, le=10_000_000)
    """Fine-tuning optimizer steps."""
    learning_rate: Decimal | None = None
    """Fine-tuning learning rate (default: spec.train.learningRate)."""

    @model_validator(mode="after")
    def _one_length(self) -> FineTuneSpec:
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("set only one of epochs or iterations")
        return self


# --- strategy steps ---------------------------------------------------------------------------


class PruneStep(Spec):
    criterion: Literal["l1_norm", "fpgm"] = "fpgm"
    """Filter importance: l1_norm (smallest L1 norm first) or fpgm (closest to the geometric median)."""
    ratio: Ratio | None = None
    """Uniform share of filters to remove from every selected conv, e.g. "0.3"."""
    ratios: dict[str, Ratio] | None = None
    """Per-parameter shares: parameter name (or glob pattern) -> ratio."""
    target_flops_reduction: Ratio | None = None
    """Search the uniform ratio that removes this share of GFLOPs, e.g. "0.4"."""
    params: list[str] = Field(default_factory=list)
    """Conv weight names or glob patterns to prune (default: every prunable conv but the heads)."""
    sensitivity: bool = False
    """With targetFlopsReduction: pick per-layer ratios from a sensitivity analysis."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Training after pruning."""

    @model_validator(mode="after")
    def _one_amount(self) -> PruneStep:
        given = [n for n in ("ratio", "ratios", "target_flops_reduction") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("prune: set exactly one of ratio, ratios or targetFlopsReduction")
        if self.ratios is not None and not self.ratios:
            raise ValueError("prune.ratios must name at least one parameter")
        if self.sensitivity and self.target_flops_reduction is None:
            raise ValueError("prune.sensitivity needs prune.targetFlopsReduction")
        return self


class TeacherSpec(Spec):
    architecture: Architecture
    """Teacher detector architecture (same classes as the student)."""
    width: Decimal = "1.0"
    """Teacher backbone width multiplier."""
    weights: WeightsRef | None = None
    """Teacher weights. None: the job trains the teacher first (spec.train budget)."""


class DistillStep(Spec):
    teacher: TeacherSpec
    """The model whose outputs the student learns from."""
    loss: Literal["yolov3", "feature", "yolov3+feature"] = "yolov3"
    """yolov3: objectness/class/box distillation on head outputs (DistillYOLOv3Loss);
    feature: L2 on neck feature maps; or both."""
    weight: Decimal = "1.0"
    """Weight of the distillation loss next to the detection loss."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Student training with the teacher."""


class QATStep(Spec):
    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    """How weights are quantized."""
    activation_quantize_type: Literal["moving_average_abs_max", "abs_max"] = "moving_average_abs_max"
    """How activations are quantized."""
    weight_bits: Literal[8] = 8
    """Weight bits (8: what Paddle Inference runs as int8)."""
    activation_bits: Literal[8] = 8
    """Activation bits."""
    pact: bool = False
    """Learn activation clipping thresholds (PACT)."""
    quantizable_layer_types: list[Literal["Conv2D", "Linear"]] = Field(
        default_factory=lambda: ["Conv2D", "Linear"], min_length=1
    )
    """Layer types that get fake-quant ops."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Quantization-aware training."""


class PTQStep(Spec):
    algo: Literal["hist", "KL", "avg", "mse", "abs_max"] = "hist"
    """Activation calibration algorithm of quant_post_static."""
    batch_num: int = Field(default=10, ge=1, le=10000)
    """Calibration batches."""
    batch_size: int = Field(default=4, ge=1, le=256)
    """Images per calibration batch."""
    hist_percent: Ratio = "0.9999"
    """Percentile for algo hist."""
    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    """How weights are quantized."""


class StrategyStep(Spec):
    """One compression step: exactly one of prune, distill, qat, ptq."""

    prune: PruneStep | None = None
    """Filter pruning (PaddleSlim L1NormFilterPruner / FPGMFilterPruner) then fine-tuning."""
    distill: DistillStep | None = None
    """Knowledge distillation from a teacher."""
    qat: QATStep | None = None
    """Quantization-aware training (PaddleSlim QAT)."""
    ptq: PTQStep | None = None
    """Post-training quantization (quant_post_static) with a calibration set."""

    @model_validator(mode="after")
    def _exactly_one(self) -> StrategyStep:
        given = [n for n in ("prune", "distill", "qat", "ptq") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("each strategy step sets exactly one of prune, distill, qat, ptq")
        return self

    @property
    def method(self) -> str:
        return next(n for n in ("prune", "distill", "qat", "ptq") if getattr(self, n) is not None)


TRAINING_METHODS = frozenset({"prune", "distill", "qat"})
QUANT_METHODS = frozenset({"qat", "ptq"})


def check_step_order(methods: list[str]) -> None:
    """Reject chains that make no sense; raise ValueError saying why."""
    for i, m in enumerate(methods[:-1]):
        if m in QUANT_METHODS:
            raise ValueError(
                f"strategy[{i}] is {m}: quantization must be the last step (nothing can train or "
                f"prune a quantized model); move {methods[i + 1]} before it"
            )


# --- evaluation, benchmark, export, gate --------------------------------------------------------


class EvaluationSpec(Spec):
    iou_type: Literal["bbox"] = "bbox"
    """COCO IoU type (box AP)."""
    batch_size: int = Field(default=8, ge=1, le=256)
    """Images per inference call during evaluation."""
    score_threshold: Decimal = "0.01"
    """Detections below this score are dropped before COCO evaluation."""


class BenchmarkSpec(Spec):
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where latency is measured; auto: gpu when resources.gpus > 0, else cpu."""
    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(default_factory=lambda: ["fp32", "int8"], min_length=1)
    """Precisions to time (int8 only applies to quantized models)."""
    batch_size: int = Field(default=1, ge=1, le=64)
    """Images per timed call."""
    warmup: int = Field(default=10, ge=0, le=10000)
    """Untimed runs first."""
    iterations: int = Field(default=100, ge=1, le=100000)
    """Timed runs."""
    threads: int = Field(default=2, ge=1, le=256)
    """CPU math threads."""
    tensorrt: bool = False
    """Use TensorRT on GPU."""


class ExportSpec(Spec):
    formats: list[Literal["paddle", "onnx"]] = Field(default_factory=lambda: ["paddle"], min_length=1)
    """Artifact formats; paddle (inference model) is always written."""


class QualityGateSpec(Spec):
    max_ap_drop: Decimal | None = Field(default=None, alias="maxAPDrop")
    """Largest accepted AP drop in absolute points (0-100 scale), e.g. "1.0"."""
    min_speedup: Decimal | None = None
    """Smallest accepted latency speed-up vs the baseline, e.g. "1.2"."""
    max_latency_ms: Decimal | None = None
    """Largest accepted p50 latency of the result, milliseconds."""


class OutputSpec(Spec):
    uri: Uri
    """Where artifacts and the report go, e.g. pvc://artifacts/jobs (the job's name is appended)."""


class ResourcesSpec(Spec):
    gpus: int = Field(default=1, ge=0, le=16)
    """nvidia.com/gpu per pod (0 = CPU only)."""
    cpu: Quantity = "4"
    """CPU request (and limit)."""
    memory: Quantity = "16Gi"
    """Memory request (and limit)."""
    shm_size: Quantity = "2Gi"
    """Size of /dev/shm for data-loader workers."""


class EnvVar(Spec):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    """Variable name."""
    value: str = ""
    """Variable value."""


class PodTemplateSpec(Spec):
    image: str | None = None
    """Runner image override (default: the operator's configured runner image)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pod must match."""
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Pod tolerations (core/v1 Toleration)."""
    affinity: dict[str, Any] | None = None
    """Pod affinity (core/v1 Affinity); replaces the default GPU-architecture node affinity."""
    priority_class_name: DnsName | None = None
    """PriorityClass of the pod."""
    service_account_name: DnsName | None = None
    """ServiceAccount the pod runs as."""
    image_pull_secrets: list[DnsName] = Field(default_factory=list)
    """Secrets for pulling the image."""
    env: list[EnvVar] = Field(default_factory=list)
    """Extra environment variables."""
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    """Extra volumes (core/v1 Volume)."""
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    """Extra mounts in the runner container (core/v1 VolumeMount)."""


class RunPolicySpec(Spec):
    suspend: bool = False
    """Stop (or hold) the job; set back to false to resume from the last stage checkpoint."""
    backoff_limit: int = Field(default=2, ge=0, le=100)
    """Retries after infrastructure failures (user errors are never retried)."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the whole job."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Delete the finished Job (not the CompressionJob) after this long."""


class CompressionJobSpec(Spec):
    model: ModelSpec
    """The detector to compress."""
    dataset: DatasetSpec
    """Training / calibration / evaluation data."""
    strategy: list[StrategyStep] | None = None
    """Ordered compression steps. Exactly one of strategy or slimConfig; [] = baseline only."""
    slim_config: str | None = None
    """A PaddleDetection slim config (YAML text, verbatim), converted to strategy steps."""
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
    """Where artifacts go (required on a cluster; `kslim run --output` overrides it locally)."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Pod resources."""
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    """Pod scheduling and runtime knobs."""
    run_policy: RunPolicySpec = Field(default_factory=RunPolicySpec)
    """Retries, deadline, suspension and clean-up."""

    @model_validator(mode="after")
    def _strategy_source(self) -> CompressionJobSpec:
        if (self.strategy is None) == (self.slim_config is None):
            raise ValueError("set exactly one of spec.strategy or spec.slimConfig")
        if self.strategy is not None:
            methods = [s.method for s in self.strategy]
            check_step_order(methods)
            if self.model.inference_model is not None and any(m != "ptq" for m in methods):
                raise ValueError("model.inferenceModel can only be compressed with ptq steps")
            if self.model.inference_model is not None and not methods:
                raise ValueError("model.inferenceModel needs a ptq step (a baseline-only job needs an architecture)")
            if self.dataset.format != "synthetic" and self.dataset.train is None:
                needs = [m for m in methods if m in TRAINING_METHODS or m == "ptq"]
                if needs or self.model.weights is None and self.model.architecture is not None:
                    raise ValueError(
                        "dataset.train is required: "
                        + (f"{needs[0]} needs training/calibration data" if needs else "the baseline is trained")
                    )
        return self


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = "job"
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class CompressionJob(BaseModel):
    """A whole job file / CR as a user writes it (status is the operator's, not validated here)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    api_version: Literal["kslim.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["CompressionJob"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CompressionJobSpec
    status: dict[str, Any] | None = None
