"""distill: the previous row's model (the student, possibly pruned) trained with the runner's loop
on its detection loss plus a teacher term (DistillYOLOv3Loss on head outputs, a feature-map loss on
the neck, or both). The student keeps its structure; only its weights change. A built-in student
learns from a built-in teacher; a PaddleDetection student (model.config, YOLOv3 family) from a
PaddleDetection teacher config (methods/distill_zoo.py)."""

from __future__ import annotations

from kslim_api.v1alpha1 import DistillStep

from kslim_runner.methods.common import fine_tune, fine_tune_config, save_weights, source_detector, step_key
from kslim_runner.methods.distill_loss import DistillLoss, DistillStudent
from kslim_runner.methods.distill_zoo import ZooDistillStudent, neck_channels
from kslim_runner.methods.teacher import check_teacher, prepare_teacher
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.models import is_zoo
from kslim_runner.pipeline.state import Row


def distill_label(cfg: DistillStep) -> str:
    return f"Distillation ({cfg.teacher.label}, {cfg.loss})"


def check_distill(ctx: RunContext, cfg: DistillStep) -> None:
    check_teacher(ctx, cfg.teacher)


def run_distill(ctx: RunContext, cfg: DistillStep, source: Row) -> Row:
    key = step_key(ctx, "distill")
    work = ctx.stage_dir(key)
    teacher, notes = prepare_teacher(ctx, cfg.teacher, work)
    student = source_detector(ctx, source, "distill")
    feature = "feature" in cfg.loss
    wrapper: DistillStudent | ZooDistillStudent
    if is_zoo(student):
        wrapper = ZooDistillStudent(student, neck_channels(teacher) if feature else None)
    else:
        wrapper = DistillStudent(student, teacher.neck.out_channels if feature else None)
    loss_fn = DistillLoss(teacher, cfg.loss, float(cfg.weight))
    result = fine_tune(ctx, wrapper, fine_tune_config(ctx, cfg.fine_tune), work, "distill", loss_fn)
    weights = work / "model.pdparams"
    save_weights(student, weights)
    notes.append(f"distillation loss {cfg.loss}, weight {cfg.weight}")
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
