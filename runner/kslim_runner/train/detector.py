"""Train a detector: in this process (loop.py), data-parallel in several (distributed.py), or, in a
multi-node job, across every node (nodes/leader.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kslim_runner.data.coco import CocoIndex
from kslim_runner.models.base import Detector
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.distributed import WorkerTask, resolve_processes, train_spawned, worker_task
from kslim_runner.train.loop import LossFn, TrainResult, default_loss, train_in_process
from kslim_runner.train.nodes.leader import active, not_multi_node


def train_detector(
    detector: Detector,
    index: CocoIndex,
    cfg: TrainConfig,
    workdir: Path,
    *,
    stage: str,
    loss_fn: LossFn = default_loss,
    task: WorkerTask | None = None,
    in_process: str | None = None,
) -> TrainResult:
    """Train `detector` in place for cfg.iterations steps (or cfg.time_budget_seconds), resuming from
    workdir/checkpoint when one of the same length exists. With EMA, the detector ends holding the
    averaged weights, in eval mode.

    With cfg.processes > 1 the training runs data-parallel in that many processes
    (train/distributed.py) when workers can rebuild it: from `task`, or else from the detector and
    loss (a built-in detector, pruned or not, with the detection or a distillation loss).
    `in_process` says why a training must stay in this process (sparsify's masks).

    In a multi-node job (kslim run on worker 0) every training runs across all nodes, cfg.processes
    per node; one that workers cannot rebuild is a UserError (NotMultiNode)."""
    leader = active()
    if leader is not None:
        if task is None and in_process is None:
            task = worker_task(detector, loss_fn, Path(workdir))
        if task is None:
            raise not_multi_node(stage, leader.nodes.count, in_process)
        return leader.train(detector, task, index, cfg, Path(workdir), stage=stage)
    if cfg.processes != 1 and in_process is None:
        n = resolve_processes(cfg.processes)
        if n > 1:
            if task is None:
                task = worker_task(detector, loss_fn, Path(workdir))
            if task is not None:
                return train_spawned(detector, task, index, replace(cfg, processes=n), workdir, stage=stage)
            print(
                f"kslim: {stage}: trains in one process (data parallel covers built-in detectors, "
                "pruned, quantized or not, trained with the detection or a distillation loss)",
                flush=True,
            )
    return train_in_process(detector, index, cfg, workdir, stage=stage, loss_fn=loss_fn)
