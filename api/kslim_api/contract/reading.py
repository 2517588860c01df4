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


#: Deeper JSON is refused before parsing: whether json.loads raises RecursionError depends on the
#: interpreter's recursion limit (which imported libraries raise), so the depth rule is ours.
MAX_DEPTH = 64


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str) -> Any:
    """json.loads with NaN and infinities read as null: they are not JSON, and a status patch holding
    one would be refused. Raises ValueError like json.loads; TooDeep beyond MAX_DEPTH."""
    if _depth(text) > MAX_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_DEPTH}")
    return json.loads(text, parse_float=_finite, parse_constant=lambda _: None)


def reject(what: str, reason: str, text: str) -> None:
    """Log why `text` is not a valid `what`. The operator re-reads the same log tail and termination
    message on every pass, so each distinct rejection is logged once (recent ones, per process)."""
    _log_once(what, reason, text[:SAMPLE_CHARS])


@functools.lru_cache(maxsize=256)
def _log_once(what: str, reason: str, sample: str) -> None:
    logger.warning("ignored a malformed %s (%s): %r", what, reason, sample)
