"""What the contract's parsers share: JSON as status can store it, and a logged reason (never an
exception) for whatever they turn down."""

from __future__ import annotations

import functools
import json
import logging
import math
from typing import Any

logger = logging.getLogger("kslim_api.contract")

#: How much of a rejected text the log quotes.
SAMPLE_CHARS = 200


def _finite(text: str) -> float | None:
    number = float(text)  # 1e999 is inf
    return number if math.isfinite(number) else None


def loads(text: str) -> Any:
    """json.loads with NaN and infinities read as null: they are not JSON, and a status patch holding
    one would be refused. Raises ValueError (RecursionError too deep) like json.loads."""
    return json.loads(text, parse_float=_finite, parse_constant=lambda _: None)


def reject(what: str, reason: str, text: str) -> None:
    """Log why `text` is not a valid `what`. The operator re-reads the same log tail and termination
    message on every pass, so each distinct rejection is logged once (recent ones, per process)."""
    _log_once(what, reason, text[:SAMPLE_CHARS])


@functools.lru_cache(maxsize=256)
def _log_once(what: str, reason: str, sample: str) -> None:
    logger.warning("ignored a malformed %s (%s): %r", what, reason, sample)
