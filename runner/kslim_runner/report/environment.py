"""Versions and machine facts recorded in the report."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def environment() -> dict:
    import paddle

    return {
        "versions": {
            "paddle": paddle.__version__,
            "paddleslim": _version("paddleslim"),
            "pycocotools": _version("pycocotools"),
            "numpy": _version("numpy"),
            "kslim": _version("kslim"),
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpuCount": os.cpu_count(),
        "paddleCuda": bool(paddle.device.is_compiled_with_cuda()),
    }
