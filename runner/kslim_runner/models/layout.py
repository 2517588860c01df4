"""A model's layout: the shape of every parameter and buffer, and the groups of every conv. A pruned
model differs from its architecture only in its layout, so resizing a fresh model to the layout and
then loading the weights rebuilds it (a later stage of a resumed run, a data-parallel worker)."""

from __future__ import annotations

from typing import Any

import numpy as np
import paddle
from paddle import nn


def shapes_of(det: nn.Layer) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in det.state_dict().items()}


def groups_of(det: nn.Layer) -> dict[str, int]:
    return {n: int(layer._groups) for n, layer in det.named_sublayers() if isinstance(layer, nn.Conv2D)}


def _resize(t: paddle.Tensor, shape: list[int]) -> None:
    value = t.value().get_tensor()
    place = t.place
    target = paddle.CPUPlace() if place.is_cpu_place() else paddle.CUDAPlace(place.gpu_device_id())
    value.set(np.zeros(shape, dtype=np.float32), target)


def apply_layout(det: nn.Layer, layout: dict[str, Any]) -> None:
    """Resize det's parameters to a saved layout (values are loaded afterwards)."""
    state = det.state_dict()
    missing = [k for k in layout["shapes"] if k not in state]
    if missing:
        raise RuntimeError(f"pruning layout names {missing[0]}, which the model does not have")
    for name, shape in layout["shapes"].items():
        _resize(state[name], shape)
    layers = dict(det.named_sublayers())
    for name, groups in layout["groups"].items():
        layers[name]._groups = int(groups)


def layout_of(det: nn.Layer) -> dict[str, Any]:
    return {"shapes": shapes_of(det), "groups": groups_of(det)}
