"""The training loop: resumable from the last checkpoint, EMA, progress lines, throughput figures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import paddle

from kslim_runner.data.coco import CocoIndex
from kslim_runner.data.loader import train_loader
from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector
from kslim_runner.progress import Progress
from kslim_runner.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.ema import ModelEMA
from kslim_runner.train.optim import build_optimizer

LossFn = Callable[[Detector, Sequence[paddle.Tensor]], paddle.Tensor]


@dataclass
class TrainResult:
    iterations: int
    start_step: int
    steps_run: int
    final_loss: float | None
    seconds: float
    step_seconds: float | None
    images_per_second: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def default_loss(detector: Detector, batch: Sequence[paddle.Tensor]) -> paddle.Tensor:
    image, gt_box, gt_label = batch[0], batch[1], batch[2]
    return detector.loss(detector(image), gt_box, gt_label)


def _restore(
    detector: Detector, opt: paddle.optimizer.Optimizer, ema: ModelEMA | None, ckpt: Checkpoint
) -> None:
    detector.set_state_dict(ckpt.model)
    opt.set_state_dict(ckpt.optimizer)
    if ema is not None and ckpt.ema is not None:
        ema.set_state_dict(ckpt.ema)


def train_detector(
    detector: Detector,
    index: CocoIndex,
    cfg: TrainConfig,
    workdir: Path,
    *,
    stage: str,
    loss_fn: LossFn = default_loss,
) -> TrainResult:
    """Train `detector` in place for cfg.iterations steps, resuming from workdir/checkpoint if one
    exists. With EMA, the detector ends holding the averaged weights."""
    workdir = Path(workdir)
    ckpt_dir = workdir / "checkpoint"
    paddle.seed(cfg.seed)
    opt, sched = build_optimizer(detector, cfg)
    ema = ModelEMA(detector, cfg.ema_decay) if cfg.ema else None
    start = 0
    ckpt = load_checkpoint(ckpt_dir)
    if ckpt is not None and ckpt.meta.get("iterations") == cfg.iterations:
        _restore(detector, opt, ema, ckpt)
        start = min(ckpt.step, cfg.iterations)
        print(f"{stage}: resuming from the checkpoint at step {start} of {cfg.iterations}", flush=True)
    detector.train()
    progress = Progress(stage, cfg.iterations, every=cfg.log_every, start=start)
    loss_val: float | None = None
    t0 = time.monotonic()
    t_steady: float | None = None
    steady_from = start
    if start < cfg.iterations:
        loader = train_loader(
            index,
            detector.config.input_size,
            cfg.batch_size,
            cfg.seed,
            workers=cfg.workers,
            start_step=start,
            steps=cfg.iterations,
        )
        step = start
        for batch in loader:
            loss = loss_fn(detector, batch)
            loss.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
            step += 1
            if ema is not None:
                ema.update(detector)
            if step % cfg.log_every == 0 or step == cfg.iterations or step % cfg.checkpoint_every == 0:
                loss_val = float(loss)
                if not math.isfinite(loss_val):
                    raise UserError(
                        f"{stage}: the loss became {loss_val} at step {step}; lower train.learningRate "
                        f"(now {cfg.learning_rate}) or raise warmupIterations",
                        reason="TrainingDiverged",
                    )
            if t_steady is None and step - start >= min(5, cfg.iterations - start):
                t_steady, steady_from = time.monotonic(), step  # skip loader start-up and first kernels
            progress.update(step, loss=loss_val)
            if step % cfg.checkpoint_every == 0 and step < cfg.iterations:
                save_checkpoint(
                    ckpt_dir,
                    Checkpoint(
                        step=step,
                        model=detector.state_dict(),
                        optimizer=opt.state_dict(),
                        ema=ema.state_dict() if ema is not None else None,
                        meta={"iterations": cfg.iterations, "stage": stage},
                    ),
                )
    progress.close()
    seconds = time.monotonic() - t0
    steady_steps = (start + (cfg.iterations - start)) - steady_from if t_steady is not None else 0
    step_s = (
        (time.monotonic() - t_steady) / steady_steps if t_steady is not None and steady_steps > 0 else None
    )
    if ema is not None:
        detector.set_state_dict(ema.weights())
    detector.eval()
    return TrainResult(
        iterations=cfg.iterations,
        start_step=start,
        steps_run=cfg.iterations - start,
        final_loss=loss_val,
        seconds=round(seconds, 3),
        step_seconds=None if step_s is None else round(step_s, 4),
        images_per_second=None if step_s is None else round(cfg.batch_size / step_s, 2),
    )
