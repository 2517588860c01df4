"""The termination message (< 4 KiB compact JSON) the operator reads from the pod's status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PATH_ENV = "KSLIM_TERMINATION_MESSAGE_PATH"
DEFAULT_PATH = "/dev/termination-log"
LIMIT = 4096


def compact(payload: dict[str, Any]) -> str:
    """Compact JSON under LIMIT bytes: the message is shortened first, then optional parts dropped."""
    body = dict(payload)
    text = json.dumps(body, separators=(",", ":"))
    if len(text.encode()) < LIMIT:
        return text
    if isinstance(body.get("message"), str):
        body["message"] = body["message"][:512]
    for key in ("artifacts", "delta", "result", "baseline", "qualityGate"):
        text = json.dumps(body, separators=(",", ":"))
        if len(text.encode()) < LIMIT:
            return text
        body.pop(key, None)
    return json.dumps(body, separators=(",", ":"))[: LIMIT - 1]


def write(payload: dict[str, Any]) -> Path | None:
    """Write to $KSLIM_TERMINATION_MESSAGE_PATH (default /dev/termination-log when it exists, as in a
    pod). Locally, with neither, nothing is written. Never raises."""
    env = os.environ.get(PATH_ENV)
    path = Path(env) if env else Path(DEFAULT_PATH)
    if not env and not path.exists():
        return None
    try:
        path.write_text(compact(payload))
        return path
    except OSError:
        return None
