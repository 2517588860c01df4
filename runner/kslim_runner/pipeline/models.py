"""How a row's model is rebuilt in Python: registered loaders by kind. The built-in detector loader
is here; compression methods that change a model's structure (pruning) register their own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.registry import build_detector

Loader = Callable[[dict[str, Any], Callable[[str], Path]], Detector]
LOADERS: dict[str, Loader] = {}


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return deco


def load_weights(detector: Detector, path: Path) -> None:
    """Load a .pdparams into detector; a UserError naming the file on any mismatch."""
    import paddle

    if not path.is_file():
        raise UserError(f"weights file {path} not found; check model.weights.uri", reason="DataNotFound")
    try:
        state = paddle.load(str(path))
    except Exception as e:
        raise UserError(
            f"weights file {path} is not a Paddle .pdparams file ({type(e).__name__}: {e})",
            reason="BadWeights",
        ) from e
    if not isinstance(state, dict) or not state:
        raise UserError(f"weights file {path} holds no parameters", reason="BadWeights")
    expected = detector.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [
        (k, list(state[k].shape), list(v.shape))
        for k, v in expected.items()
        if k in state and list(getattr(state[k], "shape", [])) != list(v.shape)
    ]
    cfg = detector.config
    what = f"{cfg.architecture} (width {cfg.width}, numClasses {cfg.num_classes})"
    if wrong:
        k, got, exp = wrong[0]
        raise UserError(
            f"weights file {path} does not match {what}: {k} has shape {got}, expected {exp} "
            f"({len(wrong)} mismatched); check model.architecture, width and numClasses",
            reason="BadWeights",
        )
    if missing:
        raise UserError(
            f"weights file {path} does not match {what}: {len(missing)} parameters missing, "
            f"e.g. {missing[0]}; "
            "check model.architecture and width",
            reason="BadWeights",
        )
    detector.set_state_dict({k: state[k] for k in expected})


@register_loader("detector")
def load_detector(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    det = build_detector(DetectorConfig.from_dict(model["config"]))
    if model.get("weights"):
        load_weights(det, path_of(model["weights"]))
    det.eval()
    return det


def load_row_model(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    kind = model.get("kind", "detector")
    if kind not in LOADERS:
        raise RuntimeError(f"no loader for model kind {kind}")
    return LOADERS[kind](model, path_of)
