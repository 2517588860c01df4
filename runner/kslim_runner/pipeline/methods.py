"""Compression methods as registered stages: each has a name (the strategy key and the progress
stage), a config class (the schema's step model) and run(ctx, config, input_row) -> output row.
The methods themselves live in their own modules (kslim_runner.methods.*) and register here."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kslim_runner.errors import UserError

RunFn = Callable[[Any, Any, Any], Any]  # (RunContext, step config, input Row) -> output Row
CheckFn = Callable[[Any, Any], None]  # (RunContext, step config): fast user-error checks


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type
    run: RunFn
    check: CheckFn | None = None
    label: Callable[[Any], str] | None = None


METHODS: dict[str, Method] = {}
METHOD_PACKAGE = "kslim_runner.methods"


def register_method(
    name: str, config_class: type, *, check: CheckFn | None = None, label: Callable[[Any], str] | None = None
) -> Callable[[RunFn], RunFn]:
    def deco(fn: RunFn) -> RunFn:
        if name in METHODS:
            raise ValueError(f"method {name} registered twice")
        METHODS[name] = Method(name, config_class, fn, check, label)
        return fn

    return deco


def load_methods() -> dict[str, Method]:
    """Import every module of kslim_runner.methods (each registers its method)."""
    try:
        pkg = importlib.import_module(METHOD_PACKAGE)
    except ModuleNotFoundError:
        return METHODS
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{METHOD_PACKAGE}.{info.name}")
    return METHODS


def check_methods(methods: list[str]) -> None:
    """Every step's method exists in this runner; raises UserError before anything long starts."""
    available = load_methods()
    for i, m in enumerate(methods):
        if m not in available:
            have = ", ".join(sorted(available)) or "none yet"
            raise UserError(
                f"strategy[{i}] is {m}, which this runner version does not implement (available: {have}); "
                "remove the step or use a newer runner image",
                reason="MethodUnavailable",
            )
