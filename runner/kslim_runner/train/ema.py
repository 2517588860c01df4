"""Exponential moving average of a model's weights (buffers such as BN statistics are copied)."""

from __future__ import annotations

import paddle
from paddle import nn


class ModelEMA:
    """ema = d * ema + (1 - d) * w with d = min(decay, (1 + step) / (10 + step)), so short runs
    are not dominated by the random initialisation."""

    def __init__(self, model: nn.Layer, decay: float = 0.9998) -> None:
        self.decay = decay
        self.step = 0
        self.param_names = {n for n, _ in model.named_parameters()}
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @paddle.no_grad()
    def update(self, model: nn.Layer) -> None:
        self.step += 1
        d = min(self.decay, (1 + self.step) / (10 + self.step))
        for k, v in model.state_dict().items():
            if k in self.param_names and paddle.is_floating_point(v):
                self.state[k].set_value(self.state[k] * d + v.detach() * (1 - d))
            else:
                self.state[k].set_value(v.detach())

    def state_dict(self) -> dict:
        return {"step": self.step, "decay": self.decay, "weights": self.state}

    def set_state_dict(self, sd: dict) -> None:
        self.step = int(sd["step"])
        for k, v in sd["weights"].items():
            if k in self.state:
                self.state[k].set_value(v)

    def weights(self) -> dict[str, paddle.Tensor]:
        return self.state
