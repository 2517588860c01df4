"""CompressionJob (kslim.dev/v1alpha1): the one source of truth for the job schema.

The CRD in crds/ is generated from these models (`make crds`), the operator parses CRs with them,
and `kslim validate` / `kslim run` validate job files with them. No Paddle import here.

Conventions (Kubernetes API): camelCase field names, no floats in spec (decimals are strings),
durations end in `Seconds`, conditions are metav1.Condition-shaped.

Cross-field rules are `CelRule`s: each carries its CEL expression (written into the CRD as
`x-kubernetes-validations`), the same check in Python, and one message both enforcers print.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema

from kslim_api import podpolicy, pretrained
from kslim_api.cel import CEL_KEY, CelRule
from kslim_api.contract import (
    DOTDOT_CEL,
    DOTDOT_MESSAGE,
    URI_HINT,
    URI_PATTERN,
    USERINFO_CEL,
    USERINFO_MESSAGE,
    has_dotdot,
    has_userinfo,
)
from kslim_api.openapi import LIST_SET, PRESERVE_UNKNOWN, K8sSchema, list_map

GROUP = "kslim.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CompressionJob"
PLURAL = "compressionjobs"
SINGULAR = "compressionjob"
#: Not "cj": that is batch/v1 CronJob's short name, and built-in resources win, so `kubectl get cj` would
#: list CronJobs (and kubectl would warn on every use of it, also to CronJob users).
SHORT_NAMES = ["cjob"]
CATEGORIES = ["kslim"]

#: Longest CompressionJob name: the operator names the Job after it, and the Job's name is a pod label
#: value (at most 63 characters).
MAX_NAME_LENGTH = 63

# --- schema helpers ---------------------------------------------------------------------------------


T = TypeVar("T")


def _no_duplicates(key: Callable[[Any], Hashable] = lambda v: v) -> Callable[[list[T]], list[T]]:
    def check(values: list[T]) -> list[T]:
        seen: set[Hashable] = set()
        for v in values:
            k = key(v)
            if k in seen:
                raise ValueError(f"duplicate value {k!r}")
            seen.add(k)
        return values

    return check


#: Annotated markers of a list whose items are unique (x-kubernetes-list-type: set on the server).
UNIQUE = AfterValidator(_no_duplicates())

# --- scalar types (strings, because the API conventions forbid floats in spec) -----------------------

#: A decimal strictly between 0 and 1, e.g. "0.3".
Ratio = Annotated[str, StringConstraints(pattern=r"^0?\.[0-9]*[1-9][0-9]*$", max_length=32)]
#: A non-negative decimal, e.g. "1.0", "0.001", "1e-4".
Decimal = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^\.[0-9]+$", max_length=32)
]
#: A decimal from 0 to 1 inclusive, e.g. "0", "0.1", "1.0".
UnitDecimal = Annotated[str, StringConstraints(pattern=r"^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$", max_length=32)]
#: A width multiplier in (0, 3), e.g. "0.25", "0.5", "1.0".
Multiplier = Annotated[
    str, StringConstraints(pattern=r"^(0?\.[0-9]*[1-9][0-9]*|[12](\.[0-9]+)?)$", max_length=32)
]
#: What every URI field checks besides its pattern: no `..` segment, no user:password@ (in Python,
#: by _uri_is_safe, and in the CRD, by CEL rules with the same messages).
_SAFE_URI = AfterValidator(lambda uri: _uri_is_safe(uri))
_SAFE_URI_CEL = K8sSchema(
    {
        CEL_KEY: [
            CelRule(rule=DOTDOT_CEL, message=DOTDOT_MESSAGE).to_schema(),
            CelRule(rule=USERINFO_CEL, message=USERINFO_MESSAGE).to_schema(),
        ]
    }
)
#: Where data lives: pvc://<claim>/<path>, s3://<bucket>/<key>, http(s)://..., file://<path>.
Uri = Annotated[str, StringConstraints(pattern=URI_PATTERN, max_length=2048), _SAFE_URI, _SAFE_URI_CEL]
#: Where weights are: any Uri, or weights that ship with kslim (kslim://pretrained/<name>).
WeightsUri = Annotated[
    str,
    StringConstraints(pattern=pretrained.weights_uri_pattern(URI_PATTERN), max_length=2048),
    _SAFE_URI,
    _SAFE_URI_CEL,
]
#: A Kubernetes resource quantity, e.g. "4", "500m", "16Gi".
Quantity = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$", max_length=32)
]
#: A DNS-1123 subdomain (names of PVCs, secrets, priority classes...).
DnsName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
#: A SHA-256 digest in lower-case hex.
Sha256 = Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$", max_length=64)]
#: A parameter name or glob pattern, e.g. "conv2d_27.w_0" or "backbone.*.weight".
ParamPattern = Annotated[str, StringConstraints(min_length=1, max_length=256)]

LayerType = Literal["Conv2D", "Linear"]
LAYER_TYPES: tuple[LayerType, ...] = ("Conv2D", "Linear")
Precision = Literal["fp32", "fp16", "int8"]
DEFAULT_PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
ExportFormat = Literal["paddle", "onnx"]
DEFAULT_FORMATS: tuple[ExportFormat, ...] = ("paddle",)

#: Human wording for the patterns above, used by `kslim validate` instead of the raw regex.
PATTERN_HINTS: dict[str, str] = {}


def _hint(type_: Any, text: str) -> None:
    for meta in getattr(type_, "__metadata__", ()):
        if isinstance(meta, StringConstraints) and meta.pattern:
            PATTERN_HINTS[str(meta.pattern)] = text


_hint(Ratio, 'must be a decimal strictly between 0 and 1, as a string, e.g. "0.3"')
_hint(Decimal, 'must be a non-negative decimal number as a string, e.g. "0.001" or "1.0"')
_hint(UnitDecimal, 'must be a decimal from 0 to 1 as a string, e.g. "0", "0.1" or "1.0"')
_hint(Multiplier, 'must be a width multiplier between 0 and 3 as a string, e.g. "0.25", "0.5", "1.0"')
_hint(Uri, URI_HINT)
_hint(Quantity, 'must be a Kubernetes quantity, e.g. "4", "500m", "16Gi"')
_hint(DnsName, "must be a lower-case DNS-1123 name, e.g. my-claim")
_hint(Sha256, "must be a SHA-256 digest: 64 lower-case hex digits (sha256sum FILE)")


def _uri_is_safe(uri: str) -> str:
    """The Python twin of the Uri CEL rules above (same messages)."""
    if has_dotdot(uri):
        raise ValueError(DOTDOT_MESSAGE)
    if has_userinfo(uri):
        raise ValueError(USERINFO_MESSAGE)
    return uri


# --- rule machinery -------------------------------------------------------------------------------------


class RuleViolation(ValueError):
    """Raised by a model validator; keeps the rules (and the field each is about) for error reports."""

    def __init__(self, rules: Sequence[CelRule], field_path: str | None = None) -> None:
        super().__init__("; ".join(r.message for r in rules))
        self.rules = list(rules)
        self.field_path = field_path


@dataclass(frozen=True)
class Rule(CelRule):
    """A CEL rule plus its Python twin: `check(model)` is True when the model is valid."""

    check: Callable[[Any], bool] = field(default=lambda _m: True, compare=False)


class Spec(BaseModel):
    """Base for every spec model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
        frozen=True,
    )

    #: Cross-field rules of this very class (not inherited).
    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        own: tuple[Rule, ...] = cls.__dict__.get("rules", ())
        if own:
            handler.resolve_ref_schema(schema)[CEL_KEY] = [r.to_schema() for r in own]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> Spec:
        own: tuple[Rule, ...] = type(self).__dict__.get("rules", ())
        broken = [r for r in own if not r.check(self)]
        if broken:
            raise RuleViolation(broken)
        return self


def _count(*present: bool) -> int:
    return sum(1 for p in present if p)


def _cel_count(*fields: str, on: str = "self") -> str:
    return " + ".join(f"(has({on}.{f}) ? 1 : 0)" for f in fields)


# --- model ------------------------------------------------------------------------------------------


class Architecture(enum.StrEnum):
    """Built-in detectors (YOLOv3 heads on Paddle's own backbones)."""

    YOLOV3_MOBILENET_V1 = "yolov3_mobilenet_v1"
    YOLOV3_MOBILENET_V3 = "yolov3_mobilenet_v3"
    YOLOV3_DARKNET53 = "yolov3_darknet53"
    YOLOV3_RESNET34 = "yolov3_resnet34"


MOBILENET_ARCHITECTURES = frozenset({Architecture.YOLOV3_MOBILENET_V1, Architecture.YOLOV3_MOBILENET_V3})


def _width_ok(arch: Architecture | None, width: str) -> bool:
    return width in ("1", "1.0") or arch in MOBILENET_ARCHITECTURES


def _width_rule(what: str) -> Rule:
    return Rule(
        rule="self.width in ['1', '1.0'] || "
        "(has(self.architecture) && self.architecture.startsWith('yolov3_mobilenet'))",
        message=f'{what}.width is a MobileNet width multiplier: remove it (or set "1.0") for '
        "other backbones, or pick a yolov3_mobilenet_* architecture",
        field_path=".width",
        check=lambda m: _width_ok(m.architecture, m.width),
    )


class WeightsRef(Spec):
    """A `.pdparams` file."""

    uri: WeightsUri
    """Where the `.pdparams` file is: pvc://claim/path, s3://, http(s):// or file://; or
    kslim://pretrained/<name> for weights that ship with kslim (the quick start's)."""
    sha256: Sha256 | None = None
    """SHA-256 of the file, checked after download and before use (recommended for http(s)://)."""


class InferenceModelRef(Spec):
    """An exported Paddle inference model."""

    uri: Uri
    """Directory holding a Paddle inference model (`model.pdmodel` + `model.pdiparams`) with
    PaddleDetection's exported signature (inputs image, im_shape, scale_factor)."""


class ModelConfigRef(Spec):
    """A PaddleDetection model config."""

    uri: Uri
    """The model's YAML inside its PaddleDetection `configs/` tree (its `_BASE_` includes resolve
    relative to it, as PaddleDetection resolves them), e.g.
    pvc://models/configs/ppyolo/ppyolo_mbv3_large_coco.yml."""


class ModelSpec(Spec):
    """The detector to compress: a PaddleDetection model config, a built-in architecture, or an
    exported inference model."""

    architecture: Architecture | None = None
    """Built-in detector to build. Exactly one of `architecture`, `config` or `inferenceModel`."""
    config: ModelConfigRef | None = None
    """A PaddleDetection model config (any architecture PaddleDetection 2.6 builds): the runner
    builds, trains, compresses and exports it with PaddleDetection's own library. Weights, when
    given, are a `.pdparams` in PaddleDetection's parameter names (a checkpoint trained with
    PaddleDetection loads as is). `numClasses` and `inputSize` override the config's."""
    width: Multiplier = "1.0"
    """Backbone width multiplier (MobileNet backbones only), e.g. "0.25", "0.5", "1.0"."""
    num_classes: int = Field(default=80, ge=1, le=1000)
    """Number of object classes the detector predicts."""
    input_size: int = Field(default=320, ge=64, le=1024)
    """Square input size in pixels the model trains, exports and is timed at. A multiple of 32 (the
    largest stride) for built-in architectures; a PaddleDetection config may take others its model
    fits (SSD's 300), checked by building it."""
    weights: WeightsRef | None = None
    """Pretrained weights of the architecture. Unset: the job trains a baseline first."""
    inference_model: InferenceModelRef | None = None
    """An exported inference model (any PaddleDetection detector); only the `ptq` method can
    compress it."""

    rules = (
        Rule(
            rule="[has(self.architecture), has(self.config), has(self.inferenceModel)]"
            ".filter(x, x).size() == 1",
            message="set exactly one of model.architecture (a built-in detector), model.config (a "
            "PaddleDetection model config) or model.inferenceModel (an exported Paddle inference model)",
            check=lambda m: [m.architecture, m.config, m.inference_model].count(None) == 2,
        ),
        Rule(
            rule="!has(self.inferenceModel) || !has(self.weights)",
            message="model.weights belongs to model.architecture: remove it (an inferenceModel carries its "
            "own weights)",
            field_path=".weights",
            check=lambda m: m.inference_model is None or m.weights is None,
        ),
        Rule(
            rule="!has(self.architecture) || self.inputSize % 32 == 0",
            message="model.inputSize must be a multiple of 32 for a built-in architecture (its largest "
            "stride), e.g. 320 or 608",
            field_path=".inputSize",
            check=lambda m: m.architecture is None or m.input_size % 32 == 0,
        ),
        _width_rule("model"),
        Rule(
            rule=pretrained.cel_rule(),
            message="model.weights: kslim://pretrained/ names weights that ship with kslim, each for one "
            "model: "
            + "; ".join(
                f"{p.uri} is {p.architecture} width {p.width} numClasses {p.num_classes}"
                for p in pretrained.REGISTRY.values()
            ),
            field_path=".weights.uri",
            check=lambda m: _pretrained_fits(m),
        ),
    )


def _pretrained_fits(m: ModelSpec) -> bool:
    if m.weights is None or not m.weights.uri.startswith("kslim://"):
        return True
    entry = pretrained.lookup(m.weights.uri)
    arch = m.architecture.value if m.architecture is not None else None
    return entry is not None and pretrained.mismatch(entry, arch, m.width, m.num_classes) is None


# --- dataset ----------------------------------------------------------------------------------------


class DataSplit(Spec):
    """Images plus their annotations."""

    images: Uri
    """Directory of images: a folder, an s3:// prefix, or a `.tar`, `.tar.gz`/`.tgz` or `.zip` archive
    (s3:// or http(s)://) that the runner unpacks."""
    images_sha256: Sha256 | None = None
    """SHA-256 of the images archive, checked after download and before unpacking."""
    annotations: Uri
    """COCO instances JSON (format coco) or a directory of VOC XML files (format voc)."""


class SyntheticDataSpec(Spec):
    """The built-in generator: shapes on noise, with COCO annotations."""

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
    max_objects: int = Field(default=6, ge=1, le=20)
    """At most this many objects per image (each image has 1 to maxObjects; occluded ones drop out)."""
    min_object_side: UnitDecimal = "0.1"
    """Smallest object side as a share of the image side (sides are drawn log-uniformly)."""
    max_object_side: UnitDecimal = "0.5"
    """Largest object side as a share of the image side."""
    clutter: bool = True
    """Draw distractors that are not objects (lines, arcs, specks): a harder set."""

    rules = (
        Rule(
            rule="double(self.minObjectSide) > 0.0 && "
            "double(self.minObjectSide) <= double(self.maxObjectSide)",
            message="synthetic.minObjectSide must be above 0 and at most synthetic.maxObjectSide",
            field_path=".minObjectSide",
            check=lambda m: 0 < float(m.min_object_side) <= float(m.max_object_side),
        ),
    )


class DatasetSpec(Spec):
    """Where training, calibration and evaluation images come from."""

    format: Literal["coco", "voc", "synthetic"] = "coco"
    """coco: images + instances JSON; voc: images + XML; synthetic: the built-in generator."""
    train: DataSplit | None = None
    """Training split: every method that trains (prune, distill, qat, a baseline without weights)
    or calibrates (ptq) reads it."""
    val: DataSplit | None = None
    """Validation split, used for COCO box AP (required unless format is synthetic)."""
    synthetic: SyntheticDataSpec | None = None
    """Generator settings when format is synthetic (defaults when omitted)."""

    rules = (
        Rule(
            rule="self.format != 'synthetic' || (!has(self.train) && !has(self.val))",
            message="dataset.format synthetic generates its own data: remove dataset.train and dataset.val",
            check=lambda m: m.format != "synthetic" or (m.train is None and m.val is None),
        ),
        Rule(
            rule="self.format == 'synthetic' || !has(self.synthetic)",
            message="dataset.synthetic is only read with format synthetic: remove it, or set "
            "dataset.format: synthetic",
            field_path=".synthetic",
            check=lambda m: m.format == "synthetic" or m.synthetic is None,
        ),
        Rule(
            rule="self.format == 'synthetic' || has(self.val)",
            message="dataset.val is required for formats coco and voc: AP is measured on it",
            field_path=".val",
            check=lambda m: m.format == "synthetic" or m.val is not None,
        ),
    )


# --- training ---------------------------------------------------------------------------------------


def _one_length(what: str) -> Rule:
    return Rule(
        rule="!has(self.epochs) || !has(self.iterations)",
        message=f"set only one of {what}epochs or {what}iterations",
        check=lambda m: m.epochs is None or m.iterations is None,
    )


def _ascending(values: list[int]) -> list[int]:
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"must be strictly increasing, not {values}")
    return values


#: Epochs at which a piecewise schedule decays the learning rate, e.g. [30, 45].
DecayEpochs = Annotated[
    list[Annotated[int, Field(ge=1, le=10000)]], AfterValidator(_ascending), LIST_SET, Field(max_length=16)
]
LrSchedule = Literal["cosine", "piecewise"]


def _schedule_rule(what: str, inherits: bool) -> Rule:
    """piecewise needs its decay epochs (said at the same level, so the rule is local to one object)."""
    if inherits:
        return Rule(
            rule="has(self.lrSchedule) && self.lrSchedule == 'piecewise' ? has(self.decayEpochs) : "
            "!has(self.decayEpochs)",
            message=f"{what}lrSchedule piecewise and {what}decayEpochs go together: set both or neither",
            check=lambda m: (m.lr_schedule == "piecewise") == (m.decay_epochs is not None),
        )
    return Rule(
        rule="(has(self.lrSchedule) && self.lrSchedule == 'piecewise') == "
        "(has(self.decayEpochs) && size(self.decayEpochs) > 0)",
        message=f"{what}lrSchedule piecewise and {what}decayEpochs go together: set both or neither",
        check=lambda m: (m.lr_schedule == "piecewise") == bool(m.decay_epochs),
    )


class TrainSpec(Spec):
    """Training of the baseline, and the defaults of every step's fine-tuning."""

    epochs: int | None = Field(default=None, ge=1, le=10000)
    """Passes over the training set. At most one of epochs or iterations (neither: the runner's
    default budget)."""
    iterations: int | None = Field(default=None, ge=1, le=10_000_000)
    """Optimizer steps."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Images per step (per device)."""
    learning_rate: Decimal = "0.001"
    """Peak learning rate, as a string, e.g. "0.001"."""
    optimizer: Literal["adamw", "momentum"] = "adamw"
    """adamw, or SGD with momentum (see momentum)."""
    momentum: Ratio = "0.9"
    """Momentum of optimizer momentum (not read by adamw)."""
    weight_decay: Decimal = "0.0005"
    """L2 weight decay."""
    warmup_iterations: int = Field(default=50, ge=0, le=1_000_000)
    """Linear warm-up steps before the decay schedule."""
    warmup_start_factor: UnitDecimal = "0.1"
    """Share of the learning rate the warm-up starts at (it rises linearly to 1)."""
    lr_schedule: LrSchedule = "cosine"
    """After warm-up: cosine (down to 5% of the rate at the end of training) or piecewise
    (multiplied by decayGamma at each of decayEpochs)."""
    decay_epochs: DecayEpochs = Field(default_factory=list)
    """Epochs at which lrSchedule piecewise multiplies the rate by decayGamma, e.g. [30, 45]
    (counted in passes over the training set, also when the budget is given in iterations)."""
    decay_gamma: Ratio = "0.1"
    """Factor of each piecewise decay."""
    ema: bool = True
    """Keep an exponential moving average of the weights and evaluate/export it."""
    grad_clip_norm: Decimal = "10"
    """Clip gradients to this global norm ("0" disables)."""
    seed: int = Field(default=0, ge=0)
    """Random seed for weights init, data order and augmentation."""
    workers: int = Field(default=2, ge=0, le=64)
    """Data loader worker processes (0 = load in the training process)."""
    data_parallel: int | None = Field(default=None, ge=1, le=64)
    """Training processes (data parallel, paddle.distributed; each gets batchSize images per step).
    Default: one per GPU in spec.resources. On a CPU set it to the cores to use: Paddle's CPU
    convolutions use about one core per process. Covers every training: the baseline, a
    distillation teacher, and the fine-tuning of pruning, QAT and distillation."""
    log_every_iterations: int = Field(default=10, ge=1, le=1_000_000)
    """How often a progress line (JSON) is printed."""
    checkpoint_every_iterations: int = Field(default=100, ge=1, le=10_000_000)
    """How often a resumable checkpoint is written to the output."""

    rules = (_one_length("train."), _schedule_rule("train.", inherits=False))


class FineTuneSpec(Spec):
    """Training settings for one strategy step; unset fields inherit spec.train."""

    epochs: int | None = Field(default=None, ge=1, le=10000)
    """Fine-tuning passes over the training set."""
    iterations: int | None = Field(default=None, ge=0, le=10_000_000)
    """Fine-tuning optimizer steps; 0 skips this step's training (a prune step right before a distill
    or qat step, which then trains the pruned model)."""
    learning_rate: Decimal | None = None
    """Fine-tuning learning rate (default: spec.train.learningRate)."""
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    """Images per step (default: spec.train.batchSize)."""
    optimizer: Literal["adamw", "momentum"] | None = None
    """Optimizer (default: spec.train.optimizer)."""
    momentum: Ratio | None = None
    """Momentum of optimizer momentum (default: spec.train.momentum)."""
    weight_decay: Decimal | None = None
    """L2 weight decay (default: spec.train.weightDecay)."""
    warmup_iterations: int | None = Field(default=None, ge=0, le=1_000_000)
    """Linear warm-up steps (default: spec.train.warmupIterations, at most a quarter of the step's
    training)."""
    warmup_start_factor: UnitDecimal | None = None
    """Share of the rate the warm-up starts at (default: spec.train.warmupStartFactor)."""
    lr_schedule: LrSchedule | None = None
    """cosine or piecewise (default: spec.train.lrSchedule, with its decayEpochs)."""
    decay_epochs: DecayEpochs | None = None
    """Epochs of this step's training at which piecewise decays the rate (with lrSchedule piecewise)."""
    decay_gamma: Ratio | None = None
    """Factor of each piecewise decay (default: spec.train.decayGamma)."""
    grad_clip_norm: Decimal | None = None
    """Clip gradients to this global norm, "0" disables (default: spec.train.gradClipNorm)."""

    rules = (_one_length("fineTune."), _schedule_rule("fineTune.", inherits=True))


# --- strategy steps ---------------------------------------------------------------------------------


def _trains(method: str) -> Rule:
    return Rule(
        rule="!has(self.fineTune.iterations) || self.fineTune.iterations > 0",
        message=f"{method}.fineTune.iterations must be at least 1: {method} is training (only a prune step "
        "may skip its fine-tuning)",
        field_path=".fineTune.iterations",
        check=lambda m: m.fine_tune.iterations is None or m.fine_tune.iterations > 0,
    )


class PruneStep(Spec):
    """Structured filter pruning: whole conv filters are removed, so the exported model is smaller."""

    criterion: Literal["l1_norm", "fpgm"] = "fpgm"
    """Filter importance: l1_norm (smallest L1 norm first) or fpgm (closest to the geometric median)."""
    ratio: Ratio | None = None
    """Uniform share of filters to remove from every selected conv, e.g. "0.3"."""
    ratios: Annotated[dict[ParamPattern, Ratio], Field(min_length=1, max_length=256)] | None = None
    """Per-parameter shares: parameter name (or glob pattern) -> ratio, e.g. {"conv2d_27.w_0": "0.1"}."""
    target_flops_reduction: Ratio | None = None
    """Search the uniform ratio that removes this share of GFLOPs, e.g. "0.4"."""
    params: Annotated[list[ParamPattern], UNIQUE, LIST_SET, Field(max_length=256)] = Field(
        default_factory=list
    )
    """Conv weight names or glob patterns that ratio/targetFlopsReduction apply to (default: every
    prunable conv but the heads). Not used with ratios (their keys select the parameters)."""
    sensitivity: bool = False
    """With targetFlopsReduction: pick per-layer ratios from a sensitivity analysis."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Training after pruning."""

    rules = (
        Rule(
            rule=_cel_count("ratio", "ratios", "targetFlopsReduction") + " == 1",
            message="prune: set exactly one of ratio, ratios or targetFlopsReduction",
            check=lambda m: (
                _count(m.ratio is not None, m.ratios is not None, m.target_flops_reduction is not None) == 1
            ),
        ),
        Rule(
            rule="!self.sensitivity || has(self.targetFlopsReduction)",
            message="prune.sensitivity picks per-layer ratios for a FLOPs target: set "
            "prune.targetFlopsReduction too, or remove sensitivity",
            field_path=".sensitivity",
            check=lambda m: not m.sensitivity or m.target_flops_reduction is not None,
        ),
        Rule(
            rule="!has(self.ratios) || !has(self.params) || size(self.params) == 0",
            message="prune.params is not used with prune.ratios (the keys of ratios select the "
            "parameters): remove prune.params",
            field_path=".params",
            check=lambda m: m.ratios is None or not m.params,
        ),
    )


#: PaddleSlim's GMP pruner raises the ratio at most once per this many iterations of its pruning phase.
GMP_MIN_ITERATIONS_PER_STEP = 10


class GMPSchedule(Spec):
    """Gradual magnitude pruning (PaddleSlim's GMPUnstructuredPruner, as PaddleDetection's
    UnstructuredPruner runs it): dense training for `stable`, then the zeroed share rises from
    initialRatio to the step's ratio along a cubic curve in pruningSteps increments over `pruning`,
    then training goes on at the final ratio for `tuning`."""

    unit: Literal["epochs", "iterations"] = "iterations"
    """What stable, pruning and tuning count: passes over the training set or optimizer steps."""
    stable: int = Field(default=0, ge=0, le=10_000_000)
    """Dense training before pruning starts."""
    pruning: int = Field(ge=1, le=10_000_000)
    """Length of the phase in which the ratio rises."""
    tuning: int = Field(default=0, ge=0, le=10_000_000)
    """Training at the final ratio after the pruning phase."""
    pruning_steps: int = Field(default=10, ge=1, le=100_000)
    """How many times the ratio rises during the pruning phase (each rise is at least 10 iterations
    apart: PaddleSlim's GMP pruner requires it)."""
    initial_ratio: Ratio = "0.15"
    """The zeroed share at the first rise, e.g. "0.15"."""

    rules = (
        Rule(
            rule=f"self.unit != 'iterations' || "
            f"self.pruning > {GMP_MIN_ITERATIONS_PER_STEP} * self.pruningSteps",
            message=f"sparsify.gmp.pruning must exceed {GMP_MIN_ITERATIONS_PER_STEP} x pruningSteps "
            "iterations (PaddleSlim's GMP pruner raises the ratio at most once per 10 iterations): "
            "lengthen pruning or lower pruningSteps",
            field_path=".pruning",
            check=lambda m: (
                m.unit != "iterations" or m.pruning > GMP_MIN_ITERATIONS_PER_STEP * m.pruning_steps
            ),
        ),
    )

    def lengths(self, iterations_per_epoch: int) -> tuple[int, int, int]:
        """(stable, pruning, tuning) in iterations."""
        k = iterations_per_epoch if self.unit == "epochs" else 1
        return self.stable * k, self.pruning * k, self.tuning * k


class SparsifyStep(Spec):
    """Unstructured pruning: the smallest-magnitude weights are set to zero, one by one (PaddleSlim's
    unstructured pruners, as PaddleDetection's UnstructuredPruner). Layers keep their shapes, so the
    exported model has as many parameters and GFLOPs as before; only a runtime with sparse kernels
    turns the zeros into speed (Paddle Inference's CPU kernels are dense: expect none)."""

    ratio: Ratio
    """Share of weights set to zero, e.g. "0.75": in every pruned parameter (localSparsity) or over
    all of them together."""
    gmp: GMPSchedule | None = None
    """Reach ratio gradually during training (PaddleDetection's UnstructuredPruner schedule). Unset:
    prune to ratio at once, then fine-tune with the zeros held."""
    params_type: Literal["all", "conv1x1"] = "all"
    """Which weights are pruned: all (every conv and linear weight) or conv1x1 (1x1 convs only;
    PaddleDetection's prune_params_type conv1x1_only)."""
    params: Annotated[list[ParamPattern], UNIQUE, LIST_SET, Field(max_length=256)] = Field(
        default_factory=list
    )
    """Only these weights (Paddle names such as conv2d_27.w_0 or structured names, glob patterns
    allowed), among those paramsType selects; default: all of them. Each pattern must match."""
    skip_params: Annotated[list[ParamPattern], UNIQUE, LIST_SET, Field(max_length=256)] = Field(
        default_factory=list
    )
    """Weights left dense (names or glob patterns), e.g. the heads' output convs. Each must match."""
    local_sparsity: bool = True
    """Every pruned parameter gets the ratio (PaddleDetection's setting); false: one threshold over
    all of them, so their sparsities differ and only the total meets ratio."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Training with the zeros held. Default length with gmp: the schedule's (stable + pruning +
    tuning); a shorter one ends with a jump to ratio."""

    rules = (
        Rule(
            rule="!has(self.gmp) || double(self.gmp.initialRatio) < double(self.ratio)",
            message="sparsify.gmp.initialRatio must be below sparsify.ratio (the schedule rises from it "
            "to ratio)",
            field_path=".gmp.initialRatio",
            check=lambda m: m.gmp is None or float(m.gmp.initial_ratio) < float(m.ratio),
        ),
        Rule(
            rule="!has(self.gmp) || !has(self.fineTune.iterations) || self.fineTune.iterations > 0",
            message="sparsify.gmp prunes while training: sparsify.fineTune.iterations must be at least 1 "
            "(or remove gmp to prune at once)",
            field_path=".fineTune.iterations",
            check=lambda m: m.gmp is None or m.fine_tune.iterations is None or m.fine_tune.iterations > 0,
        ),
    )


class TeacherSpec(Spec):
    """The distillation teacher: a built-in detector (for a student given as model.architecture) or
    a PaddleDetection model config (for a student given as model.config). It predicts the student's
    classes at the student's input size."""

    architecture: Architecture | None = None
    """Built-in teacher architecture. Exactly one of `architecture` or `config`."""
    config: ModelConfigRef | None = None
    """A PaddleDetection model config whose architecture fits distill.loss (yolov3/feature: the
    YOLOv3 family, YOLOv3 architecture with a YOLOv3Head; ppyoloe: PP-YOLOE; cwd: RetinaNet or GFL;
    fgd: RetinaNet; ld: GFL), e.g. pvc://models/configs/yolov3/yolov3_r34_270e_coco.yml; the student
    must be a model.config too."""
    width: Multiplier = "1.0"
    """Teacher backbone width multiplier (built-in MobileNet architectures only)."""
    weights: WeightsRef | None = None
    """Teacher weights (for a config: a `.pdparams` in PaddleDetection's parameter names). Unset: the
    job trains the teacher first (spec.train budget)."""

    rules = (
        Rule(
            rule="[has(self.architecture), has(self.config)].filter(x, x).size() == 1",
            message="set exactly one of teacher.architecture (a built-in detector) or teacher.config (a "
            "PaddleDetection model config)",
            check=lambda m: [m.architecture, m.config].count(None) == 1,
        ),
        _width_rule("teacher"),
    )

    @property
    def label(self) -> str:
        """The architecture, or the config's file name without its extension."""
        if self.architecture is not None:
            return self.architecture.value
        assert self.config is not None
        name = self.config.uri.rstrip("/").rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[0] if name.endswith((".yml", ".yaml")) else name


#: Distillation losses: kslim's own on YOLOv3 heads and necks, and PaddleDetection's (ppdet 2.6's
#: classes, run by import) for the architectures its configs/slim/distill pair them with.
YOLOV3_DISTILL_LOSSES = ("yolov3", "feature", "yolov3+feature")
PPDET_DISTILL_LOSSES = ("ppyoloe", "cwd", "fgd", "ld")
DistillLossKind = Literal["yolov3", "feature", "yolov3+feature", "ppyoloe", "cwd", "fgd", "ld"]
#: The section of DistillStep that holds each PaddleDetection loss's settings (ld has none).
DISTILL_LOSS_SECTIONS = ("ppyoloe", "cwd", "fgd")


class PPYOLOEDistillSpec(Spec):
    """PaddleDetection's DistillPPYOLOELoss (slim_method PPYOLOEDistill): logits distillation (class
    scores, boxes, edge distributions, and optionally a KL term on the positives) plus a feature
    term on the neck or backbone maps. Defaults are PaddleDetection's PP-YOLOE+ slim configs'; the
    channels come from the two models."""

    logits_weight: Decimal = "4.0"
    """loss_weight.logits: weight of the logits terms."""
    feat_weight: Decimal = "1.0"
    """loss_weight.feat: weight of the feature term."""
    logits_distill: bool = True
    """Distil the head's class scores, boxes and edge distributions."""
    class_weight: Decimal = "1.0"
    """logits_loss_weight.class."""
    iou_weight: Decimal = "2.5"
    """logits_loss_weight.iou."""
    dfl_weight: Decimal = "0.5"
    """logits_loss_weight.dfl."""
    logits_ld_distill: bool = True
    """Add the KL term on the positives' class scores (logits_ld_distill)."""
    ld_weight: Decimal = "20000"
    """logits_ld_params.weight."""
    ld_temperature: Decimal = "10"
    """logits_ld_params.T."""
    feat_distill: bool = True
    """Add the feature term."""
    feat_distiller: Literal["cwd", "fgd", "pkd", "mgd", "mimic"] = "fgd"
    """Which feature loss compares the maps."""
    feat_distill_place: Literal["neck_feats", "backbone_feats"] = "neck_feats"
    """Which maps it compares."""

    rules = (
        Rule(
            rule="self.logitsDistill || self.featDistill",
            message="distill.ppyoloe: logitsDistill and featDistill are both false, so nothing is "
            "distilled: enable one",
            check=lambda m: m.logits_distill or m.feat_distill,
        ),
    )


#: Neck levels a feature distillation reads (PaddleDetection's distill_loss_name lists one per level).
FeatureLevels = Annotated[int, Field(ge=1, le=8)]


class CWDSpec(Spec):
    """PaddleDetection's CWDFeatureLoss (slim_method CWD): channel-wise distillation, a KL divergence
    between the spatial softmax of each channel of the student's and the teacher's maps (RetinaNet:
    the neck maps; GFL: the neck maps and the class score maps). Defaults are its slim configs'."""

    tau: Decimal = "1.0"
    """Softmax temperature."""
    weight: Decimal = "5.0"
    """Weight of each level's term."""
    normalize: bool = False
    """Normalise each map per channel first."""
    levels: FeatureLevels | None = None
    """How many neck levels to distil, finest first (unset: all of them; PaddleDetection's
    distill_loss_name lists one name per level)."""


class FGDSpec(Spec):
    """PaddleDetection's FGDFeatureLoss (slim_method FGD): focal and global distillation of the neck
    maps, foreground and background weighted apart by the ground-truth boxes, plus attention and
    relation terms. Defaults are its RetinaNet slim config's."""

    temp: Decimal = "0.5"
    """Attention temperature."""
    alpha_fgd: Decimal = "0.001"
    """Weight of the foreground term."""
    beta_fgd: Decimal = "0.0005"
    """Weight of the background term."""
    gamma_fgd: Decimal = "0.0005"
    """Weight of the attention-mask term."""
    lambda_fgd: Decimal = "0.000005"
    """Weight of the global relation term."""
    weight: Decimal = "1.0"
    """loss_weight: weight of each level's sum of terms."""
    normalize: bool = False
    """Normalise each map per channel first."""
    levels: FeatureLevels | None = None
    """How many neck levels to distil, finest first (unset: all of them)."""


def _section_rule(section: str) -> Rule:
    return Rule(
        rule=f"!has(self.{section}) || self.loss == '{section}'",
        message=f"distill.{section} holds the settings of loss {section}: set distill.loss: {section}, "
        f"or remove distill.{section}",
        field_path=f".{section}",
        check=lambda m: getattr(m, section) is None or m.loss == section,
    )


def cel_in(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


class DistillStep(Spec):
    """Knowledge distillation: the student trains on the detection loss plus a teacher term."""

    teacher: TeacherSpec
    """The model whose outputs the student learns from."""
    loss: DistillLossKind = "yolov3"
    """yolov3: objectness/class/box distillation on YOLOv3 head outputs (DistillYOLOv3Loss);
    feature: L2 on neck feature maps; yolov3+feature: both. PaddleDetection's own, for a
    model.config student and a teacher.config (run with ppdet 2.6's classes): ppyoloe
    (DistillPPYOLOELoss, PP-YOLOE/PP-YOLOE+ pairs), cwd (CWDFeatureLoss, RetinaNet or GFL pairs),
    fgd (FGDFeatureLoss, RetinaNet pairs), ld (localization distillation: a GFL teacher and a GFL
    student whose head is LDGFLHead)."""
    weight: Decimal | None = None
    """Weight of the yolov3/feature terms next to the detection loss (default "1000"). The terms
    are means over every anchor and position (as in PaddleDetection's DistillYOLOv3Loss, whose
    configs use 1000), so small weights leave the teacher almost unheard. With a teacher not far
    stronger than the student, lower it (about 300) so the labels keep half of the loss
    (docs/BENCHMARKS.md). The other losses take their weights from their own section."""
    ppyoloe: PPYOLOEDistillSpec | None = None
    """Settings of loss ppyoloe (default: PaddleDetection's PP-YOLOE+ slim configs')."""
    cwd: CWDSpec | None = None
    """Settings of loss cwd (default: PaddleDetection's CWD slim configs')."""
    fgd: FGDSpec | None = None
    """Settings of loss fgd (default: PaddleDetection's FGD slim config's)."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Student training with the teacher."""

    rules = (
        _trains("distill"),
        Rule(
            rule=f"!has(self.weight) || self.loss in {cel_in(YOLOV3_DISTILL_LOSSES)}",
            message="distill.weight weighs the yolov3/feature terms; losses ppyoloe, cwd and fgd take "
            "their weights from distill.ppyoloe / cwd / fgd (ld from the student's LDGFLHead): remove "
            "distill.weight",
            field_path=".weight",
            check=lambda m: m.weight is None or m.loss in YOLOV3_DISTILL_LOSSES,
        ),
        *(_section_rule(s) for s in DISTILL_LOSS_SECTIONS),
        Rule(
            rule=f"!(self.loss in {cel_in(PPDET_DISTILL_LOSSES)}) || has(self.teacher.config)",
            message="distill.loss ppyoloe, cwd, fgd and ld run PaddleDetection's implementation: give "
            "the teacher as distill.teacher.config (a PaddleDetection model config)",
            field_path=".teacher",
            check=lambda m: m.loss not in PPDET_DISTILL_LOSSES or m.teacher.config is not None,
        ),
    )

    @property
    def yolov3_weight(self) -> str:
        """The weight of the yolov3/feature terms (weight, default 1000)."""
        return self.weight if self.weight is not None else "1000"

    def loss_settings(self) -> Spec | None:
        """The section of the chosen PaddleDetection loss, its defaults when unset (None for the
        yolov3/feature losses and ld)."""
        defaults: dict[str, type[Spec]] = {"ppyoloe": PPYOLOEDistillSpec, "cwd": CWDSpec, "fgd": FGDSpec}
        if self.loss not in defaults:
            return None
        given: Spec | None = getattr(self, self.loss)
        return given if given is not None else defaults[self.loss]()


class QATStep(Spec):
    """Quantization-aware training (PaddleSlim dygraph QAT), exported as an int8 inference model."""

    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    """How weights are quantized."""
    activation_quantize_type: Literal["moving_average_abs_max", "abs_max"] = "moving_average_abs_max"
    """How activations are quantized."""
    weight_bits: Literal[8] = 8
    """Weight bits (8: what Paddle Inference runs as int8)."""
    activation_bits: Literal[8] = 8
    """Activation bits."""
    pact: bool = False
    """Learn activation clipping thresholds (PACT; quant_config activation_preprocess_type PACT)."""
    weight_pact: bool = False
    """Apply PACT to the weights too (quant_config weight_preprocess_type PACT)."""
    moving_rate: Ratio = "0.9"
    """Decay of the moving-average activation scales."""
    window_size: int = Field(default=10000, ge=1, le=1_000_000)
    """Window of the range_abs_max activation scales."""
    quantizable_layer_types: Annotated[list[LayerType], UNIQUE, LIST_SET] = Field(
        default_factory=lambda: list(LAYER_TYPES), min_length=1, max_length=2
    )
    """Layer types that get fake-quant ops."""
    fine_tune: FineTuneSpec = Field(default_factory=FineTuneSpec)
    """Quantization-aware training."""

    rules = (_trains("qat"),)


class PTQStep(Spec):
    """Post-training quantization (quant_post_static) of the exported model with a calibration set."""

    algo: Literal["hist", "KL", "avg", "mse", "abs_max"] = "hist"
    """Activation calibration algorithm of quant_post_static."""
    batch_num: int = Field(default=10, ge=1, le=10000)
    """Calibration batches (from dataset.train)."""
    batch_size: int = Field(default=4, ge=1, le=256)
    """Images per calibration batch."""
    hist_percent: Ratio = "0.9999"
    """Percentile for algo hist."""
    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    """How weights are quantized."""


METHODS = ("prune", "distill", "qat", "ptq", "sparsify")


class StrategyStep(Spec):
    """One compression step: exactly one of prune, distill, qat, ptq, sparsify."""

    prune: PruneStep | None = None
    """Filter pruning (PaddleSlim L1NormFilterPruner / FPGMFilterPruner) then fine-tuning."""
    distill: DistillStep | None = None
    """Knowledge distillation from a teacher."""
    qat: QATStep | None = None
    """Quantization-aware training (PaddleSlim QAT)."""
    ptq: PTQStep | None = None
    """Post-training quantization (quant_post_static) with a calibration set."""
    sparsify: SparsifyStep | None = None
    """Unstructured pruning (PaddleSlim's magnitude / GMP pruners): weights zeroed, shapes kept."""

    rules = (
        Rule(
            rule=_cel_count(*METHODS) + " == 1",
            message="each strategy step sets exactly one of " + ", ".join(METHODS),
            check=lambda m: _count(*(getattr(m, n) is not None for n in METHODS)) == 1,
        ),
    )

    @property
    def method(self) -> str:
        return next(n for n in METHODS if getattr(self, n) is not None)


QUANT_METHODS = frozenset({"qat", "ptq"})


def quant_is_last(methods: Iterable[str]) -> bool:
    """At most one quantization step, and it is the last one."""
    ms = list(methods)
    quant = [i for i, m in enumerate(ms) if m in QUANT_METHODS]
    return not quant or quant == [len(ms) - 1]


def sparsify_is_last(methods: Iterable[str]) -> bool:
    """Nothing but ptq after a sparsify step: later training refills the zeroed weights (ptq keeps
    them: zero quantizes to zero)."""
    ms = list(methods)
    return all(n == "ptq" for i, m in enumerate(ms) if m == "sparsify" for n in ms[i + 1 :])


# --- evaluation, benchmark, export, gate --------------------------------------------------------------


class EvaluationSpec(Spec):
    """How AP is measured; always on the exported artifact."""

    iou_type: Literal["bbox"] = "bbox"
    """COCO IoU type (box AP)."""
    batch_size: int = Field(default=8, ge=1, le=256)
    """Images per inference call during evaluation."""
    score_threshold: Decimal = "0.01"
    """Detections below this score are dropped before COCO evaluation."""


class BenchmarkSpec(Spec):
    """How latency is measured (Paddle Inference)."""

    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where latency is measured; auto: gpu when resources.gpus > 0, else cpu."""
    precisions: Annotated[list[Precision], UNIQUE, LIST_SET] = Field(
        default_factory=lambda: list(DEFAULT_PRECISIONS), min_length=1, max_length=3
    )
    """Precisions to time. A float model is timed in fp32, a quantized one in int8 (oneDNN on CPU,
    TensorRT on GPU), each in the precision it ships in; fp16 needs a GPU with TensorRT."""
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
    """Artifact formats."""

    formats: Annotated[list[ExportFormat], UNIQUE, LIST_SET] = Field(
        default_factory=lambda: list(DEFAULT_FORMATS), min_length=1, max_length=2
    )
    """Artifact formats; paddle (inference model) is always written."""


class QualityGateSpec(Spec):
    """Limits the result must meet; a miss ends the job Failed/QualityGateFailed, artifacts kept."""

    max_ap_drop: Decimal | None = Field(default=None, alias="maxAPDrop")
    """Largest accepted AP drop in absolute points (0-100 scale), e.g. "1.0"."""
    min_speedup: Decimal | None = None
    """Smallest accepted latency speed-up vs the baseline, e.g. "1.2"."""
    max_latency_ms: Decimal | None = None
    """Largest accepted p50 latency of the result, milliseconds."""


class OutputSpec(Spec):
    """Where artifacts go."""

    uri: Uri
    """Where artifacts and the report go, e.g. pvc://artifacts/jobs (the job's name is appended)."""


#: Header-safe endpoint URL: scheme, host[:port], optional path; no user-info (credentials go in a Secret).
Endpoint = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/@]+(/[^\s@]*)?$", max_length=2048)]
_hint(Endpoint, "must be an http(s) URL without credentials, e.g. https://minio.storage.svc:9000")


class S3Spec(Spec):
    """How s3:// URIs are reached: AWS S3 by default, or any S3-compatible store (MinIO, Ceph RGW,
    GCS's XML API) through `endpoint`."""

    endpoint: Endpoint | None = None
    """S3 API endpoint, e.g. https://minio.storage.svc:9000. Unset: AWS S3 of `region`."""
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$", max_length=64)] | None = None
    """Region to sign requests for, e.g. eu-west-1 (unset: the store's own, or us-east-1)."""
    path_style: bool = False
    """Address buckets as endpoint/bucket (most self-hosted stores) instead of bucket.endpoint."""
    insecure_skip_tls_verify: bool = False
    """Do not verify the endpoint's TLS certificate (test stores with self-signed certificates)."""
    credentials_secret: DnsName | None = None
    """Secret in the job's namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
    optionally AWS_SESSION_TOKEN), given to the runner as environment variables. Unset: the pod's
    workload identity (IRSA web identity, instance or container metadata)."""


class StorageSpec(Spec):
    """Settings of object storage URIs."""

    s3: S3Spec = Field(default_factory=S3Spec)
    """The S3 endpoint and credentials every s3:// URI of the job uses."""


#: The most pods a multi-node job may ask for.
MAX_WORKERS = 32


class ResourcesSpec(Spec):
    """Pod resources of the runner."""

    gpus: int = Field(default=1, ge=0, le=16)
    """nvidia.com/gpu per pod (0 = CPU only)."""
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    """Pods (nodes) the training runs across, each with these gpus, cpu and memory. Above 1 the job
    runs as a Kubeflow PaddleJob (training-operator v1.8, installed in the cluster and enabled in
    kslim's chart: multiNode.enabled); worker 0 evaluates, exports, benchmarks and reports."""
    cpu: Quantity = "4"
    """CPU request (and limit)."""
    memory: Quantity = "16Gi"
    """Memory request (and limit)."""
    shm_size: Quantity = "2Gi"
    """Size of /dev/shm for data-loader workers."""


class KeyRef(Spec):
    """One key of a Secret or ConfigMap in the job's namespace."""

    name: DnsName
    """Name of the Secret or ConfigMap."""
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]
    """The key."""
    optional: bool | None = None
    """Start even when the key is missing."""


class EnvVarSource(Spec):
    """Where a variable's value comes from, so that a secret value never enters the spec, the job's
    ConfigMap or the status."""

    secret_key_ref: KeyRef | None = None
    """A key of a Secret."""
    config_map_key_ref: KeyRef | None = None
    """A key of a ConfigMap."""

    rules = (
        Rule(
            rule=_cel_count("secretKeyRef", "configMapKeyRef") + " == 1",
            message="set exactly one of secretKeyRef or configMapKeyRef",
            check=lambda m: _count(m.secret_key_ref is not None, m.config_map_key_ref is not None) == 1,
        ),
    )


class EnvVar(Spec):
    """An environment variable of the runner container."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
    """Variable name (not KSLIM_* nor one the operator sets)."""
    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """Variable value (a secret one belongs in valueFrom.secretKeyRef)."""
    value_from: EnvVarSource | None = None
    """Take the value from a Secret or ConfigMap key instead."""

    rules = (
        Rule(
            rule=podpolicy.env_name_cel(),
            message=podpolicy.ENV_MESSAGE,
            field_path=".name",
            check=lambda m: podpolicy.env_name_ok(m.name),
        ),
        Rule(
            rule="!has(self.valueFrom) || !has(self.value) || self.value == ''",
            message="set value or valueFrom, not both",
            check=lambda m: m.value_from is None or m.value == "",
        ),
    )


#: A core/v1 object passed through to the pod unchanged (Toleration, Affinity).
PodObject = Annotated[dict[str, Any], PRESERVE_UNKNOWN]


def _volume_schema() -> dict[str, Any]:
    """Every core/v1 volume source is declared (a refused one too), so that the API server's CEL rule
    sees it instead of pruning it unseen; each source's own fields pass through unchanged."""
    props: dict[str, Any] = {"name": {"description": "Volume name.", "type": "string", "maxLength": 63}}
    for source in podpolicy.ALLOWED_VOLUME_SOURCES:
        props[source] = {
            "description": f"core/v1 {source} volume source.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    for source in podpolicy.REFUSED_VOLUME_SOURCES:
        props[source] = {
            "description": "Refused (see docs/operations.md, security model).",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    rule = CelRule(rule=podpolicy.volume_cel(), message=podpolicy.VOLUME_MESSAGE)
    return {
        "additionalProperties": False,
        "properties": props,
        "required": ["name"],
        CEL_KEY: [rule.to_schema()],
    }


def _check_volume(volume: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(volume.get("name"), str):
        raise ValueError("a volume needs a name")
    if not podpolicy.volume_ok(volume):
        raise ValueError(podpolicy.VOLUME_MESSAGE)
    return volume


#: A core/v1 Volume whose source is on the allow-list (kslim_api.podpolicy).
Volume = Annotated[dict[str, Any], AfterValidator(_check_volume), K8sSchema(_volume_schema())]


class VolumeMount(Spec):
    """A core/v1 VolumeMount of the runner container, outside the operator's own mount points."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Name of a volume in spec.template.volumes."""
    mount_path: Annotated[str, StringConstraints(pattern=r"^/", max_length=1024)]
    """Absolute path in the container."""
    read_only: bool | None = None
    """Mount read-only."""
    sub_path: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Path inside the volume to mount instead of its root."""

    rules = (
        Rule(
            rule=podpolicy.mount_cel(),
            message=podpolicy.MOUNT_MESSAGE,
            field_path=".mountPath",
            check=lambda m: podpolicy.mount_ok(m.mount_path, m.sub_path),
        ),
    )


class PodTemplateSpec(Spec):
    """Pod scheduling and runtime knobs, passed through to the Job's pod template."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    """Runner image override (default: the operator's configured runner image)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy."""
    node_selector: Annotated[
        dict[
            Annotated[str, StringConstraints(max_length=317)],
            Annotated[str, StringConstraints(max_length=63)],
        ],
        Field(max_length=32),
    ] = Field(default_factory=dict)
    """Node labels the pod must match."""
    tolerations: list[PodObject] = Field(default_factory=list, max_length=32)
    """Pod tolerations (core/v1 Toleration)."""
    affinity: PodObject | None = None
    """Pod affinity (core/v1 Affinity); replaces the default GPU-architecture node affinity."""
    priority_class_name: DnsName | None = None
    """PriorityClass of the pod."""
    service_account_name: DnsName | None = None
    """ServiceAccount the pod runs as: only one the installation allows (Helm value
    allowedServiceAccounts); the runner itself needs none."""
    image_pull_secrets: Annotated[list[DnsName], UNIQUE, LIST_SET] = Field(
        default_factory=list, max_length=16
    )
    """Secrets for pulling the image."""
    env: Annotated[
        list[EnvVar],
        AfterValidator(_no_duplicates(lambda e: e.name)),
        list_map("name"),
    ] = Field(default_factory=list, max_length=64)
    """Extra environment variables."""
    volumes: list[Volume] = Field(default_factory=list, max_length=32)
    """Extra volumes (core/v1 Volume): persistentVolumeClaim, configMap, secret, emptyDir, ephemeral,
    csi or downwardAPI only."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=32)
    """Extra mounts in the runner container (core/v1 VolumeMount)."""


class RunPolicySpec(Spec):
    """Retries, deadline, suspension and clean-up (batch/v1 Job semantics)."""

    suspend: bool = False
    """Stop (or hold) the job; set back to false to resume from the last stage checkpoint. The one
    field that may change after the job has started."""
    backoff_limit: int = Field(default=2, ge=0, le=100)
    """Retries after infrastructure failures (user errors are never retried)."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the whole job."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Delete the finished Job (not the CompressionJob) after this long."""
