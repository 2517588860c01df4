"""A whole baseline-only job on CPU (tiny model, tiny data, a few steps): real outputs, and the
report's numbers agree with evaluating the exported model again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kslim_runner.data.coco import load_coco
from kslim_runner.measure.coco_eval import evaluate_model
from kslim_runner.measure.cost import model_cost
from kslim_runner.measure.predictor import PredictorOptions, create_predictor
from kslim_runner.measure.program import model_files
from kslim_runner.run import run_command
from runner_helpers import progress_lines

pytestmark = pytest.mark.slow

STAGES = ["prepare", "baseline", "export", "evaluate", "benchmark", "report"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> dict:
    """Run the tiny job once for the module; returns paths and captured output."""
    import shutil

    import yaml
    from runner_helpers import job_doc

    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(tiny_data, root / "data")
    doc = job_doc(
        train={
            "iterations": 16,
            "batchSize": 4,
            "workers": 1,
            "logEveryIterations": 4,
            "checkpointEveryIterations": 8,
            "warmupIterations": 4,
            "learningRate": "0.003",
        }
    )
    (root / "job.yaml").write_text(yaml.safe_dump(doc))
    term = root / "termination-log"
    mp = pytest.MonkeyPatch()
    mp.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(term))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run_command(str(root / "job.yaml"), output=str(root / "out"))
    mp.undo()
    return {"root": root, "out": root / "out", "code": code, "stdout": buf.getvalue(), "term": term}


def test_exit_0_and_every_stage_checkpointed(finished: dict) -> None:
    assert finished["code"] == 0, finished["stdout"][-3000:]
    state = json.loads((finished["out"] / "state.json").read_text())
    assert list(state["done"]) == STAGES


def test_progress_lines_follow_the_contract(finished: dict) -> None:
    lines = progress_lines(finished["stdout"])
    train = [p for p in lines if p["stage"] == "baseline"]
    assert [p["step"] for p in train] == [4, 8, 12, 16] and all(p["total"] == 16 for p in train)
    assert all(
        set(p) == {"kslim", "stage", "step", "total", "percent", "loss", "ap", "etaSeconds"} for p in lines
    )
    assert {p["stage"] for p in lines} >= {"prepare", "baseline", "export", "evaluate", "benchmark"}
    assert train[-1]["percent"] == 100.0 and isinstance(train[-1]["loss"], float)


def test_exported_model_loads_and_report_agrees_with_reevaluation(finished: dict) -> None:
    out = finished["out"]
    report = json.loads((out / "report.json").read_text())
    model_dir = out / report["rows"][0]["model"]
    create_predictor(model_files(model_dir), PredictorOptions(threads=1))  # loads in Paddle Inference
    base = report["baseline"]
    assert 0.0 <= base["ap"] <= 1.0 and 0.0 <= base["ap50"] <= 1.0
    val = load_coco(
        out.parent / "data" / "val" / "annotations.json", out.parent / "data" / "val" / "images", 3
    )
    again = evaluate_model(model_dir, val, batch_size=4, score_threshold=0.01)
    assert again.ap == pytest.approx(base["ap"], abs=1e-6)
    assert again.ap50 == pytest.approx(base["ap50"], abs=1e-6)
    cost = model_cost(model_dir)
    assert cost["gflops"] == base["gflops"] and cost["params"] == base["params"] > 0
    assert cost["sizeBytes"] == base["sizeBytes"]
    lat = base["latencyMs"]["fp32"]
    assert 0 < lat["p50"] <= lat["p90"]
    assert report["result"] == base and report["delta"]["ap"] == 0.0  # baseline-only: the result is it


def test_report_files_and_versions(finished: dict) -> None:
    out = finished["out"]
    report = json.loads((out / "report.json").read_text())
    assert set(report["environment"]["versions"]) >= {"paddle", "paddleslim", "pycocotools"}
    assert report["seed"] == 0 and len(report["datasetHash"]) == 64 and report["device"] == "cpu"
    row = report["rows"][0]
    assert row["apInTraining"] is not None and row["apGapFlagged"] is False
    md = (out / "report.md").read_text()
    assert "| Model | Compression technique | GFLOPs | Model volume (MB) | Input size |" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert "| YOLOv3-MobileNetV1 x0.25 | baseline |" in finished["stdout"]


def test_detections_weights_and_every_artifact_are_listed(finished: dict) -> None:
    from kslim_runner.measure.coco_eval import coco_stats

    out = finished["out"]
    report = json.loads((out / "report.json").read_text())
    arts = report["artifacts"]
    assert arts["baseline/weights"] == str(out / "stages" / "baseline" / "model.pdparams")
    assert arts["weights"] == arts["baseline/weights"] and report["rows"][0]["weights"].endswith(".pdparams")
    assert arts["baseline/detections"] == str(out / "stages" / "baseline" / "detections.json")
    assert all(Path(v).exists() for v in arts.values()), arts
    ann = out.parent / "data" / "val" / "annotations.json"
    dets = json.loads(Path(arts["detections"]).read_text())
    cat_ids = {c["id"] for c in json.loads(ann.read_text())["categories"]}
    assert {d["category_id"] for d in dets} <= cat_ids
    assert coco_stats(ann, dets)["ap"] == pytest.approx(report["baseline"]["ap"], abs=1e-6)
    lat = report["rows"][0]["latency"]["fp32"]
    assert lat["session"] and len(lat["rounds"]) == lat["runs"] == 5 and lat["p10"] <= lat["p50"]
    assert "load average (1/5/15 min) at the start:" in (out / "report.md").read_text()
    assert "kslim: data val: 8 images," in finished["stdout"]


def test_termination_message(finished: dict) -> None:
    text = finished["term"].read_text()
    assert len(text.encode()) < 4096
    msg = json.loads(text)
    assert msg["outcome"] == "Succeeded" and msg["stage"] == "report"
    assert set(msg) >= {"baseline", "result", "delta", "artifacts"}
    assert msg["artifacts"]["model"].endswith("models/baseline")
    assert not [k for k in msg["artifacts"] if "/" in k]  # per-row files: report.json only


def test_a_second_run_skips_finished_stages(finished: dict, capsys) -> None:
    code = run_command(str(finished["root"] / "job.yaml"), output=str(finished["out"]))
    text = capsys.readouterr().out
    assert code == 0
    assert text.count("done in an earlier run, skipped") == len(STAGES)
    assert not progress_lines(text)


def test_a_missed_quality_gate_exits_3_and_keeps_the_artifacts(
    make_job, tmp_path: Path, monkeypatch, capsys
) -> None:
    term = tmp_path / "termination-log"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(term))
    job = make_job(qualityGate={"maxLatencyMs": "0.001"})
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == 3
    assert "quality gate failed" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["qualityGate"]["passed"] is False
    assert (out / report["rows"][0]["model"] / "model.pdmodel").is_file()
    msg = json.loads(term.read_text())
    assert (
        msg["outcome"] == "Failed"
        and msg["reason"] == "QualityGateFailed"
        and msg["qualityGate"]["passed"] is False
    )
