"""Paddle Inference predictors for exported detectors (CPU with oneDNN, fp32 or int8; GPU)."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import paddle
from paddle import inference

from kslim_runner.measure.program import ModelFiles
from kslim_runner.quiet import c_output_filtered


@dataclass(frozen=True)
class PredictorOptions:
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | int8 | fp16
    threads: int = 2
    tensorrt: bool = False
    gpu_id: int = 0


#: How long paddle's OpenMP threads spin after a parallel region while predictors run (Intel
#: OpenMP's own default).
INFERENCE_BLOCKTIME_MS = 200


def _openmp() -> ctypes.CDLL | None:
    """The Intel OpenMP runtime paddle loaded (CPU builds ship it in paddle/libs), if any."""
    path = os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so")
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
    except OSError:
        return None


@contextlib.contextmanager
def spinning_threads(ms: int = INFERENCE_BLOCKTIME_MS) -> Iterator[None]:
    """Let this thread's OpenMP team spin `ms` after each parallel region instead of sleeping at
    once. kslim_runner sets KMP_BLOCKTIME=0 for training on shared cores; but one inference call
    is ~80 short parallel regions, and waking sleeping threads for each made 2 threads 1.2-2.9x
    slower than spinning ones (fp32 14.1 -> 7.6 ms, int8 13.8 -> 4.5 ms at 160 px)."""
    runtime = _openmp()
    if runtime is None:
        yield
        return
    before = runtime.kmp_get_blocktime()
    runtime.kmp_set_blocktime(ms)
    try:
        yield
    finally:
        runtime.kmp_set_blocktime(before)


def create_predictor(files: ModelFiles, opts: PredictorOptions) -> inference.Predictor:
    cfg = inference.Config(str(files.model), str(files.params))
    cfg.disable_glog_info()
    cfg.switch_ir_optim(True)
    cfg.enable_memory_optim()
    if opts.device == "gpu":
        cfg.enable_use_gpu(256, opts.gpu_id)
        if opts.tensorrt:
            prec = {
                "fp32": inference.PrecisionType.Float32,
                "fp16": inference.PrecisionType.Half,
                "int8": inference.PrecisionType.Int8,
            }[opts.precision]
            cfg.enable_tensorrt_engine(
                workspace_size=1 << 30,
                max_batch_size=32,
                min_subgraph_size=3,
                precision_mode=prec,
                use_static=False,
                use_calib_mode=False,
            )
    else:
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(opts.threads)
        cfg.enable_mkldnn()
        cfg.set_mkldnn_cache_capacity(10)
        if opts.precision == "int8":
            cfg.enable_mkldnn_int8()
    with c_output_filtered():  # oneDNN int8 passes print coloured bookkeeping from C++
        return inference.create_predictor(cfg)


def run_detector(
    predictor: inference.Predictor, image: np.ndarray, im_shape: np.ndarray, scale_factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One call: inputs by name (image, im_shape, scale_factor); returns (boxes [K, 6], bbox_num [N])."""
    feeds = {"image": image, "im_shape": im_shape, "scale_factor": scale_factor}
    for name in predictor.get_input_names():
        h = predictor.get_input_handle(name)
        v = feeds[name]
        h.reshape(list(v.shape))
        h.copy_from_cpu(v)
    predictor.run()
    outs = predictor.get_output_names()
    boxes = predictor.get_output_handle(outs[0]).copy_to_cpu()
    num = predictor.get_output_handle(outs[1]).copy_to_cpu()
    return boxes.reshape(-1, 6) if boxes.size else np.zeros((0, 6), np.float32), num.reshape(-1)


def run_detector_masks(
    predictor: inference.Predictor, image: np.ndarray, im_shape: np.ndarray, scale_factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """run_detector plus a mask model's third output: masks [K, H, W] (1 inside, 0 outside, -1
    beyond its image in a batch of several sizes; H x W the batch's largest original image), one
    per box; None when the model has no third output."""
    boxes, num = run_detector(predictor, image, im_shape, scale_factor)
    outs = predictor.get_output_names()
    if len(outs) < 3:
        return boxes, num, None
    masks = predictor.get_output_handle(outs[2]).copy_to_cpu()
    return boxes, num, masks.reshape(-1, *masks.shape[-2:]) if masks.size else None
