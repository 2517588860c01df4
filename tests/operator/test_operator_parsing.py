"""The runner's termination message and progress lines, as the operator reads them."""

from __future__ import annotations

import json

from cj_samples import report_text
from kslim_api.contract import last_progress, parse_progress_line, parse_termination_message, planned_stages
from kslim_operator.status import overall_percent


def test_termination_message_report() -> None:
    report = parse_termination_message(report_text())
    assert report is not None and report.structured
    assert report.outcome == "Succeeded" and report.stage == "report"
    assert report.delta is not None and report.delta["speedup"] == 2.07
    assert report.quality_gate == {"passed": True, "message": "AP drop 0.4 <= 1.0 points"}


def test_termination_message_oddities() -> None:
    assert parse_termination_message(None) is None
    assert parse_termination_message("  ") is None
    crash = parse_termination_message("Traceback (most recent call last):\n  ...\nRuntimeError: CUDA error")
    assert (
        crash is not None and not crash.structured and crash.raw_text is not None and "CUDA" in crash.raw_text
    )
    long = parse_termination_message("x" * 5000)
    assert long is not None and long.raw_text is not None and len(long.raw_text) <= 1025
    bad_reason = parse_termination_message(json.dumps({"outcome": "Failed", "reason": "not one word"}))
    assert bad_reason is not None and bad_reason.reason is None


def test_progress_lines() -> None:
    line = parse_progress_line(
        '{"kslim": "progress", "stage": "baseline", "step": 40, "total": 200, "percent": 20.0, '
        '"loss": 3.21, "ap": null, "etaSeconds": 95}'
    )
    assert line is not None and (line.stage, line.step, line.total, line.percent) == (
        "baseline",
        40,
        200,
        20.0,
    )
    assert line.loss == 3.21 and line.ap is None and line.eta_seconds == 95
    assert parse_progress_line("epoch 3 loss 2.0") is None
    assert parse_progress_line('{"kslim": "progress", "stage": "dance"}') is None
    assert parse_progress_line('{"kslim": "progress", "stage": "qat", "percent": 250}').percent == 100.0  # type: ignore[union-attr]


def test_last_progress_in_a_log_tail() -> None:
    tail = "\n".join(
        [
            '{"kslim": "progress", "stage": "baseline", "step": 190, "total": 200, "percent": 95.0}',
            "free text",
            '{"kslim": "progress", "stage": "prune", "step": 1, "total": 50, "percent": 2.0}',
            '{"kslim": "progress", "stage": "prune", "step": 2, "tot',  # cut off mid-line
        ]
    )
    line = last_progress(tail)
    assert line is not None and (line.stage, line.step) == ("prune", 1)
    assert last_progress("nothing here") is None


def test_overall_percent_is_monotonic_over_the_plan() -> None:
    stages = planned_stages(["prune", "qat"])
    values = []
    for stage in stages:
        for p in (0.0, 50.0, 100.0):
            line = parse_progress_line(json.dumps({"kslim": "progress", "stage": stage, "percent": p}))
            assert line is not None
            values.append(overall_percent(stages, line))
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 100.0
    not_planned = parse_progress_line('{"kslim": "progress", "stage": "distill", "percent": 10}')
    assert not_planned is not None and overall_percent(stages, not_planned) is None
