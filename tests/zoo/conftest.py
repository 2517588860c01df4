"""Fixtures for the PaddleDetection-zoo tests: tiny data, a config tree and weights in
PaddleDetection's parameter names (a freshly initialised model, saved as PaddleDetection saves it).

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
from support.tinydata import tiny_coco
from zoo_helpers import SIZE, config_tree, zoo_job


@pytest.fixture(scope="session")
def zoo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_coco(tmp_path_factory.mktemp("zoo-data"), SIZE, seed=5)


@pytest.fixture(scope="session")
def zoo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pdparams of the tree's model (3 classes), keys in PaddleDetection's names."""
    import paddle
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource

    root = tmp_path_factory.mktemp("zoo-weights")
    paddle.seed(0)
    model = build_model(ZooSource(str(config_tree(root)), "tiny", 3, SIZE))
    path = root / "ppdet.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path


@pytest.fixture
def make_zoo_job(
    tmp_path: Path, zoo_data: Path, zoo_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """make_zoo_job(strategy, config_extra="", **model overrides) -> job.yaml beside its config tree,
    data and weights."""
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    monkeypatch.setenv("KSLIM_NO_TQDM", "1")

    def make(strategy: list[dict[str, Any]] | None, config_extra: str = "", **model: Any) -> Path:
        if not (tmp_path / "data").exists():
            shutil.copytree(zoo_data, tmp_path / "data")
            (tmp_path / "weights").mkdir()
            shutil.copy(zoo_weights, tmp_path / "weights" / "ppdet.pdparams")
        config_tree(tmp_path, model_extra=config_extra)
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(zoo_job(strategy, **model), sort_keys=False))
        return path

    return make
