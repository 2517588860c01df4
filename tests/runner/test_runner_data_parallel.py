"""Data-parallel training (train/distributed.py): gloo across CPU processes here, NCCL on GPUs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_api.v1alpha1 import QATStep
from kslim_runner.data.coco import CocoIndex, load_coco
from kslim_runner.data.loader import ResumableBatchSampler
from kslim_runner.errors import UserError
from kslim_runner.methods.distill_loss import DistillLoss, DistillStudent
from kslim_runner.methods.prune import make_pruner
from kslim_runner.methods.prune_plan import drop_backups
from kslim_runner.methods.prune_select import conv_weights
from kslim_runner.methods.qat import QATTask, quant_config, quantize
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.models.base import Detector
from kslim_runner.models.layout import layout_of
from kslim_runner.train import distributed
from kslim_runner.train.checkpoint import load_checkpoint
from kslim_runner.train.config import TrainConfig, train_config_from_spec
from kslim_runner.train.detector import train_detector
from kslim_runner.train.loop import default_loss

TINY = DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25)


def _cfg(**kw: object) -> TrainConfig:
    base = dict(iterations=6, batch_size=2, workers=0, log_every=2, checkpoint_every=2, warmup_iterations=1)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_ranks_split_each_global_batch_and_resume_exactly() -> None:
    full = list(ResumableBatchSampler(10, 3, seed=5, steps=8))  # one process, batch 3
    for start in (0, 2):
        ranks = [
            list(ResumableBatchSampler(10, 3, seed=5, start_step=start, steps=2, rank=r, world=2))
            for r in (0, 1)
        ]
        stream = [k for batch in full for k in batch]
        for step in range(2):
            both = ranks[0][step] + ranks[1][step]
            g = (start + step) * 6
            assert both == stream[g : g + 6]  # disjoint shares of one stream, in rank order


def test_the_job_setting_reaches_the_training_config() -> None:
    from kslim_api.v1alpha1 import TrainSpec

    assert train_config_from_spec(TrainSpec(dataParallel=2), 10).processes == 2
    assert train_config_from_spec(TrainSpec(), 10).processes is None  # auto: one per GPU
    assert distributed.resolve_processes(None) == max(1, distributed.gpu_count())
    assert distributed.resolve_processes(3) == 3


def _train_index(tiny_data: Path) -> CocoIndex:
    return load_coco(tiny_data / "train" / "annotations.json", tiny_data / "train" / "images", 3)


def _values(layer: paddle.nn.Layer) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _pruned() -> Detector:
    det = build_detector(TINY)
    pruner = make_pruner("l1_norm", det)
    pruner.prune_vars({name: 0.5 for name, _ in conv_weights(det)[:6]}, 0)
    drop_backups(det)
    return det


def test_only_a_rebuildable_detector_with_a_known_loss_spawns(tmp_path: Path) -> None:
    det = build_detector(TINY)
    assert distributed.worker_task(det, default_loss, tmp_path) is not None
    assert distributed.worker_task(det, lambda d, b, f=None: default_loss(d, b, f), tmp_path) is None
    assert (
        distributed.worker_task(_pruned(), default_loss, tmp_path) is not None
    )  # shapes differ, names do not
    wrapped = build_detector(TINY)
    wrapped.extra = paddle.nn.Linear(2, 2)  # a name the architecture does not have (as QAT adds)
    assert distributed.worker_task(wrapped, default_loss, tmp_path) is None
    teacher = build_detector(TINY)
    distill = DistillLoss(teacher, "yolov3", 1000.0)
    assert distributed.worker_task(DistillStudent(det, None), distill, tmp_path) is not None
    assert distributed.worker_task(DistillStudent(wrapped, None), distill, tmp_path) is None


def test_distillation_trains_in_two_processes(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The workers rebuild the pruned student, its feature adapters and the frozen teacher."""
    index = _train_index(tiny_data)
    paddle.seed(0)
    teacher = build_detector(TINY)
    teacher_before = _values(teacher)
    wrapper = DistillStudent(_pruned(), teacher.neck.out_channels)
    before = _values(wrapper)
    loss = DistillLoss(teacher, "yolov3+feature", 1000.0)
    cfg = _cfg(iterations=2, processes=2)
    result = train_detector(wrapper, index, cfg, tmp_path, stage="distill", loss_fn=loss)
    assert "data parallel over 2 processes" in capfd.readouterr().out
    assert result.steps_run == 2 and np.isfinite(result.final_loss)
    after = wrapper.state_dict()
    for name in ("student.heads.0.weight", "adapters.0.weight"):
        assert not np.allclose(after[name].numpy(), before[name]), name  # both trained
    assert all(np.array_equal(v.numpy(), teacher_before[k]) for k, v in teacher.state_dict().items())
    assert not list(tmp_path.glob("dp-*"))  # the teacher's hand-over file is gone too


def test_a_pruned_detector_fine_tunes_in_two_processes(tiny_data: Path, tmp_path: Path) -> None:
    index = _train_index(tiny_data)
    det = _pruned()
    shapes = layout_of(det)["shapes"]
    result = train_detector(det, index, _cfg(iterations=2, processes=2), tmp_path, stage="prune")
    assert result.steps_run == 2 and np.isfinite(result.final_loss)
    assert layout_of(det)["shapes"] == shapes  # the workers trained the pruned layout


def test_a_quantized_detector_fine_tunes_in_two_processes(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """QAT after pruning (a prune + QAT chain): the workers rebuild the pruned detector, quantize it
    alike and train weights, PACT clipping and activation scales."""
    index = _train_index(tiny_data)
    det = _pruned()
    config = quant_config(QATStep(pact=True))
    source = distributed.detection_task(det)
    assert source is not None  # a pruned detector is rebuildable
    task = QATTask(source, config)
    quantize(det, config)
    assert distributed.worker_task(det, default_loss, tmp_path) is None  # names a rebuild lacks
    before = _values(det)
    cfg = _cfg(iterations=2, processes=2)
    result = train_detector(det, index, cfg, tmp_path, stage="qat", task=task)
    assert "data parallel over 2 processes" in capfd.readouterr().out
    assert result.steps_run == 2 and np.isfinite(result.final_loss)
    after = det.state_dict()
    assert after.keys() == before.keys()
    conv = "backbone.conv1.conv._layer."
    for name in ("weight", "_act_preprocess.alpha", "_fake_quant_input._scale"):
        assert not np.allclose(after[conv + name].numpy(), before[conv + name]), name
    assert not list(tmp_path.glob("dp-*"))


def test_two_cpu_processes_train_checkpoint_and_resume(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    index = _train_index(tiny_data)
    paddle.seed(0)
    det = build_detector(TINY)
    before = _values(det)
    first = train_detector(det, index, _cfg(processes=2), tmp_path, stage="baseline")
    assert first.steps_run == 6 and np.isfinite(first.final_loss)
    assert not det.training  # ends in eval mode holding rank 0's (EMA) weights
    changed = [k for k, v in det.state_dict().items() if not np.allclose(v.numpy(), before[k])]
    assert len(changed) > len(before) // 2
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith('{"kslim"')]
    assert [x["step"] for x in lines] == [2, 4, 6]  # rank 0 alone reports
    ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert ckpt is not None and ckpt.step == 4
    assert not list(tmp_path.glob("dp-*"))  # the hand-over files are gone

    again = train_detector(build_detector(TINY), index, _cfg(processes=2), tmp_path, stage="baseline")
    assert again.start_step == 4 and again.steps_run == 2


def test_a_worker_user_error_ends_the_run_as_a_user_error(tiny_data: Path, tmp_path: Path) -> None:
    index = _train_index(tiny_data)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    index.files = [bad] * len(index.files)
    with pytest.raises(UserError) as e:
        train_detector(build_detector(TINY), index, _cfg(processes=2), tmp_path / "w", stage="baseline")
    assert str(bad) in e.value.summary


@pytest.mark.gpu
def test_nccl_across_gpus(tiny_data: Path, tmp_path: Path) -> None:
    if distributed.gpu_count() < 2:
        pytest.skip("needs two GPUs")
    index = _train_index(tiny_data)
    result = train_detector(build_detector(TINY), index, _cfg(processes=None), tmp_path, stage="baseline")
    assert result.steps_run == 6 and np.isfinite(result.final_loss)
