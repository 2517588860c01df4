"""The seed guide's rows as their example jobs (examples/ppdet-*.yaml), run at tiny size on kslim's
config of the same PaddleDetection model, with the example's strategy as written (bench/zoo_rows.py
runs every one; the suite runs one per model family here, to stay inside its time budget).

What is checked is what can fail at this size: the method ran on that architecture (GFLOPs and
parameters cut by pruning, an int8 model from quantization), every row was exported, evaluated
(AP a number) and timed, at the job's input size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kslim_api.contract import EXIT_OK
from kslim_runner.run import run_command
from support.benchscripts import load_bench_script
from zoo_helpers import SIZE

pytestmark = pytest.mark.slow

#: one example per model family not covered elsewhere in the suite (YOLOv3-MobileNetV1 prune/QAT/PTQ:
#: test_zoo_pipeline.py; distillation, Mask R-CNN: their own tests)
SUITE = (
    "ppdet-ppyolo-mbv3-prune-fpgm",  # PP-YOLO neck; seed list names convs PaddleSlim cannot prune
    "ppdet-ppyolov2-r50vd-pact",  # ResNet50-vd with DCNv2, PAN neck, IoU-aware head; PACT
    "ppdet-ssd-mbv1-qat",  # SSD priors fitted to the input size
    "ppdet-ppyoloe-plus-s-ptq",  # anchor-free head, eval_size baked into the export
)


def test_every_row_example_maps_onto_a_kslim_config() -> None:
    bench = load_bench_script("zoo_rows")
    examples = bench.row_examples()
    assert {p.stem for p in examples} >= set(SUITE)
    for path in examples:
        job = bench.tiny_job(yaml.safe_load(path.read_text()), Path("/data"), SIZE)
        config = Path(job["spec"]["model"]["config"]["uri"].removeprefix("file://"))
        assert config.is_file(), path.name
        assert "weights" not in job["spec"]["model"] and job["spec"]["resources"] == {"gpus": 0}


@pytest.mark.parametrize("example", SUITE)
def test_seed_row_example_runs_at_tiny_size(
    example: str, zoo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    monkeypatch.setenv("KSLIM_NO_TQDM", "1")
    bench = load_bench_script("zoo_rows")
    original = yaml.safe_load((bench.EXAMPLES / f"{example}.yaml").read_text())
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(bench.tiny_job(original, zoo_data, SIZE), sort_keys=False))
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    strategy = original["spec"]["strategy"]
    assert len(rows) == 1 + len(strategy)
    for r in rows:
        assert 0.0 <= r["ap"] <= 1.0
        assert r["latencyMs"]["int8" if r["cost"]["quantized"] else "fp32"]
    for step, before, after in zip(strategy, rows, rows[1:], strict=False):
        if "prune" in step:
            assert after["gflops"] < before["gflops"] and after["params"] < before["params"]
        else:
            assert after["cost"]["quantized"] and after["sizeBytes"] < before["sizeBytes"]
    if example == "ppdet-ppyolo-mbv3-prune-fpgm":
        # four of PaddleDetection's six names feed a concat (SPP, CoordConv): PaddleSlim leaves them
        # whole, silently in PaddleDetection; the row says so
        assert any("4 named conv(s) cannot be pruned" in n for n in rows[1]["notes"])
    state = json.loads((out / "state.json").read_text())
    infer = yaml.safe_load((out / state["rows"][0]["export_dir"] / "infer_cfg.yml").read_text())
    assert infer["Preprocess"][0]["target_size"] == [SIZE, SIZE]
