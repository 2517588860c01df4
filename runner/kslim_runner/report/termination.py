"""Writes the termination message (kslim_api.contract.TerminationMessage) where the pod keeps it."""

from __future__ import annotations

import os
from pathlib import Path

from kslim_api.contract import TERMINATION_MESSAGE_PATH, TERMINATION_MESSAGE_PATH_ENV, TerminationMessage


def write(message: TerminationMessage) -> Path | None:
    """Write to $KSLIM_TERMINATION_MESSAGE_PATH, else to the pod's default path when it exists.
    Locally, with neither, nothing is written. Never raises."""
    env = os.environ.get(TERMINATION_MESSAGE_PATH_ENV)
    path = Path(env) if env else Path(TERMINATION_MESSAGE_PATH)
    if not env and not path.exists():
        return None
    try:
        path.write_text(message.render())
        return path
    except OSError:
        return None
