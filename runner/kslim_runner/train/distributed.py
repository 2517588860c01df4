"""Data-parallel training in several processes with paddle.distributed: NCCL across the visible GPUs,
gloo across CPU cores (paddle 2.6's CPU convolutions use about one core each, so processes, not
threads, are what make a multi-core CPU train faster).

The job's process stays the parent: it saves the weights of the layer being trained, spawns the
workers, and loads the weights rank 0 wrote at the end. Each worker rebuilds that layer and its loss
from a WorkerTask, a picklable recipe: DetectionTask for a built-in detector, pruned or not, trained
with the detection loss (the baseline, a teacher, pruning's fine-tuning); a loss that knows how to
rebuild itself (distillation's, methods/distill_loss.py) supplies its own, and so does a method whose
model a worker cannot derive from the layer (QAT's fake-quant wrappers, methods/qat.py).

A session is staged (`stage_session`), run (`run_workers`, this machine's share of a `Layout`) and
finished (`finish_session`); a multi-node job's leader (train/nodes/leader.py) hands the staged files
to the other nodes between the first two steps, and its followers run their share with the same
`run_workers` (train/nodes/follower.py).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import paddle

from kslim_runner.atomic import write_json, write_with
from kslim_runner.data.coco import CocoIndex
from kslim_runner.device import cpu_threads, probe, use_cpu_threads
from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.layout import apply_layout, layout_of
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.loop import LossFn, Rank, TrainResult, default_loss, train_in_process

#: Hand-over files between the parent and its workers; every file a task writes starts with PREFIX
#: too, so that all of them are removed once training ends.
PREFIX = "dp-"
JOB, INIT, FINAL = "dp-job.pickle", "dp-init.pdparams", "dp-final.pdparams"
ERROR = "dp-error.json"
RESULTS = f"{PREFIX}result-*.json"


def result_name(rank: int) -> str:
    """Each worker's TrainResult (its own count of the steps it ran), by global rank."""
    return f"{PREFIX}result-{rank}.json"


def outputs(workdir: Path) -> list[Path]:
    """What the workers write back: the files of a session that are not its inputs."""
    return [workdir / FINAL, workdir / ERROR, *workdir.glob(RESULTS)]


@dataclass(frozen=True)
class Layout:
    """This machine's share of a data-parallel world: its `local` processes are global ranks
    offset .. offset+local-1 of `world`, over `nodes` machines. `master` (host:port) is where global
    rank 0 hosts paddle's rendezvous store (its TCPStore); None on a single machine: a free port here."""

    local: int
    world: int
    offset: int = 0
    master: str | None = None
    nodes: int = 1


class WorkerTask(Protocol):
    """How a worker rebuilds the layer being trained (before its weights are loaded) and the loss
    that trains it. Picklable; files it needs are written to the work folder, named PREFIX*."""

    def build(self, workdir: Path) -> tuple[Detector, LossFn]: ...


@dataclass(frozen=True)
class DetectionTask:
    """A model (its config, built-in or PaddleDetection's, and its layout, so pruned shapes too) with
    its detection loss."""

    config: dict[str, Any]
    layout: dict[str, Any]
    zoo: bool = False

    def model_config(self) -> Any:
        from kslim_runner.zoo.config import ZooSource

        return ZooSource.from_dict(self.config) if self.zoo else DetectorConfig.from_dict(self.config)

    def build_detector(self) -> Detector:
        from kslim_runner.pipeline.models import build_model

        det = build_model(self.model_config())
        apply_layout(det, self.layout)
        return det

    def build(self, workdir: Path) -> tuple[Detector, LossFn]:
        return self.build_detector(), default_loss

    def build_trained(self, weights: Path) -> Detector:
        """The detector with the weights saved for the workers (a teacher, by `pair_tasks`)."""
        det = self.build_detector()
        det.set_state_dict(paddle.load(str(weights)))
        return det


def gpu_count() -> int:
    return len(probe()[1])  # a broken driver shows as no GPU; the run's device check reports it


def resolve_processes(requested: int | None) -> int:
    """The job's train.dataParallel, or by default one process per visible GPU (1 on CPU)."""
    if requested is not None:
        return requested
    return max(1, gpu_count())


def detection_task(detector: Any) -> DetectionTask | None:
    """The recipe for a detector a worker can rebuild from its config and layout: one with the same
    parameter names as its architecture (pruning changes shapes only; quantization wrappers add
    names). None for anything else."""
    from kslim_runner.pipeline.models import build_model
    from kslim_runner.zoo.config import ZooSource

    config = getattr(detector, "config", None)
    if not isinstance(config, DetectorConfig | ZooSource):
        return None
    if build_model(config).state_dict().keys() != detector.state_dict().keys():
        return None
    return DetectionTask(config.to_dict(), layout_of(detector), zoo=isinstance(config, ZooSource))


def pair_tasks(
    student: Any, teacher: Any, teacher_weights: Path
) -> tuple[DetectionTask, DetectionTask] | None:
    """The recipes for a distillation pair, with the teacher's weights saved to `teacher_weights`
    (named PREFIX*) for `build_trained`; None when either model cannot be rebuilt."""
    student_task, teacher_task = detection_task(student), detection_task(teacher)
    if student_task is None or teacher_task is None:
        return None
    teacher_weights.parent.mkdir(parents=True, exist_ok=True)
    write_with(teacher_weights, lambda tmp: paddle.save(teacher.state_dict(), str(tmp)))
    return student_task, teacher_task


def worker_task(detector: Detector, loss_fn: Any, workdir: Path) -> WorkerTask | None:
    """How workers rebuild this training, or None when it can only run in this process: the
    detection loss on a rebuildable detector, or a loss with its own `worker_task`."""
    if loss_fn is default_loss:
        return detection_task(detector)
    own = getattr(loss_fn, "worker_task", None)
    return own(detector, workdir) if callable(own) else None


def local_processes(cfg: TrainConfig) -> tuple[int, str]:
    """(processes on this machine, backend): cfg.processes, checked against the visible GPUs; NCCL
    on GPUs, gloo on CPU."""
    n = resolve_processes(cfg.processes)
    gpus = gpu_count()
    if gpus and n > gpus:
        raise UserError(
            f"train.dataParallel is {n} but {gpus} GPU(s) are visible; request "
            f"{n} GPUs (spec.resources.gpus) or lower train.dataParallel"
        )
    return n, "nccl" if gpus > 0 else "gloo"


def train_spawned(
    detector: Detector, task: WorkerTask, index: CocoIndex, cfg: TrainConfig, workdir: Path, *, stage: str
) -> TrainResult:
    """Train `detector` in cfg.processes processes that rebuild it from `task`; it ends holding rank
    0's final weights (the EMA when enabled), in eval mode. Returns rank 0's TrainResult."""
    n, backend = local_processes(cfg)
    workdir = Path(workdir)
    print(f"kslim: {stage}: data parallel over {n} processes ({backend})", flush=True)
    job = stage_session(detector, task, index, cfg, workdir, stage=stage)
    layout = Layout(local=n, world=n)
    codes, _ = run_workers(job, layout, backend)
    return finish_session(detector, workdir, codes, layout, stage=stage)


def stage_session(
    detector: Detector, task: WorkerTask, index: CocoIndex, cfg: TrainConfig, workdir: Path, *, stage: str
) -> Path:
    """Write what the workers start from (the weights, INIT, and the pickled recipe, JOB) to the work
    folder, which the task's own files (PREFIX*) are in already. Returns JOB's path."""
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in outputs(workdir):
        stale.unlink(missing_ok=True)
    write_with(workdir / INIT, lambda tmp: paddle.save(detector.state_dict(), str(tmp)))
    job = workdir / JOB
    write_with(job, lambda tmp: tmp.write_bytes(pickle.dumps((task, index, cfg, stage))))
    return job


def worker_error(workdir: Path) -> UserError | None:
    """A worker's user error (e.g. the loss diverged, an image does not decode): the same exit as
    in-process training."""
    error = workdir / ERROR
    if not error.is_file():
        return None
    e = json.loads(error.read_text())
    return UserError(e["message"], reason=e.get("reason"))


def local_results(workdir: Path, layout: Layout) -> dict[int, TrainResult]:
    """The TrainResult of each of this machine's workers that wrote one, by global rank."""
    results = {}
    for local in range(layout.local):
        path = workdir / result_name(layout.offset + local)
        if path.is_file():
            results[layout.offset + local] = TrainResult(**json.loads(path.read_text()))
    return results


def finish_session(
    detector: Detector,
    workdir: Path,
    codes: list[int],
    layout: Layout,
    *,
    stage: str,
    worker_steps: dict[int, int | None] | None = None,
) -> TrainResult:
    """Load rank 0's final weights into `detector` (eval mode) and return rank 0's TrainResult with
    every worker's step count (this machine's, plus `worker_steps` from the others); the hand-over
    files are removed."""
    error = worker_error(workdir)
    if error is not None:
        raise error
    if any(codes) or not (workdir / FINAL).is_file():
        raise RuntimeError(f"{stage}: a data-parallel training process failed (exit codes {codes})")
    detector.set_state_dict(paddle.load(str(workdir / FINAL)))
    detector.eval()
    results = local_results(workdir, layout)
    steps: dict[int, int | None] = {rank: r.steps_run for rank, r in results.items()}
    steps.update(worker_steps or {})
    result = replace(
        results[0], nodes=layout.nodes, worker_steps=[steps.get(rank) for rank in range(layout.world)]
    )
    for handed_over in workdir.glob(f"{PREFIX}*"):
        handed_over.unlink(missing_ok=True)
    return result


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


#: Rendezvous settings a worker must not inherit from the pod (training-operator sets PADDLE_MASTER;
#: paddle's Python side also reads MASTER_ADDR/MASTER_PORT, which its store ignores).
INHERITED = (
    "PADDLE_MASTER",
    "MASTER_ADDR",
    "MASTER_PORT",
    "PADDLE_TRAINER_ENDPOINTS",
    "PADDLE_CURRENT_ENDPOINT",
)


def worker_env(
    layout: Layout, local_rank: int, backend: str, endpoints: list[str] | None = None
) -> dict[str, str]:
    """The environment paddle.distributed.init_parallel_env reads (paddle 2.6, dynamic mode with
    PADDLE_DISTRI_BACKEND gloo or nccl): the global rank and world size, and the rendezvous store,
    which the C++ side takes from PADDLE_MASTER alone (else the first PADDLE_TRAINER_ENDPOINTS). The
    process group finds its peers through that store (each rank publishes its own address there:
    gloo the one this host's name resolves to, or GLOO_SOCKET_IFNAME's), so the other machines'
    endpoints are never needed; PADDLE_CURRENT_ENDPOINT must only exist. On one machine the endpoints
    are free local ports, the first being the store's (as before multi-node)."""
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    rank = layout.offset + local_rank
    if layout.master is None:
        assert endpoints is not None and len(endpoints) == layout.world
        master = endpoints[0]
        env.update(PADDLE_TRAINER_ENDPOINTS=",".join(endpoints), PADDLE_CURRENT_ENDPOINT=endpoints[rank])
    else:
        master = layout.master
        env.update(PADDLE_CURRENT_ENDPOINT="")
    env.update(
        PADDLE_MASTER=master,
        PADDLE_TRAINER_ID=str(rank),
        PADDLE_TRAINERS_NUM=str(layout.world),
        PADDLE_LOCAL_RANK=str(local_rank),
        PADDLE_LOCAL_SIZE=str(layout.local),
        PADDLE_DISTRI_BACKEND=backend,
        GLOG_minloglevel=env.get("GLOG_minloglevel", "2"),  # paddle's per-connection INFO lines
    )
    if backend == "nccl":
        env["FLAGS_selected_gpus"] = str(local_rank)
    return env


def run_workers(
    job: Path, layout: Layout, backend: str, *, abort: Callable[[], str | None] | None = None
) -> tuple[list[int], str | None]:
    """Start this machine's workers (`python -m kslim_runner.train.distributed JOB`) and wait for
    all, stopping the rest when one fails, or all when `abort` (polled) gives a reason. Returns their
    exit codes and that reason. Our own processes, not paddle.distributed.spawn: spawn re-imports the
    caller's __main__."""
    endpoints = None if layout.master is not None else [f"127.0.0.1:{p}" for p in _free_ports(layout.world)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kslim_runner.train.distributed", str(job)],
            env=worker_env(layout, local, backend, endpoints),
        )
        for local in range(layout.local)
    ]
    n = len(procs)
    codes: list[int | None] = [None] * n
    aborted: str | None = None
    try:
        while None in codes:
            for i, proc in enumerate(procs):
                if codes[i] is None:
                    codes[i] = proc.poll()
            if aborted is None and abort is not None:
                aborted = abort()
            if aborted is not None or any(c not in (None, 0) for c in codes):  # the others would wait
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs], aborted


def _die_with_parent() -> None:
    """A worker must not outlive the job's process (a killed run is resumed, not duplicated)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _worker(job: Path) -> None:
    _die_with_parent()
    task, index, cfg, stage = pickle.loads(job.read_bytes())
    paddle.distributed.init_parallel_env()
    rank = Rank(paddle.distributed.get_rank(), paddle.distributed.get_world_size())
    if gpu_count() == 0:  # this machine's cores, shared by its own workers
        use_cpu_threads(max(1, cpu_threads() // int(os.environ.get("PADDLE_LOCAL_SIZE", rank.world))))
    work = job.parent
    det, task_loss = task.build(work)
    det.set_state_dict(paddle.load(str(work / INIT)))
    model = paddle.DataParallel(det)

    def loss(detector: Detector, batch: Any, forward: Any = None) -> paddle.Tensor:
        # the forward pass through the DataParallel wrapper, so backward all-reduces the gradients
        return task_loss(detector, batch, model)

    try:
        result = train_in_process(det, index, cfg, work, stage=stage, loss_fn=loss, rank=rank)
    except UserError as exc:  # e.g. an image of this rank's share does not decode
        write_json(work / ERROR, {"message": exc.summary, "reason": exc.reason})
        sys.exit(exc.exit_code)
    if rank.main:
        write_with(work / FINAL, lambda tmp: paddle.save(det.state_dict(), str(tmp)))
    write_json(work / result_name(rank.rank), result.to_dict())


if __name__ == "__main__":  # a worker: python -m kslim_runner.train.distributed JOB
    _worker(Path(sys.argv[1]))
