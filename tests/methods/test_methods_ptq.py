"""PTQ calibrates the exported model (built-in or any exported detector) into int8: quantize ops,
int8 weights, and it runs in Paddle Inference with oneDNN int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kslim_runner.measure.cost import model_cost
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.program import model_files
from kslim_runner.methods.quant_check import quant_summary
from methods_helpers import export_tiny_inference_model, op_counts, run_steps


def _runs_int8(model_dir: Path) -> None:
    pred = create_predictor(model_files(model_dir), PredictorOptions(precision="int8", threads=1))
    image = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    boxes, num = run_detector(pred, image, np.array([[96, 96]], np.float32), np.ones((1, 2), np.float32))
    assert boxes.shape[1] == 6 and num.shape == (1,)


def test_ptq_of_a_built_in_detector(staged, capfd) -> None:
    ctx = staged([{"ptq": {"algo": "hist", "batchNum": 2, "batchSize": 4}}])
    capfd.readouterr()
    run_steps(ctx)
    base, row = ctx.rows
    assert (base.name, row.name) == ("baseline", "step1-ptq")  # the baseline was exported first
    qdir = ctx.path(row.export_dir)
    assert op_counts(qdir)["quantize_linear"] > 0
    s = quant_summary(qdir)
    assert s.quantized_ops == s.weighted_ops == 50
    cost0, cost = model_cost(ctx.path(base.export_dir)), model_cost(qdir)
    assert cost["quantized"] and cost["sizeBytes"] < 0.35 * cost0["sizeBytes"]
    # scales and zero points are not parameters: the quantized model has the float one's count
    assert cost["params"] == cost0["params"] and cost["quantParams"] > 0
    assert (qdir / "infer_cfg.yml").is_file() and row.label == "PTQ (hist)"
    assert "calibrated on 8 train images" in row.notes[0]
    _runs_int8(qdir)
    out, err = capfd.readouterr()
    ptq = [json.loads(x) for x in out.splitlines() if x.startswith('{"kslim"') and '"ptq"' in x]
    assert [p["step"] for p in ptq] == [1, 2, 3, 4, 5] and ptq[-1]["total"] == 5  # 2 passes x 2 + save
    # the log carries kslim's lines only: no PaddleSlim stages, tqdm bars or coloured pass lines
    assert "\x1b[" not in out + err and "\r" not in err and "Run batch" not in err, err[-2000:]
    assert "-INFO:" not in err and "New Executor" not in err


def test_ptq_of_an_exported_inference_model(staged, tmp_path: Path, tiny_weights: Path) -> None:
    export_tiny_inference_model(tmp_path / "infer", tiny_weights)
    model = {"inferenceModel": {"uri": "file://infer"}, "architecture": None, "width": None, "weights": None}
    ctx = staged([{"ptq": {"algo": "abs_max", "batchNum": 1, "batchSize": 4}}], model=model)
    run_steps(ctx)
    base, row = ctx.rows
    assert base.export_dir is not None and base.model["kind"] == "inference"
    s = quant_summary(ctx.path(row.export_dir))
    assert s.quantized_ops == s.weighted_ops > 0
    _runs_int8(ctx.path(row.export_dir))
