"""Progress reporting: one progress line (kslim_api.contract) per logging step on stdout, which the
operator reads from the pod log, and a tqdm bar on an interactive terminal."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from kslim_api.contract import NO_TQDM_ENV, ProgressLine

_SILENT = False


def silence() -> None:
    """No progress at all from this process (a multi-node follower: the operator reads the leader's)."""
    global _SILENT
    _SILENT = True


def interactive() -> bool:
    """A local terminal (tqdm bar) rather than a pod or a pipe."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(NO_TQDM_ENV):
        return False
    return sys.stderr.isatty()


class Progress:
    """Reports one stage's progress: JSON lines every `every` steps, plus tqdm when interactive."""

    def __init__(
        self,
        stage: str,
        total: int,
        *,
        every: int = 1,
        start: int = 0,
        stream: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        self.stage, self.total, self.every = stage, max(int(total), 0), max(int(every), 1)
        self.stream = stream or sys.stdout
        self.step = start
        self._t0 = time.monotonic()
        self._start = start
        self._bar = None
        self.quiet = quiet or _SILENT  # a data-parallel worker other than rank 0: rank 0 reports for all
        if interactive() and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=start, desc=stage, leave=False, dynamic_ncols=True)

    def eta(self) -> float | None:
        done = self.step - self._start
        if done <= 0:
            return None
        return (time.monotonic() - self._t0) / done * (self.total - self.step)

    def update(
        self, step: int, *, loss: float | None = None, ap: float | None = None, force: bool = False
    ) -> None:
        if self._bar is not None:
            self._bar.update(step - self.step)
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        self.step = step
        if force or step % self.every == 0 or step == self.total:
            self.emit(loss=loss, ap=ap)

    def emit(self, *, loss: float | None = None, ap: float | None = None) -> None:
        if self.quiet:
            return
        report = ProgressLine.at(self.stage, self.step, self.total, loss=loss, ap=ap, eta_seconds=self.eta())
        line = report.render()
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
