"""Running a job the way a user does (`kslim run`) in tests, and what every failed run must show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kslim_api.contract import EXIT_USER
from kslim_runner.run import run_command


def run_fails(job: Path, out: Path, capsys: Any) -> str:
    """Run job into out; it must exit 2 with exactly one line on stderr and no report. The line."""
    code = run_command(str(job), output=str(out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER, err
    assert len(err) == 1, err
    assert not (out / "report.json").exists()
    return err[0]
