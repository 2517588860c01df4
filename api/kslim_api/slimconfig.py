"""PaddleDetection slim configs -> kslim strategy steps (pure: text in, steps out).

A job's `spec.slimConfig` (and `kslim validate --slim-config FILE`) may hold a slim config as
PaddleDetection's `configs/slim/**.yml` write them:

    slim: Pruner | QAT | PTQ | Distill | DistillPrune | PrunerQAT | UnstructuredPruner
    Pruner:    {criterion, pruned_params, pruned_ratios, print_params}
    QAT:       {quant_config: {...}, print_model}
    PTQ:       {ptq_config: {...}, quant_batch_num, fuse}
    PrunerQAT: {criterion, pruned_params, pruned_ratios, quant_config, print_*}
    distill_loss: DistillYOLOv3Loss  +  DistillYOLOv3Loss: {weight}   (Distill, DistillPrune)
    _BASE_: [teacher model config]   (Distill, DistillPrune: names the teacher)
    pruner: Pruner                   (DistillPrune)
    UnstructuredPruner: {ratio, initial_ratio, *_epochs, pruning_steps, prune_params_type}
                                     (slimconfig_sparsify; slim: OFA is refused there, measured)
    pretrain_weights / weights, weight_type
    training sections: epoch, TrainReader, LearningRate (schedulers), OptimizerBuilder
    module overrides: any class PaddleDetection registers (PPYOLOFPN: {...}, YOLOv3Head: {...})

Every key is either mapped onto a step field, accepted as a no-op and reported in `notes`
(logging switches such as print_model), or rejected by name. Nothing is dropped silently.
KEY_MAP and NOTES below are the reference docs/api.md prints (kslim_api.docgen).
"""

from __future__ import annotations

import decimal
import difflib
import functools
import posixpath
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from kslim_api.ppdet_modules import PPDET_CLASSES, PPDET_SHARED_KEYS, PPDET_VERSION
from kslim_api.slimconfig_distill import CHANNELS_NOTE, DISTILL_KEYS, distill_loss_fields
from kslim_api.slimconfig_distill import KEY_MAP as DISTILL_KEY_MAP
from kslim_api.slimconfig_numbers import as_ratio, plain_decimal, read_number, read_ratio
from kslim_api.slimconfig_sparsify import KEY_MAP as SPARSIFY_KEY_MAP
from kslim_api.slimconfig_sparsify import OFA_REFUSAL, sparsify_fields
from kslim_api.v1alpha1 import Architecture, StrategyStep, WeightsRef

SLIM_KINDS = ("Pruner", "QAT", "PTQ", "Distill", "DistillPrune", "PrunerQAT", "UnstructuredPruner")

#: PaddleDetection teacher configs (`_BASE_` of a distill config) -> built-in architecture.
TEACHER_CONFIG_PREFIXES: tuple[tuple[str, Architecture], ...] = (
    ("yolov3_mobilenet_v1", Architecture.YOLOV3_MOBILENET_V1),
    ("yolov3_mobilenet_v3", Architecture.YOLOV3_MOBILENET_V3),
    ("yolov3_darknet53", Architecture.YOLOV3_DARKNET53),
    ("yolov3_darknet", Architecture.YOLOV3_DARKNET53),
    ("yolov3_r34", Architecture.YOLOV3_RESNET34),
    ("yolov3_resnet34", Architecture.YOLOV3_RESNET34),
)

PTQ_ACTIVATION_QUANTIZERS = {"HistQuantizer": "hist", "KLQuantizer": "KL", "AbsmaxQuantizer": "abs_max"}
PTQ_WEIGHT_QUANTIZERS = {"PerChannelAbsmaxQuantizer": "channel_wise_abs_max", "AbsmaxQuantizer": "abs_max"}
QAT_SIMPLE_KEYS = {
    "weight_quantize_type": "weightQuantizeType",
    "activation_quantize_type": "activationQuantizeType",
    "weight_bits": "weightBits",
    "activation_bits": "activationBits",
    "window_size": "windowSize",
    "quantizable_layer_type": "quantizableLayerTypes",
}
LOGGING_KEYS = ("print_params", "print_model", "print_prune_params", "print_qat_model")

#: Every note kslim may print for a slim config ({placeholders} are filled in); docs/api.md lists them.
NOTES: dict[str, str] = {
    "distill_channels": CHANNELS_NOTE,
    "logging": "{key}: ignored (logging only; kslim prints progress lines)",
    "bins": "{key}: ignored (quant_post_static calibrates with its own histogram bins)",
    "weight_type": "weight_type: {value!r} ignored (kslim always starts from the given weights)",
    "url_weights": "{key}: {value} not used: kslim downloads nothing at run time; {instead}",
    "runtime": "{key}: ignored ({why})",
    "no_schedulers": "LearningRate: no schedulers given: the schedule is spec.train's (warm-up + "
    "cosine unless set there); PaddleDetection would keep the model config's",
    "cosine_span": "{key}: {value} ignored: kslim's cosine spans the step's own training "
    "(fineTune epochs/iterations) and ends at 5% of the base rate",
    "reader": "{key}: ignored ({why})",
    "reader_override": "{key}: merged over the model config's TrainReader, as PaddleDetection does",
    "override": "{key}: merged over the {target} config, as PaddleDetection does",
    "teacher_config": "_BASE_: {entry} is the teacher config {uri}",
}

#: How each PaddleDetection slim key becomes kslim spec (docs/api.md prints this table).
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("slim: Pruner + Pruner.criterion, pruned_params, pruned_ratios", "a prune step: criterion, ratios"),
    (
        "slim: QAT + QAT.quant_config",
        "a qat step: weightQuantizeType, activationQuantizeType, "
        "weightBits, activationBits, movingRate, windowSize, quantizableLayerTypes, pact, weightPact",
    ),
    (
        "slim: PTQ + PTQ.ptq_config, quant_batch_num",
        "a ptq step: algo, weightQuantizeType, histPercent, batchNum",
    ),
    ("slim: PrunerQAT", "a prune step (fineTune.iterations 0), then a qat step"),
    *DISTILL_KEY_MAP,
    ("slim: DistillPrune + pruner: Pruner", "a prune step (fineTune.iterations 0), then a distill step"),
    *SPARSIFY_KEY_MAP,
    (
        "_BASE_ (Distill, DistillPrune)",
        "distill.teacher.architecture (a built-in YOLOv3 config name) "
        "or distill.teacher.config.uri (any other PaddleDetection config, resolved next to the slim "
        "config)",
    ),
    (
        "pretrain_weights / weights (pvc://, s3://, file://)",
        "model.weights (distill: distill.teacher.weights); http(s) URLs: a note, nothing is downloaded",
    ),
    ("epoch", "fineTune.epochs of the last training step"),
    ("TrainReader.batch_size", "fineTune.batchSize"),
    (
        "TrainReader.sample_transforms, batch_transforms, collate_batch, *_epoch",
        "merged over the model config's TrainReader (model.config jobs)",
    ),
    ("LearningRate.base_lr", "fineTune.learningRate"),
    ("!LinearWarmup {steps, start_factor}", "fineTune.warmupIterations, fineTune.warmupStartFactor"),
    ("!PiecewiseDecay {milestones, gamma}", "fineTune.lrSchedule piecewise, decayEpochs, decayGamma"),
    ("!CosineDecay", "fineTune.lrSchedule cosine"),
    ("use_warmup: false (in a decay)", "fineTune.warmupIterations 0"),
    (
        "OptimizerBuilder.optimizer {type: Momentum, momentum}",
        "fineTune.optimizer momentum, fineTune.momentum",
    ),
    (
        "OptimizerBuilder.optimizer {type: AdamW, weight_decay}",
        "fineTune.optimizer adamw, fineTune.weightDecay",
    ),
    ("OptimizerBuilder.regularizer {type: L2, factor}", "fineTune.weightDecay"),
    ("OptimizerBuilder.clip_grad_by_norm", "fineTune.gradClipNorm"),
    (
        "a class PaddleDetection registers (PPYOLOFPN, YOLOv3Head, ResNet, ...)",
        "merged over the "
        "model config (model.config jobs; the teacher's with Distill); refused with model.architecture",
    ),
    (
        "snapshot_epoch, worker_num, use_gpu, log_iter, save_dir, metric, num_classes, EvalReader, "
        "TestReader, *Dataset",
        "a note: kslim takes them from the spec",
    ),
)

#: Top-level trainer keys whose job the spec does; each becomes a note saying which field.
RUNTIME_KEYS: dict[str, str] = {
    "snapshot_epoch": "kslim checkpoints every spec.train.checkpointEveryIterations and evaluates the "
    "exported model once, at the end",
    "worker_num": "data loader workers are spec.train.workers",
    "use_gpu": "the device follows spec.resources.gpus",
    "use_xpu": "the device follows spec.resources.gpus",
    "use_npu": "the device follows spec.resources.gpus",
    "use_mlu": "the device follows spec.resources.gpus",
    "log_iter": "progress lines come every spec.train.logEveryIterations",
    "save_dir": "artifacts go to spec.output",
    "metric": "kslim measures COCO box AP (spec.evaluation)",
    "num_classes": "the classes are model.numClasses",
    "EvalReader": "kslim evaluates the exported model on dataset.val at model.inputSize",
    "TestReader": "kslim exports and times the model at model.inputSize",
    "TrainDataset": "the data is spec.dataset",
    "EvalDataset": "the data is spec.dataset",
    "TestDataset": "the data is spec.dataset",
    "find_unused_parameters": "kslim's data-parallel workers train only the student's parameters and "
    "do not search for unused ones",
}
#: TrainReader keys the runner's own loader decides (everything else merges over the model's reader).
READER_KEYS: dict[str, str] = {
    "shuffle": "the runner shuffles every epoch, seeded by spec.train.seed",
    "drop_last": "the runner's batches are always full",
    "use_shared_memory": "the runner decides (shared memory with train.workers > 0)",
}
#: Distillation losses and models: read by the distill step of the slim kind that names them, never
#: merged over a model config.
_DISTILL_CLASSES = frozenset(n for n in PPDET_CLASSES if "Distill" in n or n.endswith("FeatureLoss"))
#: Sections read elsewhere in this module (not module overrides even though ppdet registers them).
_SECTIONS = frozenset(
    {"TrainReader", "LearningRate", "OptimizerBuilder", *SLIM_KINDS, "UnstructuredPruner", "OFA"}
    | _DISTILL_CLASSES
)


class SlimConfigError(ValueError):
    """Everything wrong with one slim config, each problem naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SlimConversion:
    """What a slim config means in kslim terms."""

    slim: str
    """The `slim:` kind."""
    steps: tuple[StrategyStep, ...]
    """The equivalent strategy."""
    weights: str | None = None
    """Student weights the config names (pretrain_weights / weights), for model.weights."""
    weights_key: str | None = None
    """Which key named them."""
    notes: tuple[str, ...] = ()
    """Keys accepted without effect, said out loud."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Module sections ({ppdet class name: settings}) PaddleDetection merges over the model config:
    the student's, or with Distill / DistillPrune the teacher's (ppdet builds the teacher from the
    slim config). The runner merges them over a model.config / teacher.config."""
    override_target: str = "model"
    """Which config model_overrides apply to: "model" (the job's model) or "teacher"."""
    bases: tuple[str, ...] = ()
    """The `_BASE_` entries as URIs (resolved next to the slim config when its location is known)."""


@dataclass
class _Reader:
    """Walks the parsed YAML, consuming keys; whatever is left at the end is unsupported."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Where the slim config is (a URI): relative `_BASE_` entries resolve next to it.
    location: str | None = None
    #: Module sections to merge over the model config ({class name: settings}).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: The `_BASE_` entries, as URIs (`kslim validate` checks that local ones exist).
    bases: list[str] = field(default_factory=list)

    def note(self, kind: str, **values: Any) -> None:
        self.notes.append(NOTES[kind].format(**values))

    def section(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.pop(key, None)
        if value is None:
            self.problems.append(f"{key}: required with slim: {doc.get('slim', '?')}")
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{key}: must be a mapping, not {_kind(value)}")
            return {}
        return dict(value)

    def leftovers(self, where: str, doc: dict[str, Any], hint: str, known: tuple[str, ...] = ()) -> None:
        for key in doc:
            near = _nearest(str(key), known)
            self.problems.append(f"{where}{key}: not supported by kslim's slimConfig ({hint}){near}")

    def logging(self, where: str, doc: dict[str, Any]) -> None:
        for key in LOGGING_KEYS:
            if key in doc:
                doc.pop(key)
                self.note("logging", key=f"{where}{key}")


def _nearest(key: str, known: Any) -> str:
    """ "; did you mean X?" for the closest known key, or nothing."""
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; nearest known key: {match[0]}" if match else ""


def _kind(value: Any) -> str:
    return type(value).__name__


# --- YAML -------------------------------------------------------------------------------------------


class _TaggedLoader(yaml.SafeLoader):
    """PaddleDetection configs use tags like `!PiecewiseDecay`; keep them as {"!tag": name, ...}."""


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {"!tag": suffix, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return {"!tag": suffix, "items": loader.construct_sequence(node, deep=True)}
    return {"!tag": suffix, "value": loader.construct_scalar(node)}  # type: ignore[arg-type]


_TaggedLoader.add_multi_constructor("!", _construct_tagged)


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        doc = yaml.load(text, Loader=_TaggedLoader)
    except yaml.YAMLError as exc:
        raise SlimConfigError([f"not valid YAML: {_yaml_error(exc)}"]) from None
    if not isinstance(doc, dict):
        raise SlimConfigError([f"must be a YAML mapping with a `slim:` key, not {_kind(doc)}"])
    return doc


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else str(problem)


# --- sections -----------------------------------------------------------------------------------------


def _prune_fields(r: _Reader, where: str, sec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    criterion = sec.pop("criterion", "l1_norm")
    if criterion not in ("l1_norm", "fpgm"):
        r.problems.append(f"{where}criterion: {criterion!r} is not supported (l1_norm or fpgm)")
    out["criterion"] = criterion
    params = sec.pop("pruned_params", None)
    ratios = sec.pop("pruned_ratios", None)
    if not isinstance(params, list) or not params or not all(isinstance(p, str) and p for p in params):
        r.problems.append(f"{where}pruned_params: required, a non-empty list of parameter names")
        return out
    if not isinstance(ratios, list) or len(ratios) != len(params):
        r.problems.append(
            f"{where}pruned_ratios: required, a list with one ratio per pruned_params entry ({len(params)})"
        )
        return out
    table: dict[str, str] = {}
    for i, (name, value) in enumerate(zip(params, ratios, strict=True)):
        ratio = read_ratio(r.problems, f"{where}pruned_ratios[{i}]", value)
        if ratio is None:
            continue
        if name in table:
            r.problems.append(f"{where}pruned_params[{i}]: {name!r} is listed twice")
        else:
            table[name] = ratio
    out["ratios"] = table
    return out


def _qat_fields(r: _Reader, where: str, qc: Any) -> dict[str, Any]:
    where = f"{where}quant_config."
    if not isinstance(qc, dict):
        r.problems.append(f"{where[:-1]}: required, a mapping")
        return {}
    qc = dict(qc)
    out: dict[str, Any] = {}
    for key, alias in QAT_SIMPLE_KEYS.items():
        if key in qc:
            out[alias] = qc.pop(key)
    if "moving_rate" in qc:
        rate = read_ratio(r.problems, f"{where}moving_rate", qc.pop("moving_rate"))
        if rate is not None:
            out["movingRate"] = rate
    dtype = qc.pop("dtype", "int8")
    if dtype != "int8":
        r.problems.append(f"{where}dtype: {dtype!r} is not supported (int8)")
    for key, alias in (("activation_preprocess_type", "pact"), ("weight_preprocess_type", "weightPact")):
        value = qc.pop(key, None)
        if value not in (None, "PACT"):
            r.problems.append(f"{where}{key}: {value!r} is not supported (PACT or null)")
        out[alias] = value == "PACT"
    r.leftovers(where, qc, "kslim's qat step has no such setting")
    return out


def _ptq_fields(r: _Reader, where: str, sec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pc = sec.pop("ptq_config", None)
    if not isinstance(pc, dict):
        r.problems.append(f"{where}ptq_config: required, a mapping")
        pc = {}
    pc = dict(pc)
    pwhere = f"{where}ptq_config."
    act = pc.pop("activation_quantizer", "KLQuantizer")
    if act in PTQ_ACTIVATION_QUANTIZERS:
        out["algo"] = PTQ_ACTIVATION_QUANTIZERS[act]
    else:
        known = ", ".join(PTQ_ACTIVATION_QUANTIZERS)
        r.problems.append(f"{pwhere}activation_quantizer: {act!r} is not supported ({known})")
    wq = pc.pop("weight_quantizer", "PerChannelAbsmaxQuantizer")
    if wq in PTQ_WEIGHT_QUANTIZERS:
        out["weightQuantizeType"] = PTQ_WEIGHT_QUANTIZERS[wq]
    else:
        r.problems.append(
            f"{pwhere}weight_quantizer: {wq!r} is not supported ({', '.join(PTQ_WEIGHT_QUANTIZERS)})"
        )
    if "hist_percent" in pc:
        percent = read_ratio(r.problems, f"{pwhere}hist_percent", pc.pop("hist_percent"))
        if percent is not None:
            out["histPercent"] = percent
    for key in ("upsample_bins", "bins"):
        if key in pc:
            pc.pop(key)
            r.note("bins", key=f"{pwhere}{key}")
    r.leftovers(pwhere, pc, "kslim's ptq step has no such setting")
    if "quant_batch_num" in sec:
        out["batchNum"] = sec.pop("quant_batch_num")
    fuse = sec.pop("fuse", True)
    if fuse is not True:
        r.problems.append(
            f"{where}fuse: {fuse!r} is not supported (kslim quantizes the exported model with "
            "conv+batch-norm always fused: set fuse: True or remove it)"
        )
    r.leftovers(where, sec, "kslim's ptq step has no such setting; outputs go to spec.output")
    return out


def _teacher(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    base = doc.pop("_BASE_", None)
    files = base if isinstance(base, list) else [base] if isinstance(base, str) else []
    if len(files) != 1 or not isinstance(files[0], str):
        r.problems.append(
            "_BASE_: required with distillation, one teacher model config, e.g. "
            "['../../yolov3/yolov3_r34_270e_coco.yml']"
        )
        return {}
    entry = files[0]
    uri = _base_uri(r, entry)
    if uri is not None:
        r.bases.append(uri)
    teacher: dict[str, Any] = {}
    name = posixpath.basename(entry)
    arch = next((a for prefix, a in TEACHER_CONFIG_PREFIXES if name.startswith(prefix)), None)
    if arch is not None:
        teacher["architecture"] = arch.value
    elif uri is None:
        r.problems.append(
            f"_BASE_: {entry!r} is a relative path and kslim cannot tell where the slim config sits: "
            "write the teacher config as a URI, e.g. pvc://models/configs/gfl/gfl_r101vd_fpn_mstrain_2x_coco.yml"
        )
        return {}
    else:
        teacher["config"] = {"uri": uri}
        if uri != entry:
            r.note("teacher_config", entry=entry, uri=uri)
    if "pretrain_weights" in doc:
        value = doc.pop("pretrain_weights")
        if _is_url(value):
            r.note(
                "url_weights",
                key="pretrain_weights",
                value=value,
                instead="write the teacher's .pdparams here as a pvc:// or file:// URI (without "
                "weights kslim trains the teacher first)",
            )
        else:
            teacher["weights"] = {"uri": value}
    return teacher


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _base_uri(r: _Reader, entry: str) -> str | None:
    """A `_BASE_` entry as a URI: as written when it is one, else next to the slim config (as
    PaddleDetection resolves it); None when the slim config's location is unknown."""
    if "://" in entry:
        return entry
    if r.location is None:
        return None
    scheme, _, path = r.location.partition("://")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry))
    if path.startswith("/") and not joined.startswith("/"):
        joined = "/" + joined
    return f"{scheme}://{joined}"


def _distill_fields(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"teacher": _teacher(r, doc)}
    out.update(distill_loss_fields(doc, str(doc.get("slim")), r.problems, r.notes))
    return out


# --- the conversion ---------------------------------------------------------------------------------


def _fine_tune(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    """The training sections (epoch, TrainReader, LearningRate, OptimizerBuilder): the fineTune of
    the step PaddleDetection trains."""
    out: dict[str, Any] = {}
    if "epoch" in doc:
        out["epochs"] = _count(r, "epoch", doc.pop("epoch"))
    if "TrainReader" in doc:
        out.update(_train_reader(r, doc.pop("TrainReader")))
    if "LearningRate" in doc:
        out.update(_learning_rate(r, doc.pop("LearningRate")))
    if "OptimizerBuilder" in doc:
        out.update(_optimizer(r, doc.pop("OptimizerBuilder")))
    return {k: v for k, v in out.items() if v is not None}


def _count(r: _Reader, key: str, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        r.problems.append(f"{key}: {value!r} is not a whole number of at least 1")
        return None
    return value


def _mapping(r: _Reader, key: str, value: Any, example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        r.problems.append(f"{key}: must be a mapping such as {example}, not {_kind(value)}")
        return {}
    return {k: v for k, v in value.items() if k != "!tag"}


def _train_reader(r: _Reader, value: Any) -> dict[str, Any]:
    """batch_size is the step's; the loader switches are the runner's; the rest (transforms,
    collate_batch, mix-up epochs) merges over the model config's TrainReader as PaddleDetection does."""
    sec = _mapping(r, "TrainReader", value, "{batch_size: 8}")
    out: dict[str, Any] = {}
    if "batch_size" in sec:
        out["batchSize"] = _count(r, "TrainReader.batch_size", sec.pop("batch_size"))
    for key, why in READER_KEYS.items():
        if key in sec:
            sec.pop(key)
            r.note("reader", key=f"TrainReader.{key}", why=why)
    if sec:
        r.overrides["TrainReader"] = sec
        for key in sec:
            r.note("reader_override", key=f"TrainReader.{key}")
    return out


def _learning_rate(r: _Reader, value: Any) -> dict[str, Any]:
    sec = _mapping(r, "LearningRate", value, "{base_lr: 0.001, schedulers: [...]}")
    out: dict[str, Any] = {}
    if "base_lr" in sec:
        out["learningRate"] = read_number(r.problems, "LearningRate.base_lr", sec.pop("base_lr"))
    if "schedulers" not in sec:
        r.note("no_schedulers")
    else:
        schedulers = sec.pop("schedulers")
        items = schedulers if isinstance(schedulers, list) else [schedulers]
        for i, item in enumerate(items):
            out.update(_scheduler(r, f"LearningRate.schedulers[{i}]", item))
    r.leftovers("LearningRate.", sec, "kslim reads base_lr and schedulers", ("base_lr", "schedulers"))
    return out


SCHEDULERS = ("PiecewiseDecay", "CosineDecay", "LinearWarmup")


def _scheduler(r: _Reader, where: str, item: Any) -> dict[str, Any]:
    tag = item.get("!tag") if isinstance(item, dict) else None
    if tag not in SCHEDULERS:
        r.problems.append(
            f"{where}: {tag or _kind(item)!r} is not supported ({', '.join('!' + s for s in SCHEDULERS)})"
        )
        return {}
    sec = _mapping(r, where, item, "!PiecewiseDecay {milestones: [30, 45], gamma: 0.1}")
    where = f"{where} !{tag}."
    out = _warmup(r, where, sec) if tag == "LinearWarmup" else _decay(r, where, tag, sec)
    r.leftovers(where, sec, "kslim has no such setting", _SCHEDULER_KEYS[tag])
    return out


_SCHEDULER_KEYS = {
    "LinearWarmup": ("steps", "start_factor"),
    "PiecewiseDecay": ("milestones", "gamma", "use_warmup"),
    "CosineDecay": ("max_epochs", "use_warmup", "min_lr_ratio", "last_plateau_epochs"),
}


def _warmup(r: _Reader, where: str, sec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # PaddleDetection's defaults (500 steps from a third of the rate), so an empty !LinearWarmup
    # warms up as it would there.
    steps = sec.pop("steps", 500)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        r.problems.append(f"{where}steps: {steps!r} is not a whole number of at least 0")
    else:
        out["warmupIterations"] = steps
    out["warmupStartFactor"] = read_number(
        r.problems, f"{where}start_factor", sec.pop("start_factor", "0.3333"), "1"
    )
    return out


def _decay(r: _Reader, where: str, tag: str, sec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sec.pop("use_warmup", True) is False:
        out["warmupIterations"] = 0
    if tag == "CosineDecay":
        out["lrSchedule"] = "cosine"
        for key in ("max_epochs", "min_lr_ratio", "last_plateau_epochs"):
            if key in sec:
                r.note("cosine_span", key=f"{where}{key}", value=sec.pop(key))
        return out
    out["lrSchedule"] = "piecewise"
    milestones = sec.pop("milestones", [8, 11])  # PaddleDetection's defaults
    if (
        not isinstance(milestones, list)
        or not milestones
        or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones)
        or sorted(set(milestones)) != milestones
    ):
        r.problems.append(f"{where}milestones: {milestones!r} is not an increasing list of epochs")
    else:
        out["decayEpochs"] = milestones
    out["decayGamma"] = _gamma(r, f"{where}gamma", sec.pop("gamma", 0.1), len(out.get("decayEpochs", ())))
    return out


def _gamma(r: _Reader, key: str, value: Any, milestones: int) -> str | None:
    """One factor per decay. PaddleDetection also takes a list of cumulative factors ([0.1, 0.01]):
    kslim's single factor says the same when the list is its powers."""
    if isinstance(value, list):
        first = as_ratio(value[0]) if value else None
        powers = [decimal.Decimal(first) ** (i + 1) for i in range(len(value))] if first else []
        given = [plain_decimal(v) for v in value]
        if not first or any(
            g is None or abs(decimal.Decimal(g) - p) > p * decimal.Decimal("1e-6")
            for g, p in zip(given, powers, strict=True)
        ):
            r.problems.append(f"{key}: {value!r} must be one factor, or its powers ([0.1, 0.01])")
            return None
        return first
    return read_ratio(r.problems, key, value)


OPTIMIZERS = {"Momentum": "momentum", "AdamW": "adamw"}


def _optimizer(r: _Reader, value: Any) -> dict[str, Any]:
    sec = _mapping(r, "OptimizerBuilder", value, "{optimizer: {type: Momentum, momentum: 0.9}}")
    out: dict[str, Any] = {}
    if "clip_grad_by_norm" in sec:
        out["gradClipNorm"] = read_number(
            r.problems, "OptimizerBuilder.clip_grad_by_norm", sec.pop("clip_grad_by_norm")
        )
    if "optimizer" in sec:
        out.update(_optimizer_type(r, sec.pop("optimizer")))
    if "regularizer" in sec:
        reg = _mapping(
            r, "OptimizerBuilder.regularizer", sec.pop("regularizer"), "{type: L2, factor: 0.0005}"
        )
        kind = reg.pop("type", "L2")
        if kind != "L2":
            r.problems.append(f"OptimizerBuilder.regularizer.type: {kind!r} is not supported (L2)")
        if "factor" in reg:
            out["weightDecay"] = read_number(
                r.problems, "OptimizerBuilder.regularizer.factor", reg.pop("factor")
            )
        r.leftovers("OptimizerBuilder.regularizer.", reg, "kslim has no such setting", ("type", "factor"))
    r.leftovers(
        "OptimizerBuilder.",
        sec,
        "kslim has no such setting",
        ("optimizer", "regularizer", "clip_grad_by_norm"),
    )
    return out


def _optimizer_type(r: _Reader, value: Any) -> dict[str, Any]:
    where = "OptimizerBuilder.optimizer."
    sec = _mapping(r, where[:-1], value, "{type: Momentum, momentum: 0.9}")
    kind = sec.pop("type", "Momentum")
    if kind not in OPTIMIZERS:
        r.problems.append(f"{where}type: {kind!r} is not supported ({', '.join(OPTIMIZERS)})")
        return {}
    out: dict[str, Any] = {"optimizer": OPTIMIZERS[kind]}
    if kind == "Momentum" and "momentum" in sec:
        out["momentum"] = read_ratio(r.problems, f"{where}momentum", sec.pop("momentum"))
    if kind == "AdamW" and "weight_decay" in sec:
        out["weightDecay"] = read_number(r.problems, f"{where}weight_decay", sec.pop("weight_decay"))
    r.leftovers(where, sec, "kslim has no such setting", ("type", "momentum", "weight_decay"))
    return out


_NO_FINE_TUNE = {"iterations": 0}


def _steps_for(kind: str, r: _Reader, doc: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "Pruner":
        sec = r.section(doc, "Pruner")
        r.logging("Pruner.", sec)
        prune = _prune_fields(r, "Pruner.", sec)
        r.leftovers("Pruner.", sec, "kslim's prune step has no such setting")
        return [{"prune": prune}]
    if kind == "QAT":
        sec = r.section(doc, "QAT")
        r.logging("QAT.", sec)
        qat = _qat_fields(r, "QAT.", sec.pop("quant_config", None))
        r.leftovers("QAT.", sec, "kslim's qat step has no such setting")
        return [{"qat": qat}]
    if kind == "PTQ":
        sec = r.section(doc, "PTQ")
        return [{"ptq": _ptq_fields(r, "PTQ.", sec)}]
    if kind == "PrunerQAT":
        sec = r.section(doc, "PrunerQAT")
        r.logging("PrunerQAT.", sec)
        prune = _prune_fields(r, "PrunerQAT.", sec)
        qat = _qat_fields(r, "PrunerQAT.", sec.pop("quant_config", None))
        r.leftovers("PrunerQAT.", sec, "kslim's prune and qat steps have no such setting")
        return [{"prune": {**prune, "fineTune": _NO_FINE_TUNE}}, {"qat": qat}]
    if kind == "Distill":
        return [{"distill": _distill_fields(r, doc)}]
    if kind == "DistillPrune":
        distill = _distill_fields(r, doc)
        pruner = doc.pop("pruner", "Pruner")
        if pruner != "Pruner":
            r.problems.append(f"pruner: {pruner!r} is not supported (Pruner)")
        sec = r.section(doc, "Pruner")
        r.logging("Pruner.", sec)
        prune = _prune_fields(r, "Pruner.", sec)
        r.leftovers("Pruner.", sec, "kslim's prune step has no such setting")
        # PaddleDetection prunes the student, then trains it with the teacher: no fine-tuning in between.
        return [{"prune": {**prune, "fineTune": _NO_FINE_TUNE}}, {"distill": distill}]
    if kind == "UnstructuredPruner":
        sec = r.section(doc, "UnstructuredPruner")
        sparsify = sparsify_fields(sec, r.problems)
        r.leftovers("UnstructuredPruner.", sec, "PaddleDetection's UnstructuredPruner has no such setting")
        return [{"sparsify": sparsify}]
    raise AssertionError(kind)


_TRAINING = ("prune", "distill", "qat", "sparsify")


def _apply_fine_tune(steps: list[dict[str, Any]], fine_tune: dict[str, Any]) -> None:
    """epoch/base_lr: the training budget of the step that trains last (the one PaddleDetection runs)."""
    if not fine_tune:
        return
    for step in reversed(steps):
        ((method, body),) = step.items()
        if method in _TRAINING:
            body["fineTune"] = {**fine_tune}
            return


def _weights(r: _Reader, kind: str, doc: dict[str, Any]) -> tuple[str | None, str | None]:
    found = [k for k in ("pretrain_weights", "weights") if k in doc]
    if kind in ("Distill", "DistillPrune"):
        # In a distill config pretrain_weights are the teacher's (consumed by _teacher()).
        if "weights" in doc:
            doc.pop("weights")
            r.problems.append(
                "weights: not read with distillation (the student's weights are model.weights; "
                "pretrain_weights are the teacher's)"
            )
        return None, None
    if len(found) == 2:
        r.problems.append("pretrain_weights and weights: set only one (the weights to start from)")
    if not found:
        return None, None
    key = found[0]
    uri = doc.pop(key)
    for other in found[1:]:
        doc.pop(other)
    if _is_url(uri):
        instead = (
            "put the .pdparams on a volume and set model.weights (or write its pvc:// or file:// URI here)"
        )
        r.note("url_weights", key=key, value=uri, instead=instead)
        return None, None
    try:
        WeightsRef(uri=uri)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        r.problems.append(
            f"{key}: {uri!r} is not a weights URI ({msg}); use pvc://, s3://, http(s):// or file://"
        )
        return None, None
    return uri, key


def _validate_steps(r: _Reader, raw: list[dict[str, Any]]) -> tuple[StrategyStep, ...]:
    steps: list[StrategyStep] = []
    for i, body in enumerate(raw):
        try:
            steps.append(StrategyStep.model_validate(body, by_alias=True, by_name=False))
        except ValidationError as exc:
            (method,) = body
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                r.problems.append(f"{method} (step {i + 1}): {loc}: {err['msg']}")
    return tuple(steps)


def _unknown_kind(kind: Any) -> str:
    """A method PaddleDetection has but kslim does not convert, or one PaddleDetection does not have."""
    known = ", ".join(SLIM_KINDS)
    if kind == "OFA":
        return OFA_REFUSAL
    if not isinstance(kind, str) or kind in PPDET_CLASSES:
        return f"slim: {kind!r} is not supported; kslim converts {known}"
    near = _nearest(str(kind), SLIM_KINDS) if kind is not None else ""
    return f"slim: {kind!r} is not a PaddleDetection {PPDET_VERSION} slim method ({known}){near}"


def _convert(doc: dict[str, Any], location: str | None = None) -> SlimConversion:
    r = _Reader(location=location)
    kind = doc.get("slim")
    if kind not in SLIM_KINDS:
        raise SlimConfigError([_unknown_kind(kind)])
    weights, weights_key = _weights(r, kind, doc)
    fine_tune = _fine_tune(r, doc)
    raw = _steps_for(kind, r, doc)
    doc.pop("slim")
    if "weight_type" in doc:
        r.note("weight_type", value=doc.pop("weight_type"))
    _runtime_keys(r, doc)
    if kind == "PTQ" and fine_tune:
        r.problems.append("epoch / LearningRate: PTQ does not train; remove them")
    if kind not in ("Distill", "DistillPrune"):
        for key in ("_BASE_", *DISTILL_KEYS, "pruner"):
            if key in doc:
                doc.pop(key)
                r.problems.append(f"{key}: only read with slim: Distill or DistillPrune, not {kind}")
    for section in ("Pruner", "QAT", "PTQ", "PrunerQAT", "UnstructuredPruner"):
        if section in doc:
            doc.pop(section)
            r.problems.append(f"{section}: not read with slim: {kind}; remove it")
    target = "teacher" if kind in ("Distill", "DistillPrune") else "model"
    _module_overrides(r, doc, target)
    _unknown_sections(r, doc)
    _apply_fine_tune(raw, fine_tune)
    if r.problems:
        raise SlimConfigError(r.problems)
    steps = _validate_steps(r, raw)
    if r.problems:
        raise SlimConfigError(r.problems)
    return SlimConversion(
        slim=kind,
        steps=steps,
        weights=weights,
        weights_key=weights_key,
        notes=tuple(r.notes),
        model_overrides=r.overrides,
        override_target=target,
        bases=tuple(r.bases),
    )


def _runtime_keys(r: _Reader, doc: dict[str, Any]) -> None:
    for key, why in RUNTIME_KEYS.items():
        if key in doc:
            doc.pop(key)
            r.note("runtime", key=key, why=why)


def _module_overrides(r: _Reader, doc: dict[str, Any], target: str) -> None:
    """Top-level sections named after a class PaddleDetection registers merge over the model config,
    as PaddleDetection merges a slim config into its workspace."""
    for key in [k for k in doc if k in PPDET_SHARED_KEYS or k == "architecture"]:
        value = doc.pop(key)
        if key == "architecture" and value not in PPDET_CLASSES:
            r.problems.append(
                f"architecture: {value!r} is not a class PaddleDetection {PPDET_VERSION} registers"
            )
            continue
        r.overrides[key] = value  # a global setting: replaces the model config's value
        r.note("override", key=key, target=target)
    for key in [k for k in doc if k in PPDET_CLASSES and k not in _SECTIONS]:
        value = doc.pop(key)
        if not isinstance(value, dict):
            r.problems.append(f"{key}: a module override is a mapping of its settings, not {_kind(value)}")
            continue
        merged = r.overrides.get(key, {})
        r.overrides[key] = {**merged, **value}
        r.note("override", key=key, target=target)


#: Every top-level key kslim reads, for "nearest known key" hints.
_KNOWN_TOP = (
    "slim",
    "_BASE_",
    "pretrain_weights",
    "weights",
    "weight_type",
    "epoch",
    "distill_loss",
    "pruner",
    *RUNTIME_KEYS,
    "architecture",
    *sorted(PPDET_SHARED_KEYS),
    *sorted(PPDET_CLASSES),
)


def _unknown_sections(r: _Reader, doc: dict[str, Any]) -> None:
    for key in doc:
        if key in _DISTILL_CLASSES:
            r.problems.append(
                f"{key}: a distillation section, read only when distill_loss / slim_method names it"
            )
            continue
        near = _nearest(str(key), _KNOWN_TOP)
        r.problems.append(
            f"{key}: unknown section: not a slim setting kslim reads nor a module PaddleDetection "
            f"{PPDET_VERSION} registers{near}"
        )


@functools.lru_cache(maxsize=64)
def convert_slim_config(text: str, location: str | None = None) -> SlimConversion:
    """Convert a slim config (YAML text); raise SlimConfigError listing every problem by key.
    `location` (a URI of the slim config) is where relative `_BASE_` entries resolve from."""
    return _convert(parse_yaml(text), location)


def note_texts() -> list[str]:
    """Every note, with the fixed reasons of runtime and reader keys spelled out (for docs/api.md)."""
    out: list[str] = []
    for kind, text in NOTES.items():
        if kind == "runtime":
            out += [text.format(key=k, why=why) for k, why in RUNTIME_KEYS.items()]
        elif kind == "reader":
            out += [text.format(key=f"TrainReader.{k}", why=why) for k, why in READER_KEYS.items()]
        else:
            out.append(text)
    return out


def slim_location(model_config_uri: str | None) -> str | None:
    """Where a spec.slimConfig (text in a CR) is taken to sit, so its relative `_BASE_` resolves: in
    configs/slim/<dir>/ of the PaddleDetection tree model.config is in, as PaddleDetection's own
    slim configs sit (their `_BASE_` is ../../<family>/<model>.yml). None without such a tree."""
    marker = "/configs/"
    if model_config_uri is None or marker not in model_config_uri:
        return None
    root = model_config_uri[: model_config_uri.rindex(marker) + len(marker)]
    return f"{root}slim/distill/slim.yml"
