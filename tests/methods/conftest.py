"""Fixtures for the compression-method tests: tiny synthetic data, untrained tiny weights, job
folders, and a pipeline context advanced to the baseline (CPU, seconds).

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
from methods_helpers import SIZE, WIDTH, job_doc
from support.tinydata import tiny_coco


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/{train,val}/{images,annotations.json}: 24 + 8 synthetic images at 96 px, 3 classes."""
    return tiny_coco(tmp_path_factory.mktemp("methods-data"), SIZE, seed=3)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Initial weights of YOLOv3-MobileNetV1 x0.25 at 96 px (seed 0): a baseline without training."""
    import paddle
    from kslim_runner.models import DetectorConfig, build_detector

    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, SIZE, float(WIDTH)))
    path = tmp_path_factory.mktemp("methods-weights") / "base.pdparams"
    paddle.save(det.state_dict(), str(path))
    return path


@pytest.fixture
def make_job(
    tmp_path: Path, tiny_data: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """make_job(strategy, **spec overrides) -> job.yaml in a folder with the data and weights."""
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    monkeypatch.setenv("KSLIM_NO_TQDM", "1")

    def make(strategy: list[dict[str, Any]], **overrides: Any) -> Path:
        if not (tmp_path / "data").exists():
            shutil.copytree(tiny_data, tmp_path / "data")
            (tmp_path / "weights").mkdir()
            shutil.copy(tiny_weights, tmp_path / "weights" / "base.pdparams")
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(job_doc(strategy, **overrides), sort_keys=False))
        return path

    return make


@pytest.fixture
def staged(make_job: Callable[..., Path], tmp_path: Path) -> Callable[..., Any]:
    """staged(strategy, **overrides) -> a RunContext after prepare + baseline + the fast checks;
    run its steps with methods_helpers.run_steps(ctx)."""
    from kslim_runner.pipeline.baseline import BaselineStage
    from kslim_runner.pipeline.prepare import PrepareStage
    from kslim_runner.pipeline.stage import Pipeline
    from kslim_runner.pipeline.steps import check_steps
    from kslim_runner.run import _setup_context, build_pipeline

    def make(strategy: list[dict[str, Any]], **overrides: Any) -> Any:
        job = make_job(strategy, **overrides)
        ctx = _setup_context(str(job), str(tmp_path / "out"))
        build_pipeline(ctx)
        check_steps(ctx, ctx.steps)
        Pipeline([PrepareStage(), BaselineStage()]).run(ctx)
        return ctx

    return make
