"""Read an exported inference model's program without running it: ops, weights, quantization."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle
from kslim_api.contract import Reason

from kslim_runner.errors import UserError

MODEL_FILE = "model.pdmodel"
PARAMS_FILE = "model.pdiparams"
QUANT_OPS = frozenset(
    {
        "quantize_linear",
        "dequantize_linear",
        "fake_quantize_abs_max",
        "fake_quantize_moving_average_abs_max",
        "fake_channel_wise_quantize_abs_max",
        "fake_quantize_dequantize_moving_average_abs_max",
        "fake_channel_wise_quantize_dequantize_abs_max",
        "fake_quantize_dequantize_abs_max",
        "fake_dequantize_max_abs",
        "fake_channel_wise_dequantize_max_abs",
        "quantize",
        "dequantize",
    }
)


@dataclass(frozen=True)
class ModelFiles:
    dir: Path
    model: Path
    params: Path

    @property
    def prefix(self) -> Path:
        return self.model.with_suffix("")


def model_files(model_dir: Path) -> ModelFiles:
    """The .pdmodel/.pdiparams pair of an inference model folder (model.* or PaddleDetection's names)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"inference model folder {model_dir} not found", reason=Reason.DATA_NOT_FOUND)
    model = model_dir / MODEL_FILE
    if not model.is_file():
        found = sorted(model_dir.glob("*.pdmodel"))
        if len(found) != 1:
            raise UserError(
                f"inference model folder {model_dir} has no single .pdmodel file (found {len(found)})"
            )
        model = found[0]
    params = model.with_suffix(".pdiparams")
    if not params.is_file():
        raise UserError(f"inference model {model} has no {params.name} beside it")
    return ModelFiles(model_dir, model, params)


def load_program(files: ModelFiles) -> paddle.static.Program:
    paddle.enable_static()
    try:
        return paddle.static.Program.parse_from_string(files.model.read_bytes())
    except Exception as e:
        raise UserError(f"inference model {files.model} does not parse as a Paddle program ({e})") from e
    finally:
        paddle.disable_static()


def weight_vars(program: paddle.static.Program) -> list:
    return [v for v in program.list_vars() if v.persistable and v.name not in ("feed", "fetch") and v.shape]


#: Ops whose extra persistable inputs/outputs (scales, zero points, moving-average state) are
#: quantization bookkeeping, not model parameters.
SCALE_OPS = QUANT_OPS | {"moving_average_abs_max_scale"}


def quant_param_names(program: paddle.static.Program) -> set[str]:
    """Persistable variables a quantization op reads or writes besides the tensor it quantizes
    (slot X in, Y / Out out): scales, zero points and their moving-average state."""
    names: set[str] = set()
    for op in program.global_block().ops:
        if op.type not in SCALE_OPS:
            continue
        for slot in op.input_names:
            if slot != "X":
                names.update(op.input(slot))
        for slot in op.output_names:
            if slot not in ("Y", "Out"):
                names.update(op.output(slot))
    return names


def _elements(vars_: list) -> int:
    return int(sum(int(np.prod(v.shape)) for v in vars_ if all(d > 0 for d in v.shape)))


def param_count(program: paddle.static.Program) -> int:
    """Model parameters; a quantized model's scales and zero points are not counted (they are
    quant_param_count), so a quantized model has as many parameters as its float source."""
    scales = quant_param_names(program)
    return _elements([v for v in weight_vars(program) if v.name not in scales])


def quant_param_count(program: paddle.static.Program) -> int:
    """Elements of the quantization scales, zero points and state the program stores."""
    scales = quant_param_names(program)
    return _elements([v for v in weight_vars(program) if v.name in scales])


def is_quantized(program: paddle.static.Program) -> bool:
    return any(op.type in QUANT_OPS for op in program.global_block().ops)


def int8_weight_bytes(program: paddle.static.Program) -> int:
    """Size of the weights when the quantized conv/matmul weights are stored as int8 (others fp32)."""
    quantized_inputs: set[str] = set()
    for op in program.global_block().ops:
        if op.type in QUANT_OPS:
            quantized_inputs.update(op.input_arg_names)
    total = 0
    for v in weight_vars(program):
        n = int(np.prod(v.shape))
        total += n if (v.name in quantized_inputs and len(v.shape) >= 2) else 4 * n
    return total


def conv_gmacs(program: paddle.static.Program, image_hw: tuple[int, int] | None = None) -> float | None:
    """Conv + matmul multiply-adds of one image, in billions (PaddleDetection's "GFLOPs"); None when
    the program's spatial shapes are not static. A program exported for any image size (R-CNN's
    `image` is [-1, 3, -1, -1]) is measured at `image_hw`: shapes are inferred again for it."""
    from paddleslim.analysis import flops

    if image_hw is not None:
        program = _with_image_size(program, image_hw)
    value = (
        _macs_with_vector_matmuls(program) if _has_vector_matmul(program) else flops(program, only_conv=True)
    )
    return None if value <= 0 else float(value) / 1e9


MATMUL_OPS = ("mul", "matmul", "matmul_v2")


def _has_vector_matmul(program: paddle.static.Program) -> bool:
    """A matmul by a vector (GFL's edge-distribution integral): PaddleSlim's counter indexes the
    vector's second dimension and fails on it."""
    block = program.global_block()
    return any(
        op.type in MATMUL_OPS and len(block._var_recursive(op.input("Y")[0]).shape) < 2 for op in block.ops
    )


def _macs_with_vector_matmuls(program: paddle.static.Program) -> float:
    """PaddleSlim's count (convs: output positions x filters x kernel inputs, plus the bias; matmuls:
    x[0] x x[1] x y[1]), with a matmul by a vector counted as one multiply-add per element of x."""
    block = program.global_block()

    def shape(name: str) -> list[int]:
        return [max(1, int(d)) for d in block._var_recursive(name).shape]

    total = 0.0
    for op in block.ops:
        if op.type in ("conv2d", "depthwise_conv2d"):
            c_out, c_in, k_h, k_w = shape(op.input("Filter")[0])
            _, _, h_out, w_out = shape(op.output("Output")[0])
            bias = 1 if op.input_names and "Bias" in op.input_names and op.input("Bias") else 0
            total += h_out * w_out * c_out * (k_h * k_w * c_in + bias)
        elif op.type in MATMUL_OPS:
            x, y = shape(op.input("X")[0]), shape(op.input("Y")[0])
            total += float(np.prod(x)) if len(y) < 2 else x[0] * x[1] * y[1]
    return total


def open_image_size(program: paddle.static.Program) -> bool:
    """Whether the program takes images of any size (an `image` input with -1 height or width)."""
    block = program.global_block()
    return block.has_var("image") and not all(d > 0 for d in block.var("image").shape[2:])


def _with_image_size(program: paddle.static.Program, image_hw: tuple[int, int]) -> paddle.static.Program:
    """A copy of the program whose `image` input is [1, 3, h, w] when its size was open, with the
    global block's shapes inferred again (ops whose shapes cannot be inferred alone, loops and
    branches, keep theirs: they hold no backbone or neck convolutions)."""
    if not open_image_size(program):
        return program
    paddle.enable_static()
    try:
        copy = program.clone()
        block = copy.global_block()
        image = block.var("image")
        image.desc.set_shape([1, image.shape[1], *image_hw])
        for op in block.ops:
            try:
                op.desc.infer_shape(block.desc)
            except Exception:  # see the docstring
                continue
        return copy
    finally:
        paddle.disable_static()


def size_on_disk(files: ModelFiles) -> int:
    """The weights file's bytes (the seed's "model volume"). The .pdmodel is left out: it names
    temporaries from a per-process counter (`tmp_12` vs `tmp_1012`), so the same weights exported
    in another process, or after other models were built, differ in it by kilobytes; its size is
    program_bytes."""
    return files.params.stat().st_size


def program_bytes(files: ModelFiles) -> int:
    return files.model.stat().st_size
