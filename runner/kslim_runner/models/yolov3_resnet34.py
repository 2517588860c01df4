"""YOLOv3 on a ResNet-34 backbone (paddle.vision's resnet34, built untrained): the seed's
distillation teacher. C3/C4/C5 are ResNet's layer2/layer3/layer4 (128/256/512 channels, strides
8/16/32); the width multiplier does not apply (the schema only allows it on MobileNets)."""

from __future__ import annotations

import paddle
from paddle import nn
from paddle.vision.models import resnet34

from kslim_runner.models.backbones import register_backbone
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.registry import register_detector
from kslim_runner.models.yolov3 import YoloV3


class ResNet34(nn.Layer):
    """paddle.vision's ResNet-34 without its pooling and classifier, returning C3, C4, C5."""

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = [128, 256, 512]
        self.body = resnet34(pretrained=False, num_classes=0, with_pool=False)

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        c2 = b.layer1(x)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        return [c3, c4, b.layer4(c4)]


@register_backbone("resnet34")
def resnet34_backbone(width: float) -> nn.Layer:
    return ResNet34()


@register_detector("yolov3_resnet34")
def yolov3_resnet34(config: DetectorConfig) -> Detector:
    return YoloV3(config, "resnet34")
