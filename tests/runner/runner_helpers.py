"""Helpers for the runner's tests (job documents, progress-line parsing)."""

from __future__ import annotations

import json
from typing import Any

TINY_SIZE = 96


def job_doc(**spec_overrides: Any) -> dict[str, Any]:
    """A tiny baseline-only CompressionJob (camelCase, as a user writes it)."""
    spec: dict[str, Any] = {
        "model": {
            "architecture": "yolov3_mobilenet_v1",
            "width": "0.25",
            "numClasses": 3,
            "inputSize": TINY_SIZE,
        },
        "dataset": {
            "format": "coco",
            "train": {
                "images": "file://data/train/images",
                "annotations": "file://data/train/annotations.json",
            },
            "val": {"images": "file://data/val/images", "annotations": "file://data/val/annotations.json"},
        },
        "strategy": [],
        "train": {
            "iterations": 8,
            "batchSize": 4,
            "workers": 0,
            "logEveryIterations": 4,
            "checkpointEveryIterations": 4,
            "warmupIterations": 2,
            "learningRate": "0.002",
        },
        "benchmark": {"device": "cpu", "iterations": 5, "warmup": 1},
        "evaluation": {"batchSize": 4},
        "resources": {"gpus": 0},
    }
    for key, value in spec_overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": "tiny"},
        "spec": spec,
    }


def progress_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith('{"kslim": "progress"'):
            out.append(json.loads(line))
    return out
