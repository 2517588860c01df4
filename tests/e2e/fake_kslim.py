"""A stand-in for the runner (`kslim run JOB --output DIR`) in the local kubelet's own tests.

It follows the runner contract (docs/contracts.md) without Paddle: progress lines on stdout, a
termination message at $KSLIM_TERMINATION_MESSAGE_PATH, files in the output folder, exit code.
The job file is JSON (which is YAML) with the knobs: exitCode, sleep, steps, reason, message.
It records what it saw (argv, cwd, env, pid) in DIR/seen.json so the tests can check the mapping.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from kslim_api.contract import TERMINATION_MESSAGE_PATH_ENV, Outcome, ProgressLine, Reason, TerminationMessage


def main(argv: list[str]) -> int:
    if argv[:1] != ["run"] or "--output" not in argv:
        print(f"usage: kslim run JOB --output DIR (got {argv})", file=sys.stderr)
        return 2
    job_file, output = Path(argv[1]), Path(argv[argv.index("--output") + 1])
    knobs = json.loads(job_file.read_text())
    output.mkdir(parents=True, exist_ok=True)
    seen = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "pid": os.getpid()}
    (output / "seen.json").write_text(json.dumps(seen))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    steps = int(knobs.get("steps", 3))
    for step in range(1, steps + 1):
        print(ProgressLine.at("baseline", step, steps).render(), flush=True)
    print("free text on stderr", file=sys.stderr, flush=True)
    time.sleep(float(knobs.get("sleep", 0)))
    code = int(knobs.get("exitCode", 0))
    message = TerminationMessage(
        outcome=Outcome.SUCCEEDED if code == 0 else Outcome.FAILED,
        reason=knobs.get("reason", Reason.COMPLETED if code == 0 else "FakeFailure"),
        message=knobs.get("message", "fake runner done"),
        stage="report",
    )
    if knobs.get("writeMessage", True):
        Path(os.environ[TERMINATION_MESSAGE_PATH_ENV]).write_text(message.render())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
