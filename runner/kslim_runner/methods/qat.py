"""qat: quantization-aware training with PaddleSlim's dygraph QAT (fake-quant layers: channel-wise
abs-max weights, moving-average abs-max activations, optional PACT clipping), fine-tuned with the
runner's training loop and exported as an int8 inference model (quantize/dequantize_linear ops,
int8 weights) that Paddle Inference runs in int8 (oneDNN on CPU, TensorRT on GPU). The export
is checked: no quantized weights means a failed step, never a float model labelled int8.
Fine-tuning runs data-parallel like any other training: each worker rebuilds the source detector and
quantizes it alike (QATTask)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle
import yaml
from kslim_api.contract import Reason
from kslim_api.v1alpha1 import QATStep
from paddle import nn
from paddleslim import QAT

from kslim_runner.errors import UserError
from kslim_runner.methods.common import (
    fine_tune,
    fine_tune_config,
    model_config,
    save_weights,
    source_detector,
    step_key,
)
from kslim_runner.methods.int8_concat import keep_mixed_sign_concats_fp32, note
from kslim_runner.methods.quant_check import require_quantized
from kslim_runner.models.base import Detector
from kslim_runner.models.export import INFER_CFG, ExportModel, infer_cfg, input_spec
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.models import build_model, is_zoo, load_row_model, load_weights
from kslim_runner.pipeline.state import Row
from kslim_runner.train.distributed import DetectionTask, detection_task
from kslim_runner.train.loop import LossFn, default_loss
from kslim_runner.zoo.export import convert_to_deploy
from kslim_runner.zoo.export import export_model as export_zoo

LAYER_TYPES: dict[str, type[nn.Layer]] = {"Conv2D": nn.Conv2D, "Linear": nn.Linear}


def qat_label(cfg: QATStep) -> str:
    return "PACT QAT" if cfg.pact or cfg.weight_pact else "QAT"


def quant_config(cfg: QATStep) -> dict[str, Any]:
    """The step as PaddleSlim's QAT config (onnx_format: quantize/dequantize_linear ops, int8 weights)."""
    return {
        "weight_quantize_type": cfg.weight_quantize_type,
        "activation_quantize_type": cfg.activation_quantize_type,
        "weight_bits": cfg.weight_bits,
        "activation_bits": cfg.activation_bits,
        "moving_rate": float(cfg.moving_rate),
        "window_size": cfg.window_size,
        "quantizable_layer_type": list(cfg.quantizable_layer_types),
        "activation_preprocess_type": "PACT" if cfg.pact else None,
        "weight_preprocess_type": "PACT" if cfg.weight_pact else None,
        "onnx_format": True,
    }


def quantize(det: Detector, config: dict[str, Any]) -> tuple[nn.Layer, QAT]:
    """Insert fake-quant layers into det, in place; returns the layer to export. A built-in detector
    is quantized through its export wrapper (PACT's export path rebuilds the model from a copy, so
    the wrapper must be inside it); a PaddleDetection model is its own export layer, as in
    PaddleDetection's QAT, and is put in its deploy form first, as there (RepVGG blocks as one conv:
    the conv that is exported is the one fine-tuned and quantized)."""
    if is_zoo(det):
        convert_to_deploy(det)
    wrapper = det if is_zoo(det) else ExportModel(det)
    quanter = QAT(config=config)
    quanter.quantize(wrapper)
    return wrapper, quanter


@dataclass(frozen=True)
class QATTask:
    """How a data-parallel worker rebuilds the model being fine-tuned: the source detector, quantized
    with the same config (the weights, scales included, come from the parent afterwards)."""

    source: DetectionTask
    config: dict[str, Any]

    def build(self, workdir: Path) -> tuple[Detector, LossFn]:
        det = self.source.build_detector()
        quantize(det, self.config)
        return det, default_loss


def count_layers(det: nn.Layer, types: list[str]) -> int:
    classes = tuple(LAYER_TYPES[t] for t in types)
    return sum(isinstance(layer, classes) for layer in det.sublayers())


def check_qat(ctx: RunContext, cfg: QATStep) -> None:
    """Layer types that select nothing would export a float model: a user error up front."""
    det = build_model(model_config(ctx))
    if count_layers(det, list(cfg.quantizable_layer_types)) == 0:
        raise UserError(
            f"qat.quantizableLayerTypes {list(cfg.quantizable_layer_types)} selects no layer of "
            f"{det.config.architecture}; its layers are Conv2D, so include Conv2D",
            reason=Reason.INVALID_SPEC,
        )


class _Doubled(nn.Layer):
    """layer(x) * 2, for a layer whose weight export_quantized halved."""

    def __init__(self, layer: nn.Layer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.layer(x) * 2.0


@contextlib.contextmanager
def integer_weights_halved(model: nn.Layer) -> Iterator[int]:
    """While exporting: each float conv or linear layer left out of quantization (`skip_quant`, like
    PP-YOLOE's DFL projection `proj_conv`, weights 0, 1, ..., reg_max) whose weights are all whole
    numbers computes with its weights halved and its output doubled, the same result exactly (powers
    of two). Paddle Inference's oneDNN int8 pass takes a whole-number fp32 weight of a quantized
    (quantize/dequantize_linear) model for an int8 one and, finding no scale for it, fails to build
    the predictor ("Could not find threshold information for [conv2d_N.w_0]"). Yields how many were
    changed; the model is restored afterwards."""
    changed: list[tuple[nn.Layer, str, nn.Layer]] = []
    for parent in [model, *model.sublayers()]:
        for name, child in list(parent.named_children()):
            if type(child) not in (nn.Conv2D, nn.Linear):
                continue
            w = child.weight
            if not bool(paddle.all(w == paddle.floor(w))) or not bool(paddle.any(w != 0)):
                continue
            w.set_value(w * 0.5)
            setattr(parent, name, _Doubled(child))
            changed.append((parent, name, child))
    try:
        yield len(changed)
    finally:
        for parent, name, child in changed:
            setattr(parent, name, child)
            child.weight.set_value(child.weight * 2.0)


def export_quantized(wrapper: nn.Layer, quanter: QAT, out_dir: Path, labels: list[str]) -> Path:
    """out_dir/{model.pdmodel, model.pdiparams, infer_cfg.yml}, written to a temp folder then renamed."""
    if is_zoo(wrapper):

        def save(layer: nn.Layer, prefix: str, spec: list[Any]) -> None:
            quanter.save_quantized_model(layer, prefix, input_spec=spec)

        try:
            with integer_weights_halved(wrapper):
                return export_zoo(wrapper, out_dir, labels, save=save)
        finally:
            paddle.disable_static()  # PaddleSlim's PACT export path leaves static mode on
    assert isinstance(wrapper, ExportModel)
    det = wrapper.detector
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    wrapper.eval()
    try:
        quanter.save_quantized_model(
            wrapper, str(tmp / "model"), input_spec=input_spec(det.config.input_size)
        )
    finally:
        paddle.disable_static()  # PaddleSlim's PACT export path leaves static mode on
    (tmp / INFER_CFG).write_text(yaml.safe_dump(infer_cfg(det, labels), sort_keys=False))
    for junk in tmp.glob("*.pdiparams.info"):
        junk.unlink()
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def rebuild_quantized(model: dict[str, Any], path_of: Callable[[str], Path]) -> tuple[nn.Layer, QAT]:
    """A QAT row's model (its export wrapper and quanter, for export_quantized): the source model,
    quantized alike, with the trained weights, in eval mode."""
    det = load_row_model(model["source"], path_of)
    wrapper, quanter = quantize(det, model["quant"])
    load_weights(det, path_of(model["weights"]))
    det.eval()
    return wrapper, quanter


def load_qat(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """The fake-quant model in Python: the source model, quantized alike, with the trained weights."""
    wrapper = rebuild_quantized(model, path_of)[0]
    return wrapper.detector if isinstance(wrapper, ExportModel) else wrapper


def run_qat(ctx: RunContext, cfg: QATStep, source: Row) -> Row:
    key = step_key(ctx, "qat")
    work = ctx.stage_dir(key)
    det = source_detector(ctx, source, "qat")
    config = quant_config(cfg)
    source_task = detection_task(det)  # before quantizing adds the names a rebuild cannot derive
    wrapper, quanter = quantize(det, config)
    task = QATTask(source_task, config) if source_task is not None else None
    result = fine_tune(ctx, det, fine_tune_config(ctx, cfg.fine_tune), work, "qat", task=task)
    weights = work / "model.pdparams"
    save_weights(det, weights)
    out = export_quantized(wrapper, quanter, ctx.out / "models" / key, ctx.labels)
    concats = note(keep_mixed_sign_concats_fp32(out))
    summary = require_quantized(out, "qat")
    return Row(
        key,
        "qat",
        qat_label(cfg),
        model={"kind": "qat", "source": source.model, "quant": config, "weights": ctx.rel(weights)},
        export_dir=ctx.rel(out),
        train=result.to_dict(),
        notes=[f"exported int8: {summary.text}", *([concats] if concats else [])],
    )


register_method(MethodDescriptor("qat", QATStep, run_qat, check=check_qat, restore=load_qat))
