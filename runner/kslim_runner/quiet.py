"""Third-party noise filtered where it starts, so a job's log is kslim's lines plus real errors.

- Paddle warns "When training, we now always track global mean and variance" on every BatchNorm
  forward in train mode, and paddle / PaddleSlim / PaddleDetection raise Deprecation and
  UserWarnings about their own internals: nothing a user can act on.
- tqdm bars (PaddleSlim's PTQ stages, ppdet) written to a pod log are carriage-return soup:
  TQDM_DISABLE makes every bar a no-op when stderr is not a terminal. tqdm reads it when it is
  first imported, so `install_env` runs before anything imports tqdm (kslim_runner's __init__).
- glog INFO lines ("New Executor is Running") from paddle's C++ side: GLOG_minloglevel=1 keeps
  its warnings and errors. Read when libpaddle loads, so also before paddle is imported.
- Paddle Inference's oneDNN int8 passes print ANSI-coloured "---    quantized 50 fused_conv2d ops"
  lines straight to stdout (C++, ignoring disable_glog_info): `c_output_filtered`
  drops them around predictor creation and passes every other line through.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TextIO

THIRD_PARTY = r"(paddle|paddleslim|ppdet|visualdl|pycocotools|scipy|sklearn|matplotlib)(\.|$)"
#: Lines Paddle's C++ analysis passes colour with "\x1b[37m" (detail style) and "\x1b[32m"
#: ("--- Running analysis", "--- Running IR pass"): pass bookkeeping, never an error.
PASS_LOG = re.compile(r"^\x1b\[(3[27]|1;32)m---")


def install_env() -> None:
    """Environment defaults third-party libraries read at import (a user's own setting wins)."""
    if not _stderr_is_tty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("GLOG_minloglevel", "1")


def install_warnings() -> None:
    """Python warnings of third-party modules that say nothing about the job."""
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def c_output_filtered(drop: re.Pattern[str] = PASS_LOG) -> Iterator[None]:
    """File descriptors 1 and 2 go to temporary files inside the block; afterwards their lines,
    except those matching `drop`, are written back to them (so C++ errors still show, in order)."""
    with _fd_filtered(1, sys.stdout, drop), _fd_filtered(2, sys.stderr, drop):
        yield


def _flush_c_stdio() -> None:
    """C++ std::cout writes through C stdio, fully buffered when not a terminal: flushed here, or
    its lines would surface after the descriptor is restored."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _fd_filtered(fd: int, stream: TextIO | None, drop: re.Pattern[str]) -> Iterator[None]:
    """The descriptor itself, not `stream`: C++ writes to fd 1 / 2 whatever sys.stdout is."""
    if stream is not None:
        stream.flush()  # Python's pending lines go out before, in order
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            if stream is not None:
                stream.flush()
            _flush_c_stdio()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not drop.match(line))
            if kept:
                os.write(fd, kept.encode())
