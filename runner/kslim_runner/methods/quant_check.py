"""Did quantization take effect? Reads an exported program: which convs / matmuls take their
weights through a dequantize op (int8 weights), and which ops could be quantized at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kslim_api.contract import Reason

from kslim_runner.errors import UserError
from kslim_runner.measure.program import QUANT_OPS, load_program, model_files

#: Ops whose weights quant_post_static / QAT quantize (PaddleSlim's default quantizable_op_type).
QUANTIZABLE_OPS = frozenset({"conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2"})
DEQUANT_OPS = frozenset(op for op in QUANT_OPS if "dequantize" in op)


@dataclass(frozen=True)
class QuantSummary:
    weighted_ops: int  # quantizable ops whose weight is a persistable parameter
    quantized_ops: int  # of those, fed through a dequantize op (stored as int8)
    quant_ops: int  # quantize/dequantize ops in the program

    @property
    def text(self) -> str:
        return (
            f"{self.quantized_ops} of {self.weighted_ops} conv/matmul weights int8, "
            f"{self.quant_ops} quant ops"
        )


def quant_summary(model_dir: Path) -> QuantSummary:
    program = load_program(model_files(model_dir))
    block = program.global_block()
    persistable = {v.name for v in program.list_vars() if v.persistable}
    producer = {name: op for op in block.ops for name in op.output_arg_names}
    weighted = quantized = quant_ops = 0
    for op in block.ops:
        if op.type in QUANT_OPS:
            quant_ops += 1
        if op.type not in QUANTIZABLE_OPS:
            continue
        slot = "Filter" if "conv" in op.type else "Y"
        for name in op.input(slot):
            src = producer.get(name)
            if name in persistable:
                weighted += 1
            elif src is not None and src.type in DEQUANT_OPS and src.input("X")[0] in persistable:
                weighted += 1
                quantized += 1
    return QuantSummary(weighted, quantized, quant_ops)


def require_quantized(model_dir: Path, method: str) -> QuantSummary:
    """Fail fast instead of shipping a float model as 'quantized'."""
    s = quant_summary(model_dir)
    if s.quant_ops == 0 or s.quantized_ops == 0:
        raise UserError(
            f"{method}: the exported model {model_dir} is not quantized ({s.text}); quantization did "
            "not take effect, so nothing would run in int8. Check the quantizable layer types",
            reason=Reason.QUANTIZATION_NOT_APPLIED,
        )
    return s


def require_quantizable(model_dir: Path) -> QuantSummary:
    """PTQ's input must have float conv/matmul weights and no quantization yet."""
    s = quant_summary(model_dir)
    if s.quant_ops:
        raise UserError(
            f"ptq: the model {model_dir} is already quantized ({s.text}); give the float model",
            reason=Reason.INVALID_MODEL,
        )
    if s.weighted_ops == 0:
        raise UserError(
            f"ptq: the model {model_dir} has no quantizable ops (no conv2d, depthwise_conv2d, "
            "conv2d_transpose, mul or matmul with weights); quantization would change nothing",
            reason=Reason.INVALID_MODEL,
        )
    return s
