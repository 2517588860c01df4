"""Importing ppdet, and activating one config at a time.

ppdet keeps every setting in one global dict (`ppdet.core.workspace.global_config`) that holds the
registered classes' schemas and is *merged into* by each `load_config`; schemas themselves are
updated in place by a config's sections. So a second config loaded in the same process inherits the
first one's keys (a teacher's backbone settings leaking into the student). `activate` resets the
workspace to the schemas as registered at import, then merges exactly one config.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from typing import Any

_PRISTINE: dict[str, Any] | None = None


def ppdet() -> Any:
    """Import ppdet once (its optional tracking modules print install hints on stdout: swallowed)."""
    global _PRISTINE
    if _PRISTINE is None:
        with contextlib.redirect_stdout(io.StringIO()):
            import ppdet as _ppdet
            import ppdet.modeling
            from ppdet.core.workspace import global_config

            from kslim_runner.zoo import patches

            patches.apply()  # our fixes for paddle 2.6's 0-D tensors in ppdet 2.6's R-CNN code
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("ppdet"):
                logging.getLogger(name).setLevel(logging.WARNING)
        _PRISTINE = _snapshot(global_config)
    import ppdet as _ppdet

    return _ppdet


def _snapshot(config: dict[str, Any]) -> dict[str, Any]:
    """A copy whose schemas can be updated without touching the originals. Schemas hold their class's
    module (not deep-copyable); merging only sets keys on a schema, so a shallow copy each suffices."""
    return {k: v.copy() if hasattr(v, "schema") else copy.copy(v) for k, v in config.items()}


def registered(name: str) -> bool:
    """Whether ppdet knows a module of this name (an architecture, backbone, head, loss, ...)."""
    ppdet()
    assert _PRISTINE is not None
    return name in _PRISTINE


def activate(config: dict[str, Any]) -> Any:
    """Make `config` (a merged PaddleDetection config, plain data) ppdet's only config; returns the
    workspace dict that `create` reads."""
    ppdet()
    from ppdet.core.workspace import global_config, merge_config

    assert _PRISTINE is not None
    global_config.clear()
    global_config.update(_snapshot(_PRISTINE))
    merge_config(copy.deepcopy(config))
    return global_config


def create(name: str) -> Any:
    from ppdet.core.workspace import create as _create

    return _create(name)
