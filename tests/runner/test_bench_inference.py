"""bench/inference.py: the larger-input rows are rebuilt from each job row's own recipe, with every
detector config in its chain set to the new size."""

from __future__ import annotations

import json
from pathlib import Path

from support.benchscripts import load_bench_script


def _detector(size: int) -> dict:
    return {"kind": "detector", "config": {"architecture": "yolov3_mobilenet_v1", "input_size": size}}


def test_every_config_in_a_row_chain_gets_the_new_size_and_the_recipe_is_left_alone() -> None:
    qat_of_pruned = {
        "kind": "qat",
        "source": {"kind": "prune", "source": _detector(160), "layout": "l.json", "weights": "p"},
        "quant": {"weight_bits": 8},
        "weights": "q",
    }
    before = json.dumps(qat_of_pruned)
    at = load_bench_script("inference").at_input_size(qat_of_pruned, 608)
    assert at["source"]["source"]["config"]["input_size"] == 608
    assert at["source"]["layout"] == "l.json" and at["quant"] == {"weight_bits": 8}
    assert json.dumps(qat_of_pruned) == before


def test_a_row_recipe_comes_from_its_job_state_with_paths_relative_to_the_job_output(tmp_path: Path) -> None:
    out = tmp_path / "fpgm" / "out"
    out.mkdir(parents=True)
    pruned = {"kind": "prune", "source": _detector(160), "layout": "stages/step1-prune/layout.json"}
    state = {
        "done": {"prepare": {"result": {"labels": ["circle", "square"]}}},
        "rows": [{"name": "baseline", "model": _detector(160)}, {"name": "step1-prune", "model": pruned}],
    }
    (out / "state.json").write_text(json.dumps(state))
    model, labels, path_of = load_bench_script("inference").row_recipe(
        tmp_path, "fpgm/out/models/step1-prune"
    )
    assert model == pruned and labels == ["circle", "square"]
    assert path_of(model["layout"]) == out / "stages/step1-prune/layout.json"
