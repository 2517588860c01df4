"""Unstructured pruning (sparsify, PaddleDetection's UnstructuredPruner) on a tiny PicoDet built from
kslim's PicoDet-M config, the model PaddleDetection's unstructured-prune configs are written for: the
GMP schedule runs during fine-tuning, the exported model holds the zeros, and the row says the
runtime does not turn them into speed. Patterns that match no weight end with exit 2 and one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kslim_api.contract import EXIT_OK
from kslim_runner.run import run_command
from support.runs import run_fails
from zoo_helpers import picodet_tree

pytestmark = pytest.mark.slow

PICODET = {"config": {"uri": "file://configs/picodet/picodet_tiny.yml"}, "weights": None}
#: the picodet_m_unstructured_prune_75 settings, with a schedule that fits a few iterations
SPARSIFY = {
    "ratio": "0.75",
    "paramsType": "conv1x1",
    "gmp": {"pruning": 24, "tuning": 4, "pruningSteps": 2, "initialRatio": "0.15"},
}


def test_gmp_sparsify_on_picodet(make_zoo_job, tmp_path: Path) -> None:
    job = make_zoo_job([{"sparsify": SPARSIFY}], **PICODET)
    picodet_tree(tmp_path)
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    base, sparse = json.loads((out / "report.json").read_text())["rows"]
    assert sparse["params"] == base["params"] and sparse["gflops"] == base["gflops"]  # shapes kept
    assert 0.0 <= sparse["ap"] <= 1.0 and sparse["latencyMs"]["fp32"]
    assert any("dense kernels" in n for n in sparse["notes"])
    state = json.loads((out / "state.json").read_text())
    measured = json.loads((out / "stages" / "step1-sparsify" / "sparsity.json").read_text())["exported"]
    # local sparsity: every pruned 1x1 conv is 75% zeros (within one weight) in the exported model
    assert measured["params"] > 10 and abs(measured["ratio"] - 0.75) < 0.01 and measured["least"] > 0.7
    assert state["rows"][1]["train"]["iterations"] == 28  # the schedule's length: pruning + tuning


def test_sparsify_params_matching_nothing(make_zoo_job, tmp_path: Path, capsys) -> None:
    job = make_zoo_job([{"sparsify": {**SPARSIFY, "params": ["neck.nothing.*"]}}], **PICODET)
    picodet_tree(tmp_path)
    line = run_fails(job, tmp_path / "out", capsys)
    assert "sparsify.params: 'neck.nothing.*' matches none of the model's" in line
