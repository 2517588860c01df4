"""Fixtures for the runner's tests: tiny synthetic datasets and job files (CPU, seconds each).

kslim_runner is imported first: it initialises zlib before anything can import paddle.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (must precede paddle)
import pytest
import yaml
from runner_helpers import TINY_SIZE, job_doc
from support.tinydata import tiny_coco


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/{train,val}/{images,annotations.json}: 24 + 8 synthetic images at 96 px, 3 classes."""
    return tiny_coco(tmp_path_factory.mktemp("tinydata"), TINY_SIZE, seed=1)


@pytest.fixture
def make_job(tmp_path: Path, tiny_data: Path) -> Callable[..., Path]:
    """make_job(**spec overrides) -> path of job.yaml in a fresh folder holding a copy of the tiny data."""

    def make(doc: dict[str, Any] | None = None, **overrides: Any) -> Path:
        if not (tmp_path / "data").exists():
            shutil.copytree(tiny_data, tmp_path / "data")
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(doc if doc is not None else job_doc(**overrides), sort_keys=False))
        return path

    return make
