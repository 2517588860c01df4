"""Metrics: Prometheus names, per-job series that follow the index, promtool-clean output."""

from __future__ import annotations

import shutil
import subprocess

from cj_samples import cj_body, report_text
from kslim_api.contract import parse_termination_message
from kslim_operator.metrics import Metrics
from kslim_operator.observe import Observation
from kslim_operator.request import parse_request
from kslim_operator.status import Inputs, build_status
from kslim_operator.summary import summarize_job
from prometheus_client import generate_latest


def _finished_body(name: str) -> dict:  # type: ignore[type-arg]
    body = cj_body(name=name)
    obs = Observation(
        "Succeeded", "Completed", "", terminal=True, report=parse_termination_message(report_text())
    )
    body["status"] = build_status(
        parse_request(body), obs, {}, Inputs(now="2026-01-01T00:10:00Z", job_created=True)
    )
    return body


def _metrics(bodies: list[dict]) -> Metrics:  # type: ignore[type-arg]
    summaries = [summarize_job(b) for b in bodies]
    m = Metrics(source=lambda: summaries)
    m.created.inc()
    m.succeeded.inc()
    m.failed.labels(reason="QualityGateFailed").inc()
    m.job_duration.labels(outcome="Succeeded").observe(600)
    m.stage_duration.labels(stage="prune").observe(42)
    m.reconcile_errors.labels(kind="TransientError").inc()
    return m


def test_per_job_series_come_and_go_with_the_jobs() -> None:
    text = generate_latest(_metrics([_finished_body("a"), cj_body(name="b")]).registry).decode()
    assert 'kslim_job_ap{model="result",name="a",namespace="team-a"} 0.306' in text
    assert (
        'kslim_job_latency_seconds{model="result",name="a",namespace="team-a",precision="int8"} 0.0015'
        in text
    )
    assert 'kslim_job_speedup_ratio{name="a",namespace="team-a"} 2.07' in text
    assert 'kslim_jobs{phase="Succeeded"} 1.0' in text and 'kslim_jobs{phase="Pending"} 1.0' in text
    assert 'kslim_jobs_failed_total{reason="QualityGateFailed"} 1.0' in text
    gone = generate_latest(_metrics([cj_body(name="b")]).registry).decode()
    assert 'name="a"' not in gone


def test_promtool_check_metrics_passes() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make tools`"
    text = generate_latest(_metrics([_finished_body("a")]).registry)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
