"""Optimizer (AdamW or momentum SGD) with warm-up + cosine schedule and global-norm clipping."""

from __future__ import annotations

import functools

import paddle
from paddle import nn

from kslim_runner.train.config import TrainConfig, lr_factor


def _decays(name: str) -> bool:
    """No weight decay on norm parameters and biases."""
    return not (name.endswith(".bias") or ".bn." in name or "_bn" in name or name.endswith("b_0"))


def build_optimizer(
    model: nn.Layer, cfg: TrainConfig
) -> tuple[paddle.optimizer.Optimizer, paddle.optimizer.lr.LRScheduler]:
    sched = paddle.optimizer.lr.LambdaDecay(
        learning_rate=cfg.learning_rate,
        lr_lambda=functools.partial(
            lr_factor, total=cfg.iterations, warmup=cfg.warmup_iterations, min_ratio=cfg.min_lr_ratio
        ),
    )
    clip = nn.ClipGradByGlobalNorm(cfg.grad_clip_norm) if cfg.grad_clip_norm > 0 else None
    params = [p for p in model.parameters() if not p.stop_gradient]
    decay_names = {p.name for n, p in model.named_parameters() if _decays(n)}
    if cfg.optimizer == "adamw":
        opt = paddle.optimizer.AdamW(
            learning_rate=sched,
            parameters=params,
            weight_decay=cfg.weight_decay,
            grad_clip=clip,
            apply_decay_param_fun=lambda name: name in decay_names,
        )
    elif cfg.optimizer == "momentum":
        opt = paddle.optimizer.Momentum(
            learning_rate=sched,
            momentum=0.9,
            parameters=params,
            grad_clip=clip,
            weight_decay=paddle.regularizer.L2Decay(cfg.weight_decay),
        )
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer}")
    return opt, sched
