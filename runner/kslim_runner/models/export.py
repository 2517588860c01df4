"""Export a detector as a Paddle inference model with PaddleDetection's signature:
inputs image [N, 3, H, W], im_shape [N, 2], scale_factor [N, 2]; outputs boxes [K, 6]
(class, score, x1, y1, x2, y2 in original pixels) and bbox_num [N]. An `infer_cfg.yml` in
PaddleDetection's format tells any consumer (our evaluator included) how to preprocess."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import paddle
import yaml
from paddle import nn
from paddle.static import InputSpec

from kslim_runner.data.transforms import MEAN, STD
from kslim_runner.models.base import Detector

MODEL_FILE = "model.pdmodel"
PARAMS_FILE = "model.pdiparams"
INFER_CFG = "infer_cfg.yml"


class ExportModel(nn.Layer):
    """forward(image, im_shape, scale_factor) -> (boxes, bbox_num), the whole detector end to end."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(
        self, image: paddle.Tensor, im_shape: paddle.Tensor, scale_factor: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        return self.detector.postprocess(self.detector(image), im_shape, scale_factor)


def input_spec(size: int | None) -> list[InputSpec]:
    return [
        InputSpec([None, 3, size, size], "float32", name="image"),
        InputSpec([None, 2], "float32", name="im_shape"),
        InputSpec([None, 2], "float32", name="scale_factor"),
    ]


def infer_cfg(detector: Detector, label_list: list[str]) -> dict:
    size = detector.config.input_size
    return {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "COCO",
        "use_dynamic_shape": False,
        "arch": detector.infer_arch,
        "min_subgraph_size": 3,
        # interp 1 (linear) is data.transforms.eval_transform's: the in-training AP sees the same pixels
        "Preprocess": [
            {"type": "Resize", "target_size": [size, size], "keep_ratio": False, "interp": 1},
            {"type": "NormalizeImage", "mean": list(MEAN), "std": list(STD), "is_scale": True},
            {"type": "Permute"},
        ],
        "label_list": list(label_list),
        "kslim": {
            "architecture": detector.config.architecture,
            "numClasses": detector.config.num_classes,
            "inputSize": size,
            "width": detector.config.width,
        },
    }


def export_detector(detector: Detector, out_dir: Path, label_list: list[str]) -> Path:
    """Write out_dir/{model.pdmodel, model.pdiparams, infer_cfg.yml}; atomically (temp dir + rename)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    was_training = detector.training
    detector.eval()
    try:
        layer = ExportModel(detector)
        static = paddle.jit.to_static(
            layer, input_spec=input_spec(detector.config.input_size), full_graph=True
        )
        paddle.jit.save(static, str(tmp / "model"))
    finally:
        if was_training:
            detector.train()
    (tmp / INFER_CFG).write_text(yaml.safe_dump(infer_cfg(detector, label_list), sort_keys=False))
    for junk in tmp.glob("*.pdiparams.info"):
        junk.unlink()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
