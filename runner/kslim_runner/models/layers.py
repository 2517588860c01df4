"""Building blocks shared by the backbones and necks (Paddle layers only)."""

from __future__ import annotations

import paddle
from paddle import nn

ACTS: dict[str, type[nn.Layer] | None] = {
    "relu": nn.ReLU,
    "leaky": None,  # LeakyReLU(0.1), built below
    "hardswish": nn.Hardswish,
    "none": None,
}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to a multiple of divisor (at most 10% below v)."""
    min_value = min_value or divisor
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def activation(name: str) -> nn.Layer:
    if name == "leaky":
        return nn.LeakyReLU(0.1)
    if name == "none":
        return nn.Identity()
    cls = ACTS[name]
    assert cls is not None
    return cls()


class ConvBN(nn.Layer):
    """Conv2D (no bias) + BatchNorm2D + activation: the unit pruning works on."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "relu"
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias_attr=False
        )
        self.bn = nn.BatchNorm2D(cout)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.bn(self.conv(x)))
