"""Helpers for the compression-method tests: tiny job documents, a pipeline context run up to the
baseline, and reading an exported model's program."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

SIZE = 96
WIDTH = "0.25"


def job_doc(strategy: list[dict[str, Any]] | None, **spec_overrides: Any) -> dict[str, Any]:
    """A tiny CompressionJob: YOLOv3-MobileNetV1 x0.25 at 96 px on the tiny COCO data, given weights
    (no baseline training), a few fine-tuning steps by default. Overrides merge into the spec's
    sections; a None value removes that field. strategy None: give slimConfig instead."""
    spec: dict[str, Any] = {
        "model": {
            "architecture": "yolov3_mobilenet_v1",
            "width": WIDTH,
            "numClasses": 3,
            "inputSize": SIZE,
            "weights": {"uri": "file://weights/base.pdparams"},
        },
        "dataset": {
            "format": "coco",
            "train": {
                "images": "file://data/train/images",
                "annotations": "file://data/train/annotations.json",
            },
            "val": {"images": "file://data/val/images", "annotations": "file://data/val/annotations.json"},
        },
        "strategy": strategy,
        "train": {
            "iterations": 3,
            "batchSize": 4,
            "workers": 0,
            "logEveryIterations": 1,
            "checkpointEveryIterations": 100,
            "warmupIterations": 1,
            "learningRate": "0.001",
        },
        "benchmark": {"device": "cpu", "iterations": 3, "warmup": 1, "threads": 1},
        "evaluation": {"batchSize": 4},
        "resources": {"gpus": 0},
    }
    if strategy is None:
        del spec["strategy"]
    for key, value in spec_overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            merged = {**spec[key], **value}
            spec[key] = {k: v for k, v in merged.items() if v is not None}  # None removes a field
        else:
            spec[key] = value
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": "methods"},
        "spec": spec,
    }


def export_tiny_inference_model(folder: Path, weights: Path) -> Path:
    """The tiny detector exported as PaddleDetection would (model.pdmodel, .pdiparams, infer_cfg.yml)."""
    import paddle
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, SIZE, float(WIDTH)))
    det.set_state_dict(paddle.load(str(weights)))
    return export_detector(det, folder, ["circle", "square", "triangle"])


def op_counts(model_dir: Path) -> Counter:
    from kslim_runner.measure.program import load_program, model_files

    program = load_program(model_files(model_dir))
    return Counter(op.type for op in program.global_block().ops)


def conv_filters(model_dir: Path) -> dict[str, int]:
    """Output channels of every conv weight in an exported model, by Paddle parameter name."""
    from kslim_runner.measure.program import load_program, model_files

    program = load_program(model_files(model_dir))
    out = {}
    for op in program.global_block().ops:
        if op.type in ("conv2d", "depthwise_conv2d"):
            name = op.input("Filter")[0]
            out[name] = program.global_block().var(name).shape[0]
    return out


def run_steps(ctx: Any, export: bool = True) -> None:
    """Run every strategy step of a staged context (then the export stage)."""
    from kslim_runner.pipeline.export import ExportStage
    from kslim_runner.pipeline.stage import Pipeline
    from kslim_runner.pipeline.steps import StepStage

    stages = [StepStage(i, s) for i, s in enumerate(ctx.steps)]
    Pipeline([*stages, ExportStage()] if export else stages).run(ctx)
