"""YOLOv3-ResNet34, the seed's distillation teacher: paddle.vision's resnet34 (untrained) under the
YOLOv3 neck and heads, three scales, a working loss, stable parameter names."""

from __future__ import annotations

import numpy as np
import paddle
from kslim_runner.models import DetectorConfig, architectures, build_detector


def test_resnet34_teacher_is_a_registered_three_scale_yolov3() -> None:
    assert "yolov3_resnet34" in architectures()
    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_resnet34", 3, 96, 1.0))
    det.train()
    outs = det(paddle.randn([2, 3, 96, 96]))
    assert [o.shape for o in outs] == [[2, 24, 3, 3], [2, 24, 6, 6], [2, 24, 12, 12]]
    assert det.backbone.out_channels == [128, 256, 512] and det.neck.out_channels == [1024, 512, 256]
    gt_box = paddle.to_tensor(np.array([[[0.5, 0.5, 0.3, 0.2]]] * 2, np.float32))
    loss = det.loss(outs, gt_box, paddle.to_tensor(np.array([[1]] * 2, np.int32)))
    loss.backward()
    assert np.isfinite(float(loss)) and det.backbone.body.conv1.weight.grad is not None
    again = build_detector(DetectorConfig("yolov3_resnet34", 3, 96, 1.0))
    assert [p.name for p in again.parameters()] == [p.name for p in det.parameters()]
