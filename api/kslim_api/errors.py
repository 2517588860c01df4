"""Pydantic validation errors as `field path: what to fix`, with camelCase paths like the API server's
(`spec.strategy[1].prune.ratio`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kslim_api.contract import redact
from kslim_api.slimconfig import SlimConfigError
from kslim_api.v1alpha1 import PATTERN_HINTS, RuleViolation


@dataclass(frozen=True)
class FieldError:
    path: str
    """Where, e.g. spec.strategy[1].prune.ratio (empty: the whole document)."""
    message: str
    """What is wrong and, where possible, what to do."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def format_path(loc: tuple[int | str, ...] | list[Any], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def _join(base: str, sub: str | None) -> str:
    """base + a rule's fieldPath (".dataset.train")."""
    if not sub:
        return base
    return f"{base}{sub}" if base else sub.lstrip(".")


def _short(value: Any) -> str:
    text = redact(repr(value))  # a rejected value may carry a password in a URI
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; field names are camelCase)"
    if kind == "string_pattern_mismatch":
        hint = PATTERN_HINTS.get(str(ctx.get("pattern")))
        return (
            f"{hint} (got {_short(err['input'])})" if hint else f"{err['msg']} (got {_short(err['input'])})"
        )
    if (
        kind == "string_type"
        and isinstance(err["input"], (int, float))
        and not isinstance(err["input"], bool)
    ):
        return (
            "decimals are strings in this API (Kubernetes spec has no floats): quote the value, "
            f'write "{err["input"]}" (got the number {err["input"]!r})'
        )
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind in {
        "literal_error",
        "enum",
        "greater_than_equal",
        "less_than_equal",
        "multiple_of",
        "int_parsing",
        "int_type",
        "string_type",
        "bool_type",
        "bool_parsing",
        "int_from_float",
    }:
        return f"{err['msg']} (got {_short(err['input'])})"
    return str(err["msg"])


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Every error of `exc`, one FieldError per problem (rule violations and slim-config problems
    are split into one entry each)."""
    out: list[FieldError] = []
    for err in exc.errors():
        path = format_path(err["loc"], prefix)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolation):
            for rule in cause.rules:
                sub = cause.field_path if cause.field_path is not None else rule.field_path
                out.append(FieldError(_join(path, sub), rule.message))
        elif isinstance(cause, SlimConfigError):
            out.extend(FieldError(path, problem) for problem in cause.problems)
        else:
            out.append(FieldError(path, _message(err)))
    return out
