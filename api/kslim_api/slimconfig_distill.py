"""The distillation loss of a PaddleDetection slim config (slim: Distill / DistillPrune) -> the
fields of kslim's distill step (pure: parsed YAML in, step fields out).

PaddleDetection picks its distillation by `slim_method` and configures it by the section named
after the loss class:

    (no slim_method)              distill_loss: DistillYOLOv3Loss   + DistillYOLOv3Loss: {weight}
    slim_method: PPYOLOEDistill   distill_loss: DistillPPYOLOELoss  + DistillPPYOLOELoss: {...}
    slim_method: CWD              distill_loss: CWDFeatureLoss      + CWDFeatureLoss: {...}, distill_loss_name
    slim_method: FGD              distill_loss: FGDFeatureLoss      + FGDFeatureLoss: {...}, distill_loss_name
    slim_method: LD               (no loss section: the student's LDGFLHead holds LD's terms)

Every key of those sections becomes a step field, a note (channel counts, which kslim reads from
the two models), or a problem naming the key.
"""

from __future__ import annotations

from typing import Any

from kslim_api.slimconfig_numbers import read_number

#: slim_method -> (distill.loss, the distill_loss class it takes; None: LD has none).
METHODS: dict[str | None, tuple[str, str | None]] = {
    None: ("yolov3", "DistillYOLOv3Loss"),
    "PPYOLOEDistill": ("ppyoloe", "DistillPPYOLOELoss"),
    "CWD": ("cwd", "CWDFeatureLoss"),
    "FGD": ("fgd", "FGDFeatureLoss"),
    "LD": ("ld", None),
}
LOSS_SECTIONS = ("DistillYOLOv3Loss", "DistillPPYOLOELoss", "CWDFeatureLoss", "FGDFeatureLoss")
#: Top-level keys read here (and nowhere else).
DISTILL_KEYS = ("slim_method", "distill_loss", "distill_loss_name", *LOSS_SECTIONS)

#: Section key -> step field, per loss class (numbers; booleans and choices are listed apart).
_NUMBERS: dict[str, dict[str, str]] = {
    "DistillYOLOv3Loss": {"weight": "weight"},
    "CWDFeatureLoss": {"tau": "tau", "weight": "weight"},
    "FGDFeatureLoss": {
        "temp": "temp",
        "alpha_fgd": "alphaFgd",
        "beta_fgd": "betaFgd",
        "gamma_fgd": "gammaFgd",
        "lambda_fgd": "lambdaFgd",
        "loss_weight": "weight",
    },
    "DistillPPYOLOELoss": {},
}
_FLAGS: dict[str, dict[str, str]] = {
    "CWDFeatureLoss": {"normalize": "normalize"},
    "FGDFeatureLoss": {"normalize": "normalize"},
    "DistillPPYOLOELoss": {
        "logits_distill": "logitsDistill",
        "logits_ld_distill": "logitsLdDistill",
        "feat_distill": "featDistill",
    },
}
#: Nested mappings of DistillPPYOLOELoss: key -> {inner key: step field}.
_PPYOLOE_NESTED = {
    "loss_weight": {"logits": "logitsWeight", "feat": "featWeight"},
    "logits_loss_weight": {"class": "classWeight", "iou": "iouWeight", "dfl": "dflWeight"},
    "logits_ld_params": {"weight": "ldWeight", "T": "ldTemperature"},
}
_PPYOLOE_CHOICES = {
    "feat_distiller": ("featDistiller", ("cwd", "fgd", "pkd", "mgd", "mimic")),
    "feat_distill_place": ("featDistillPlace", ("neck_feats", "backbone_feats")),
}
#: Keys that describe the models' channels: kslim measures them on the two models instead.
_CHANNEL_KEYS = {
    "CWDFeatureLoss": ("student_channels", "teacher_channels"),
    "FGDFeatureLoss": ("student_channels", "teacher_channels"),
    "DistillPPYOLOELoss": ("teacher_width_mult", "student_width_mult", "feat_out_channels"),
}
CHANNELS_NOTE = (
    "{key}: {value!r} not needed: kslim reads the channels of the student's and the teacher's maps "
    "from the two models (and adds the 1x1 align conv where they differ, as PaddleDetection does)"
)

#: The rows docs/api.md prints for these keys (slim key, what it becomes).
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("slim: Distill + distill_loss: DistillYOLOv3Loss {weight}", "a distill step: loss yolov3, weight"),
    (
        "slim_method: PPYOLOEDistill + DistillPPYOLOELoss {loss_weight, logits_loss_weight, "
        "logits_distill, logits_ld_distill, logits_ld_params, feat_distill, feat_distiller, "
        "feat_distill_place}",
        "distill.loss ppyoloe, distill.ppyoloe (logitsWeight, featWeight, classWeight, iouWeight, "
        "dflWeight, logitsDistill, logitsLdDistill, ldWeight, ldTemperature, featDistill, "
        "featDistiller, featDistillPlace)",
    ),
    (
        "slim_method: CWD + CWDFeatureLoss {tau, weight, normalize}, distill_loss_name",
        "distill.loss cwd, distill.cwd (tau, weight, normalize; levels: one per name)",
    ),
    (
        "slim_method: FGD + FGDFeatureLoss {temp, alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd, "
        "loss_weight, normalize}, distill_loss_name",
        "distill.loss fgd, distill.fgd (temp, alphaFgd, betaFgd, gammaFgd, lambdaFgd, weight, "
        "normalize; levels: one per name)",
    ),
    ("slim_method: LD", "distill.loss ld (its terms are the student's LDGFLHead losses)"),
    (
        "student_channels, teacher_channels, teacher_width_mult, student_width_mult, feat_out_channels",
        "a note: kslim reads the channels from the two models",
    ),
)


def _read_section(name: str, sec: dict[str, Any], problems: list[str], notes: list[str]) -> dict[str, Any]:
    """The step fields of one loss section; every key consumed, mapped or named in a problem."""
    out: dict[str, Any] = {}
    sec = dict(sec)
    for key, alias in _NUMBERS[name].items():
        if key in sec:
            number = read_number(problems, f"{name}.{key}", sec.pop(key))
            if number is not None:
                out[alias] = number
    for key, alias in _FLAGS.get(name, {}).items():
        if key in sec:
            value = sec.pop(key)
            if not isinstance(value, bool):
                problems.append(f"{name}.{key}: {value!r} is not true or false")
            else:
                out[alias] = value
    for key in _CHANNEL_KEYS.get(name, ()):
        if key in sec:
            notes.append(CHANNELS_NOTE.format(key=f"{name}.{key}", value=sec.pop(key)))
    if name == "DistillPPYOLOELoss":
        _read_ppyoloe(sec, out, problems)
    known = [*_NUMBERS[name], *_FLAGS.get(name, {}), *_CHANNEL_KEYS.get(name, ())]
    if name == "DistillPPYOLOELoss":
        known += [*_PPYOLOE_NESTED, *_PPYOLOE_CHOICES]
    for key in sec:
        problems.append(
            f"{name}.{key}: not a setting of PaddleDetection's {name} that kslim knows "
            f"(known: {', '.join(known)})"
        )
    return out


def _read_ppyoloe(sec: dict[str, Any], out: dict[str, Any], problems: list[str]) -> None:
    for key, fields in _PPYOLOE_NESTED.items():
        if key not in sec:
            continue
        value = sec.pop(key)
        if not isinstance(value, dict):
            problems.append(f"DistillPPYOLOELoss.{key}: must be a mapping with {', '.join(fields)}")
            continue
        for inner, v in value.items():
            if inner not in fields:
                problems.append(f"DistillPPYOLOELoss.{key}.{inner}: unknown (known: {', '.join(fields)})")
                continue
            number = read_number(problems, f"DistillPPYOLOELoss.{key}.{inner}", v)
            if number is not None:
                out[fields[inner]] = number
    for key, (alias, choices) in _PPYOLOE_CHOICES.items():
        if key in sec:
            value = sec.pop(key)
            if value not in choices:
                problems.append(f"DistillPPYOLOELoss.{key}: {value!r} is not one of {', '.join(choices)}")
            else:
                out[alias] = value


def _levels(doc: dict[str, Any], problems: list[str]) -> int | None:
    """distill_loss_name: one loss per neck level, finest first; kslim keeps only how many."""
    names = doc.pop("distill_loss_name", None)
    if names is None:
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append("distill_loss_name: must be a non-empty list of names, one per neck level")
        return None
    if len(set(names)) != len(names):
        problems.append("distill_loss_name: lists a name twice (PaddleDetection keeps one loss per name)")
        return None
    return len(names)


def distill_loss_fields(
    doc: dict[str, Any], slim: str, problems: list[str], notes: list[str]
) -> dict[str, Any]:
    """Pop the distillation keys (DISTILL_KEYS) of a Distill/DistillPrune config from doc and return
    the distill step's loss fields (loss, weight, ppyoloe/cwd/fgd)."""
    method = doc.pop("slim_method", None)
    if method not in METHODS:
        known = ", ".join(str(m) for m in METHODS if m is not None)
        problems.append(f"slim_method: {method!r} is not a PaddleDetection 2.6 distillation ({known})")
        return {}
    if method is not None and slim != "Distill":
        problems.append(
            f"slim_method: {method} is read with slim: Distill only (PaddleDetection's {slim} distills "
            "with DistillYOLOv3Loss)"
        )
        return {}
    kind, loss_class = METHODS[method]
    out: dict[str, Any] = {"loss": kind}
    loss = doc.pop("distill_loss", None)
    if loss_class is None and loss is not None:
        problems.append(
            f"distill_loss: {loss!r} is not read with slim_method: LD (LD's terms are the losses of the "
            "student's LDGFLHead): remove it"
        )
    elif loss_class is not None and loss != loss_class:
        problems.append(
            f"distill_loss: {loss!r} does not go with slim_method: {method or '(none)'}; "
            f"it takes {loss_class}"
        )
        return out
    levels = _levels(doc, problems)
    if levels is not None:
        if kind in ("cwd", "fgd"):
            out.setdefault(kind, {})["levels"] = levels
        else:
            problems.append(f"distill_loss_name: read with slim_method CWD or FGD, not {method or '(none)'}")
    for name in LOSS_SECTIONS:
        if name not in doc:
            continue
        sec = doc.pop(name)
        sec = {} if sec is None else sec
        if name != loss_class:
            problems.append(f"{name}: not read with distill_loss {loss_class}; remove it")
        elif not isinstance(sec, dict):
            problems.append(f"{name}: must be a mapping, not {type(sec).__name__}")
        else:
            fields = _read_section(name, sec, problems, notes)
            if kind == "yolov3":
                out.update(fields)
            elif fields:
                out[kind] = {**out.get(kind, {}), **fields}
    return out
