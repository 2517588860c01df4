"""ptq: post-training quantization of the previous row's exported inference model with PaddleSlim's
quant_post_static (activation scales calibrated by hist, KL, avg, mse or abs_max on train images;
weights channel-wise abs-max), for built-in detectors and for any PaddleDetection-exported model
(model.inferenceModel). The result is checked to hold int8 weights before it becomes a row."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import paddle
from kslim_api.v1alpha1 import PTQStep
from paddleslim.quant import quant_post_static

from kslim_runner.data.coco import CocoIndex
from kslim_runner.measure.preprocess import load_preprocess
from kslim_runner.measure.program import model_files
from kslim_runner.methods.calibration import calibration_loader, check_calibration_size, feed_vars
from kslim_runner.methods.common import ensure_exported, quiet_paddleslim, step_key, train_images
from kslim_runner.methods.int8_concat import keep_mixed_sign_concats_fp32, note
from kslim_runner.methods.quant_check import require_quantizable, require_quantized
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.state import Row
from kslim_runner.progress import Progress


def ptq_label(cfg: PTQStep) -> str:
    return f"PTQ ({cfg.algo})"


def check_ptq(ctx: RunContext, cfg: PTQStep) -> None:
    """Too little calibration data, and (for a given inference model) a model with nothing to
    quantize, already quantized, or without a readable infer_cfg.yml: user errors up front."""
    check_calibration_size(train_images(ctx), cfg.batch_num, cfg.batch_size)
    inference = ctx.spec.model.inference_model
    if inference is not None:
        folder = ctx.resolve(inference.uri, "model.inferenceModel")
        require_quantizable(model_files(folder).dir)
        load_preprocess(folder)


#: Passes PaddleSlim's quant_post_static makes over the calibration data: KL and hist first
#: collect each activation's range, then sample histograms; the others sample once.
CALIBRATION_PASSES = {"KL": 2, "hist": 2}


def calibration_progress(cfg: PTQStep) -> tuple[Progress, Callable[[], None]]:
    """A progress for the calibration batches (+1 step: writing the model), and the per-image hook
    that advances it once per batch."""
    total = CALIBRATION_PASSES.get(cfg.algo, 1) * cfg.batch_num
    progress = Progress("ptq", total + 1)
    seen = [0]

    def on_item() -> None:
        seen[0] += 1
        if seen[0] % cfg.batch_size == 0:
            progress.update(min(seen[0] // cfg.batch_size, total))

    return progress, on_item


def quantize_post_training(
    src: Path,
    out: Path,
    images: CocoIndex,
    cfg: PTQStep,
    *,
    seed: int = 0,
    gpu: bool = False,
    on_item: Callable[[], None] | None = None,
) -> None:
    """quant_post_static of the inference model in src into out (a fresh folder), calibrated on
    `images` (a seeded sample of cfg.batch_num x cfg.batch_size), in static mode and its own scope."""
    files = model_files(src)
    place = paddle.CUDAPlace(0) if gpu else paddle.CPUPlace()
    feeds, pre = feed_vars(files), load_preprocess(src)
    scope = paddle.static.Scope()
    paddle.enable_static()
    try:
        with paddle.static.scope_guard(scope):
            loader = calibration_loader(feeds, pre, images, cfg.batch_size, cfg.batch_num, seed, on_item)
            with quiet_paddleslim():
                quant_post_static(
                    executor=paddle.static.Executor(place),
                    model_dir=str(files.dir),
                    quantize_model_path=str(out),
                    data_loader=loader,
                    model_filename=files.model.name,
                    params_filename=files.params.name,
                    batch_size=cfg.batch_size,
                    batch_nums=cfg.batch_num,
                    scope=scope,
                    algo=cfg.algo,
                    hist_percent=float(cfg.hist_percent),
                    weight_quantize_type=cfg.weight_quantize_type,
                    onnx_format=True,
                )
    finally:
        paddle.disable_static()
    for cfg_file in files.dir.glob("*.yml"):  # infer_cfg.yml: how to preprocess, the labels
        shutil.copy(cfg_file, out / cfg_file.name)


def run_ptq(ctx: RunContext, cfg: PTQStep, source: Row) -> Row:
    key = step_key(ctx, "ptq")
    src = ensure_exported(ctx, source)
    require_quantizable(src)
    out = ctx.out / "models" / key
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"kslim: ptq: calibrating on {cfg.batch_num * cfg.batch_size} train images ({cfg.algo}, "
        f"{CALIBRATION_PASSES.get(cfg.algo, 1)} pass(es) of {cfg.batch_num} batches)",
        flush=True,
    )
    progress, on_item = calibration_progress(cfg)
    gpu = ctx.device.device == "gpu"
    quantize_post_training(
        src, tmp, ctx.index("train"), cfg, seed=ctx.spec.train.seed, gpu=gpu, on_item=on_item
    )
    concats = note(keep_mixed_sign_concats_fp32(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    progress.update(progress.total)
    progress.close()
    summary = require_quantized(out, "ptq")
    images = cfg.batch_num * cfg.batch_size
    return Row(
        key,
        "ptq",
        ptq_label(cfg),
        model={"kind": "inference", "dir": ctx.rel(out)},
        export_dir=ctx.rel(out),
        notes=[
            f"calibrated on {images} train images ({cfg.algo}); exported int8: {summary.text}",
            *([concats] if concats else []),
        ],
    )


# PTQ rows hold an inference model (kind "inference"): nothing to restore in Python.
register_method(MethodDescriptor("ptq", PTQStep, run_ptq, check=check_ptq))
