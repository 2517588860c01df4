"""Building a PaddleDetection model from a ZooSource, and loading PaddleDetection-named weights.

Models are built inside a fresh unique-name scope: Paddle's generated parameter names
(`conv2d_27.w_0`, what PaddleDetection's prune configs name) are then the same on every build, in
every process, whatever was built before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paddle
from kslim_api.contract import Reason
from paddle import nn

from kslim_runner.errors import UserError
from kslim_runner.zoo.config import ZooSource, fit_config
from kslim_runner.zoo.lib import activate, create


def build_model(source: ZooSource) -> nn.Layer:
    """A freshly initialised model (the caller seeds paddle for reproducible weights), in eval mode,
    with `config` set to its source."""
    cfg, _ = fit_config(source)
    activate(cfg)
    try:
        with paddle.utils.unique_name.guard():
            model = create(cfg["architecture"])
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise UserError(
            f"PaddleDetection config {source.config} does not build: {type(e).__name__}: {e}",
            reason=Reason.BAD_CONFIG,
        ) from e
    model.config = source
    model.eval()
    return model


def sample_inputs(size: int, batch: int = 1) -> dict[str, paddle.Tensor]:
    """PaddleDetection's inference inputs for `batch` square images of `size` px."""
    return {
        "image": paddle.ones([batch, 3, size, size], dtype="float32"),
        "im_shape": paddle.full([batch, 2], size, dtype="float32"),
        "scale_factor": paddle.ones([batch, 2], dtype="float32"),
    }


#: Every input size that is a multiple of this fits the models PaddleDetection builds.
SAFE_STRIDE = 32


@contextlib.contextmanager
def refusing_unfit_size(failure: str) -> Iterator[None]:
    """Inside it, the error a forward pass raises from deep in Paddle at an input size the model does
    not fit becomes a one-line UserError: `failure` (what did not fit), the error's first line, and
    the fix."""
    try:
        yield
    except (ValueError, RuntimeError, AssertionError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"{failure} ({first[:200]}); use a multiple of {SAFE_STRIDE}", reason=Reason.INVALID_SPEC
        ) from e


def check_input_size(source: ZooSource) -> None:
    """An input size off the largest stride (SSD's 300) fits some models and not others (a YOLO neck
    concatenates maps of mismatched sizes): one forward pass tells, before anything trains."""
    if source.input_size % SAFE_STRIDE == 0:
        return
    model = build_model(source)
    failure = f"model.inputSize {source.input_size} does not fit the model of {source.config}"
    with refusing_unfit_size(failure), paddle.no_grad():
        model(sample_inputs(source.input_size))


def read_weights(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(
            f"weights file {path} not found; check model.weights.uri", reason=Reason.DATA_NOT_FOUND
        )
    try:
        state = paddle.load(str(path))
    except Exception as e:
        raise UserError(
            f"weights file {path} is not a Paddle .pdparams file ({type(e).__name__}: {e})",
            reason=Reason.BAD_WEIGHTS,
        ) from e
    if not isinstance(state, dict) or not state:
        raise UserError(f"weights file {path} holds no parameters", reason=Reason.BAD_WEIGHTS)
    return state


def load_weights(model: nn.Layer, path: Path) -> None:
    """Load a .pdparams into the model; a UserError naming the first bad key, its shape and the
    config on any mismatch. Extra keys (an EMA copy, optimizer state) are ignored, as PaddleDetection
    ignores them."""
    state = read_weights(path)
    expected = model.state_dict()
    source = getattr(model, "config", None)
    what = f"the model of {source.config} ({source.num_classes} classes)" if source else "the model"
    for k, v in expected.items():
        if k not in state:
            missing = sum(1 for key in expected if key not in state)
            raise UserError(
                f"weights file {path} does not match {what}: {k} is missing ({missing} of {len(expected)} "
                "parameters missing); give weights trained from this config",
                reason=Reason.BAD_WEIGHTS,
            )
        got = list(getattr(state[k], "shape", []))
        if got != list(v.shape):
            raise UserError(
                f"weights file {path} does not match {what}: {k} has shape {got}, the config builds "
                f"{list(v.shape)}; check model.numClasses and the config",
                reason=Reason.BAD_WEIGHTS,
            )
    model.set_state_dict({k: state[k] for k in expected})
