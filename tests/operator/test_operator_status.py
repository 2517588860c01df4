"""Status: conditions flip with their lastTransitionTime, patches are minimal, figures are clean."""

from __future__ import annotations

from cj_samples import REPORT, cj_body, report_text
from kslim_api.contract import ProgressLine, parse_termination_message
from kslim_operator import conditions as cond
from kslim_operator.observe import Observation
from kslim_operator.request import parse_request
from kslim_operator.status import Inputs, build_status, diff, invalid_spec_status, is_terminal

REQ = parse_request(cj_body())
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"


def test_merge_keeps_transition_time_unless_status_flips() -> None:
    first = cond.merge([], [cond.Desired("Running", False, "Queued", "waiting")], generation=1, now=T0)
    same = cond.merge(
        first, [cond.Desired("Running", False, "PodStarting", "starting")], generation=1, now=T1
    )
    assert same[0]["lastTransitionTime"] == T0 and same[0]["reason"] == "PodStarting"
    flipped = cond.merge(same, [cond.Desired("Running", True, "Running", "")], generation=2, now=T2)
    assert flipped[0]["lastTransitionTime"] == T2 and flipped[0]["observedGeneration"] == 2


def test_conditions_are_ordered_and_untouched_ones_stay() -> None:
    out = cond.merge(
        [{"type": "Custom", "status": "True", "reason": "X", "lastTransitionTime": T0}],
        [cond.Desired("Running", True, "Running"), cond.Desired("Accepted", True, "JobCreated")],
        generation=1,
        now=T1,
    )
    assert [c["type"] for c in out] == ["Accepted", "Running", "Custom"]


def _status(obs: Observation, current=None, **inputs):  # type: ignore[no-untyped-def]
    return build_status(
        REQ, obs, current or {}, Inputs(now=inputs.pop("now", T1), job_created=True, **inputs)
    )


def test_running_status_with_progress() -> None:
    line = ProgressLine(stage="prune", step=40, total=200, percent=20.0, loss=3.21, eta_seconds=95)
    st = _status(
        Observation("Running", "Running", "attempt 1 running", attempts=1), progress=line, progress_time=T1
    )
    assert st["phase"] == "Running" and st["stage"] == "prune"
    # prepare, baseline, prune, qat, export, evaluate, benchmark, report: prune is the 3rd of 8
    assert st["progress"] == {
        "percent": 27.5,
        "stagePercent": 20.0,
        "step": 40,
        "total": 200,
        "loss": 3.21,
        "etaSeconds": 95,
        "updateTime": T1,
    }
    assert st["startTime"] == T1 and st["attempts"] == 1 and st["observedGeneration"] == 1
    assert st["strategySummary"] == "prune(fpgm 0.3) > qat(pact)"
    assert cond.is_true(st["conditions"], "Accepted") and cond.is_true(st["conditions"], "Running")


def test_succeeded_status_carries_the_figures() -> None:
    report = parse_termination_message(report_text())
    obs = Observation("Succeeded", "Completed", "done", terminal=True, report=report, attempts=1)
    st = _status(obs, current={"startTime": T0}, now=T2)
    assert st["baseline"]["ap"] == 0.31 and st["result"]["int8SizeBytes"] == 1300000
    assert st["result"]["latencyMs"]["int8"]["p50"] == 1.5
    assert st["delta"]["speedup"] == 2.07
    assert st["qualityGate"] == {"passed": True, "message": "AP drop 0.4 <= 1.0 points"}
    assert st["artifacts"]["model"].endswith("/model")
    assert st["startTime"] == T0 and st["completionTime"] == T2 and st["stage"] == "report"
    assert cond.is_true(st["conditions"], "Succeeded") and not cond.is_true(st["conditions"], "Failed")
    assert cond.is_true(st["conditions"], "QualityGatePassed")
    assert is_terminal(st)


def test_unknown_report_fields_are_dropped_not_written_forever() -> None:
    text = report_text(result={**REPORT["result"], "surprise": 1, "ap": "not a number"})
    report = parse_termination_message(text)
    st = _status(Observation("Succeeded", "Completed", "", terminal=True, report=report))
    assert "surprise" not in st["result"] and "ap" not in st["result"] and st["result"]["ap50"] == 0.61


def test_failed_status() -> None:
    obs = Observation("Failed", "RunnerError", "the runner stopped with exit code 2", terminal=True)
    st = _status(obs)
    failed = cond.find(st["conditions"], "Failed")
    assert failed is not None and failed["status"] == "True" and failed["reason"] == "RunnerError"
    assert cond.find(st["conditions"], "Succeeded")["status"] == "False"  # type: ignore[index]
    assert is_terminal(st)


def test_an_undecidable_speedup_gate_keeps_its_reason_and_interval() -> None:
    gate = {"passed": False, "message": "undecided: speed-up 1.74x (p10-p90 ...) straddles 1.8x"}
    d = {**REPORT["delta"], "speedupLow": 1.24, "speedupHigh": 2.25, "speedupRounds": 10}
    text = report_text(outcome="Failed", reason="MeasurementUnstable", qualityGate=gate, delta=d)
    obs = Observation(
        "Failed",
        "MeasurementUnstable",
        gate["message"],
        terminal=True,
        report=parse_termination_message(text),
    )
    st = _status(obs)
    assert st["delta"]["speedupLow"] == 1.24 and st["delta"]["speedupHigh"] == 2.25
    assert cond.find(st["conditions"], "Failed")["reason"] == "MeasurementUnstable"  # type: ignore[index]
    gate_cond = cond.find(st["conditions"], "QualityGatePassed")
    assert gate_cond is not None and gate_cond["status"] == "False"
    assert gate_cond["reason"] == "MeasurementUnstable"


def test_suspend_then_resume_conditions() -> None:
    st = _status(Observation("Suspended", "Suspended", "suspended"))
    assert cond.is_true(st["conditions"], "Suspended")
    st2 = _status(Observation("Running", "Running", ""), current=st, now=T2)
    s = cond.find(st2["conditions"], "Suspended")
    assert (
        s is not None
        and s["status"] == "False"
        and s["reason"] == "Resumed"
        and s["lastTransitionTime"] == T2
    )


def test_diff_is_minimal_and_stable() -> None:
    obs = Observation("Pending", "Queued", "waiting")
    st = _status(obs)
    assert diff({}, st) == st
    again = build_status(REQ, obs, st, Inputs(now=T2, job_created=True))
    assert diff(st, again) == {}  # nothing changed: no patch (and no new lastTransitionTime)
    running = build_status(REQ, Observation("Running", "Running", "go"), st, Inputs(now=T2, job_created=True))
    patch = diff(st, running)
    assert set(patch) == {"phase", "message", "conditions"}


def test_invalid_spec_status() -> None:
    st = invalid_spec_status({}, "spec.model: field required", 3, T1)
    assert st["phase"] == "Failed" and st["observedGeneration"] == 3
    accepted = cond.find(st["conditions"], "Accepted")
    assert accepted is not None and accepted["status"] == "False" and accepted["reason"] == "InvalidSpec"
    assert cond.find(st["conditions"], "Failed")["reason"] == "InvalidSpec"  # type: ignore[index]


def test_condition_messages_are_redacted_like_the_status_message() -> None:
    secret = "cannot fetch https://user:s3cret@host/w.pdparams (401); also s3://key:k2@bucket/x"
    for st in (
        _status(Observation("Failed", "StorageAccessDenied", secret, terminal=True)),
        _status(Observation("Running", "Running", secret)),
        invalid_spec_status({}, secret, 1, T1),
    ):
        messages = [st["message"], *(c["message"] for c in st["conditions"])]
        assert all("s3cret" not in m and "k2" not in m for m in messages), messages
        assert any("https://***@host/w.pdparams" in c["message"] for c in st["conditions"])
    merged = cond.merge(None, [cond.Desired("Failed", True, "X", "s3://a:b@bucket")], generation=1, now=T1)
    assert merged[0]["message"] == "s3://***@bucket"
