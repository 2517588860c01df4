"""QAT exports a really quantized model: every conv takes int8 weights through dequantize ops, the
files shrink to about a quarter, and Paddle Inference runs it with oneDNN int8."""

from __future__ import annotations

import numpy as np
from kslim_runner.measure.cost import model_cost
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.program import model_files
from kslim_runner.methods.quant_check import quant_summary
from kslim_runner.pipeline.models import load_row_model
from methods_helpers import op_counts, run_steps


def _check_int8_export(ctx) -> None:
    base, row = ctx.rows[0], ctx.rows[-1]
    qdir = ctx.path(row.export_dir)
    ops = op_counts(qdir)
    assert ops["quantize_linear"] > 0 and ops["dequantize_linear"] > 0
    s = quant_summary(qdir)
    assert s.quantized_ops == s.weighted_ops == 50  # all 37 convs, 13 depthwise convs
    cost, cost0 = model_cost(qdir), model_cost(ctx.path(base.export_dir))
    assert cost["quantized"] and cost["int8SizeBytes"] <= 0.3 * cost0["sizeBytes"]
    assert cost["sizeBytes"] <= 0.35 * cost0["sizeBytes"]  # the weights are stored as int8
    pred = create_predictor(model_files(qdir), PredictorOptions(precision="int8", threads=1))
    image = np.random.default_rng(0).standard_normal((2, 3, 96, 96)).astype(np.float32)
    shape = np.array([[96, 96]] * 2, np.float32)
    boxes, num = run_detector(pred, image, shape, np.ones((2, 2), np.float32))
    assert boxes.shape[1] == 6 and num.shape == (2,)


def test_qat_exports_int8_weights_that_run_in_paddle_inference(staged) -> None:
    ctx = staged([{"qat": {"fineTune": {"iterations": 2}}}])
    run_steps(ctx)
    _check_int8_export(ctx)
    row = ctx.rows[-1]
    assert row.method == "qat" and row.label == "QAT" and row.train["iterations"] == 2
    assert "50 of 50 conv/matmul weights int8" in row.notes[0]
    det = load_row_model(row.model, ctx.path)  # the fake-quant model reloads for the dygraph check
    assert type(det.backbone.conv1.conv).__name__ != "Conv2D"


def test_pact_qat_learns_clipping_and_still_exports_int8(staged) -> None:
    ctx = staged([{"qat": {"pact": True, "fineTune": {"iterations": 2}}}])
    run_steps(ctx)
    _check_int8_export(ctx)
    row = ctx.rows[-1]
    assert row.label == "PACT QAT"
    det = load_row_model(row.model, ctx.path)
    alphas = [v for k, v in det.state_dict().items() if k.endswith("alpha")]
    assert alphas and all(float(a) != 100.0 for a in alphas[:3])  # moved from PaddleSlim's init
