"""Training settings as plain values (converted from the job's TrainSpec by a pure function)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from kslim_runner.data.transforms import AugmentConfig

DEFAULT_ITERATIONS = 1000


@dataclass(frozen=True)
class TrainConfig:
    iterations: int
    batch_size: int = 8
    learning_rate: float = 0.001
    optimizer: str = "adamw"
    weight_decay: float = 0.0005
    warmup_iterations: int = 50
    min_lr_ratio: float = 0.05
    ema: bool = True
    ema_decay: float = 0.9998
    grad_clip_norm: float = 10.0
    seed: int = 0
    workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 100
    #: Stop after this many seconds of training (iterations is then an upper bound and the cosine
    #: schedule follows the time spent). For benchmarks; jobs use iterations or epochs.
    time_budget_seconds: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: Data-parallel training processes; None: one per visible GPU (train/distributed.py).
    processes: int | None = 1

    def with_overrides(self, **kw: Any) -> TrainConfig:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def iterations_for(epochs: int | None, iterations: int | None, n_images: int, batch_size: int) -> int:
    """Optimizer steps from epochs or iterations (neither: DEFAULT_ITERATIONS)."""
    if iterations is not None:
        return iterations
    if epochs is not None:
        return max(1, epochs * math.ceil(n_images / batch_size))
    return DEFAULT_ITERATIONS


def train_config_from_spec(spec: Any, n_images: int) -> TrainConfig:
    """kslim_api TrainSpec -> TrainConfig (decimals are strings in the spec)."""
    return TrainConfig(
        iterations=iterations_for(spec.epochs, spec.iterations, n_images, spec.batch_size),
        batch_size=spec.batch_size,
        learning_rate=float(spec.learning_rate),
        optimizer=spec.optimizer,
        weight_decay=float(spec.weight_decay),
        warmup_iterations=spec.warmup_iterations,
        ema=spec.ema,
        grad_clip_norm=float(spec.grad_clip_norm),
        seed=spec.seed,
        workers=spec.workers,
        log_every=spec.log_every_iterations,
        checkpoint_every=spec.checkpoint_every_iterations,
        processes=spec.data_parallel,
    )


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up from 10% to 100% over `warmup` steps, then cosine down to min_ratio."""
    if warmup > 0 and step < warmup:
        return 0.1 + 0.9 * step / warmup
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
