"""A tiny job whose weights, data and output are in the test S3 server's buckets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

SIZE = 96
IN_BUCKET, OUT_BUCKET = "kslim-in", "kslim-out"


def tiny_weights(path: Path) -> str:
    """Initial weights of YOLOv3-MobileNetV1 x0.25 at 96 px; returns their sha256."""
    import paddle
    from kslim_runner.models import DetectorConfig, build_detector

    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, SIZE, 0.25))
    paddle.save(det.state_dict(), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def s3_job(endpoint: str, sha256: str, name: str = "s3job") -> dict[str, Any]:
    data = f"s3://{IN_BUCKET}/data"
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "architecture": "yolov3_mobilenet_v1",
                "width": "0.25",
                "numClasses": 3,
                "inputSize": SIZE,
                "weights": {"uri": f"s3://{IN_BUCKET}/models/base.pdparams", "sha256": sha256},
            },
            "dataset": {
                "format": "coco",
                "train": {"images": f"{data}/train/images", "annotations": f"{data}/train/annotations.json"},
                "val": {"images": f"{data}/val/images/", "annotations": f"{data}/val/annotations.json"},
            },
            "strategy": [],
            "benchmark": {"device": "cpu", "iterations": 3, "warmup": 1},
            "evaluation": {"batchSize": 4},
            "resources": {"gpus": 0, "cpu": "2", "memory": "4Gi", "shmSize": "512Mi"},
            "storage": {"s3": {"endpoint": endpoint, "region": "us-east-1", "pathStyle": True}},
            "output": {"uri": f"s3://{OUT_BUCKET}/jobs"},
        },
    }
