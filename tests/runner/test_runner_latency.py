"""Side-by-side latency: interleaved rounds, per-round speed-up ratios with an interval, and the
quality gate deciding on the interval's lower bound (or refusing to decide: MeasurementUnstable)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from kslim_api.v1alpha1 import QualityGateSpec
from kslim_runner.measure.interleave import ratio_interval, round_medians, timed_rounds
from kslim_runner.pipeline.state import Row
from kslim_runner.report.build import delta, quality_gate, row_metrics


def _sleeper(ms: float):
    return lambda: time.sleep(ms / 1000)


def test_rounds_interleave_every_model_and_alternate_their_order() -> None:
    seen: list[str] = []
    calls = [lambda: seen.append("a"), lambda: seen.append("b")]
    times = timed_rounds(calls, warmup=1, iterations=5, per_round=2)
    assert seen == ["a", "b", *["a", "a", "b", "b", "b", "b", "a", "a", "a", "b"]]
    assert [len(r) for r in times[0]] == [2, 2, 1] == [len(r) for r in times[1]]


def test_two_identical_models_give_an_interval_containing_one() -> None:
    times = timed_rounds([_sleeper(1), _sleeper(1)], warmup=1, iterations=40, per_round=2)
    iv = ratio_interval(round_medians(times[0]), round_medians(times[1]))
    assert iv is not None and iv.rounds == 20
    assert iv.low <= 1.0 <= iv.high and 0.8 < iv.median < 1.25


def test_a_model_sleeping_an_extra_fixed_time_per_call_is_detected_as_slower() -> None:
    # margins for a loaded machine (wake-ups late by milliseconds): ~2 ms vs ~10 ms per call
    base, slow = _sleeper(2), _sleeper(2)
    times = timed_rounds([base, lambda: (slow(), time.sleep(0.008))], warmup=1, iterations=30, per_round=2)
    iv = ratio_interval(round_medians(times[0]), round_medians(times[1]))
    assert iv is not None and iv.high < 1.0 and iv.median < 0.6


def test_rounds_of_different_sessions_or_lengths_do_not_pair() -> None:
    assert ratio_interval([1.0, 2.0], [1.0]) is None and ratio_interval([], []) is None


def _row(name: str, rounds: list[float], session: str = "s1", precision: str = "fp32") -> Row:
    p50 = sorted(rounds)[len(rounds) // 2]
    lat = {"p10": min(rounds), "p50": p50, "p90": max(rounds), "mean": p50, "rounds": rounds}
    lat |= {"session": session, "runs": len(rounds), "batchSize": 1, "threads": 2, "device": "cpu"}
    return Row(
        name=name,
        method=name,
        label=name,
        model={},
        eval={"ap": 0.3, "ap50": 0.5},
        cost={"gflops": 1.0, "params": 10, "sizeBytes": 100, "quantized": precision == "int8"},
        latency={precision: {**lat, "precision": precision}},
    )


def _gate(base: Row, res: Row, min_speedup: str) -> dict:
    d = delta(base, res)
    gate = quality_gate(QualityGateSpec(minSpeedup=min_speedup), d, row_metrics(res), "fp32")
    assert gate is not None
    return {**gate, "delta": d}


def test_speedup_is_the_median_of_per_round_ratios_and_the_gate_needs_its_lower_bound() -> None:
    base = _row("baseline", [10.0] * 10)
    steady = _row("prune", [5.0] * 9 + [4.0], precision="int8")
    d = delta(base, steady)
    assert (d["speedup"], d["speedupLow"], d["speedupHigh"], d["speedupRounds"]) == (2.0, 2.0, 2.05, 10)
    assert _gate(base, steady, "2")["passed"]
    # the median passes 1.5 but the lower bound does not, and the rounds agree to 10%: a plain fail
    close = _row("prune", [6.0] * 5 + [7.0] * 5)
    g = _gate(base, close, "1.5")
    assert not g["passed"] and "reason" not in g and g["message"].startswith("failed: speed-up")
    # not side by side (different sessions): the ratio of p50s, no interval
    other = _row("prune", [5.0] * 10, session="s2")
    assert "speedupLow" not in delta(base, other) and delta(base, other)["speedup"] == 2.0


def test_a_spread_too_wide_to_decide_the_gate_is_measurement_unstable() -> None:
    base = _row("baseline", [10.0] * 10)
    noisy = _row("qat", [4.0, 4.5, 5.0, 5.0, 5.5, 6.0, 6.5, 7.0, 8.0, 9.0])  # ratios 1.1 .. 2.5
    g = _gate(base, noisy, "1.8")
    d = g["delta"]
    assert d["speedupLow"] < 1.8 <= d["speedupHigh"]
    assert not g["passed"] and g["reason"] == "MeasurementUnstable"
    assert g["message"].startswith("undecided:") and f"{d['speedupLow']}-{d['speedupHigh']}x" in g["message"]
    # the same spread wholly above or below the limit decides it
    assert _gate(base, noisy, "1.05")["passed"]
    assert "reason" not in _gate(base, noisy, "3")


def test_an_unstable_gate_ends_the_job_with_its_reason_and_figures(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from kslim_runner.run import _finish

    term = tmp_path / "termination-log"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(term))
    base, noisy = _row("baseline", [10.0] * 10), _row("qat", [4.0, 4.5, 5, 5, 5.5, 6, 6.5, 7, 8, 9])
    gate = _gate(base, noisy, "1.8")
    d = gate.pop("delta")
    headline = {"baseline": {}, "result": {}, "delta": d, "qualityGate": gate, "artifacts": {}}
    result = {"table": "", "headline": headline, "passed": False, "gateMessage": gate["message"]}
    ctx = SimpleNamespace(state=SimpleNamespace(done={"report": {"result": result}}), out=tmp_path)
    assert _finish(ctx) == 3
    msg = json.loads(term.read_text())
    assert msg["outcome"] == "Failed" and msg["reason"] == "MeasurementUnstable"
    assert "straddles 1.8x" in msg["message"] and msg["delta"]["speedupLow"] == d["speedupLow"]
    assert "undecided" in capsys.readouterr().err


def test_paddle_inference_models_are_timed_side_by_side(tmp_path: Path, monkeypatch) -> None:
    """The real path on a tiny export: the same model twice gives an interval around 1.0; the same
    model with 20 ms added to every call of its predictor is measured slower."""
    import kslim_runner.measure.latency as latency_module
    import paddle
    from kslim_runner.measure.latency import compare_latency
    from kslim_runner.measure.predictor import PredictorOptions
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    paddle.seed(0)
    out = export_detector(
        build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25)), tmp_path / "m", ["a", "b", "c"]
    )
    opts = PredictorOptions(threads=1)
    same = compare_latency([(out, opts), (out, opts)], iterations=24, warmup=2)
    assert [lat.runs for lat in same] == [24, 24] and len(same[0].rounds or []) == 12
    assert same[0].session == same[1].session and same[0].p10 <= same[0].p50 <= same[0].p90
    iv = ratio_interval(same[0].rounds or [], same[1].rounds or [])
    assert iv is not None and iv.low <= 1.0 <= iv.high

    real_run, slowed = latency_module.run_detector, []

    def run(predictor, *inputs):  # the second predictor created is the "slow model"
        if not slowed:
            slowed.append(predictor)
        if predictor is not slowed[0]:
            time.sleep(0.02)  # a 64 px model runs ~3-15 ms here, depending on the load
        return real_run(predictor, *inputs)

    monkeypatch.setattr(latency_module, "run_detector", run)
    lats = compare_latency([(out, opts), (out, opts)], iterations=12, warmup=1)
    iv = ratio_interval(lats[0].rounds or [], lats[1].rounds or [])
    assert iv is not None and iv.high < 1.0


@pytest.mark.parametrize("load", [[0.5, 1.0, 1.5], None])
def test_report_md_shows_the_interval_and_the_load_average(load: list[float] | None) -> None:
    from kslim_runner.report.build import row_entry
    from kslim_runner.report.markdown import speedup_lines

    base, res = _row("baseline", [10.0] * 10), _row("prune", [5.0] * 9 + [4.0])
    report = {
        "rows": [row_entry(base, base), row_entry(res, base)],
        "benchmark": {"loadAverage": load},
        "environment": {"cpuCount": 2},
    }
    text = "\n".join(speedup_lines(report))
    assert "prune: speed-up 2.00x, p10-p90 2.00-2.05x over 10 interleaved rounds" in text
    assert ("0.50/1.00/1.50 on 2 CPUs" if load else "unknown on 2 CPUs") in text
