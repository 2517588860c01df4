"""Optimizer (AdamW or momentum SGD) with global-norm clipping; the loop sets the learning rate
of each step from `schedule_factor` (warm-up + cosine or piecewise decay), so a resumed run
needs no scheduler state."""

from __future__ import annotations

import paddle
from paddle import nn

from kslim_runner.train.config import TrainConfig, schedule_factor


def _decays(name: str) -> bool:
    """No weight decay on norm parameters and biases."""
    return not (name.endswith(".bias") or ".bn." in name or "_bn" in name)


def build_optimizer(model: nn.Layer, cfg: TrainConfig) -> paddle.optimizer.Optimizer:
    lr0 = cfg.learning_rate * schedule_factor(cfg, 0)
    clip = nn.ClipGradByGlobalNorm(cfg.grad_clip_norm) if cfg.grad_clip_norm > 0 else None
    params = [p for p in model.parameters() if not p.stop_gradient]
    decay_names = {p.name for n, p in model.named_parameters() if _decays(n)}
    if cfg.optimizer == "adamw":
        return paddle.optimizer.AdamW(
            learning_rate=lr0,
            parameters=params,
            weight_decay=cfg.weight_decay,
            grad_clip=clip,
            apply_decay_param_fun=lambda name: name in decay_names,
        )
    if cfg.optimizer == "momentum":
        return paddle.optimizer.Momentum(
            learning_rate=lr0,
            momentum=cfg.momentum,
            parameters=params,
            grad_clip=clip,
            weight_decay=paddle.regularizer.L2Decay(cfg.weight_decay),
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer}")
