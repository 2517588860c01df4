"""A pruned model's layout (the new shape of every resized parameter and the new groups of
depthwise convs), saved beside its weights, and how a pruned model is rebuilt (prune's `restore`): the
previous row's model, resized to the layout, then the pruned weights loaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paddle import nn

from kslim_runner.atomic import write_json
from kslim_runner.models.base import Detector
from kslim_runner.models.layout import apply_layout, groups_of, shapes_of
from kslim_runner.pipeline.models import load_row_model, load_weights

BACKUP_SUFFIX = "_backup"


def drop_backups(det: nn.Layer) -> None:
    """PaddleSlim keeps each pruned tensor's original values as a layer buffer (for restore); a
    pruned model that is kept must not carry (or save) them."""
    for _, layer in det.named_sublayers(include_self=True):
        for key in [k for k in layer._buffers if k.endswith(BACKUP_SUFFIX)]:
            del layer._buffers[key]


def layout_change(
    before: dict[str, list[int]], before_groups: dict[str, int], det: nn.Layer
) -> dict[str, Any]:
    """What pruning changed: {"shapes": {state name: shape}, "groups": {layer: groups}}."""
    after, groups = shapes_of(det), groups_of(det)
    return {
        "shapes": {k: v for k, v in after.items() if k in before and before[k] != v},
        "groups": {k: g for k, g in groups.items() if before_groups.get(k) != g},
    }


def save_layout(path: Path, layout: dict[str, Any]) -> None:
    write_json(path, layout)


def load_pruned(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """model: {"kind": "prune", "source": the model that was pruned, "layout": its layout JSON,
    "weights": the pruned weights}."""
    det = load_row_model(model["source"], path_of)
    apply_layout(det, json.loads(path_of(model["layout"]).read_text()))
    load_weights(det, path_of(model["weights"]))
    det.eval()
    return det
