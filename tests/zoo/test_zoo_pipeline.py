"""A CompressionJob on a PaddleDetection config (model.config + PaddleDetection-named weights) runs
the runner's whole pipeline through ppdet: prune with the Paddle parameter names PaddleDetection's
prune configs use, QAT, PTQ; every row exported with PaddleDetection's signature and evaluated with
pycocotools. Bad input ends with exit 2 and one line, before anything long and without a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kslim_api.contract import EXIT_OK
from kslim_runner.run import run_command
from support.runs import run_fails

pytestmark = pytest.mark.slow


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_prune_then_qat_on_a_paddledetection_config(make_zoo_job, tmp_path: Path) -> None:
    extra = "pretrain_weights: https://example.invalid/MobileNetV1_pretrained.pdparams\n"
    job = make_zoo_job(
        [
            # conv2d_N.w_0: PaddleDetection's prune configs name Paddle's generated parameter names
            {
                "prune": {
                    "criterion": "fpgm",
                    "ratio": "0.3",
                    "params": ["conv2d_2[0-9].w_0"],
                    "fineTune": {"iterations": 2},
                }
            },
            {"qat": {"fineTune": {"iterations": 2}}},
        ],
        config_extra=extra,
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    report = _report(out)
    base, pruned, qat = report["rows"]
    assert report["model"] == "yolov3_mbv1_tiny"
    assert any("pretrain_weights" in n and "not used" in n for n in base["notes"])
    assert pruned["gflops"] < base["gflops"] and pruned["params"] < base["params"]
    assert qat["cost"]["quantized"] and "int8" in qat["latencyMs"]
    for row in report["rows"]:
        assert 0.0 <= row["ap"] <= 1.0
    state = json.loads((out / "state.json").read_text())
    layout = json.loads((out / state["rows"][1]["model"]["layout"]).read_text())
    assert layout["ratios"] and all(name.startswith("conv2d_2") for name in layout["ratios"])
    infer = yaml.safe_load((out / state["rows"][0]["export_dir"] / "infer_cfg.yml").read_text())
    assert infer["arch"] == "YOLO" and infer["label_list"] == ["circle", "square", "triangle"]
    assert infer["Preprocess"][0]["target_size"] == [96, 96]


def test_ptq_on_a_paddledetection_config(make_zoo_job, tmp_path: Path) -> None:
    job = make_zoo_job([{"ptq": {"batchNum": 2, "batchSize": 2}}])
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    base, ptq = _report(out)["rows"]
    assert ptq["cost"]["quantized"] and ptq["sizeBytes"] < base["sizeBytes"] / 2


def test_baseline_trains_from_scratch_through_the_configs_reader(make_zoo_job, tmp_path: Path) -> None:
    job = make_zoo_job(
        [{"prune": {"criterion": "l1_norm", "ratio": "0.2", "fineTune": {"iterations": 1}}}], weights=None
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    base = _report(out)["rows"][0]
    assert base["train"]["iterations"] == 2 and base["train"]["final_loss"] is not None


def test_bad_inputs_end_with_one_line(make_zoo_job, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    job = make_zoo_job([{"qat": {}}], config={"uri": "file://configs/yolov3/missing.yml"})
    assert "missing.yml not found" in run_fails(job, out, capsys)

    job = make_zoo_job(
        [{"qat": {}}], weights=None, config_extra="pretrain_weights: https://x.invalid/w.pdparams\n"
    )
    line = run_fails(job, out, capsys)
    assert "download pretrain_weights from https://x.invalid/w.pdparams" in line and "model.weights" in line

    job = make_zoo_job([{"qat": {}}], numClasses=4)
    assert "yolo_head.yolo_output.0.weight has shape [24," in run_fails(job, out, capsys)

    job = make_zoo_job([{"prune": {"criterion": "fpgm", "ratio": "0.3", "params": ["conv2d_999.w_0"]}}])
    assert "conv2d_999.w_0" in run_fails(job, out, capsys)

    job = make_zoo_job([{"qat": {}}], config_extra="YOLOv3: {backbone: NoSuchNet}\n")
    assert "YOLOv3.backbone is NoSuchNet" in run_fails(job, out, capsys)
