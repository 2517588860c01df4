"""Training pieces: the schedule, the resumable data order, checkpoints, EMA, a short run."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_runner.data.coco import load_coco
from kslim_runner.data.loader import ResumableBatchSampler, check_batch, train_loader
from kslim_runner.errors import UserError
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.train.checkpoint import load_checkpoint
from kslim_runner.train.config import TrainConfig, iterations_for, lr_factor
from kslim_runner.train.detector import train_detector
from kslim_runner.train.ema import ModelEMA


def test_warmup_then_cosine() -> None:
    f = [lr_factor(s, 100, 10, 0.05) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in pairwise(f[:11]))
    assert all(a >= b for a, b in pairwise(f[10:]))
    assert f[100] == pytest.approx(0.05)


def test_iterations_from_epochs() -> None:
    assert iterations_for(2, None, 10, 4) == 6
    assert iterations_for(None, 7, 10, 4) == 7


def test_a_resumed_sampler_continues_the_same_stream() -> None:
    full = list(ResumableBatchSampler(10, 3, seed=5, steps=8))
    resumed = list(ResumableBatchSampler(10, 3, seed=5, start_step=5, steps=3))
    assert full[5:] == resumed
    flat = [k % 10 for b in full[:3] for k in b]  # the first epoch is a permutation
    assert sorted(flat[:9]) == sorted(set(flat[:9]))


def test_ema_follows_the_weights() -> None:
    layer = paddle.nn.Linear(2, 2)
    ema = ModelEMA(layer, decay=0.5)
    before = ema.state["weight"].numpy().copy()
    layer.weight.set_value(layer.weight + 1.0)
    ema.update(layer)
    after = ema.state["weight"].numpy()
    assert np.all(after > before) and np.all(after < layer.weight.numpy())


def test_workers_decode_and_a_bad_image_names_its_file(tiny_data: Path, tmp_path: Path) -> None:
    index = load_coco(tiny_data / "train" / "annotations.json", tiny_data / "train" / "images", 3)
    batches = list(train_loader(index, 64, 4, seed=0, workers=2, start_step=0, steps=2))
    image, gt_box, gt_label, bad = batches[0]
    assert (bad.numpy() == -1).all()
    assert image.shape == [4, 3, 64, 64] and gt_box.shape == [4, 50, 4] and gt_label.dtype == paddle.int32
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    index.files = [bad] * len(index.files)
    with pytest.raises(UserError) as e:
        for batch in train_loader(index, 64, 4, seed=0, workers=2, start_step=0, steps=1):
            check_batch(index, batch[3])
    assert str(bad) in e.value.summary and "\n" not in e.value.summary


def test_training_checkpoints_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    index = load_coco(tiny_data / "train" / "annotations.json", tiny_data / "train" / "images", 3)
    cfg = TrainConfig(
        iterations=6, batch_size=2, workers=0, log_every=2, checkpoint_every=2, warmup_iterations=1
    )
    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25))
    first = train_detector(det, index, TrainConfig(**{**cfg.__dict__, "iterations": 6}), tmp_path, stage="t")
    assert first.steps_run == 6 and first.final_loss is not None and np.isfinite(first.final_loss)
    ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert ckpt is not None and ckpt.step == 4  # the last one before the end
    again = train_detector(build_detector(det.config), index, cfg, tmp_path, stage="t")
    assert again.start_step == 4 and again.steps_run == 2


def test_piecewise_schedule_with_linear_warmup_matches_paddledetection() -> None:
    """LinearWarmup(steps=4, start_factor=0) + PiecewiseDecay(gamma=0.1, milestones at steps 10, 15)."""
    from kslim_runner.train.config import schedule_factor

    cfg = TrainConfig(
        iterations=20,
        warmup_iterations=4,
        warmup_start_factor=0.0,
        lr_schedule="piecewise",
        decay_steps=(10, 15),
        decay_gamma=0.1,
    )
    f = [round(schedule_factor(cfg, s), 6) for s in (0, 2, 4, 9, 10, 14, 15, 19)]
    assert f == [0.0, 0.5, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]


def test_step_train_config_takes_every_fine_tune_field() -> None:
    from kslim_api.v1alpha1 import FineTuneSpec, TrainSpec
    from kslim_runner.train.config import step_train_config

    ft = FineTuneSpec(
        epochs=5,
        batch_size=10,
        optimizer="momentum",
        momentum="0.8",
        weight_decay="0.0001",
        warmup_iterations=3,
        warmup_start_factor="0",
        lr_schedule="piecewise",
        decay_epochs=[3, 4],
        decay_gamma="0.5",
        grad_clip_norm="35",
        learning_rate="0.01",
    )
    cfg = step_train_config(TrainSpec(), ft, n_images=100)
    assert (cfg.iterations, cfg.batch_size, cfg.optimizer, cfg.momentum) == (50, 10, "momentum", 0.8)
    assert (cfg.warmup_iterations, cfg.warmup_start_factor, cfg.decay_steps) == (3, 0.0, (30, 40))
    assert (cfg.decay_gamma, cfg.grad_clip_norm, cfg.learning_rate, cfg.weight_decay) == (
        0.5,
        35.0,
        0.01,
        0.0001,
    )
