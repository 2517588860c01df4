"""Numbers of a PaddleDetection slim config -> the plain decimal strings kslim's spec takes (its
Decimal and Ratio fields), and the problem a wrong one is reported as (pure: YAML values in)."""

from __future__ import annotations

import decimal
from typing import Any


def plain_decimal(value: Any) -> str | None:
    """A YAML number (or numeric string) as a plain decimal string, e.g. 0.1 -> "0.1"; None when it
    is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = decimal.Decimal(value.strip() if isinstance(value, str) else repr(value))
    except decimal.InvalidOperation:
        return None
    return format(number, "f") if number.is_finite() else None


def as_ratio(value: Any) -> str | None:
    """`plain_decimal(value)` when it is strictly between 0 and 1, else None."""
    text = plain_decimal(value)
    return text if text is not None and 0 < decimal.Decimal(text) < 1 else None


def read_ratio(problems: list[str], key: str, value: Any) -> str | None:
    """`value` (the setting `key`) as a ratio strictly between 0 and 1, or None and a problem."""
    text = as_ratio(value)
    if text is None:
        problems.append(f"{key}: {value!r} is not a ratio strictly between 0 and 1")
    return text


def read_number(problems: list[str], key: str, value: Any, upper: str | None = None) -> str | None:
    """`value` (the setting `key`) as a non-negative decimal string, at most `upper` when given, or
    None and a problem."""
    text = plain_decimal(value)
    if (
        text is None
        or decimal.Decimal(text) < 0
        or (upper and decimal.Decimal(text) > decimal.Decimal(upper))
    ):
        bound = f" from 0 to {upper}" if upper else ""
        problems.append(f"{key}: {value!r} is not a non-negative number{bound}")
        return None
    return text
