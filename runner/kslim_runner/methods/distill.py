"""distill: the previous row's model (the student, possibly pruned) trained with the runner's loop
on its detection loss plus a teacher term (DistillYOLOv3Loss on head outputs, a feature-map loss on
the neck, or both). The student keeps its structure; only its weights change. A built-in student
learns from a built-in teacher; a PaddleDetection student (model.config, YOLOv3 family) from a
PaddleDetection teacher config (methods/distill_zoo.py); and with loss ppyoloe, cwd, fgd or ld a
PaddleDetection pair through PaddleDetection's own distillation classes (methods/distill_ppdet.py)."""

from __future__ import annotations

from typing import Any

from kslim_api.v1alpha1 import PPDET_DISTILL_LOSSES, DistillStep

from kslim_runner.methods.common import fine_tune, fine_tune_config, save_weights, source_detector, step_key
from kslim_runner.methods.distill_loss import DistillLoss, DistillStudent
from kslim_runner.methods.distill_ppdet import KindLoss, PairedStudent
from kslim_runner.methods.distill_zoo import ZooDistillStudent, neck_channels
from kslim_runner.methods.teacher import check_teacher, prepare_teacher
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.models import is_zoo
from kslim_runner.pipeline.state import Row


def distill_label(cfg: DistillStep) -> str:
    return f"Distillation ({cfg.teacher.label}, {cfg.loss})"


def check_distill(ctx: RunContext, cfg: DistillStep) -> None:
    check_teacher(ctx, cfg.teacher, cfg)


def loss_note(cfg: DistillStep) -> str:
    """The loss and its settings as the report lists them."""
    settings = cfg.loss_settings()
    if settings is not None:
        fields = ", ".join(f"{k} {v}" for k, v in settings.model_dump(by_alias=True).items() if v is not None)
        return f"distillation loss {cfg.loss} (PaddleDetection's implementation): {fields}"
    if cfg.loss == "ld":
        return "distillation loss ld (PaddleDetection's LDGFLHead terms, weighted in the student's config)"
    return f"distillation loss {cfg.loss}, weight {cfg.yolov3_weight}"


def _wrap(cfg: DistillStep, student: Any, teacher: Any) -> tuple[Any, Any]:
    """(the layer the loop trains, its loss) for the step's loss."""
    if cfg.loss in PPDET_DISTILL_LOSSES:
        return PairedStudent(student, teacher, cfg.loss, cfg.loss_settings()), KindLoss()
    feature = "feature" in cfg.loss
    wrapper: DistillStudent | ZooDistillStudent
    if is_zoo(student):
        wrapper = ZooDistillStudent(student, neck_channels(teacher) if feature else None)
    else:
        wrapper = DistillStudent(student, teacher.neck.out_channels if feature else None)
    return wrapper, DistillLoss(teacher, cfg.loss, float(cfg.yolov3_weight))


def run_distill(ctx: RunContext, cfg: DistillStep, source: Row) -> Row:
    key = step_key(ctx, "distill")
    work = ctx.stage_dir(key)
    teacher, notes = prepare_teacher(ctx, cfg.teacher, work)
    student = source_detector(ctx, source, "distill")
    wrapper, loss_fn = _wrap(cfg, student, teacher)
    result = fine_tune(ctx, wrapper, fine_tune_config(ctx, cfg.fine_tune), work, "distill", loss_fn)
    weights = work / "model.pdparams"
    save_weights(student, weights)
    notes.append(loss_note(cfg))
    return Row(
        key,
        "distill",
        distill_label(cfg),
        model={**source.model, "weights": ctx.rel(weights)},
        train=result.to_dict(),
        notes=notes,
    )


# A distilled row keeps its source's model kind (only the weights change): nothing of its own to restore.
register_method(MethodDescriptor("distill", DistillStep, run_distill, check=check_distill))
