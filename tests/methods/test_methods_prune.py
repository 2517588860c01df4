"""Pruning removes filters for real: the exported model has fewer channels in exactly the selected
convs, by the requested share, and its GFLOPs and parameters drop; the pruned row reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kslim_runner.measure.cost import model_cost
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.program import model_files
from kslim_runner.pipeline.models import load_row_model
from methods_helpers import conv_filters, run_steps

HEADS = ("conv2d_47.w_0", "conv2d_48.w_0", "conv2d_49.w_0")


def _exports(ctx) -> tuple:
    base, pruned = ctx.rows[0], ctx.rows[-1]
    return ctx.path(base.export_dir), ctx.path(pruned.export_dir), pruned


def test_uniform_ratio_removes_that_share_of_filters_and_is_physically_smaller(staged) -> None:
    ctx = staged([{"prune": {"criterion": "fpgm", "ratio": "0.3", "fineTune": {"iterations": 2}}}])
    run_steps(ctx)
    base_dir, pruned_dir, row = _exports(ctx)
    layout = json.loads(ctx.path(row.model["layout"]).read_text())
    before, after = conv_filters(base_dir), conv_filters(pruned_dir)
    pruned = layout["ratios"]
    assert len(pruned) == 30 and set(pruned.values()) == {0.3}
    # the selected convs lost 30% of their filters (rounded per conv), in the exported program
    share = 1 - sum(after[n] for n in pruned) / sum(before[n] for n in pruned)
    assert share == pytest.approx(0.3, abs=0.05)
    for n in pruned:
        assert after[n] == before[n] - round(before[n] * 0.3)
    assert all(after[h] == before[h] == 24 for h in HEADS)  # heads keep anchors x (5 + classes)
    cost0, cost1 = model_cost(base_dir), model_cost(pruned_dir)
    assert cost1["gflops"] < 0.6 * cost0["gflops"] and cost1["params"] < 0.6 * cost0["params"]
    assert cost1["sizeBytes"] < 0.6 * cost0["sizeBytes"]
    assert cost1["gflops"] == pytest.approx(layout["convFlops"]["after"] / 1e9, abs=1e-4)
    # the exported model runs in Paddle Inference and the pruned row reloads with its layout
    pred = create_predictor(model_files(pruned_dir), PredictorOptions(threads=1))
    image = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    boxes, num = run_detector(pred, image, np.array([[96, 96]], np.float32), np.ones((1, 2), np.float32))
    assert boxes.shape[1] == 6 and num.shape == (1,)
    det = load_row_model(row.model, ctx.path)
    assert det.backbone.conv1.conv.weight.shape[0] == after["conv2d_0.w_0"]
    assert row.train is not None and row.train["iterations"] == 2
    assert not any(k.endswith("_backup") for k in det.state_dict())


def test_flops_target_is_met_within_five_points(staged, capsys) -> None:
    ctx = staged(
        [{"prune": {"criterion": "l1_norm", "targetFlopsReduction": "0.4", "fineTune": {"iterations": 0}}}]
    )
    run_steps(ctx)
    out = capsys.readouterr().out
    # the search reports every probe, so a minutes-long search never looks stalled
    search = [json.loads(x) for x in out.splitlines() if x.startswith('{"kslim"') and '"prune"' in x]
    assert len(search) >= 3 and [p["step"] for p in search] == sorted(p["step"] for p in search)
    assert search[-1]["percent"] == 100.0 and "kslim: prune: searching ratios of" in out
    base_dir, pruned_dir, row = _exports(ctx)
    drop = 1 - model_cost(pruned_dir)["gflops"] / model_cost(base_dir)["gflops"]
    assert drop == pytest.approx(0.4, abs=0.05)
    assert row.train is None and "no fine-tuning" in " ".join(row.notes)


def test_per_parameter_ratios_touch_only_the_matched_convs(staged) -> None:
    ratios = {"neck.blocks.0.*": "0.5", "conv2d_2.w_0": "0.25"}
    ctx = staged([{"prune": {"criterion": "fpgm", "ratios": ratios, "fineTune": {"iterations": 0}}}])
    run_steps(ctx)
    base_dir, pruned_dir, row = _exports(ctx)
    before, after = conv_filters(base_dir), conv_filters(pruned_dir)
    layout = json.loads(ctx.path(row.model["layout"]).read_text())
    assert set(layout["ratios"]) == {"conv2d_2.w_0", *(f"conv2d_{i}.w_0" for i in range(27, 33))}
    assert after["conv2d_2.w_0"] == before["conv2d_2.w_0"] - round(before["conv2d_2.w_0"] * 0.25)
    assert after["conv2d_28.w_0"] == before["conv2d_28.w_0"] // 2
    changed = {n for n in before if after[n] != before[n]}
    # besides the masters, only the depthwise conv after conv2d_2 shrinks with it
    assert changed == set(layout["ratios"]) | {"conv2d_3.w_0"}


@pytest.mark.slow
def test_sensitivity_picks_unequal_ratios_for_a_flops_target(staged, capsys) -> None:
    step = {"criterion": "fpgm", "targetFlopsReduction": "0.2", "sensitivity": True, "params": ["neck.*"]}
    ctx = staged([{"prune": {**step, "fineTune": {"iterations": 0}}}])
    run_steps(ctx)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"kslim"')]
    probes = [p for p in lines if p["stage"] == "prune" and p["total"] == 1 + 18 * 9]
    assert probes[-1]["step"] == probes[-1]["total"]  # the unpruned score, 9 ratios per conv
    base_dir, pruned_dir, row = _exports(ctx)
    layout = json.loads(ctx.path(row.model["layout"]).read_text())
    assert len(set(layout["ratios"].values())) > 1
    neck = {f"conv2d_{i}.w_0" for i in range(27, 47)}
    assert set(layout["ratios"]) <= neck and len(layout["ratios"]) == 18  # the 18 prunable neck convs
    drop = 1 - model_cost(pruned_dir)["gflops"] / model_cost(base_dir)["gflops"]
    assert drop == pytest.approx(0.2, abs=0.05)


NECK = [27, 28, 29, 30, 31, 32, 34, 35, 36, 37, 38, 39, 41, 42, 43, 44, 45, 46]
SLIM_PRUNER = f"""
slim: Pruner
Pruner:
  criterion: l1_norm
  pruned_params: {[f"conv2d_{i}.w_0" for i in NECK]}
  pruned_ratios: {[0.5] * len(NECK)}
  print_params: False
"""


def test_a_paddledetection_pruner_config_prunes_the_convs_it_names(staged) -> None:
    """The seed's YOLOv3-MobileNetV1 pruner configs name the neck convs conv2d_27.w_0 ... conv2d_46.w_0
    (skipping the two convs that feed a concat); here they are the same convs."""
    ctx = staged(None, slimConfig=SLIM_PRUNER, train={"iterations": 1})
    run_steps(ctx, export=False)
    row = ctx.rows[-1]
    layout = json.loads(ctx.path(row.model["layout"]).read_text())
    assert layout["ratios"] == {f"conv2d_{i}.w_0": 0.5 for i in NECK}
    assert row.label == "Pruning-L1-norm (per-conv ratios)" and row.train["iterations"] == 1
    det = load_row_model(row.model, ctx.path)
    assert det.neck.blocks[0].conv0.conv.weight.shape[0] == 128 // 2
