"""How a row's model is rebuilt in Python, by its `kind`: the source kinds (a built-in detector, a
PaddleDetection model) here, and a model a compression method made by that method's descriptor
(`restore`). Also the few operations that differ between the two source kinds (build, weights,
export), so that methods need not ask which kind they hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kslim_api.contract import Reason

from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.export import export_detector
from kslim_runner.models.registry import build_detector
from kslim_runner.zoo.config import ZooSource

ModelConfig = DetectorConfig | ZooSource


def job_model_config(spec: Any, resolve: Callable[[str, str], Path]) -> ModelConfig:
    """The job's model to build: a PaddleDetection config (model.config) or a built-in detector."""
    m = spec.model
    if m.config is not None:
        path = resolve(m.config.uri, "model.config")
        return ZooSource(
            str(Path(path).resolve()),
            Path(path).stem,
            m.num_classes,
            m.input_size,
            overrides=_overrides(spec),
        )
    if m.architecture is None:
        raise UserError(
            "this step needs model.architecture or model.config (a model to train); an inferenceModel "
            "can only be compressed by ptq",
            reason=Reason.INVALID_SPEC,
        )
    return DetectorConfig(m.architecture.value, m.num_classes, m.input_size, float(m.width))


def _overrides(spec: Any, target: str = "model") -> dict[str, Any] | None:
    """The module sections a spec.slimConfig merges over the `target` config ("model"/"teacher")."""
    if getattr(spec, "slim_config", None) is None:
        return None
    conv = spec.slim_conversion()
    return (conv.model_overrides or None) if conv.override_target == target else None


def teacher_overrides(spec: Any) -> dict[str, Any] | None:
    """A Distill slimConfig's module sections: PaddleDetection builds the teacher from the slim
    config (its `_BASE_` plus these), so they are the teacher's."""
    return _overrides(spec, "teacher")


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
            reason=Reason.BAD_WEIGHTS,
        )
    if missing:
        raise UserError(
            f"weights file {path} does not match {what}: {len(missing)} parameters missing, "
            f"e.g. {missing[0]}; "
            "check model.architecture and width",
            reason=Reason.BAD_WEIGHTS,
        )
    detector.set_state_dict({k: state[k] for k in expected})


def load_detector(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    det = build_detector(DetectorConfig.from_dict(model["config"]))
    if model.get("weights"):
        load_weights(det, path_of(model["weights"]))
    det.eval()
    return det


def load_ppdet(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """model: {"kind": "ppdet", "source": a ZooSource, "weights": PaddleDetection-named weights}."""
    det = build_model(ZooSource.from_dict(model["source"]))
    if model.get("weights"):
        load_weights(det, path_of(model["weights"]))
    det.eval()
    return det


SOURCE_LOADERS = {"detector": load_detector, "ppdet": load_ppdet}


def _restore_fn(kind: str) -> Callable[[dict[str, Any], Callable[[str], Path]], Any] | None:
    from kslim_runner.pipeline.methods import load_methods

    if kind in SOURCE_LOADERS:
        return SOURCE_LOADERS[kind]
    method = load_methods().get(kind)
    return method.restore if method is not None else None


def can_restore(model: dict[str, Any]) -> bool:
    """Whether a row's model can be rebuilt in Python (not an inference model, e.g. PTQ's)."""
    return _restore_fn(model.get("kind", "detector")) is not None


def source_kind(model: dict[str, Any]) -> str:
    """The kind of the model a row's chain of methods started from: detector, ppdet or inference."""
    while model.get("kind", "detector") not in (*SOURCE_LOADERS, "inference") and "source" in model:
        model = model["source"]
    return str(model.get("kind", "detector"))


def load_row_model(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """A row's model in Python, in eval mode: a source model, or what a method made, rebuilt by the
    method's descriptor."""
    kind = model.get("kind", "detector")
    restore = _restore_fn(kind)
    if restore is None:
        raise RuntimeError(f"no loader for model kind {kind}")
    return restore(model, path_of)
