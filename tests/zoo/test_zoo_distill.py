"""distill on a PaddleDetection student (model.config) with a PaddleDetection teacher config: the
student trains on its own ppdet loss plus DistillYOLOv3Loss (and the neck-feature term) against a
teacher given with weights or trained first in the job; a distilled model prunes, a pruned one
distills (in data-parallel workers too). A teacher that does not fit ends with exit 2 and one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_api.contract import EXIT_OK
from kslim_runner.data.coco import load_coco
from kslim_runner.methods.common import quiet_paddleslim
from kslim_runner.methods.distill_loss import (
    DistillLoss,
    DistillTask,
    feature_distill_loss,
    yolov3_distill_loss,
)
from kslim_runner.methods.distill_zoo import ZooDistillStudent, check_pair, neck_channels, teacher_maps
from kslim_runner.methods.prune import make_pruner
from kslim_runner.methods.prune_plan import drop_backups
from kslim_runner.run import run_command
from kslim_runner.train import distributed
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.detector import train_detector
from kslim_runner.zoo.build import build_model
from kslim_runner.zoo.config import ZooSource
from kslim_runner.zoo.reader import ReaderBatches
from support.runs import run_fails
from zoo_helpers import SIZE, config_tree, teacher_tree

pytestmark = pytest.mark.slow

TEACHER_URI = "file://configs/yolov3/yolov3_mobilenet_teacher.yml"
R34_URI = "file://configs/yolov3/yolov3_resnet34_teacher.yml"


@pytest.fixture(scope="session")
def teacher_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PaddleDetection-named weights of the MobileNet-0.5 teacher config (3 classes)."""
    root = tmp_path_factory.mktemp("zoo-teacher")
    paddle.seed(3)
    model = build_model(ZooSource(str(teacher_tree(root, "mobilenet")), "teacher", 3, SIZE))
    path = root / "teacher.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path


@pytest.fixture
def distill_job(make_zoo_job, tmp_path: Path, teacher_weights: Path) -> Callable[..., Path]:
    """make_zoo_job plus both teacher configs in the tree and the teacher's weights."""

    def make(strategy: list[dict], **model) -> Path:
        job = make_zoo_job(strategy, **model)
        teacher_tree(tmp_path, "mobilenet")
        teacher_tree(tmp_path, "resnet34")
        shutil.copy(teacher_weights, tmp_path / "weights" / "teacher.pdparams")
        return job

    return make


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_the_student_trains_on_its_own_loss_plus_the_teacher_terms(zoo_data: Path, tmp_path: Path) -> None:
    paddle.seed(0)
    student = build_model(ZooSource(str(config_tree(tmp_path)), "student", 3, SIZE))
    # the seed's pair: YOLOv3-MobileNetV1 learning from YOLOv3-ResNet34
    teacher = build_model(ZooSource(str(teacher_tree(tmp_path, "resnet34")), "teacher", 3, SIZE))
    check_pair(student, teacher, "student", "teacher")
    index = load_coco(zoo_data / "train" / "annotations.json", zoo_data / "train" / "images", 3)
    loader = ReaderBatches(student.config, index).loader(
        batch_size=4, seed=0, workers=0, start_step=0, steps=1
    )
    batch = next(iter(loader))
    wrapper = ZooDistillStudent(student, neck_channels(teacher))
    assert [a.weight.shape[:2] for a in wrapper.adapters] == [[1024, 1024], [512, 512], [256, 256]]
    wrapper.train()
    own = float(student(dict(batch))["loss"])
    feats, outs, loss = wrapper(dict(batch))
    assert float(loss) == pytest.approx(own, rel=1e-5)  # the student's own ppdet loss, one forward pass
    assert [o.shape for o in outs] == [[4, 24, 3, 3], [4, 24, 6, 6], [4, 24, 12, 12]]

    t_feats, t_outs = teacher_maps(teacher, dict(batch))
    terms = float(yolov3_distill_loss(outs, t_outs, 3)) + float(feature_distill_loss(feats, t_feats))
    wrapper.clear_gradients()
    total = DistillLoss(teacher, "yolov3+feature", 1000.0)(wrapper, dict(batch))
    assert terms > 0 and float(total) == pytest.approx(own + 1000.0 * terms, rel=1e-3)
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher is frozen
    assert all(float(a.weight.grad.abs().sum()) > 0 for a in wrapper.adapters)
    g_dist = student.yolo_head.yolo_outputs[0].weight.grad.numpy().copy()
    wrapper.clear_gradients()
    wrapper(dict(batch))[2].backward()
    g_plain = student.yolo_head.yolo_outputs[0].weight.grad.numpy()
    assert np.abs(g_dist - g_plain).max() > 1e-3 * np.abs(g_plain).max()


def test_distill_from_given_teacher_weights_then_prune(distill_job, tmp_path: Path) -> None:
    teacher = {"config": {"uri": TEACHER_URI}, "weights": {"uri": "file://weights/teacher.pdparams"}}
    job = distill_job(
        [
            {"distill": {"teacher": teacher, "weight": "100", "fineTune": {"iterations": 2}}},
            {
                "prune": {
                    "criterion": "l1_norm",
                    "ratio": "0.3",
                    "params": ["conv2d_2[0-9].w_0"],
                    "fineTune": {"iterations": 1},
                }
            },
        ],
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    report = _report(out)
    base, distilled, pruned = report["rows"]
    assert distilled["method"] == "distill"
    assert distilled["label"] == "Distillation (yolov3_mobilenet_teacher, yolov3)"
    assert "teacher yolov3_mobilenet_teacher from file://weights/teacher.pdparams" in distilled["notes"]
    assert distilled["train"]["iterations"] == 2
    assert distilled["gflops"] == base["gflops"] and pruned["gflops"] < distilled["gflops"]
    for row in report["rows"]:
        assert 0.0 <= row["ap"] <= 1.0
    state = json.loads((out / "state.json").read_text())
    d_model, p_model = state["rows"][1]["model"], state["rows"][2]["model"]
    assert d_model["kind"] == "ppdet" and d_model["weights"].endswith("step1-distill/model.pdparams")
    assert p_model["kind"] == "prune" and p_model["source"] == d_model
    distilled_weights = paddle.load(str(out / d_model["weights"]))
    base_weights = paddle.load(str(tmp_path / "weights" / "ppdet.pdparams"))
    key = "yolo_head.yolo_output.0.weight"
    assert set(distilled_weights) == set(base_weights)  # the student's own names, no adapters
    assert not np.allclose(distilled_weights[key].numpy(), base_weights[key].numpy())


def test_distill_from_a_teacher_trained_in_the_job(distill_job, tmp_path: Path) -> None:
    teacher = {"config": {"uri": TEACHER_URI}}
    job = distill_job(
        [{"distill": {"teacher": teacher, "loss": "yolov3+feature", "fineTune": {"iterations": 2}}}]
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    base, distilled = _report(out)["rows"]
    assert distilled["gflops"] == base["gflops"]  # distillation keeps the structure
    notes = distilled["notes"]
    assert any("teacher yolov3_mobilenet_teacher trained in this job for 2 steps" in n for n in notes), notes
    assert any("(exported, fp32)" in n for n in notes)
    assert 0.0 <= distilled["ap"] <= 1.0
    state = json.loads((out / "state.json").read_text())
    assert state["rows"][1]["model"]["weights"].endswith("step1-distill/model.pdparams")
    assert (out / "stages" / "step1-distill" / "teacher" / "model.pdparams").is_file()  # kept for a resume


def _prune_neck_outputs(model: paddle.nn.Layer) -> None:
    """Half the filters of the convs whose maps the head reads (the neck's `tip` convs)."""
    tips = [p.name for n, p in model.named_parameters() if ".tip." in n and n.endswith("conv.weight")]
    with quiet_paddleslim():
        make_pruner("l1_norm", model).prune_vars({name: 0.5 for name in tips}, 0)
    drop_backups(model)


def test_a_pruned_student_distills_in_two_processes(zoo_data: Path, tmp_path: Path, capfd) -> None:
    """Workers rebuild the PaddleDetection student (pruned shapes too), its adapters (from the
    pruned neck's channels to the teacher's) and the frozen teacher from a DistillTask."""
    paddle.seed(0)
    student = build_model(ZooSource(str(config_tree(tmp_path)), "student", 3, SIZE))
    teacher = build_model(ZooSource(str(teacher_tree(tmp_path, "mobilenet")), "teacher", 3, SIZE))
    _prune_neck_outputs(student)
    wrapper = ZooDistillStudent(student, neck_channels(teacher))
    assert [a.weight.shape[:2] for a in wrapper.adapters] == [[1024, 512], [512, 256], [256, 128]]
    loss = DistillLoss(teacher, "yolov3+feature", 100.0)
    task = distributed.worker_task(wrapper, loss, tmp_path)
    assert isinstance(task, DistillTask) and task.student.zoo and task.teacher.zoo
    index = load_coco(zoo_data / "train" / "annotations.json", zoo_data / "train" / "images", 3)
    before = {k: v.numpy().copy() for k, v in wrapper.state_dict().items()}
    teacher_before = {k: v.numpy().copy() for k, v in teacher.state_dict().items()}
    cfg = TrainConfig(iterations=2, batch_size=4, workers=0, warmup_iterations=1, processes=2)
    result = train_detector(wrapper, index, cfg, tmp_path, stage="distill", loss_fn=loss)
    assert "data parallel over 2 processes" in capfd.readouterr().out
    assert result.iterations == 2 and np.isfinite(result.final_loss)
    after = wrapper.state_dict()
    for key in ("adapters.0.weight", "student.yolo_head.yolo_output.0.weight"):
        assert not np.allclose(after[key].numpy(), before[key]), key
    assert all(np.array_equal(v.numpy(), teacher_before[k]) for k, v in teacher.state_dict().items())
    assert not list(tmp_path.glob(f"{distributed.PREFIX}*"))  # hand-over files removed


def test_a_teacher_that_does_not_fit_ends_with_one_line(distill_job, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    # the student's weights given as the ResNet-34 teacher's: the first key the teacher lacks is named
    teacher = {"config": {"uri": R34_URI}, "weights": {"uri": "file://weights/ppdet.pdparams"}}
    job = distill_job([{"distill": {"teacher": teacher}}])
    line = run_fails(job, out, capsys)
    assert (
        "error: distill.teacher.weights: " in line and "backbone.conv1.conv1_1.conv.weight is missing" in line
    )

    job = distill_job([{"distill": {"teacher": {"architecture": "yolov3_resnet34"}}}])
    line = run_fails(job, out, capsys)
    assert "the student is a PaddleDetection config" in line and "distill.teacher.config" in line

    job = distill_job([{"distill": {"teacher": {"config": {"uri": "file://configs/yolov3/none.yml"}}}}])
    assert "none.yml not found" in run_fails(job, out, capsys)
