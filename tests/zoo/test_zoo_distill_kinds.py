"""PaddleDetection's own distillations through whole CompressionJobs, on kslim's configs of the
architectures PaddleDetection pairs them with (made tiny): CWD and FGD on RetinaNet (one job,
sharing the teacher), LD on GFL, PPYOLOEDistill from a PP-YOLOE+ teacher to a narrower PP-YOLOE+.
Each ends with the usual report (AP measured on the exported model). One training step of each
kind shows what trains (the student, never the teacher); CWD also on GFL. A pair a kind cannot
take ends with exit 2 and one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_api.contract import EXIT_OK
from kslim_api.v1alpha1 import DistillStep
from kslim_runner.data.coco import load_coco
from kslim_runner.errors import UserError
from kslim_runner.methods.distill_kinds import check_kind_pair
from kslim_runner.methods.distill_ppdet import KindLoss, PairedStudent
from kslim_runner.run import run_command
from kslim_runner.zoo.build import build_model
from kslim_runner.zoo.config import ZooSource
from kslim_runner.zoo.reader import ReaderBatches
from support.runs import run_fails
from zoo_helpers import SHORTHANDS, SIZE

pytestmark = pytest.mark.slow

#: kslim's configs the tiny ones include.
BASES = ("_retinanet.yml", "retinanet_r50_fpn.yml", "_gfl.yml", "gfl_r18vd.yml", "gfl_ld_r18vd.yml")
_RESNET = (
    "ResNet: {depth: 18, variant: d, norm_type: bn, freeze_at: -1, return_idx: [1, 2, 3], num_stages: 4}\n"
)
_GFL_HEAD = (
    "{conv_feat: {name: FCOSFeat, feat_in: %d, feat_out: %d, num_convs: 1, norm_type: gn}, feat_in_chan: %d}"
)
#: name -> (base, body): students narrower than their teachers, so the align convs are exercised too.
TINY = {
    "retinanet_student": (
        "retinanet_r50_fpn.yml",
        _RESNET
        + "FPN: {out_channel: 32}\nRetinaHead: {conv_feat: {name: RetinaFeat, feat_in: 32, feat_out: 32, "
        "num_convs: 1}}\n",
    ),
    "retinanet_teacher": (
        "retinanet_r50_fpn.yml",
        _RESNET
        + "FPN: {out_channel: 48}\nRetinaHead: {conv_feat: {name: RetinaFeat, feat_in: 48, feat_out: 48, "
        "num_convs: 1}}\n",
    ),
    "gfl_student": (
        "gfl_r18vd.yml",
        _RESNET + "FPN: {out_channel: 32}\nGFLHead: " + _GFL_HEAD % (32, 32, 32) + "\n",
    ),
    "gfl_ld_student": (
        "gfl_ld_r18vd.yml",
        _RESNET + "FPN: {out_channel: 32}\nLDGFLHead: " + _GFL_HEAD % (32, 32, 32) + "\n",
    ),
    "gfl_teacher": (
        "gfl_r18vd.yml",
        _RESNET + "FPN: {out_channel: 64}\nGFLHead: " + _GFL_HEAD % (64, 64, 64) + "\n",
    ),
    "ppyoloe_student": ("ppyoloe_plus_crn_s.yml", "depth_mult: 0.33\nwidth_mult: 0.125\n"),
    "ppyoloe_teacher": ("ppyoloe_plus_crn_s.yml", "depth_mult: 0.33\nwidth_mult: 0.25\n"),
}


def kinds_tree(root: Path) -> dict[str, Path]:
    """root/configs/{_base_/<kslim's configs>, tiny/<name>.yml}: each tiny config's path."""
    base = root / "configs" / "_base_"
    base.mkdir(parents=True, exist_ok=True)
    for name in (*BASES, "ppyoloe_plus_crn_s.yml"):
        shutil.copy(SHORTHANDS / name, base / name)
    out = {}
    for name, (parent, body) in TINY.items():
        path = root / "configs" / "tiny" / f"{name}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"_BASE_: ['../_base_/{parent}']\n{body}")
        out[name] = path
    return out


def _source(path: Path) -> ZooSource:
    return ZooSource(str(path), path.stem, 3, SIZE)


@pytest.fixture(scope="session")
def kinds_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of freshly initialised weights, <name>.pdparams for every tiny config."""
    root = tmp_path_factory.mktemp("kinds-weights")
    for i, (name, path) in enumerate(kinds_tree(root).items()):
        paddle.seed(i)
        paddle.save(build_model(_source(path)).state_dict(), str(root / f"{name}.pdparams"))
    return root


@pytest.fixture
def kinds_job(make_zoo_job, tmp_path: Path, kinds_weights: Path) -> Callable[..., Path]:
    """kinds_job(student, strategy) -> job.yaml: the tiny student with its weights, the tree and
    every teacher's weights beside it."""

    def make(student: str, strategy: list[dict]) -> Path:
        job = make_zoo_job(
            strategy,
            config={"uri": f"file://configs/tiny/{student}.yml"},
            weights={"uri": f"file://weights/{student}.pdparams"},
        )
        kinds_tree(tmp_path)
        for f in kinds_weights.glob("*.pdparams"):
            shutil.copy(f, tmp_path / "weights" / f.name)
        return job

    return make


def _teacher(name: str) -> dict:
    return {
        "config": {"uri": f"file://configs/tiny/{name}.yml"},
        "weights": {"uri": f"file://weights/{name}.pdparams"},
    }


def _distill(loss: str, teacher: str, **settings) -> dict:
    return {
        "distill": {"teacher": _teacher(teacher), "loss": loss, "fineTune": {"iterations": 2}, **settings}
    }


def _check_rows(out: Path, student: str, labels: list[str]) -> list[dict]:
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["label"] for r in rows[1:]] == labels
    base = rows[0]
    weights = paddle.load(str(out.parent / "weights" / f"{student}.pdparams"))
    state = json.loads((out / "state.json").read_text())
    for row, saved in zip(rows[1:], state["rows"][1:], strict=True):
        assert isinstance(row["ap"], float) and 0.0 <= row["ap"] <= 1.0  # the exported model, evaluated
        assert row["gflops"] == base["gflops"]  # distillation keeps the structure
        assert row["train"]["iterations"] == 2
        distilled = paddle.load(str(out / saved["model"]["weights"]))
        assert set(distilled) == set(weights)  # the student's own names: no loss modules, no teacher
        assert any(not np.allclose(distilled[k].numpy(), weights[k].numpy()) for k in weights)
    return rows


def test_cwd_and_fgd_distil_a_retinanet_from_one_teacher(kinds_job, tmp_path: Path) -> None:
    job = kinds_job(
        "retinanet_student",
        [
            _distill("cwd", "retinanet_teacher", cwd={"tau": "1.0", "weight": "5.0", "levels": 3}),
            _distill("fgd", "retinanet_teacher"),
        ],
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    rows = _check_rows(
        out,
        "retinanet_student",
        ["Distillation (retinanet_teacher, cwd)", "Distillation (retinanet_teacher, fgd)"],
    )
    notes = rows[1]["notes"] + rows[2]["notes"]
    assert (
        "distillation loss cwd (PaddleDetection's implementation): tau 1.0, weight 5.0, normalize False, "
        "levels 3" in notes
    )
    assert any(
        n.startswith("distillation loss fgd (PaddleDetection's implementation): temp 0.5") for n in notes
    )


def test_ld_distils_a_gfl(kinds_job, tmp_path: Path) -> None:
    job = kinds_job("gfl_ld_student", [_distill("ld", "gfl_teacher")])
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    _check_rows(out, "gfl_ld_student", ["Distillation (gfl_teacher, ld)"])


def test_ppyoloe_distils_a_narrower_ppyoloe_plus(kinds_job, tmp_path: Path) -> None:
    job = kinds_job("ppyoloe_student", [_distill("ppyoloe", "ppyoloe_teacher")])
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    _check_rows(out, "ppyoloe_student", ["Distillation (ppyoloe_teacher, ppyoloe)"])


@pytest.mark.parametrize(
    ("kind", "student", "teacher", "settings"),
    [
        ("cwd", "gfl_student", "gfl_teacher", {}),
        ("ppyoloe", "ppyoloe_student", "ppyoloe_teacher", {"ppyoloe": {"featDistiller": "cwd"}}),
        ("ld", "gfl_ld_student", "gfl_teacher", {}),
    ],
)
def test_one_step_trains_the_student_and_never_the_teacher(
    kind: str, student: str, teacher: str, settings: dict, zoo_data: Path, tmp_path: Path
) -> None:
    paths = kinds_tree(tmp_path)
    paddle.seed(0)
    s_model, t_model = build_model(_source(paths[student])), build_model(_source(paths[teacher]))
    step = DistillStep.model_validate(
        {"teacher": {"config": {"uri": "file://t.yml"}}, "loss": kind, **settings}
    )
    check_kind_pair(kind, step.loss_settings(), s_model, t_model, student, teacher)
    wrapper = PairedStudent(s_model, t_model, kind, step.loss_settings())
    index = load_coco(zoo_data / "train" / "annotations.json", zoo_data / "train" / "images", 3)
    batches = iter(
        ReaderBatches(s_model.config, index).loader(batch_size=4, seed=0, workers=0, start_step=0, steps=2)
    )
    wrapper.train()
    t_before = {k: v.numpy().copy() for k, v in t_model.state_dict().items()}
    for _ in range(2):  # twice: nothing one step leaves behind (an assignment) may break the next
        batch = next(batches)
        loss = KindLoss()(wrapper, batch)
        assert np.isfinite(float(loss))
        wrapper.clear_gradients()
        loss.backward()
    grads = [p.grad for p in s_model.parameters() if not p.stop_gradient]
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    assert all(p.grad is None for p in t_model.parameters())
    assert all(
        p.stop_gradient for p in wrapper.terms.parameters()
    )  # as PaddleDetection: only the student trains
    assert all(np.array_equal(v.numpy(), t_before[k]) for k, v in t_model.state_dict().items())


def test_a_pair_a_kind_cannot_take_ends_with_one_line(
    kinds_job, make_zoo_job, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    job = kinds_job("retinanet_student", [_distill("fgd", "gfl_teacher")])
    line = run_fails(job, out, capsys)
    assert (
        "distill cannot use the teacher gfl_teacher: it is a GFL with a GFLHead; distill.loss fgd runs on "
        "RetinaNet" in line
    )

    # CWD on a YOLOv3 student (the default tiny config of make_zoo_job; the tree above stays)
    job = make_zoo_job([_distill("cwd", "retinanet_teacher")])
    line = run_fails(job, out, capsys)
    assert "distill cannot use the student yolov3_mbv1_tiny: it is a YOLOv3 with a YOLOv3Head" in line

    # LD needs the student's head to take the teacher's soft targets
    job = kinds_job("gfl_student", [_distill("ld", "gfl_teacher")])
    line = run_fails(job, out, capsys)
    assert "the student gfl_student: its head is a GFLHead; distill.loss ld needs an LDGFLHead" in line

    # a teacher that is not a detector: a reader config without an architecture
    reader = tmp_path / "configs" / "tiny" / "reader_only.yml"
    reader.write_text("TrainReader: {batch_size: 2}\n")
    teacher = {"config": {"uri": "file://configs/tiny/reader_only.yml"}}
    job = kinds_job("retinanet_student", [{"distill": {"teacher": teacher, "loss": "cwd"}}])
    line = run_fails(job, out, capsys)
    assert "reader_only.yml names no `architecture`" in line


def test_check_refuses_unlike_retinanet_maps(tmp_path: Path) -> None:
    paths = kinds_tree(tmp_path)
    student = build_model(_source(paths["retinanet_student"]))
    teacher = build_model(_source(paths["retinanet_teacher"]))
    step = DistillStep.model_validate(
        {"teacher": {"config": {"uri": "file://t.yml"}}, "loss": "fgd", "fgd": {"levels": 6}}
    )
    with pytest.raises(UserError, match=r"distill\.fgd\.levels is 6 but the student s has 5 neck levels"):
        check_kind_pair("fgd", step.loss_settings(), student, teacher, "s", "t")
