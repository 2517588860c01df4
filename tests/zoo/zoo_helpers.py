"""Helpers for the PaddleDetection-zoo tests: a user's config tree (kslim's shorthand config, copied
under a PaddleDetection-like layout with a _BASE_ include, as a user brings one) and tiny jobs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

SIZE = 96
SHORTHANDS = Path(__file__).resolve().parents[2] / "runner" / "kslim_runner" / "zoo" / "configs"


def config_tree(root: Path, *, model_extra: str = "") -> Path:
    """root/configs/{_base_/yolov3.yml, yolov3/yolov3_mbv1_tiny.yml}: the model config path."""
    base = root / "configs" / "_base_"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHORTHANDS / "_yolov3.yml", base / "yolov3.yml")
    shutil.copy(SHORTHANDS / "_yolo_readers.yml", base / "_yolo_readers.yml")  # yolov3.yml's _BASE_
    model = root / "configs" / "yolov3" / "yolov3_mbv1_tiny.yml"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(
        "_BASE_: ['../_base_/yolov3.yml']\n"
        "MobileNet: {scale: 0.25, feature_maps: [4, 6, 13], with_extra_blocks: false, "
        "extra_block_filters: []}\n" + model_extra
    )
    return model


def teacher_tree(root: Path, backbone: str = "mobilenet") -> Path:
    """A teacher config in the tree config_tree writes (same _BASE_): YOLOv3 on MobileNetV1 at
    scale 0.5, or on ResNet-34 (kslim's yolov3_resnet34 settings). Its path."""
    config_tree(root)
    body = {
        "mobilenet": "MobileNet: {scale: 0.5, feature_maps: [4, 6, 13], with_extra_blocks: false, "
        "extra_block_filters: []}\n",
        "resnet34": "YOLOv3: {backbone: ResNet}\nResNet: {depth: 34, variant: d, return_idx: [1, 2, 3], "
        "freeze_at: -1, freeze_norm: false, norm_decay: 0.}\n",
    }[backbone]
    path = root / "configs" / "yolov3" / f"yolov3_{backbone}_teacher.yml"
    path.write_text("_BASE_: ['../_base_/yolov3.yml']\n" + body)
    return path


#: PicoDet-M shrunk for tests: ESNet at scale 0.25, 32-channel neck and head, one head conv.
TINY_PICODET = (
    "ESNet: {scale: 0.25}\nCSPPAN: {out_channels: 32}\n"
    "PicoHead: {feat_in_chan: 32, conv_feat: {name: PicoFeat, feat_in: 32, feat_out: 32, num_convs: 1, "
    "num_fpn_stride: 4, norm_type: bn, share_cls_reg: true}}\n"
)


def picodet_tree(root: Path) -> Path:
    """root/configs/picodet/{_base_/picodet_esnet_m.yml, picodet_tiny.yml}: the model config path
    (kslim's PicoDet-M config under a user's tree, made tiny by an including file)."""
    base = root / "configs" / "picodet" / "_base_"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHORTHANDS / "picodet_esnet_m.yml", base / "picodet_esnet_m.yml")
    model = root / "configs" / "picodet" / "picodet_tiny.yml"
    model.write_text("_BASE_: ['_base_/picodet_esnet_m.yml']\n" + TINY_PICODET)
    return model


def zoo_job(strategy: list[dict[str, Any]] | None, **model: Any) -> dict[str, Any]:
    """A tiny CompressionJob on a PaddleDetection config (paths relative to the job's folder)."""
    spec: dict[str, Any] = {
        "model": {
            "config": {"uri": "file://configs/yolov3/yolov3_mbv1_tiny.yml"},
            "numClasses": 3,
            "inputSize": SIZE,
            "weights": {"uri": "file://weights/ppdet.pdparams"},
            **model,
        },
        "dataset": {
            "format": "coco",
            "train": {
                "images": "file://data/train/images",
                "annotations": "file://data/train/annotations.json",
            },
            "val": {"images": "file://data/val/images", "annotations": "file://data/val/annotations.json"},
        },
        "train": {
            "iterations": 2,
            "batchSize": 4,
            "workers": 0,
            "logEveryIterations": 1,
            "warmupIterations": 1,
        },
        "benchmark": {"device": "cpu", "iterations": 3, "warmup": 1, "threads": 1},
        "evaluation": {"batchSize": 4},
        "resources": {"gpus": 0},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    spec["model"] = {k: v for k, v in spec["model"].items() if v is not None}
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": "zoo"},
        "spec": spec,
    }
