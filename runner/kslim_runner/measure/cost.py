"""Cost figures of an exported model: GFLOPs (conv + matmul multiply-adds per image, as
PaddleDetection reports them), parameters, size on disk, int8 weight size when quantized."""

from __future__ import annotations

from pathlib import Path

from kslim_runner.measure.program import (
    conv_gmacs,
    int8_weight_bytes,
    is_quantized,
    load_program,
    model_files,
    param_count,
    size_on_disk,
)


def model_cost(model_dir: Path) -> dict:
    files = model_files(model_dir)
    program = load_program(files)
    quantized = is_quantized(program)
    g = conv_gmacs(program)
    out: dict = {
        "gflops": None if g is None else round(g, 4),
        "params": param_count(program),
        "sizeBytes": size_on_disk(files),
        "quantized": quantized,
    }
    if quantized:
        out["int8SizeBytes"] = int8_weight_bytes(program)
    return out
