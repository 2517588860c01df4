"""The runner⇄operator contract end to end, without a pod: every message the runner writes, written
by the runner's own code and read by the operator's, and what the readers do with broken ones."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kslim_api.contract import (
    EXIT_CODE_REASONS,
    EXIT_DEVICE,
    EXIT_INTERNAL,
    EXIT_QUALITY_GATE,
    EXIT_USER,
    NO_RETRY_EXIT_CODES,
    RUNNER_ERROR,
    TERMINATION_MESSAGE_PATH_ENV,
    Outcome,
    ProgressLine,
    Reason,
    Stage,
    last_progress,
    parse_progress_line,
    parse_termination_message,
    planned_stages,
    reading,
    reason_for_exit_code,
)
from kslim_api.contract.progress import MAX_LINE_BYTES
from kslim_api.contract.termination import LIMIT, REASON_RE
from kslim_api.status import Condition, Delta, ModelMetrics, Progress
from kslim_api.v1alpha1 import METHODS, QualityGateSpec
from kslim_operator.observe import failure_reason, summarize
from kslim_operator.status import clean, overall_percent
from kslim_operator.views import PodView
from kslim_runner import errors, run
from kslim_runner.pipeline.state import Row
from kslim_runner.progress import Progress as RunnerProgress
from kslim_runner.report.build import delta, quality_gate, row_metrics


@pytest.fixture(autouse=True)
def _fresh_rejection_log() -> None:
    reading._log_once.cache_clear()  # each distinct rejection is logged once per process


# --- progress lines ----------------------------------------------------------------------------------

#: What the runner reports at a step: training (loss), evaluation (AP), plain steps, a diverging loss.
PROGRESS_KINDS: dict[str, dict[str, Any]] = {
    "step": {},
    "loss": {"loss": 3.2109876},
    "ap": {"ap": 0.3141592},
    "loss-and-ap": {"loss": 1.5, "ap": 0.25},
    "nan-loss": {"loss": float("nan")},
    "infinite-loss": {"loss": float("inf")},
}


@pytest.mark.parametrize("kind", PROGRESS_KINDS)
@pytest.mark.parametrize("stage", list(Stage))
def test_every_progress_line_the_runner_prints_reads_back(stage: Stage, kind: str) -> None:
    out = io.StringIO()
    bar = RunnerProgress(stage, 40, every=10, stream=out)
    for step in range(1, 41):
        bar.update(step, **PROGRESS_KINDS[kind])
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # every 10 steps
    parsed = [parse_progress_line(line) for line in lines]
    assert all(p is not None for p in parsed), lines
    newest = last_progress("free text\n" + out.getvalue() + "more free text\n")
    assert newest == parsed[-1]
    assert newest is not None and (newest.stage, newest.step, newest.total, newest.percent) == (
        stage,
        40,
        40,
        100.0,
    )
    values = PROGRESS_KINDS[kind]
    assert newest.loss == ProgressLine.at(stage, 40, 40, loss=values.get("loss")).loss
    assert newest.ap == ProgressLine.at(stage, 40, 40, ap=values.get("ap")).ap
    # what the operator writes into status from it
    stages = planned_stages([stage] if stage in METHODS else [])
    Progress.model_validate({"percent": overall_percent(stages, newest), "stagePercent": newest.percent})


def test_a_rendered_progress_line_is_what_parsing_it_gives() -> None:
    line = ProgressLine.at("qat", 3, 7, loss=2.0, ap=0.5, eta_seconds=12.6)
    assert parse_progress_line(line.render()) == line
    assert line.eta_seconds == 13 and line.percent == 42.9
    assert ProgressLine.at("export", 0, 0).percent == 100.0  # nothing to do is done


def test_each_strategy_method_is_a_stage() -> None:
    # A strategy step reports progress under its method's name; status.stage is a Stage.
    assert set(METHODS) <= {s.value for s in Stage}
    assert planned_stages(["prune", "qat"])[0] == Stage.PREPARE and planned_stages([])[-1] == Stage.REPORT


# --- termination messages ----------------------------------------------------------------------------


def _row(name: str, ap: float, p50: float, int8: float | None = None) -> Row:
    fp32 = {"p10": p50 * 0.9, "p50": p50, "p90": p50 * 1.1, "mean": p50}
    latency = {"fp32": fp32} | ({"int8": {**fp32, "p50": int8}} if int8 is not None else {})
    cost = {"gflops": 2.5, "params": 1_234_567, "sizeBytes": 4_900_000}
    if int8 is not None:
        cost["int8SizeBytes"] = 1_300_000
    return Row(
        name=name,
        method=name,
        label=name,
        model={},
        eval={"ap": ap, "ap50": ap + 0.2},
        cost=cost,
        latency=latency,
    )


def _headline(gate: QualityGateSpec, *, many_artifacts: int = 0) -> dict[str, Any]:
    """The body pipeline/report.py's headline() gives the termination message, from the runner's own
    report functions."""
    base, res = _row("baseline", 0.31, 3.1), _row("qat", 0.306, 3.0, int8=1.5)
    d, metrics = delta(base, res), row_metrics(res)
    artifacts = {
        "model": "pvc://artifacts/jobs/yolo/models/qat",
        "report": "pvc://artifacts/jobs/yolo/report.json",
    }
    artifacts |= {f"extra{i}": f"pvc://artifacts/jobs/yolo/{'x' * 40}/{i}" for i in range(many_artifacts)}
    return {
        "baseline": row_metrics(base),
        "result": metrics,
        "delta": d,
        "qualityGate": quality_gate(gate, d, metrics, "int8"),
        "artifacts": artifacts,
    }


def _finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, headline: dict[str, Any]) -> tuple[int, str]:
    """run.py's ending of a job that ran to its report, writing the termination message to a file."""
    path = tmp_path / "termination-log"
    monkeypatch.setenv(TERMINATION_MESSAGE_PATH_ENV, str(path))
    gate = headline["qualityGate"]
    result = {
        "table": "| table |",
        "headline": headline,
        "passed": gate is None or gate["passed"],
        "gateMessage": None if gate is None else gate["message"],
    }
    ctx = SimpleNamespace(state=SimpleNamespace(done={"report": {"result": result}}), out=tmp_path)
    code = run._finish(ctx)
    return code, path.read_text()


def _pod(code: int | None) -> PodView:
    phase = "Failed" if code else "Succeeded"
    return PodView(
        name="yolo-abc", cj_name="yolo", phase=phase, created="2026-01-01T00:00:00Z", exit_code=code
    )


@pytest.mark.parametrize(
    ("gate", "outcome", "reason", "code"),
    [
        (QualityGateSpec(), Outcome.SUCCEEDED, Reason.COMPLETED, 0),
        (QualityGateSpec(maxAPDrop="1.0"), Outcome.SUCCEEDED, Reason.COMPLETED, 0),
        (QualityGateSpec(maxAPDrop="0.1"), Outcome.FAILED, Reason.QUALITY_GATE_FAILED, EXIT_QUALITY_GATE),
    ],
    ids=["no-gate", "gate-passed", "gate-failed"],
)
def test_the_report_message_reads_back(tmp_path, monkeypatch, gate, outcome, reason, code) -> None:
    headline = _headline(gate)
    exit_code, text = _finish(tmp_path, monkeypatch, headline)
    report = parse_termination_message(text)
    assert exit_code == code and report is not None and report.structured
    assert (report.outcome, report.reason, report.stage) == (outcome, reason, Stage.REPORT)
    assert report.artifacts == headline["artifacts"]
    assert report.quality_gate == headline["qualityGate"]
    # every figure the runner reports fits the status model as it is (none dropped on the way)
    assert clean(ModelMetrics, report.baseline) == headline["baseline"]
    assert clean(ModelMetrics, report.result) == headline["result"]
    assert clean(Delta, report.delta) == {k: v for k, v in headline["delta"].items() if v is not None}
    assert "AP 31.0 -> 30.6" in summarize(report)
    if outcome == Outcome.FAILED:
        assert failure_reason(_pod(exit_code), report) == reason


def test_an_undecided_gate_reads_back_as_measurement_unstable(tmp_path, monkeypatch) -> None:
    headline = _headline(QualityGateSpec(minSpeedup="2.0"))
    headline["delta"] |= {"speedup": 2.0, "speedupLow": 1.2, "speedupHigh": 2.9, "speedupRounds": 9}
    headline["qualityGate"] = quality_gate(
        QualityGateSpec(minSpeedup="2.0"), headline["delta"], headline["result"], "int8"
    )
    assert headline["qualityGate"]["reason"] == Reason.MEASUREMENT_UNSTABLE
    code, text = _finish(tmp_path, monkeypatch, headline)
    report = parse_termination_message(text)
    assert code == EXIT_QUALITY_GATE and report is not None
    assert failure_reason(_pod(code), report) == Reason.MEASUREMENT_UNSTABLE


def test_a_report_too_big_for_the_message_is_cut_to_fit(tmp_path, monkeypatch) -> None:
    headline = _headline(QualityGateSpec(maxAPDrop="1.0"), many_artifacts=80)
    _, text = _finish(tmp_path, monkeypatch, headline)
    report = parse_termination_message(text)
    assert len(text.encode()) < LIMIT and report is not None and report.structured
    assert report.outcome == Outcome.SUCCEEDED and report.artifacts == {}  # dropped first
    assert report.result == headline["result"]


@pytest.mark.parametrize("reason", [r for r in Reason if r != Reason.COMPLETED])
def test_a_failure_with_each_reason_reads_back(tmp_path, monkeypatch, reason: Reason) -> None:
    path = tmp_path / "termination-log"
    monkeypatch.setenv(TERMINATION_MESSAGE_PATH_ENV, str(path))
    code = (
        EXIT_QUALITY_GATE
        if reason in (Reason.QUALITY_GATE_FAILED, Reason.MEASUREMENT_UNSTABLE)
        else EXIT_USER
    )
    message = "fetch s3://key:secret@bucket/x failed; " + "details " * 1000
    assert run._fail(message, reason, "prepare", code) == code
    report = parse_termination_message(path.read_text())
    assert report is not None and report.structured
    assert (report.outcome, report.reason, report.stage) == (Outcome.FAILED, reason, Stage.PREPARE)
    assert "secret" not in report.message and report.message.startswith("fetch s3://***@bucket/x")
    assert failure_reason(_pod(code), report) == reason
    Condition(type="Failed", status="True", lastTransitionTime="2026-01-01T00:00:00Z", reason=report.reason)


def test_every_reason_is_one_camel_case_word() -> None:
    for reason in [*Reason, RUNNER_ERROR]:
        assert REASON_RE.match(reason), reason


def test_every_reason_spelled_out_in_the_runner_is_a_contract_reason() -> None:
    runner = Path(__file__).resolve().parents[2] / "runner" / "kslim_runner"
    literals = {}
    for path in runner.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "reason"
                and isinstance(node.value, ast.Constant)
            ):
                literals[node.value.value] = f"{path.relative_to(runner)}:{node.value.lineno}"
    unknown = {reason: where for reason, where in literals.items() if reason not in set(Reason)}
    assert not unknown, f"add these to kslim_api.contract.Reason (and docs/operations.md): {unknown}"


def test_each_runner_error_carries_a_contract_exit_code_and_reason() -> None:
    kinds = [
        errors.KslimError,
        errors.UserError,
        errors.DeviceError,
        errors.QualityGateFailed,
        errors.StorageUnavailable,
    ]
    for kind in kinds:
        assert kind.reason in set(Reason) and kind.exit_code in (EXIT_INTERNAL, *NO_RETRY_EXIT_CODES)
    assert errors.UserError("x", reason=Reason.BAD_CONFIG).reason == Reason.BAD_CONFIG


def test_without_a_message_the_exit_code_says_it() -> None:
    assert reason_for_exit_code(EXIT_DEVICE) == Reason.DEVICE_UNSUPPORTED
    assert reason_for_exit_code(EXIT_INTERNAL) == RUNNER_ERROR and reason_for_exit_code(None) == RUNNER_ERROR
    crash = parse_termination_message("Traceback (most recent call last):\nKilled")
    assert failure_reason(_pod(EXIT_QUALITY_GATE), crash) == EXIT_CODE_REASONS[EXIT_QUALITY_GATE]
    assert failure_reason(_pod(137), crash) == RUNNER_ERROR


# --- what the readers turn down ----------------------------------------------------------------------

LONG = '{"kslim": "progress", "stage": "qat", "loss": ' + "1" * MAX_LINE_BYTES + "}"
BAD_PROGRESS = {
    "cut-off": ('{"kslim": "progress", "stage": "prune", "step": 2, "tot', "not JSON"),
    "not-json": ('{"kslim": progress}', "not JSON"),
    "too-long": (LONG, "longer than"),
    "another-kind": ('{"kslim": "hello", "stage": "qat"}', "not a"),
    "trailing-junk": ('{"kslim": "progress", "stage": "qat"} extra', "not JSON"),
    "unknown-stage": ('{"kslim": "progress", "stage": "dance"}', "unknown stage"),
    "deep": ('{"kslim": "progress", "x": ' + "[" * 490 + "]" * 490 + "}", "nested too deep"),
}


@pytest.fixture(autouse=True)
def _fresh_log_once() -> None:
    """Each distinct rejection is logged once per process: a test must not miss its warning because
    another test logged the same text first."""
    from kslim_api.contract import reading

    reading._log_once.cache_clear()


@pytest.mark.parametrize("case", BAD_PROGRESS)
def test_malformed_progress_lines_are_logged_not_raised(case: str, caplog) -> None:
    line, why = BAD_PROGRESS[case]
    with caplog.at_level(logging.WARNING, logger="kslim_api.contract"):
        assert parse_progress_line(line) is None
        assert last_progress(line + "\n") is None
    assert any(why in r.getMessage() and "progress line" in r.getMessage() for r in caplog.records)


def test_free_text_is_not_a_progress_line_and_not_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="kslim_api.contract"):
        assert last_progress("epoch 3 loss 2.0\n{not ours}\nkslim: job yolo: output /output\n") is None
    assert not caplog.records


def test_non_finite_numbers_never_reach_status() -> None:
    line = parse_progress_line(
        '{"kslim": "progress", "stage": "qat", "loss": NaN, "ap": 1e999, "percent": -Infinity}'
    )
    assert line is not None and (line.loss, line.ap, line.percent) == (None, None, None)
    report = parse_termination_message(
        '{"outcome": "Succeeded", "result": {"ap": NaN, "ap50": 1e999, "params": 5}}'
    )
    assert report is not None and report.result == {"ap": None, "ap50": None, "params": 5}


BAD_TERMINATION = {
    "cut-off": ('{"outcome": "Failed", "reason": "BadConfig", "mess', "not JSON"),
    "too-long": ('{"outcome": "Failed", "message": "' + "m" * LIMIT + '"}', "longer than"),
    "not-an-object": ('["outcome", "Failed"]', "not the runner's"),
    "another-object": ('{"hello": "world"}', "not the runner's"),
    "deep": ("[" * 2000 + "]" * 2000, "nested too deep"),
}


@pytest.mark.parametrize("case", BAD_TERMINATION)
def test_malformed_termination_messages_are_kept_as_text_and_logged(case: str, caplog) -> None:
    text, why = BAD_TERMINATION[case]
    with caplog.at_level(logging.WARNING, logger="kslim_api.contract"):
        report = parse_termination_message(text)
    assert report is not None and not report.structured and report.raw_text
    assert len(report.raw_text) <= 1025 and report.reason is None
    assert failure_reason(_pod(EXIT_USER), report) == RUNNER_ERROR
    assert any(why in r.getMessage() and "termination message" in r.getMessage() for r in caplog.records)


def test_a_crash_log_is_kept_quietly(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="kslim_api.contract"):
        report = parse_termination_message("Traceback (most recent call last):\nRuntimeError: CUDA error")
    assert report is not None and report.raw_text is not None and "CUDA" in report.raw_text
    assert not caplog.records


def test_a_field_of_the_wrong_type_is_dropped_not_trusted() -> None:
    text = json.dumps(
        {"outcome": "Failed", "reason": "not one word", "stage": 3, "baseline": [1], "artifacts": "x"}
    )
    report = parse_termination_message(text)
    assert report is not None and report.structured
    assert (report.reason, report.stage, report.baseline, report.artifacts) == (None, None, None, {})


@pytest.mark.parametrize("limit", [1000, 100_000])
def test_deep_nesting_is_refused_whatever_the_recursion_limit(limit: int, caplog) -> None:
    """Libraries imported into the operator may raise the recursion limit; the rule must not move."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        with caplog.at_level(logging.WARNING, logger="kslim_api.contract"):
            assert not parse_termination_message("[" * 2000 + "]" * 2000).structured
            assert parse_progress_line('{"kslim": "progress", "x": ' + "[" * 100 + "]" * 100 + "}") is None
    finally:
        sys.setrecursionlimit(old)
    assert sum("nested too deep" in r.getMessage() for r in caplog.records) == 2
    # strings may hold brackets: they are not nesting
    assert (
        parse_progress_line('{"kslim": "progress", "stage": "qat", "note": "' + "[" * 100 + '"}') is not None
    )
