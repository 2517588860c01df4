"""The runner's public Python API: what code outside the package (bench/, notebooks, programs that
embed the runner) may use. Everything else in kslim_runner is internal and may change at any time;
what this module names keeps its name and meaning.

    import kslim_runner  # first, before Paddle (see kslim_runner/__init__.py)
    from kslim_runner.api import load_coco, build_model, train_detector

Names load on first use (PEP 562 `__getattr__`), so importing this module costs nothing and a
script pays only for the parts it touches (most need Paddle; the storage ones do not).

What there is, by task:

- run a job: `run_command(file, output=None) -> exit code` (what `kslim run` does)
- data: `load_coco`, `read_image`, `SynthConfig` + `generate` (synthetic COCO sets), `AugmentConfig`,
  `train_transform`
- device: `probe`, `decide_device`, `use_cpu_threads`, `DeviceError`
- models: `DetectorConfig` + `build_detector` (built-in YOLOv3s), `ANCHOR_MASKS`, `make_divisible`;
  `ZooSource`, `shorthand_config`, `SHORTHAND_DIR`, `sample_inputs`, `ReaderBatches` (PaddleDetection
  models); `build_model` / `export_model` (either kind), `export_detector`, `load_row_model` (a row
  of a job's state.json, rebuilt)
- training: `TrainConfig`, `train_detector`, `default_loss`, `batch_source`, `build_optimizer`,
  `ModelEMA`
- measuring: `evaluate_model`, `predict`, `coco_stats`, `evaluator_stats`, `STAT_NAMES`,
  `model_cost`, `measure_latency`, `compare_latency`, `latency_inputs`, `PredictorOptions`,
  `create_predictor`, `run_detector`, `model_files`
- compressing: `rebuild_quantized` + `export_quantized` (a QAT row, exported again),
  `quantize_post_training` (PTQ of an exported model)
- storage: `S3Settings`, `S3Fetcher`

Each name's docstring says more (`help(kslim_runner.api.train_detector)`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "run_command": "kslim_runner.run",
    "load_coco": "kslim_runner.data.coco",
    "read_image": "kslim_runner.data.coco",
    "SynthConfig": "kslim_runner.data.synth",
    "generate": "kslim_runner.data.synth",
    "AugmentConfig": "kslim_runner.data.transforms",
    "train_transform": "kslim_runner.data.transforms",
    "probe": "kslim_runner.device",
    "decide_device": "kslim_runner.device",
    "use_cpu_threads": "kslim_runner.device",
    "DeviceError": "kslim_runner.errors",
    "DetectorConfig": "kslim_runner.models",
    "build_detector": "kslim_runner.models",
    "ANCHOR_MASKS": "kslim_runner.models.yolov3",
    "make_divisible": "kslim_runner.models.layers",
    "export_detector": "kslim_runner.models.export",
    "ZooSource": "kslim_runner.zoo.config",
    "shorthand_config": "kslim_runner.zoo.config",
    "SHORTHAND_DIR": "kslim_runner.zoo.config",
    "sample_inputs": "kslim_runner.zoo.build",
    "ReaderBatches": "kslim_runner.zoo.reader",
    "build_model": "kslim_runner.pipeline.models",
    "export_model": "kslim_runner.pipeline.models",
    "load_row_model": "kslim_runner.pipeline.models",
    "TrainConfig": "kslim_runner.train.config",
    "train_detector": "kslim_runner.train.detector",
    "default_loss": "kslim_runner.train.loop",
    "batch_source": "kslim_runner.train.loop",
    "build_optimizer": "kslim_runner.train.optim",
    "ModelEMA": "kslim_runner.train.ema",
    "evaluate_model": "kslim_runner.measure.coco_eval",
    "predict": "kslim_runner.measure.coco_eval",
    "coco_stats": "kslim_runner.measure.coco_eval",
    "evaluator_stats": "kslim_runner.measure.coco_eval",
    "STAT_NAMES": "kslim_runner.measure.coco_eval",
    "model_cost": "kslim_runner.measure.cost",
    "measure_latency": "kslim_runner.measure.latency",
    "compare_latency": "kslim_runner.measure.latency",
    "latency_inputs": "kslim_runner.measure.latency",
    "PredictorOptions": "kslim_runner.measure.predictor",
    "create_predictor": "kslim_runner.measure.predictor",
    "run_detector": "kslim_runner.measure.predictor",
    "model_files": "kslim_runner.measure.program",
    "rebuild_quantized": "kslim_runner.methods.qat",
    "export_quantized": "kslim_runner.methods.qat",
    "quantize_post_training": "kslim_runner.methods.ptq",
    "S3Settings": "kslim_runner.storage.s3",
    "S3Fetcher": "kslim_runner.storage.s3_fetch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"kslim_runner.api has no {name!r}; its names: {', '.join(__all__)}")
    # Not cached here: the defining module stays the one place a name is looked up (and patched).
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
