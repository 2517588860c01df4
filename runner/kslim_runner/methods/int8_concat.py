"""Concats that Paddle Inference's oneDNN int8 cannot run, kept fp32 in a quantized export.

On CPU, Paddle Inference 2.6 fuses a ReLU into the conv that feeds it, and that conv then writes
unsigned int8 (u8). When such an output meets a signed input in a concat, its dequantize/quantize
pair is squashed and oneDNN is handed a concat of u8 and s8 sources, which it refuses at the first
run: "could not create a primitive descriptor for a concat primitive". PP-YOLO's CoordConv does
this: it concatenates coordinate channels in [-1, 1] to ResNet's last ReLU output
(examples/ppdet-ppyolo-r50vd-pact.yaml). A concat marked `skip_quant` is left out by
cpu_quantize_placement_pass: it runs fp32 between a dequantize of its inputs and a quantize of its
output, while every conv stays int8. The mark is in the exported program, so the model also runs in
the user's own Paddle Inference.
"""

from __future__ import annotations

import os
from pathlib import Path

from paddle.base import core

from kslim_runner.measure.program import model_files

#: Activations whose fused conv output oneDNN stores unsigned.
UNSIGNED_ACTIVATIONS = frozenset({"relu", "relu6"})
#: Ops that pass their input's int8 data on as it is (sign included), and the input slot they read.
PASS_THROUGH = {
    "pool2d": "X",
    "nearest_interp": "X",
    "nearest_interp_v2": "X",
    "reshape2": "X",
    "transpose2": "X",
    "slice": "Input",
    "quantize_linear": "X",
    "dequantize_linear": "X",
}


def _is_unsigned(name: str, producer: dict[str, core.OpDesc]) -> bool:
    """Does `name` come from a ReLU (through ops that keep int8 data as is)?"""
    op = producer.get(name)
    while op is not None and op.type() in PASS_THROUGH:
        inputs = op.input(PASS_THROUGH[op.type()])
        op = producer.get(inputs[0]) if inputs else None
    return op is not None and op.type() in UNSIGNED_ACTIVATIONS


def mixed_sign_concats(desc: core.ProgramDesc) -> list[core.OpDesc]:
    """Concats (main block) with inputs from a ReLU beside inputs that may be negative."""
    block = desc.block(0)
    ops = [block.op(i) for i in range(block.op_size())]
    producer = {name: op for op in ops for name in op.output_arg_names()}
    found = []
    for op in ops:
        if op.type() != "concat":
            continue
        signs = {_is_unsigned(name, producer) for name in op.input("X")}
        if signs == {True, False}:
            found.append(op)
    return found


def keep_mixed_sign_concats_fp32(model_dir: Path) -> list[str]:
    """Mark each mixed-sign concat of an exported model `skip_quant` (program rewritten in place,
    through a temp file); returns their output names."""
    files = model_files(model_dir)
    desc = core.ProgramDesc(files.model.read_bytes())
    marked = []
    for op in mixed_sign_concats(desc):
        op._set_int32_attr("skip_quant", 1)
        marked.extend(op.output("Out"))
    if marked:
        tmp = files.model.with_name(files.model.name + ".tmp")
        tmp.write_bytes(desc.serialize_to_string())
        os.replace(tmp, files.model)
    return marked


def note(marked: list[str]) -> str | None:
    """The row note for marked concats, or None."""
    if not marked:
        return None
    return (
        f"{len(marked)} concat(s) of ReLU outputs with signed inputs kept fp32 for oneDNN int8 "
        "(it cannot concatenate unsigned and signed int8); every conv stays int8"
    )
