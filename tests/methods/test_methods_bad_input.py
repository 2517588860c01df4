"""Compression settings a user can get wrong fail with exit 2 and one line saying what to fix,
before the pipeline starts (no stage has run, nothing was trained)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import paddle
import pytest
from kslim_runner.models import DetectorConfig, build_detector
from methods_helpers import export_tiny_inference_model
from support.runs import run_fails


def _fails(job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out"
    line = run_fails(job, out, capsys)
    state = json.loads((out / "state.json").read_text()) if (out / "state.json").exists() else {"done": {}}
    assert state["done"] == {}  # failed before the first stage
    term = json.loads((tmp_path / "termination-log").read_text())
    assert term["outcome"] == "Failed" and term["reason"] in (
        "InvalidSpec",
        "TeacherMismatch",
        "InvalidModel",
    )
    return line


def _prune(**kw: Any) -> list[dict[str, Any]]:
    return [{"prune": {"criterion": "fpgm", **kw}}]


def test_a_ratio_that_empties_a_conv(make_job, tmp_path: Path, capsys) -> None:
    line = _fails(make_job(_prune(ratios={"conv2d_0.w_0": "0.95"})), tmp_path, capsys)
    assert "ratio 0.95 would remove all 8 filters of conv2d_0.w_0 (backbone.conv1.conv.weight)" in line
    assert "zero channels" in line and "at most 0.87" in line


def test_params_that_match_nothing(make_job, tmp_path: Path, capsys) -> None:
    line = _fails(make_job(_prune(ratio="0.3", params=["backbone.nope.*"])), tmp_path, capsys)
    assert "prune.params: 'backbone.nope.*' matches no parameter of this model" in line


def test_params_that_match_only_head_convs(make_job, tmp_path: Path, capsys) -> None:
    line = _fails(make_job(_prune(ratio="0.3", params=["heads.*"])), tmp_path, capsys)
    assert "prune.params names only parameters that cannot be pruned" in line and "head output convs" in line


def test_a_flops_target_out_of_reach(make_job, tmp_path: Path, capsys) -> None:
    job = make_job(_prune(targetFlopsReduction="0.9", params=["neck.blocks.2.*"]))
    line = _fails(job, tmp_path, capsys)
    assert "targetFlopsReduction 0.9 cannot be reached" in line


def test_qat_layer_types_that_select_nothing(make_job, tmp_path: Path, capsys) -> None:
    line = _fails(make_job([{"qat": {"quantizableLayerTypes": ["Linear"]}}]), tmp_path, capsys)
    assert "quantizableLayerTypes ['Linear'] selects no layer" in line


def test_a_teacher_with_other_classes(make_job, tmp_path: Path, capsys) -> None:
    job = make_job(
        [
            {
                "distill": {
                    "teacher": {
                        "architecture": "yolov3_mobilenet_v1",
                        "width": "0.5",
                        "weights": {"uri": "file://teacher.pdparams"},
                    }
                }
            }
        ]
    )
    teacher = build_detector(DetectorConfig("yolov3_mobilenet_v1", 5, 96, 0.5))
    paddle.save(teacher.state_dict(), str(tmp_path / "teacher.pdparams"))
    line = _fails(job, tmp_path, capsys)
    assert "predicts 5 classes but the student predicts 3" in line


def test_calibration_data_smaller_than_the_batches(make_job, tmp_path: Path, capsys) -> None:
    line = _fails(make_job([{"ptq": {"batchNum": 10, "batchSize": 4}}]), tmp_path, capsys)
    assert "batchNum x batchSize = 10 x 4 = 40 images, but dataset.train has 24" in line


class _NoConv(paddle.nn.Layer):
    """A 'detector' without a single conv or matmul: nothing PTQ could quantize."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, image: paddle.Tensor, im_shape: paddle.Tensor, scale_factor: paddle.Tensor) -> tuple:
        score = image.mean(axis=[1, 2, 3]).unsqueeze(1) * self.gain
        boxes = paddle.concat([paddle.zeros_like(score), score, im_shape, im_shape * scale_factor], axis=1)
        return boxes, paddle.ones([1], "int32")


def test_ptq_of_a_model_without_quantizable_ops(make_job, tmp_path: Path, tiny_weights: Path, capsys) -> None:
    from kslim_runner.models.export import input_spec

    model = {"inferenceModel": {"uri": "file://noconv"}, "architecture": None, "width": None, "weights": None}
    job = make_job([{"ptq": {"batchNum": 2, "batchSize": 4}}], model=model)
    ref = export_tiny_inference_model(tmp_path / "ref", tiny_weights)
    static = paddle.jit.to_static(_NoConv(), input_spec=input_spec(96), full_graph=True)
    paddle.jit.save(static, str(tmp_path / "noconv" / "model"))
    shutil.copy(ref / "infer_cfg.yml", tmp_path / "noconv" / "infer_cfg.yml")
    line = _fails(job, tmp_path, capsys)
    assert "has no quantizable ops" in line
