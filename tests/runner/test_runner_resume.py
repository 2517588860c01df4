"""A run killed mid-training (SIGKILL, as when a node dies) resumes from its last checkpoint and
finishes with the same outputs, running fewer steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runner_helpers import progress_lines

pytestmark = pytest.mark.slow


def _kslim(job: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "KSLIM_NO_TQDM": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "kslim_runner.cli", "run", str(job), "--output", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_killed_training_resumes_from_the_checkpoint(make_job, tmp_path: Path) -> None:
    job = make_job(
        train={
            "iterations": 40,
            "batchSize": 2,
            "workers": 0,
            "logEveryIterations": 5,
            "checkpointEveryIterations": 10,
            "warmupIterations": 2,
        }
    )
    out = tmp_path / "out"
    ckpt = out / "stages" / "baseline" / "checkpoint" / "checkpoint.json"
    proc = _kslim(job, out)
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be killed: " + (
        proc.stdout.read() if proc.stdout else ""
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = json.loads(ckpt.read_text())["step"]
    assert 10 <= killed_at < 40
    assert not (out / "report.json").exists()

    again = _kslim(job, out)
    text, _ = again.communicate(timeout=600)
    assert again.returncode == 0, text[-3000:]
    assert "resuming from the checkpoint at step" in text
    steps = [p["step"] for p in progress_lines(text) if p["stage"] == "baseline"]
    assert steps and min(steps) > killed_at and steps[-1] == 40
    report = json.loads((out / "report.json").read_text())
    train = report["rows"][0]["train"]
    assert train["start_step"] >= killed_at and train["steps_run"] == 40 - train["start_step"] < 40
    assert 0.0 <= report["baseline"]["ap"] <= 1.0
    assert (out / report["rows"][0]["model"] / "model.pdmodel").is_file()
    assert not ckpt.parent.exists()  # cleaned up once the weights are saved
