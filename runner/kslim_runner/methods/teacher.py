"""The distillation teacher: a built-in detector with the student's classes and input size, from
given weights (checked up front: readable, same classes, matching the architecture) or trained
first in the same job on the train split with spec.train's budget (resumable; kept once trained)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import paddle

from kslim_runner.errors import UserError
from kslim_runner.measure.dygraph_eval import evaluate_dygraph
from kslim_runner.methods.common import save_weights
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.registry import build_detector
from kslim_runner.models.yolov3 import ANCHOR_MASKS
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import load_weights
from kslim_runner.train.config import train_config_from_spec
from kslim_runner.train.loop import train_detector

HEAD_KEY = "heads.0.weight"


def teacher_config(ctx: RunContext, teacher: Any) -> DetectorConfig:
    m = ctx.spec.model
    return DetectorConfig(teacher.architecture.value, m.num_classes, m.input_size, float(teacher.width))


def weights_classes(state: dict[str, Any]) -> int | None:
    """Classes a YOLOv3 checkpoint predicts, from its first head: anchors x (5 + classes) filters."""
    head = state.get(HEAD_KEY)
    if head is None:
        return None
    return int(head.shape[0]) // len(ANCHOR_MASKS[0]) - 5


def check_teacher(ctx: RunContext, teacher: Any) -> None:
    """Given teacher weights must exist, predict the student's classes and fit the architecture."""
    if teacher.weights is None:
        return
    path = ctx.resolve(teacher.weights.uri, "distill.teacher.weights")
    if not Path(path).is_file():
        raise UserError(
            f"teacher weights {path} not found; check distill.teacher.weights.uri", reason="DataNotFound"
        )
    try:
        state = paddle.load(str(path))
    except Exception as e:
        raise UserError(
            f"teacher weights {path} are not a Paddle .pdparams file ({e})", reason="BadWeights"
        ) from e
    classes = weights_classes(state) if isinstance(state, dict) else None
    student = ctx.spec.model.num_classes
    if classes is not None and classes != student:
        raise UserError(
            f"the teacher ({path}) predicts {classes} classes but the student predicts {student} "
            "(model.numClasses); distillation needs a teacher trained on the same classes",
            reason="TeacherMismatch",
        )
    load_weights(build_detector(teacher_config(ctx, teacher)), Path(path))


def prepare_teacher(ctx: RunContext, teacher: Any, work: Path) -> tuple[Detector, list[str]]:
    """(teacher in eval mode, notes). Trains it first (in work/teacher) when no weights are given."""
    cfg = teacher_config(ctx, teacher)
    paddle.seed(ctx.spec.train.seed)
    det = build_detector(cfg)
    if teacher.weights is not None:
        load_weights(det, ctx.resolve(teacher.weights.uri, "distill.teacher.weights"))
        det.eval()
        return det, [f"teacher {cfg.architecture} from {teacher.weights.uri}"]
    folder = work / "teacher"
    weights = folder / "model.pdparams"
    if weights.is_file():
        load_weights(det, weights)
        det.eval()
        return det, [f"teacher {cfg.architecture} trained earlier in this job"]
    tcfg = train_config_from_spec(ctx.spec.train, len(ctx.index("train")))
    print(f"kslim: distill: training the teacher {cfg.architecture} for {tcfg.iterations} steps", flush=True)
    result = train_detector(det, ctx.index("train"), tcfg, folder, stage="distill")
    save_weights(det, weights)
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    val = ctx.index("val")
    ap = evaluate_dygraph(det, val, batch_size=ctx.spec.evaluation.batch_size)["ap"]
    det.eval()
    return det, [
        f"teacher {cfg.architecture} trained in this job for {result.iterations} steps "
        f"({result.seconds:.0f} s), AP {ap * 100:.1f} on val (in training)"
    ]
