"""What the compression methods share: the key and folder of the row a step produces, its
fine-tuning settings, loading the previous row's model, saving weights, exporting, and the
cheap look-ups their up-front checks need (model config, train-split size, parameter patterns)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import paddle
from kslim_api.contract import Reason

from kslim_runner.atomic import write_with
from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import ModelConfig, export_model, job_model_config, load_row_model
from kslim_runner.pipeline.state import Row
from kslim_runner.train.config import TrainConfig, step_train_config
from kslim_runner.train.detector import train_detector
from kslim_runner.train.distributed import WorkerTask
from kslim_runner.train.loop import LossFn, TrainResult, default_loss


def step_key(ctx: RunContext, method: str) -> str:
    """The name StepStage gives the row this step is producing: rows are the baseline, then one per
    finished step, so the running step is number len(rows)."""
    return f"step{len(ctx.rows)}-{method}"


def model_config(ctx: RunContext) -> ModelConfig:
    """The job's model: a PaddleDetection config or a built-in detector (classes, input size, ...)."""
    return job_model_config(ctx.spec, ctx.resolve)


def source_detector(ctx: RunContext, source: Row, method: str) -> Detector:
    """The previous row's model in Python (a built-in detector, possibly pruned or distilled)."""
    if source.model.get("kind") == "inference":
        raise UserError(
            f"{method} needs a built-in detector, but the model before it is an exported inference "
            "model; only ptq can compress model.inferenceModel",
            reason=Reason.INVALID_SPEC,
        )
    return load_row_model(source.model, ctx.path)


def train_images(ctx: RunContext) -> int | None:
    """Images in the train split: from the prepare stage when it ran, else from the spec (synthetic)
    or the annotation file, so checks can run before anything long. None when unknown."""
    if ctx.has_split("train"):
        return int(ctx.state.done["prepare"]["result"]["data"]["train"]["count"])
    ds = ctx.spec.dataset
    if ds.format == "synthetic":
        from kslim_api.v1alpha1 import SyntheticDataSpec

        return (ds.synthetic or SyntheticDataSpec()).train_images
    if ds.train is None:
        return None
    try:
        path = ctx.resolve(ds.train.annotations, "dataset.train.annotations")
        doc = json.loads(Path(path).read_text())
        return len(doc["images"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None  # the prepare stage reports a broken annotation file with a better message


def fine_tune_config(ctx: RunContext, fine_tune: Any) -> TrainConfig:
    """spec.train, overridden by the step's fineTune (every field it sets)."""
    return step_train_config(ctx.spec.train, fine_tune, len(ctx.index("train")))


def fine_tune(
    ctx: RunContext,
    det: Detector,
    cfg: TrainConfig,
    work: Path,
    stage: str,
    loss_fn: LossFn = default_loss,
    task: WorkerTask | None = None,
    in_process: str | None = None,
) -> TrainResult:
    """The runner's training loop (resumable from work/checkpoint, which is removed once done);
    `task` tells data-parallel workers how to rebuild a model they cannot derive themselves;
    `in_process` why this training cannot run data-parallel at all."""
    result = train_detector(
        det, ctx.index("train"), cfg, work, stage=stage, loss_fn=loss_fn, task=task, in_process=in_process
    )
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    return result


def save_weights(det: paddle.nn.Layer, path: Path) -> None:
    write_with(path, lambda tmp: paddle.save(det.state_dict(), str(tmp)))


def export_row_model(ctx: RunContext, det: Detector, key: str) -> str:
    """Export like the export stage does (models/<row>), returning the path the row records."""
    return ctx.rel(export_model(det, ctx.out / "models" / key, ctx.labels))


def ensure_exported(ctx: RunContext, row: Row) -> Path:
    """The row's inference model folder, exporting it first (as the export stage would) if needed."""
    if row.export_dir is None:
        row.export_dir = export_row_model(ctx, load_row_model(row.model, ctx.path), row.name)
        ctx.put_row(row)
    return ctx.path(row.export_dir)


def match_names(pattern: str, names: Iterable[tuple[str, str]]) -> list[str]:
    """Paddle names (conv2d_27.w_0) whose Paddle name or structured name (neck.blocks.0.conv0.conv.weight)
    matches the glob pattern. names: (paddle name, structured name) pairs."""
    return [p for p, s in names if fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(s, pattern)]


@contextlib.contextmanager
def quiet_paddleslim(level: int = logging.ERROR) -> Iterator[None]:
    """PaddleSlim's loggers (one per module, each at INFO) print its graph analysis and every pruned
    variable to stderr, and paddle.static's (quantization, io: which PaddleSlim's PTQ drives) its
    stages and a deprecation per model load; inside this block only errors get through."""
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(("paddleslim", "paddle.static"))
    ]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, before, strict=True):
            lg.setLevel(lv)
