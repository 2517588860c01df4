"""Whole jobs chaining methods as the seed does (distillation + pruning, pruning + QAT): one report
with a row per step, each row measured on its own exported model, and the quality gate deciding the
exit code with every artifact kept."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from kslim_api.contract import EXIT_OK, EXIT_QUALITY_GATE
from kslim_runner.run import run_command

pytestmark = pytest.mark.slow


def _run(job: Path, out: Path) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run_command(str(job), output=str(out))
    return code, buf.getvalue()


def test_prune_then_distill_with_a_teacher_trained_in_the_job(make_job, tmp_path: Path) -> None:
    strategy = [
        {"prune": {"criterion": "fpgm", "ratio": "0.3", "fineTune": {"iterations": 0}}},
        {
            "distill": {
                "teacher": {"architecture": "yolov3_mobilenet_v1", "width": "0.5"},
                "weight": "1000",
                "fineTune": {"iterations": 2},
            }
        },
    ]
    code, stdout = _run(make_job(strategy), tmp_path / "out")
    assert code == EXIT_OK, stdout[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = report["rows"]
    assert [r["name"] for r in rows] == ["baseline", "step1-prune", "step2-distill"]
    assert [r["method"] for r in rows] == ["baseline", "prune", "distill"]
    base, pruned, distilled = rows
    assert distilled["gflops"] == pruned["gflops"] < 0.6 * base["gflops"]  # distillation keeps the structure
    assert all(r["ap"] is not None and r["latencyMs"]["fp32"]["p50"] > 0 for r in rows)
    assert report["result"]["gflops"] == distilled["gflops"]
    assert any("trained in this job for 3 steps" in n for n in distilled["notes"])
    teacher_steps = [p for p in map(json.loads, _progress(stdout)) if p["stage"] == "distill"]
    assert teacher_steps[-1]["step"] == 2 and max(p["total"] for p in teacher_steps) == 3
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| Pruning-FPGM (ratio 0.3) |" in md and "| Distillation (yolov3_mobilenet_v1, yolov3) |" in md


def _progress(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith('{"kslim": "progress"')]


def test_prune_then_qat_missing_the_gate_exits_3_and_keeps_the_artifacts(make_job, tmp_path: Path) -> None:
    strategy = [
        {"prune": {"criterion": "l1_norm", "ratio": "0.25", "fineTune": {"iterations": 0}}},
        {"qat": {"fineTune": {"iterations": 2}}},
    ]
    job = make_job(strategy, qualityGate={"minSpeedup": "50"}, benchmark={"precisions": ["fp32", "int8"]})
    code, stdout = _run(job, tmp_path / "out")
    assert code == EXIT_QUALITY_GATE, stdout[-3000:]
    term = json.loads((tmp_path / "termination-log").read_text())
    assert term["outcome"] == "Failed" and term["reason"] == "QualityGateFailed"
    assert term["qualityGate"]["passed"] is False and "below 50x" in term["qualityGate"]["message"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    base, pruned, qat = report["rows"]
    assert qat["method"] == "qat" and "int8" in qat["latencyMs"] and qat["evaluation"]["precision"] == "int8"
    assert qat["int8SizeBytes"] < 0.3 * base["sizeBytes"] and pruned["gflops"] < base["gflops"]
    for row in report["rows"]:
        assert (tmp_path / "out" / row["model"] / "model.pdmodel").is_file()  # artifacts kept
