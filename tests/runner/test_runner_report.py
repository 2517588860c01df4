"""Report numbers, the quality gate, the table's column order and the termination message."""

from __future__ import annotations

import json

from kslim_api.contract import TerminationMessage
from kslim_api.v1alpha1 import QualityGateSpec
from kslim_runner.pipeline.state import Row
from kslim_runner.report import termination
from kslim_runner.report.build import delta, quality_gate, row_entry, row_metrics
from kslim_runner.report.markdown import table


def _row(name: str, ap: float, gflops: float, size: int, p50: float, int8: float | None = None) -> Row:
    lat = {
        "fp32": {
            "p50": p50,
            "p90": p50 * 1.1,
            "mean": p50,
            "runs": 5,
            "batchSize": 1,
            "threads": 2,
            "device": "cpu",
            "precision": "fp32",
        }
    }
    if int8 is not None:
        lat["int8"] = {**lat["fp32"], "p50": int8, "precision": "int8"}
    return Row(
        name=name,
        method=name,
        label=name,
        model={},
        export_dir=f"models/{name}",
        eval={
            "ap": ap,
            "ap50": ap + 0.2,
            "ap75": ap - 0.1,
            "apSmall": None,
            "apMedium": ap,
            "apLarge": None,
            "imagesPerSecond": 100,
        },
        cost={
            "gflops": gflops,
            "params": 1000,
            "sizeBytes": size,
            "quantized": int8 is not None,
            **({"int8SizeBytes": size // 4} if int8 is not None else {}),
        },
        latency=lat,
    )


def test_delta_uses_the_shipped_precision() -> None:
    base, q = _row("baseline", 0.40, 2.0, 4000, 10.0), _row("qat", 0.395, 2.0, 4000, 9.0, int8=4.0)
    d = delta(base, q)
    assert d["ap"] == -0.005 and d["gflopsRatio"] == 1.0 and d["sizeRatio"] == 0.25 and d["speedup"] == 2.5
    assert row_metrics(q)["int8SizeBytes"] == 1000


def test_quality_gate_in_points() -> None:
    base, res = _row("baseline", 0.40, 2.0, 4000, 10.0), _row("prune", 0.39, 1.0, 2000, 8.0)
    d, m = delta(base, res), row_metrics(res)
    assert quality_gate(QualityGateSpec(), d, m, "fp32") is None
    ok = quality_gate(QualityGateSpec(maxAPDrop="1.0", minSpeedup="1.2"), d, m, "fp32")
    assert ok is not None and ok["passed"]
    bad = quality_gate(QualityGateSpec(maxAPDrop="0.5", maxLatencyMs="5"), d, m, "fp32")
    assert bad is not None and not bad["passed"]
    assert "1.00 points" in bad["message"] and "above 5 ms" in bad["message"]


def test_table_follows_the_seed_column_order() -> None:
    base, res = _row("baseline", 0.40, 2.0, 4_000_000, 10.0), _row("prune", 0.39, 1.0, 2_000_000, 8.0)
    report = {
        "model": "YOLOv3-MobileNetV1",
        "inputSize": 160,
        "device": "cpu",
        "rows": [row_entry(base, base), row_entry(res, base)],
    }
    lines = table(report).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[:5] == ["Model", "Compression technique", "GFLOPs", "Model volume (MB)", "Input size"]
    assert head[5].startswith("Latency") and head[6] == "Box AP"
    assert "-50.0%" in lines[3] and "(-1.0)" in lines[3]


def test_termination_message_is_compact_and_under_4k(tmp_path, monkeypatch) -> None:
    path = tmp_path / "term"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(path))
    termination.write(TerminationMessage("Failed", "X", "m" * 10_000, baseline={"ap": 0.1}))
    text = path.read_text()
    assert len(text.encode()) < 4096 and " " not in text
    assert json.loads(text)["baseline"] == {"ap": 0.1}


def test_no_termination_file_outside_a_pod(monkeypatch) -> None:
    monkeypatch.delenv("KSLIM_TERMINATION_MESSAGE_PATH", raising=False)
    monkeypatch.setattr(termination, "TERMINATION_MESSAGE_PATH", "/nonexistent/termination-log")
    assert termination.write(TerminationMessage("Succeeded")) is None


def test_precisions_timed_per_device() -> None:
    from kslim_runner.pipeline.benchmark import FAKE_QUANT_FP32, precisions_for

    assert precisions_for(["fp32", "int8"], False, "cpu") == (["fp32"], [])
    assert precisions_for(["fp32", "int8"], True, "cpu") == (["int8"], [FAKE_QUANT_FP32])
    timed, notes = precisions_for(["int8", "fp16"], True, "gpu")
    assert timed == ["fp32"] and len(notes) == 2 and "tensorrt" in notes[0]
    assert precisions_for(["int8", "fp16"], True, "gpu", tensorrt=True)[0] == ["int8", "fp16"]
    assert precisions_for(["fp16"], False, "cpu")[1] == ["fp16 not timed: it needs a GPU"]
