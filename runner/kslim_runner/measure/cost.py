"""Cost figures of an exported model: GFLOPs (conv + matmul multiply-adds per image, as
PaddleDetection reports them; a model exported for any image size is measured on a square image at
its input size), parameters (quantization scales apart), the weights' bytes, int8 weight size when
quantized."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kslim_runner.measure.preprocess import load_preprocess
from kslim_runner.measure.program import (
    conv_gmacs,
    int8_weight_bytes,
    is_quantized,
    load_program,
    model_files,
    open_image_size,
    param_count,
    program_bytes,
    quant_param_count,
    size_on_disk,
)


def model_cost(model_dir: Path) -> dict:
    files = model_files(model_dir)
    program = load_program(files)
    quantized = is_quantized(program)
    g = conv_gmacs(program, input_hw(model_dir) if open_image_size(program) else None)
    out: dict = {
        "gflops": None if g is None else round(g, 4),
        "params": param_count(program),
        "sizeBytes": size_on_disk(files),
        "programBytes": program_bytes(files),
        "quantized": quantized,
    }
    if quantized:
        out["int8SizeBytes"] = int8_weight_bytes(program)
        out["quantParams"] = quant_param_count(program)
    return out


def input_hw(model_dir: Path) -> tuple[int, int] | None:
    """The network input's [h, w] for a square image at the model's input size (its infer_cfg.yml
    Resize, short side for keep_ratio, then any PadStride); None without an infer_cfg.yml."""
    if not (Path(model_dir) / "infer_cfg.yml").is_file():
        return None
    pre = load_preprocess(model_dir)
    side = min(pre.target_size)
    image, _, _ = pre(np.zeros((side, side, 3), np.uint8))
    return int(image.shape[1]), int(image.shape[2])
