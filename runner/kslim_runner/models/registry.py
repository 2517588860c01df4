"""Detector registry: one module per family registers its architectures here (SSD and PP-YOLO are
added as one module each). Build inside a fresh unique-name scope so the generated parameter names
(conv2d_0.w_0, ...) are the same on every build, besides the structured names of state_dict()."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector, DetectorConfig

DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {}
#: Modules that register detectors; imported on first use.
FAMILIES = ("kslim_runner.models.yolov3", "kslim_runner.models.yolov3_resnet34")


def register_detector(
    name: str,
) -> Callable[[Callable[[DetectorConfig], Detector]], Callable[[DetectorConfig], Detector]]:
    def deco(fn: Callable[[DetectorConfig], Detector]) -> Callable[[DetectorConfig], Detector]:
        if name in DETECTORS:
            raise ValueError(f"detector {name} registered twice")
        DETECTORS[name] = fn
        return fn

    return deco


def _load_families() -> None:
    for mod in FAMILIES:
        importlib.import_module(mod)


def architectures() -> list[str]:
    _load_families()
    return sorted(DETECTORS)


def build_detector(config: DetectorConfig) -> Detector:
    """A freshly initialised detector (the caller seeds paddle for reproducible weights)."""
    import paddle

    _load_families()
    if config.architecture not in DETECTORS:
        raise UserError(
            f"unknown architecture {config.architecture}; built in: {', '.join(sorted(DETECTORS))}"
        )
    with paddle.utils.unique_name.guard():
        return DETECTORS[config.architecture](config)
