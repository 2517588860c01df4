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
from kslim_runner.data.synth import SynthConfig, generate
from runner_helpers import TINY_SIZE, job_doc


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/{train,val}/{images,annotations.json}: 24 + 8 synthetic images at 96 px, 3 classes."""
    root = tmp_path_factory.mktemp("tinydata")
    generate(root / "train", SynthConfig(images=24, size=TINY_SIZE, classes=3, seed=1), split="train")
    generate(root / "val", SynthConfig(images=8, size=TINY_SIZE, classes=3, seed=1), split="val")
    return root


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
