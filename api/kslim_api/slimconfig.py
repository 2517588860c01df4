"""PaddleDetection slim configs -> kslim strategy steps (pure: text in, steps out).

A job's `spec.slimConfig` (and `kslim validate --slim-config FILE`) may hold a slim config as
PaddleDetection's `configs/slim/**.yml` write them:

    slim: Pruner | QAT | PTQ | Distill | DistillPrune | PrunerQAT
    Pruner:    {criterion, pruned_params, pruned_ratios, print_params}
    QAT:       {quant_config: {...}, print_model}
    PTQ:       {ptq_config: {...}, quant_batch_num, fuse}
    PrunerQAT: {criterion, pruned_params, pruned_ratios, quant_config, print_*}
    distill_loss: DistillYOLOv3Loss  +  DistillYOLOv3Loss: {weight}   (Distill, DistillPrune)
    _BASE_: [teacher model config]   (Distill, DistillPrune: names the teacher)
    pruner: Pruner                   (DistillPrune)
    pretrain_weights / weights, weight_type, epoch, LearningRate: {base_lr}

Every key is either mapped onto a step field, accepted as a no-op and reported in `notes`
(logging switches such as print_model), or rejected by name. Nothing is dropped silently.
"""

from __future__ import annotations

import decimal
import functools
import posixpath
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from kslim_api.v1alpha1 import Architecture, StrategyStep, WeightsRef

SLIM_KINDS = ("Pruner", "QAT", "PTQ", "Distill", "DistillPrune", "PrunerQAT")

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


@dataclass
class _Reader:
    """Walks the parsed YAML, consuming keys; whatever is left at the end is unsupported."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.pop(key, None)
        if value is None:
            self.problems.append(f"{key}: required with slim: {doc.get('slim', '?')}")
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{key}: must be a mapping, not {_kind(value)}")
            return {}
        return dict(value)

    def leftovers(self, where: str, doc: dict[str, Any], hint: str) -> None:
        for key in doc:
            self.problems.append(f"{where}{key}: not supported by kslim's slimConfig ({hint})")

    def logging(self, where: str, doc: dict[str, Any]) -> None:
        for key in LOGGING_KEYS:
            if key in doc:
                doc.pop(key)
                self.notes.append(f"{where}{key}: ignored (logging only; kslim prints progress lines)")


def _kind(value: Any) -> str:
    return type(value).__name__


def _decimal(value: Any) -> str | None:
    """A YAML number (or numeric string) as a plain decimal string, e.g. 0.1 -> "0.1"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return None
    if not number.is_finite():
        return None
    out = format(number, "f")
    return out


def _ratio(value: Any) -> str | None:
    text = _decimal(value)
    if text is None or not (0 < decimal.Decimal(text) < 1):
        return None
    return text


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
        ratio = _ratio(value)
        if ratio is None:
            r.problems.append(f"{where}pruned_ratios[{i}]: {value!r} is not a ratio strictly between 0 and 1")
        elif name in table:
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
        value = qc.pop("moving_rate")
        rate = _ratio(value)
        if rate is None:
            r.problems.append(f"{where}moving_rate: {value!r} is not a ratio strictly between 0 and 1")
        else:
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
        value = pc.pop("hist_percent")
        percent = _ratio(value)
        if percent is None:
            r.problems.append(f"{pwhere}hist_percent: {value!r} is not a ratio strictly between 0 and 1")
        else:
            out["histPercent"] = percent
    for key in ("upsample_bins", "bins"):
        if key in pc:
            pc.pop(key)
            r.notes.append(
                f"{pwhere}{key}: ignored (quant_post_static calibrates with its own histogram bins)"
            )
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
    name = posixpath.basename(files[0])
    for prefix, arch in TEACHER_CONFIG_PREFIXES:
        if name.startswith(prefix):
            teacher: dict[str, Any] = {"architecture": arch.value}
            if "pretrain_weights" in doc:
                teacher["weights"] = {"uri": doc.pop("pretrain_weights")}
            return teacher
    archs = ", ".join(a.value for a in Architecture)
    r.problems.append(f"_BASE_: teacher config {name!r} is not a built-in architecture ({archs})")
    return {}


def _distill_fields(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"teacher": _teacher(r, doc)}
    method = doc.pop("slim_method", None)
    if method is not None:
        r.problems.append(f"slim_method: {method!r} is not supported (kslim distills with DistillYOLOv3Loss)")
    loss = doc.pop("distill_loss", None)
    if loss != "DistillYOLOv3Loss":
        r.problems.append(f"distill_loss: {loss!r} is not supported (DistillYOLOv3Loss)")
        return out
    out["loss"] = "yolov3"
    sec = doc.pop("DistillYOLOv3Loss", None) or {}
    if not isinstance(sec, dict):
        r.problems.append("DistillYOLOv3Loss: must be a mapping such as {weight: 1000}")
        return out
    sec = dict(sec)
    if "weight" in sec:
        value = sec.pop("weight")
        weight = _decimal(value)
        if weight is None or decimal.Decimal(weight) < 0:
            r.problems.append(f"DistillYOLOv3Loss.weight: {value!r} is not a non-negative number")
        else:
            out["weight"] = weight
    r.leftovers("DistillYOLOv3Loss.", sec, "kslim's distill step has only weight")
    return out


# --- the conversion ---------------------------------------------------------------------------------


def _fine_tune(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    """epoch and LearningRate.base_lr apply to every training step."""
    out: dict[str, Any] = {}
    if "epoch" in doc:
        out["epochs"] = doc.pop("epoch")
    lr = doc.pop("LearningRate", None)
    if lr is not None:
        if not isinstance(lr, dict):
            r.problems.append("LearningRate: must be a mapping with base_lr")
        else:
            lr = dict(lr)
            if "base_lr" in lr:
                value = lr.pop("base_lr")
                rate = _decimal(value)
                if rate is None:
                    r.problems.append(f"LearningRate.base_lr: {value!r} is not a non-negative number")
                else:
                    out["learningRate"] = rate
            r.leftovers("LearningRate.", lr, "kslim uses warm-up + cosine decay; set spec.train")
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
    raise AssertionError(kind)


_TRAINING = ("prune", "distill", "qat")


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


def _convert(doc: dict[str, Any]) -> SlimConversion:
    r = _Reader()
    kind = doc.get("slim")
    if kind not in SLIM_KINDS:
        raise SlimConfigError([f"slim: {kind!r} is not supported; kslim converts {', '.join(SLIM_KINDS)}"])
    weights, weights_key = _weights(r, kind, doc)
    fine_tune = _fine_tune(r, doc)
    raw = _steps_for(kind, r, doc)
    doc.pop("slim")
    if "weight_type" in doc:
        r.notes.append(
            f"weight_type: {doc.pop('weight_type')!r} ignored (kslim always starts from the given weights)"
        )
    if kind == "PTQ" and fine_tune:
        r.problems.append("epoch / LearningRate: PTQ does not train; remove them")
    if kind not in ("Distill", "DistillPrune"):
        for key in ("_BASE_", "distill_loss", "DistillYOLOv3Loss", "pruner"):
            if key in doc:
                doc.pop(key)
                r.problems.append(f"{key}: only read with slim: Distill or DistillPrune, not {kind}")
    for section in ("Pruner", "QAT", "PTQ", "PrunerQAT"):
        if section in doc:
            doc.pop(section)
            r.problems.append(f"{section}: not read with slim: {kind}; remove it")
    r.leftovers(
        "", doc, "a PaddleDetection model/reader/optimizer setting; set the matching spec field instead"
    )
    _apply_fine_tune(raw, fine_tune)
    if r.problems:
        raise SlimConfigError(r.problems)
    steps = _validate_steps(r, raw)
    if r.problems:
        raise SlimConfigError(r.problems)
    return SlimConversion(
        slim=kind, steps=steps, weights=weights, weights_key=weights_key, notes=tuple(r.notes)
    )


@functools.lru_cache(maxsize=64)
def convert_slim_config(text: str) -> SlimConversion:
    """Convert a slim config (YAML text); raise SlimConfigError listing every problem by key."""
    return _convert(parse_yaml(text))
