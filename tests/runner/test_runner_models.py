"""Detectors built from Paddle layers: three scales, stable parameter names, a working loss."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from kslim_runner.models import DetectorConfig, architectures, build_detector

ARCHS = ["yolov3_mobilenet_v1", "yolov3_mobilenet_v3", "yolov3_darknet53"]


def test_registry_has_the_seed_architectures() -> None:
    assert set(ARCHS) <= set(architectures())


@pytest.mark.parametrize("arch", ARCHS)
def test_three_scales_and_a_finite_loss(arch: str) -> None:
    paddle.seed(0)
    det = build_detector(DetectorConfig(arch, 4, 96, 0.25))
    det.train()
    outs = det(paddle.randn([2, 3, 96, 96]))
    assert [o.shape for o in outs] == [[2, 27, 3, 3], [2, 27, 6, 6], [2, 27, 12, 12]]
    gt_box = paddle.to_tensor(np.array([[[0.5, 0.5, 0.3, 0.2], [0.2, 0.3, 0.1, 0.1]]] * 2, np.float32))
    gt_label = paddle.to_tensor(np.array([[1, 3]] * 2, np.int32))
    loss = det.loss(outs, gt_box, gt_label)
    loss.backward()
    assert np.isfinite(float(loss))
    assert det.heads[0].weight.grad is not None


def test_width_scales_the_model() -> None:
    small = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    big = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.5))
    n = lambda m: sum(int(np.prod(p.shape)) for p in m.parameters())  # noqa: E731
    assert n(big) > 2 * n(small)
    assert small.backbone.out_channels == [64, 128, 256]


def test_parameter_names_are_stable_across_builds() -> None:
    """Both the structured names (state_dict) and Paddle's own names (conv2d_N.w_0, which pruning
    configs in PaddleDetection's style use) are the same on every build."""
    a = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    paddle.nn.Linear(3, 3)  # unrelated layers created between builds must not shift the names
    b = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    assert list(a.state_dict()) == list(b.state_dict())
    assert [p.name for p in a.parameters()] == [p.name for p in b.parameters()]
    assert a.backbone.conv1.conv.weight.name == "conv2d_0.w_0"
    assert "backbone.blocks.0.dw.conv.weight" in a.state_dict()
    assert "neck.blocks.0.conv0.conv.weight" in a.state_dict()


def test_unknown_architecture_is_a_user_error() -> None:
    from kslim_runner.errors import UserError

    with pytest.raises(UserError, match="unknown architecture"):
        build_detector(DetectorConfig("ssd_resnet", 3, 96, 1.0))


def test_the_learning_probes_loss_split_adds_up_to_yolo_loss() -> None:
    """bench/learning_probe.py re-derives yolo_loss's terms in numpy; they must sum to the op's value."""
    import importlib.util
    from pathlib import Path

    from kslim_runner.models.yolov3 import ANCHOR_MASKS

    path = Path(__file__).resolve().parents[2] / "bench" / "learning_probe.py"
    spec = importlib.util.spec_from_file_location("learning_probe", path)
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    paddle.seed(1)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    det.train()
    rng = np.random.default_rng(0)
    outs = [o * 2.0 for o in det(paddle.to_tensor(rng.normal(size=(2, 3, 96, 96)).astype(np.float32)))]
    gt_box = np.zeros((2, 4, 4), np.float32)
    gt_box[:, :3] = [[0.5, 0.5, 0.4, 0.3], [0.2, 0.3, 0.1, 0.12], [0.7, 0.8, 0.25, 0.2]]
    gt_label = np.array([[0, 2, 1, 0]] * 2, np.int32)
    with paddle.no_grad():
        reference = float(det.loss(outs, paddle.to_tensor(gt_box), paddle.to_tensor(gt_label)))
    anchors = np.asarray(det.anchors_flat, np.float32).reshape(-1, 2)
    terms = probe.loss_terms([o.numpy() for o in outs], gt_box, gt_label, anchors, ANCHOR_MASKS, 96, 3)
    assert terms["total"] == pytest.approx(reference, rel=0.01)
    assert 0.0 <= terms["classAccuracy"] <= 1.0
