"""The exported artifact: PaddleDetection's signature, loadable by Paddle Inference, same answers as
the Python model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import yaml
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.preprocess import load_preprocess
from kslim_runner.measure.program import model_files
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.models.export import export_detector


def _confident(det) -> None:
    """Raise the objectness prior so an untrained model emits boxes to compare."""
    for head in det.heads:
        b = head.bias.numpy()
        b.reshape(3, -1)[:, 4] = 3.0
        head.bias.set_value(b)


def test_export_signature_and_parity(tmp_path: Path) -> None:
    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    _confident(det)
    out = export_detector(det, tmp_path / "model", ["a", "b", "c"])
    assert sorted(p.name for p in out.iterdir()) == ["infer_cfg.yml", "model.pdiparams", "model.pdmodel"]
    assert not list(tmp_path.glob("*.tmp"))
    cfg = yaml.safe_load((out / "infer_cfg.yml").read_text())
    assert cfg["arch"] == "YOLO" and cfg["label_list"] == ["a", "b", "c"]
    assert load_preprocess(out).target_size == (96, 96)

    predictor = create_predictor(model_files(out), PredictorOptions(threads=1))
    assert predictor.get_input_names() == ["image", "im_shape", "scale_factor"]
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 3, 96, 96)).astype(np.float32)
    im_shape = np.array([[96, 96], [96, 96]], np.float32)
    scale = np.array([[0.5, 0.5], [1.0, 2.0]], np.float32)  # originals 192x192 and 96x48
    boxes, num = run_detector(predictor, image, im_shape, scale)
    assert boxes.shape[1] == 6 and num.shape == (2,) and int(num.sum()) == len(boxes) > 0
    assert set(np.unique(boxes[:, 0]).astype(int)) <= {0, 1, 2}
    first = boxes[: num[0]]
    assert first[:, 2:].max() <= 192 + 1e-3 and first[:, 2:].min() >= 0  # original pixels, clipped
    second = boxes[num[0] :]
    assert second[:, [2, 4]].max() <= 48 + 1e-3

    det.eval()
    ref_boxes, ref_num = det.postprocess(
        det(paddle.to_tensor(image)), paddle.to_tensor(im_shape), paddle.to_tensor(scale)
    )
    np.testing.assert_array_equal(ref_num.numpy(), num)
    ref = ref_boxes.numpy()
    top = lambda b: b[np.argsort(-b[:, 1], kind="stable")][:20]  # noqa: E731
    np.testing.assert_allclose(top(ref)[:, 1:], top(boxes)[:, 1:], rtol=1e-3, atol=1e-2)


def test_exported_preprocessing_matches_the_training_side(tmp_path: Path) -> None:
    """The evaluator follows infer_cfg.yml; it must feed the pixels the in-training AP is computed on."""
    from kslim_runner.data.transforms import eval_transform

    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    pre = load_preprocess(export_detector(det, tmp_path / "m", ["a", "b", "c"]))
    img = np.random.default_rng(0).integers(0, 255, (70, 130, 3), dtype=np.uint8)
    for ours, theirs in zip(pre(img), eval_transform(img, 96), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
