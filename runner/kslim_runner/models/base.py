"""What every built-in detector provides, and its configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import paddle
from paddle import nn


@dataclass(frozen=True)
class DetectorConfig:
    architecture: str
    num_classes: int
    input_size: int
    width: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        return cls(**{k: d[k] for k in ("architecture", "num_classes", "input_size", "width")})


@dataclass(frozen=True)
class PostprocessConfig:
    conf_threshold: float = 0.005
    score_threshold: float = 0.01
    nms_top_k: int = 1000
    keep_top_k: int = 100


class Detector(nn.Layer):
    """A detector: forward(image) -> head outputs; loss(outputs, targets); postprocess(outputs,
    im_shape, scale_factor) -> (boxes [N, 6] = class, score, x1, y1, x2, y2 in original pixels,
    bbox_num [batch])."""

    config: DetectorConfig
    #: PaddleDetection's `arch` value in infer_cfg.yml
    infer_arch: str = "YOLO"

    def loss(
        self, outputs: list[paddle.Tensor], gt_box: paddle.Tensor, gt_label: paddle.Tensor
    ) -> paddle.Tensor:
        raise NotImplementedError

    def postprocess(
        self, outputs: list[paddle.Tensor], im_shape: paddle.Tensor, scale_factor: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        raise NotImplementedError
