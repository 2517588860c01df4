"""Which weights a sparsify step zeroes (paramsType, params, skipParams), and how sparse they are,
in the Python model and in an exported inference model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle
from kslim_api.contract import Reason
from kslim_api.v1alpha1 import SparsifyStep
from paddle import nn

from kslim_runner.errors import UserError
from kslim_runner.measure.program import model_files
from kslim_runner.methods.common import match_names

#: Layers whose weights unstructured pruning may zero (norms and biases never: PaddleSlim's rule too).
WEIGHTED = (nn.Conv2D, nn.Linear)


def _candidates(det: nn.Layer, params_type: str) -> list[tuple[str, str]]:
    """(Paddle name, structured name) of every weight paramsType admits."""
    out = []
    for layer_name, layer in det.named_sublayers():
        if not isinstance(layer, WEIGHTED):
            continue
        w = layer.weight
        if params_type == "conv1x1" and not (len(w.shape) == 4 and w.shape[2] == 1 and w.shape[3] == 1):
            continue
        out.append((w.name, f"{layer_name}.weight"))
    return out


def select_params(det: nn.Layer, cfg: SparsifyStep) -> list[str]:
    """Paddle names of the weights to prune; a UserError when a pattern matches nothing (among the
    weights paramsType admits) or nothing is left."""
    names = _candidates(det, cfg.params_type)
    what = "1x1 conv weights" if cfg.params_type == "conv1x1" else "conv/linear weights"
    chosen = [p for p, _ in names]
    if cfg.params:
        picked: set[str] = set()
        for pattern in cfg.params:
            hits = match_names(pattern, names)
            if not hits:
                raise UserError(
                    f"sparsify.params: {pattern!r} matches none of the model's {len(names)} {what} "
                    f"(e.g. {names[0][0]} / {names[0][1]})"
                    if names
                    else f"sparsify.params: the model has no {what}",
                    reason=Reason.INVALID_SPEC,
                )
            picked.update(hits)
        chosen = [p for p in chosen if p in picked]
    for pattern in cfg.skip_params:
        hits = match_names(pattern, names)
        if not hits:
            raise UserError(
                f"sparsify.skipParams: {pattern!r} matches none of the model's {len(names)} {what}",
                reason=Reason.INVALID_SPEC,
            )
        chosen = [p for p in chosen if p not in hits]
    if not chosen:
        raise UserError(
            f"sparsify selects no weight to prune (paramsType {cfg.params_type}, {len(names)} {what}, "
            f"after params/skipParams); widen the selection",
            reason=Reason.INVALID_SPEC,
        )
    return chosen


def skip_function(chosen: list[str]) -> Callable[[nn.Layer], set[str]]:
    """PaddleSlim's skip_params_func: every parameter name but the chosen ones."""
    keep = set(chosen)

    def skip(model: nn.Layer) -> set[str]:
        return {p.name for p in model.parameters() if p.name not in keep}

    return skip


@dataclass(frozen=True)
class Sparsity:
    zeros: int
    weights: int
    params: int  # how many parameters (tensors)
    least: float  # the least sparse of them

    @property
    def ratio(self) -> float:
        return self.zeros / max(self.weights, 1)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "zeros": self.zeros,
            "weights": self.weights,
            "params": self.params,
            "ratio": round(self.ratio, 4),
            "least": round(self.least, 4),
        }


def _summarize(arrays: list[np.ndarray]) -> Sparsity:
    zeros = [int((a == 0).sum()) for a in arrays]
    return Sparsity(
        zeros=sum(zeros),
        weights=sum(a.size for a in arrays),
        params=len(arrays),
        least=min((z / max(a.size, 1) for z, a in zip(zeros, arrays, strict=True)), default=0.0),
    )


def model_sparsity(det: nn.Layer, names: list[str]) -> Sparsity:
    by_name = {p.name: p for p in det.parameters()}
    return _summarize([by_name[n].numpy() for n in names])


def exported_sparsity(model_dir: Path, names: list[str]) -> Sparsity:
    """Zeros among `names` in an exported inference model's parameters (what a runtime loads);
    a name the program lacks is an error (the export renamed or folded the weight)."""
    files = model_files(model_dir)
    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe = paddle.static.Executor(paddle.CPUPlace())
            paddle.static.load_inference_model(str(files.prefix), exe)
            missing = [n for n in names if scope.find_var(n) is None]
            if missing:
                raise RuntimeError(f"exported model {model_dir} lacks pruned weights, e.g. {missing[0]}")
            arrays = [np.array(scope.find_var(n).get_tensor()) for n in names]
    finally:
        paddle.disable_static()
    return _summarize(arrays)
