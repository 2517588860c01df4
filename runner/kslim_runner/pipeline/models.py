"""How a row's model is rebuilt in Python: registered loaders by kind. The built-in detector and
PaddleDetection loaders are here; compression methods that change a model's structure (pruning)
register their own. Also the few operations that differ between the two kinds of model (build,
weights, export), so that methods need not ask which kind they hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.export import export_detector
from kslim_runner.models.registry import build_detector
from kslim_runner.zoo.config import ZooSource

ModelConfig = DetectorConfig | ZooSource

Loader = Callable[[dict[str, Any], Callable[[str], Path]], Detector]
LOADERS: dict[str, Loader] = {}


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return deco


def job_model_config(spec: Any, resolve: Callable[[str, str], Path]) -> ModelConfig:
    """The job's model to build: a PaddleDetection config (model.config) or a built-in detector."""
    m = spec.model
    if m.config is not None:
        path = resolve(m.config.uri, "model.config")
        return ZooSource(str(Path(path).resolve()), Path(path).stem, m.num_classes, m.input_size)
    if m.architecture is None:
        raise UserError(
            "this step needs model.architecture or model.config (a model to train); an inferenceModel "
            "can only be compressed by ptq",
            reason="InvalidSpec",
        )
    return DetectorConfig(m.architecture.value, m.num_classes, m.input_size, float(m.width))


def row_model(config: ModelConfig, weights: str | None = None) -> dict[str, Any]:
    """How a row records a freshly built model of either kind (plus its weights)."""
    if isinstance(config, ZooSource):
        model: dict[str, Any] = {"kind": "ppdet", "source": config.to_dict()}
    else:
        model = {"kind": "detector", "config": config.to_dict()}
    if weights:
        model["weights"] = weights
    return model


def is_zoo(detector: Any) -> bool:
    """A PaddleDetection model (built from a config through ppdet)."""
    return isinstance(getattr(detector, "config", None), ZooSource)


def build_model(config: ModelConfig) -> Detector:
    """A freshly initialised model of either kind, in eval mode."""
    if isinstance(config, ZooSource):
        from kslim_runner.zoo.build import build_model as build_zoo

        return build_zoo(config)
    return build_detector(config)


def export_model(detector: Detector, out_dir: Path, labels: list[str]) -> Path:
    """The inference model (PaddleDetection's signature and infer_cfg.yml) of either kind."""
    if is_zoo(detector):
        from kslim_runner.zoo.export import export_model as export_zoo

        return export_zoo(detector, out_dir, labels)
    return export_detector(detector, out_dir, labels)


def load_weights(detector: Detector, path: Path) -> None:
    """Load a .pdparams into detector; a UserError naming the file on any mismatch."""
    from kslim_runner.zoo.build import load_weights as load_zoo_weights
    from kslim_runner.zoo.build import read_weights

    if is_zoo(detector):
        load_zoo_weights(detector, path)
        return
    state = read_weights(path)
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


@register_loader("ppdet")
def load_ppdet(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """model: {"kind": "ppdet", "source": a ZooSource, "weights": PaddleDetection-named weights}."""
    det = build_model(ZooSource.from_dict(model["source"]))
    if model.get("weights"):
        load_weights(det, path_of(model["weights"]))
    det.eval()
    return det


def load_row_model(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    kind = model.get("kind", "detector")
    if kind not in LOADERS:
        raise RuntimeError(f"no loader for model kind {kind}")
    return LOADERS[kind](model, path_of)
