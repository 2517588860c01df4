"""The detector really learns: trained briefly on eight images, it finds their objects again
(exported model, Paddle Inference, pycocotools), with the same AP as the Python model."""

from __future__ import annotations

from pathlib import Path

import paddle
import pytest
from kslim_runner.data.coco import load_coco
from kslim_runner.data.synth import SynthConfig, generate
from kslim_runner.data.transforms import AugmentConfig
from kslim_runner.measure.coco_eval import evaluate_model
from kslim_runner.measure.dygraph_eval import evaluate_dygraph
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.models.export import export_detector
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.detector import train_detector

pytestmark = pytest.mark.slow


def test_a_short_training_fits_eight_images(tmp_path: Path) -> None:
    ann = generate(tmp_path / "d", SynthConfig(images=8, size=96, classes=3, seed=5))
    index = load_coco(ann, tmp_path / "d" / "images", 3)
    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    cfg = TrainConfig(
        iterations=120,
        batch_size=8,
        learning_rate=0.005,
        warmup_iterations=10,
        workers=0,
        log_every=40,
        checkpoint_every=10**6,
        augment=AugmentConfig(expand_prob=0.0, crop_prob=0.0, distort_prob=0.0),
    )
    result = train_detector(det, index, cfg, tmp_path / "work", stage="baseline")
    assert result.steps_run == 120 and result.final_loss is not None and result.final_loss < 20
    shipped = evaluate_model(
        export_detector(det, tmp_path / "model", index.category_names), index, batch_size=4
    )
    assert shipped.ap > 0.25 and shipped.ap50 > 0.6, shipped  # 0.55 / 0.96 when written
    assert evaluate_dygraph(det, index, batch_size=4)["ap"] == pytest.approx(shipped.ap, abs=2e-3)
