"""The distillation teacher, with the student's classes and input size: a built-in detector for a
built-in student, a PaddleDetection config for a PaddleDetection student (the YOLOv3 family, or the
architectures a PaddleDetection distillation kind takes: methods/distill_kinds.py). From given
weights (checked up front: readable, same classes, matching the architecture or config) or trained
first in the same job on the train split with spec.train's budget (resumable; kept once trained)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paddle
from kslim_api.contract import Reason
from kslim_api.v1alpha1 import PPDET_DISTILL_LOSSES

from kslim_runner.errors import UserError
from kslim_runner.measure.dygraph_eval import evaluate_dygraph
from kslim_runner.methods.common import model_config, save_weights
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.yolov3 import ANCHOR_MASKS
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import ModelConfig, build_model, is_zoo, load_weights, teacher_overrides
from kslim_runner.train.config import train_config_from_spec
from kslim_runner.train.detector import train_detector
from kslim_runner.zoo.config import ZooSource, download_fields, refuse_downloads

HEAD_KEY = "heads.0.weight"


def teacher_config(ctx: RunContext, teacher: Any) -> ModelConfig:
    m = ctx.spec.model
    if teacher.config is not None:
        path = Path(ctx.resolve(teacher.config.uri, "distill.teacher.config")).resolve()
        overrides = teacher_overrides(ctx.spec)
        return ZooSource(str(path), path.stem, m.num_classes, m.input_size, overrides=overrides)
    return DetectorConfig(teacher.architecture.value, m.num_classes, m.input_size, float(teacher.width))


def check_pairing(ctx: RunContext, teacher: Any) -> None:
    """A PaddleDetection student learns from a PaddleDetection teacher, a built-in from a built-in."""
    student_zoo, teacher_zoo = ctx.spec.model.config is not None, teacher.config is not None
    if student_zoo and not teacher_zoo:
        raise UserError(
            f"the student is a PaddleDetection config (model.config) but the teacher is the built-in "
            f"{teacher.label}; give the teacher as a PaddleDetection config too (distill.teacher.config, "
            "e.g. configs/yolov3/yolov3_r34_270e_coco.yml)",
            reason=Reason.TEACHER_MISMATCH,
        )
    if teacher_zoo and not student_zoo:
        raise UserError(
            f"the teacher is a PaddleDetection config ({teacher.config.uri}) but the student is not "
            "(model.architecture); give the teacher as distill.teacher.architecture, or the student as "
            "model.config",
            reason=Reason.TEACHER_MISMATCH,
        )


def check_zoo_teacher(ctx: RunContext, teacher: Any, step: Any = None) -> None:
    """The teacher config builds, pairs with the student (for the step's loss: YOLOv3 heads whose
    outputs line up, or the architectures a PaddleDetection kind takes), and its weights, when
    given, load into it (else the first bad key is named)."""
    from kslim_runner.methods.distill_zoo import check_pair

    pair: Callable[[Any, Any, str, str], None] = check_pair
    if step is not None and step.loss in PPDET_DISTILL_LOSSES:
        from kslim_runner.methods.distill_kinds import check_kind_pair

        pair = functools.partial(check_kind_pair, step.loss, step.loss_settings())

    source = teacher_config(ctx, teacher)
    assert isinstance(source, ZooSource)
    student_source = model_config(ctx)
    student = build_model(student_source)
    paddle.seed(ctx.spec.train.seed)
    model = build_model(source)
    pair(student, model, student_source.architecture, source.architecture)
    urls = download_fields(Path(source.config))
    if teacher.weights is None:
        refuse_downloads(
            urls,
            f"the teacher's PaddleDetection config {source.config}",
            "give distill.teacher.weights (a checkpoint of this config), or remove {key} to train the "
            "teacher from scratch in the job",
        )
    else:
        path = ctx.resolve(teacher.weights.uri, "distill.teacher.weights")
        try:
            load_weights(model, Path(path))
        except UserError as e:
            raise UserError(f"distill.teacher.weights: {e.summary}", reason=e.reason) from e


def weights_classes(state: dict[str, Any]) -> int | None:
    """Classes a YOLOv3 checkpoint predicts, from its first head: anchors x (5 + classes) filters."""
    head = state.get(HEAD_KEY)
    if head is None:
        return None
    return int(head.shape[0]) // len(ANCHOR_MASKS[0]) - 5


def check_teacher(ctx: RunContext, teacher: Any, step: Any = None) -> None:
    """Given teacher weights must exist, predict the student's classes and fit the architecture."""
    check_pairing(ctx, teacher)
    if teacher.config is not None:
        check_zoo_teacher(ctx, teacher, step)
        return
    if teacher.weights is None:
        return
    path = ctx.resolve(teacher.weights.uri, "distill.teacher.weights")
    if not Path(path).is_file():
        raise UserError(
            f"teacher weights {path} not found; check distill.teacher.weights.uri",
            reason=Reason.DATA_NOT_FOUND,
        )
    try:
        state = paddle.load(str(path))
    except Exception as e:
        raise UserError(
            f"teacher weights {path} are not a Paddle .pdparams file ({e})", reason=Reason.BAD_WEIGHTS
        ) from e
    classes = weights_classes(state) if isinstance(state, dict) else None
    student = ctx.spec.model.num_classes
    if classes is not None and classes != student:
        raise UserError(
            f"the teacher ({path}) predicts {classes} classes but the student predicts {student} "
            "(model.numClasses); distillation needs a teacher trained on the same classes",
            reason=Reason.TEACHER_MISMATCH,
        )
    load_weights(build_model(teacher_config(ctx, teacher)), Path(path))


def prepare_teacher(ctx: RunContext, teacher: Any, work: Path) -> tuple[Detector, list[str]]:
    """(teacher in eval mode, notes). Trains it first (in work/teacher) when no weights are given."""
    cfg = teacher_config(ctx, teacher)
    paddle.seed(ctx.spec.train.seed)
    det = build_model(cfg)
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
    ap, measured = _teacher_ap(ctx, det, folder)
    det.eval()
    return det, [
        f"teacher {cfg.architecture} trained in this job for {result.iterations} steps "
        f"({result.seconds:.0f} s), AP {ap * 100:.1f} on val ({measured})"
    ]


def _teacher_ap(ctx: RunContext, det: Detector, folder: Path) -> tuple[float, str]:
    """The trained teacher's AP on val and how it was measured: the Python model for a built-in
    detector; a PaddleDetection model as the pipeline measures it, exported (to folder/export) and
    run by Paddle Inference in fp32."""
    val = ctx.index("val")
    if not is_zoo(det):
        stats = evaluate_dygraph(det, val, batch_size=ctx.spec.evaluation.batch_size)
        return float(stats["ap"]), "in training"
    from kslim_runner.measure.coco_eval import evaluate_model
    from kslim_runner.measure.predictor import PredictorOptions
    from kslim_runner.zoo.export import export_model

    out = export_model(det, folder / "export", ctx.labels)
    opts = PredictorOptions(device=ctx.device.device, threads=ctx.spec.benchmark.threads, precision="fp32")
    result = evaluate_model(out, val, batch_size=ctx.spec.evaluation.batch_size, opts=opts, stage="distill")
    return float(result.ap), "exported, fp32"
