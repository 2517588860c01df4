"""Which PaddleDetection student/teacher pairs each of PaddleDetection's distillations takes
(ppyoloe, cwd, fgd, ld; methods/distill_ppdet.py runs them), checked up front on the two built
models: the architectures PaddleDetection 2.6's DistillModel subclasses accept, and maps that line
up (levels, strides, classes), so a pair that cannot work ends in one line before anything trains.
"""

from __future__ import annotations

from typing import Any

import paddle
from kslim_api.contract import Reason

from kslim_runner.errors import UserError
from kslim_runner.zoo.build import refusing_unfit_size
from kslim_runner.zoo.config import fit_config

#: What each kind distils, in the words of the refusal.
FAMILIES = {
    "ppyoloe": "PP-YOLOE / PP-YOLOE+ (a PPYOLOEHead)",
    "cwd": "RetinaNet or GFL",
    "fgd": "RetinaNet",
    "ld": "GFL",
}


def _arch(model: Any) -> str:
    return type(model).__name__


def _head(model: Any) -> str:
    head = getattr(model, "yolo_head", None) or getattr(model, "head", None)
    return type(head).__name__


def family_problem(kind: str, model: Any) -> str | None:
    """Why this model cannot take part in `kind` (None when it can)."""
    arch = _arch(model)
    fits = {
        "ppyoloe": _head(model) == "PPYOLOEHead",
        "cwd": arch in ("RetinaNet", "GFL"),
        "fgd": arch == "RetinaNet",
        "ld": arch == "GFL",
    }[kind]
    if fits:
        return None
    return f"it is a {arch} with a {_head(model)}; distill.loss {kind} runs on {FAMILIES[kind]}"


def _ld_student_problem(student: Any) -> str | None:
    """LD's terms live in the student's head (LDGFLHead) and weigh regions its reader marks."""
    if _head(student) != "LDGFLHead":
        return (
            f"its head is a {_head(student)}; distill.loss ld needs an LDGFLHead, whose loss takes the "
            "teacher's soft targets (PaddleDetection's configs/gfl/gfl_slim_ld_r18vd_1x_coco.yml)"
        )
    cfg, _ = fit_config(student.config)
    ops = (cfg.get("TrainReader") or {}).get("batch_transforms") or []
    target = next((op["Gt2GFLTarget"] for op in ops if isinstance(op, dict) and "Gt2GFLTarget" in op), None)
    if not isinstance(target, dict) or not target.get("compute_vlr_region"):
        return (
            "its TrainReader's Gt2GFLTarget does not set compute_vlr_region: true, which LDGFLHead's loss "
            "reads (as configs/slim/distill/gfl_ld_distill.yml sets it)"
        )
    return None


@paddle.no_grad()
def _maps(model: Any, place: str = "neck_feats") -> list[paddle.Tensor]:
    size = model.config.input_size
    model.eval()
    body = model.backbone({"image": paddle.zeros([1, 3, size, size])})
    return list(body) if place == "backbone_feats" else list(model.neck(body))


def feature_maps(student: Any, teacher: Any, place: str = "neck_feats") -> tuple[list[int], list[int]]:
    """Channels of the student's and the teacher's maps, level by level."""
    return (
        [int(m.shape[1]) for m in _maps(student, place)],
        [int(m.shape[1]) for m in _maps(teacher, place)],
    )


def ppyoloe_channels(student: Any, teacher: Any, place: str) -> tuple[list[int], list[int]]:
    """The maps' channels; DistillPPYOLOELoss derives the student's from the teacher's by one width
    ratio, so every level must keep that ratio (a neck pruned unevenly would not)."""
    s_ch, t_ch = feature_maps(student, teacher, place)
    ratio = s_ch[0] / t_ch[0]
    if [int(t * ratio) for t in t_ch] != s_ch:
        raise UserError(
            f"the student's {place} have {s_ch} channels and the teacher's {t_ch}: DistillPPYOLOELoss "
            "takes one width ratio for every level; set distill.ppyoloe.featDistill: false, or use models "
            "whose widths differ by one width_mult",
            reason=Reason.TEACHER_MISMATCH,
        )
    return s_ch, t_ch


def _shapes(maps: list[paddle.Tensor]) -> list[list[int]]:
    return [list(m.shape[2:]) for m in maps]


def check_kind_pair(kind: str, settings: Any, student: Any, teacher: Any, s_name: str, t_name: str) -> None:
    """A UserError (one line) unless `kind` can distil `teacher` into `student`."""
    for model, role, name in ((student, "student", s_name), (teacher, "teacher", t_name)):
        problem = family_problem(kind, model)
        if problem is None and kind == "ld" and role == "student":
            problem = _ld_student_problem(model)
        if problem is not None:
            raise UserError(
                f"distill cannot use the {role} {name}: {problem}", reason=Reason.TEACHER_MISMATCH
            )
    if kind == "cwd" and _arch(student) != _arch(teacher):
        raise UserError(
            f"distill.loss cwd pairs models of one architecture; the student {s_name} is a {_arch(student)}, "
            f"the teacher {t_name} a {_arch(teacher)}",
            reason=Reason.TEACHER_MISMATCH,
        )
    if kind == "cwd" and _head(student) == "LDGFLHead":
        raise UserError(
            f"distill cannot use the student {s_name}: its LDGFLHead's loss needs a teacher's soft targets; "
            "use distill.loss ld, or a student with a GFLHead for cwd",
            reason=Reason.TEACHER_MISMATCH,
        )
    place = getattr(settings, "feat_distill_place", "neck_feats")
    size = student.config.input_size
    with refusing_unfit_size(f"the pair does not run at input size {size}"):
        s_maps, t_maps = _maps(student, place), _maps(teacher, place)
    if _shapes(s_maps) != _shapes(t_maps):
        raise UserError(
            f"the teacher {t_name}'s {place} are {_shapes(t_maps)} at input {size}, the student "
            f"{s_name}'s {_shapes(s_maps)}; distill.loss {kind} compares them level by level",
            reason=Reason.TEACHER_MISMATCH,
        )
    levels = getattr(settings, "levels", None)
    if levels is not None and levels > len(s_maps):
        raise UserError(
            f"distill.{kind}.levels is {levels} but the student {s_name} has {len(s_maps)} neck levels",
            reason=Reason.INVALID_SPEC,
        )
    if kind in ("ppyoloe", "ld"):
        s_head, t_head = (getattr(m, "yolo_head", None) or m.head for m in (student, teacher))
        for attr in ("reg_max", "fpn_strides", "fpn_stride"):
            if getattr(s_head, attr, None) != getattr(t_head, attr, None):
                raise UserError(
                    f"the teacher {t_name}'s head has {attr} {getattr(t_head, attr, None)}, the student "
                    f"{s_name}'s {getattr(s_head, attr, None)}; distill.loss {kind} compares their "
                    "predictions position by position",
                    reason=Reason.TEACHER_MISMATCH,
                )
    if kind == "ppyoloe" and settings.feat_distill and float(settings.feat_weight) > 0:
        ppyoloe_channels(student, teacher, place)
