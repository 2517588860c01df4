"""Backbones returning three feature maps at strides 8, 16 and 32 (C3, C4, C5), with their channels
in `out_channels`. Built from Paddle layers; attribute names are the stable parameter names."""

from __future__ import annotations

from collections.abc import Callable

import paddle
from paddle import nn

from kslim_runner.models.layers import ConvBN, make_divisible

BACKBONES: dict[str, Callable[[float], nn.Layer]] = {}


def register_backbone(name: str) -> Callable[[Callable[[float], nn.Layer]], Callable[[float], nn.Layer]]:
    def deco(fn: Callable[[float], nn.Layer]) -> Callable[[float], nn.Layer]:
        BACKBONES[name] = fn
        return fn

    return deco


def run_blocks(
    x: paddle.Tensor, blocks: nn.LayerList, out_at: tuple[int, ...]
) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
    """Run the blocks in order: (the last output, the outputs after the blocks numbered in out_at)."""
    outs = []
    for i, blk in enumerate(blocks):
        x = blk(x)
        if i in out_at:
            outs.append(x)
    return x, outs


class DepthwiseSeparable(nn.Layer):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride=stride, groups=cin)
        self.pw = ConvBN(cin, cout, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(nn.Layer):
    """MobileNetV1 (Howard et al. 2017) with a width multiplier; C3/C4/C5 = 256w/512w/1024w."""

    # (out channels at width 1, stride); the stage ends (C3, C4, C5) are after indices 4, 10, 12
    CFG = (
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    )
    OUT_AT = (4, 10, 12)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = make_divisible(32 * width)
        self.conv1 = ConvBN(3, c, 3, stride=2)
        blocks = []
        for cout, stride in self.CFG:
            co = make_divisible(cout * width)
            blocks.append(DepthwiseSeparable(c, co, stride))
            c = co
        self.blocks = nn.LayerList(blocks)
        self.out_channels = [make_divisible(self.CFG[i][0] * width) for i in self.OUT_AT]

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        return run_blocks(self.conv1(x), self.blocks, self.OUT_AT)[1]


class SqueezeExcite(nn.Layer):
    def __init__(self, c: int) -> None:
        super().__init__()
        mid = make_divisible(c // 4)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc1 = nn.Conv2D(c, mid, 1)
        self.fc2 = nn.Conv2D(mid, c, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s = nn.functional.hardsigmoid(
            self.fc2(nn.functional.relu(self.fc1(self.pool(x)))), slope=0.2, offset=0.5
        )
        return x * s


class InvertedResidual(nn.Layer):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, se: bool, act: str) -> None:
        super().__init__()
        self.expand = ConvBN(cin, mid, 1, act=act) if mid != cin else None
        self.dw = ConvBN(mid, mid, k, stride=stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else None
        self.project = ConvBN(mid, cout, 1, act="none")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class MobileNetV3(nn.Layer):
    """MobileNetV3-Large (Howard et al. 2019) with a width multiplier; C3/C4/C5 = 40w/112w/960w."""

    # kernel, expansion, out, squeeze-excite, activation, stride
    CFG = (
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hardswish", 2),
        (3, 200, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 480, 112, True, "hardswish", 1),
        (3, 672, 112, True, "hardswish", 1),
        (5, 672, 160, True, "hardswish", 2),
        (5, 960, 160, True, "hardswish", 1),
        (5, 960, 160, True, "hardswish", 1),
    )
    OUT_AT = (5, 11)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = make_divisible(16 * width)
        self.conv1 = ConvBN(3, c, 3, stride=2, act="hardswish")
        blocks = []
        for k, exp, cout, se, act, stride in self.CFG:
            mid, co = make_divisible(exp * width), make_divisible(cout * width)
            blocks.append(InvertedResidual(c, mid, co, k, stride, se, act))
            c = co
        self.blocks = nn.LayerList(blocks)
        last = make_divisible(960 * width)
        self.conv_last = ConvBN(c, last, 1, act="hardswish")
        self.out_channels = [make_divisible(self.CFG[i][2] * width) for i in self.OUT_AT] + [last]

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        x, outs = run_blocks(self.conv1(x), self.blocks, self.OUT_AT)
        return [*outs, self.conv_last(x)]


class DarkResidual(nn.Layer):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(c, c // 2, 1, act="leaky")
        self.conv2 = ConvBN(c // 2, c, 3, act="leaky")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv2(self.conv1(x))


class DarkStage(nn.Layer):
    def __init__(self, cin: int, cout: int, n: int) -> None:
        super().__init__()
        self.down = ConvBN(cin, cout, 3, stride=2, act="leaky")
        self.blocks = nn.Sequential(*[DarkResidual(cout) for _ in range(n)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(self.down(x))


class DarkNet53(nn.Layer):
    """DarkNet-53 (Redmon & Farhadi 2018): stages of 1, 2, 8, 8, 4 residual blocks; C3/C4/C5 = 256/512/1024
    (times the width multiplier, 1.0 in the original)."""

    DEPTHS = (1, 2, 8, 8, 4)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = make_divisible(32 * width)
        self.conv1 = ConvBN(3, c, 3, act="leaky")
        stages = []
        for i, n in enumerate(self.DEPTHS):
            co = make_divisible(64 * 2**i * width, 16)
            stages.append(DarkStage(c, co, n))
            c = co
        self.stages = nn.LayerList(stages)
        self.out_channels = [make_divisible(64 * 2**i * width, 16) for i in (2, 3, 4)]

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        x = self.conv1(x)
        outs = []
        for i, st in enumerate(self.stages):
            x = st(x)
            if i >= 2:
                outs.append(x)
        return outs


@register_backbone("mobilenet_v1")
def mobilenet_v1(width: float) -> nn.Layer:
    return MobileNetV1(width)


@register_backbone("mobilenet_v3")
def mobilenet_v3(width: float) -> nn.Layer:
    return MobileNetV3(width)


@register_backbone("darknet53")
def darknet53(width: float) -> nn.Layer:
    return DarkNet53(width)
