"""Compression methods: one typed descriptor per method (its name, the schema's step model, how it
runs, its fast checks, and how the model of a row it made is rebuilt in Python), registered by the
method's own module in kslim_runner.methods. One registry: a step's method and the loader of the
model it leaves behind are looked up by the same name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kslim_api.contract import Reason

from kslim_runner.errors import UserError

RunFn = Callable[[Any, Any, Any], Any]  # (RunContext, step config, input Row) -> output Row
CheckFn = Callable[[Any, Any], None]  # (RunContext, step config): fast user-error checks
RestoreFn = Callable[[dict[str, Any], Callable[[str], Path]], Any]  # (row.model, path_of) -> model


@dataclass(frozen=True)
class MethodDescriptor:
    """What a strategy step named `name` means to the runner."""

    name: str
    """The strategy key, the progress stage, and the `kind` of the row models the method records."""
    config_class: type
    """The schema's step model (e.g. PruneStep)."""
    run: RunFn
    check: CheckFn | None = None
    """Checks that need no training (bad parameter names, missing teacher weights), run first."""
    restore: RestoreFn | None = None
    """Rebuilds a row's model this method made ({"kind": name, ...}) in Python; None when its rows
    record a model of a source kind instead (PTQ's inference model)."""


METHODS: dict[str, MethodDescriptor] = {}
METHOD_PACKAGE = "kslim_runner.methods"


def register_method(descriptor: MethodDescriptor) -> MethodDescriptor:
    if descriptor.name in METHODS:
        raise ValueError(f"method {descriptor.name} registered twice")
    METHODS[descriptor.name] = descriptor
    return descriptor


def load_methods() -> dict[str, MethodDescriptor]:
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
                reason=Reason.METHOD_UNAVAILABLE,
            )
