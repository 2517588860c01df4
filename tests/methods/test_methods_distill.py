"""Distillation adds a teacher term to the student's loss: the term is there, it changes the
student's gradients (and only the student's), the feature option trains adapters, and a job
distills from given teacher weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_runner.data.coco import load_coco
from kslim_runner.methods.distill_loss import DistillLoss, DistillStudent, yolov3_distill_loss
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.pipeline.models import load_row_model
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.detector import train_detector
from kslim_runner.train.loop import default_loss
from methods_helpers import run_steps


def _batch() -> list[paddle.Tensor]:
    rng = np.random.default_rng(0)
    image = paddle.to_tensor(rng.standard_normal((2, 3, 96, 96)).astype(np.float32))
    gt_box = paddle.to_tensor(np.array([[[0.5, 0.5, 0.3, 0.2], [0.3, 0.3, 0.2, 0.2]]] * 2, np.float32))
    gt_label = paddle.to_tensor(np.array([[1, 2]] * 2, np.int32))
    return [image, gt_box, gt_label]


def _models(teacher_arch: str = "yolov3_mobilenet_v1", width: float = 0.5) -> tuple:
    paddle.seed(1)
    student = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    teacher = build_detector(DetectorConfig(teacher_arch, 3, 96, width))
    return student, teacher


def _head_grad(wrapper: DistillStudent, loss_fn, batch) -> np.ndarray:
    wrapper.train()
    wrapper.clear_gradients()
    loss = loss_fn(wrapper, batch)
    loss.backward()
    return wrapper.student.heads[0].weight.grad.numpy().copy(), float(loss)


def test_the_loss_includes_the_teacher_term_and_changes_the_student_gradients() -> None:
    student, teacher = _models()
    batch = _batch()
    wrapper = DistillStudent(student, None)
    g_plain, plain = _head_grad(wrapper, default_loss, batch)
    g_dist, total = _head_grad(wrapper, DistillLoss(teacher, "yolov3", 1000.0), batch)
    with paddle.no_grad():
        term = float(yolov3_distill_loss(student(batch[0]), teacher(batch[0]), 3))
    assert term > 0
    assert total == pytest.approx(plain + 1000.0 * term, rel=1e-4)
    assert np.abs(g_dist - g_plain).max() > 1e-3 * np.abs(g_plain).max()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher is frozen


def test_a_student_equal_to_its_teacher_gets_no_soft_target_pull() -> None:
    """Box and class terms are soft-target BCE / L1: zero gradient where student == teacher."""
    student, _ = _models()
    twin = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    twin.set_state_dict(student.state_dict())
    image = _batch()[0]
    student.eval()
    twin.eval()
    outs = student(image)
    loss = yolov3_distill_loss(outs, twin(image), 3)
    grads = paddle.grad(loss, outs)
    for g in grads:
        box_cls = g.reshape([2, 3, 8, *g.shape[2:]])[:, :, [0, 1, 5, 6, 7]]
        assert float(box_cls.abs().max()) < 1e-6


def test_feature_loss_trains_adapters_to_the_teachers_channels() -> None:
    student, teacher = _models("yolov3_resnet34", 1.0)
    wrapper = DistillStudent(student, teacher.neck.out_channels)
    assert [a.weight.shape[:2] for a in wrapper.adapters] == [[1024, 256], [512, 128], [256, 64]]
    loss = DistillLoss(teacher, "yolov3+feature", 1000.0)(wrapper, _batch())
    loss.backward()
    assert all(a.weight.grad is not None and float(a.weight.grad.abs().sum()) > 0 for a in wrapper.adapters)


def test_feature_distillation_takes_optimizer_steps(tiny_data: Path, tmp_path: Path) -> None:
    """The adapters' parameter names differ from the student's (the optimizer keys its moments by
    name), so a feature-distillation run steps like any other."""
    index = load_coco(tiny_data / "train" / "annotations.json", tiny_data / "train" / "images", 3)
    student, teacher = _models()
    wrapper = DistillStudent(student, teacher.neck.out_channels)
    names = [p.name for p in wrapper.parameters()]
    assert len(set(names)) == len(names)
    cfg = TrainConfig(iterations=2, batch_size=2, workers=0, warmup_iterations=1)
    result = train_detector(
        wrapper, index, cfg, tmp_path, stage="distill", loss_fn=DistillLoss(teacher, "feature", 1000.0)
    )
    assert result.steps_run == 2 and np.isfinite(result.final_loss)


def test_a_job_distills_from_given_teacher_weights(staged, tmp_path: Path) -> None:
    _, teacher = _models()
    (tmp_path / "teacher").mkdir()
    paddle.save(teacher.state_dict(), str(tmp_path / "teacher" / "t.pdparams"))
    spec = {
        "teacher": {
            "architecture": "yolov3_mobilenet_v1",
            "width": "0.5",
            "weights": {"uri": "file://teacher/t.pdparams"},
        },
        "weight": "1000",
        "fineTune": {"iterations": 2},
    }
    ctx = staged([{"distill": spec}])
    run_steps(ctx, export=False)
    row = ctx.rows[-1]
    assert row.method == "distill" and row.train["iterations"] == 2
    assert row.model["kind"] == "detector" and row.model["weights"].endswith("step1-distill/model.pdparams")
    det = load_row_model(row.model, ctx.path)
    base = load_row_model(ctx.rows[0].model, ctx.path)
    assert not np.allclose(det.heads[0].weight.numpy(), base.heads[0].weight.numpy())
    assert "teacher yolov3_mobilenet_v1 from file://teacher/t.pdparams" in row.notes
