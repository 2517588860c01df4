"""Workers 1..N-1 of a multi-node job: prepare the same data as the leader, then take part in each
training session it hands over until it says "done" (docs/multinode.md).

A follower writes nothing to the job's output (in a pvc:// output every pod mounts the same folder)
and prints no progress lines (the operator reads the leader's log): its work folder is private
scratch space. Exit codes: 0 once the leader has said "done", whatever the leader's outcome and this
worker's (its errors are reported to the leader, whose pod reports the job: a follower failing first
would end the PaddleJob and get the leader deleted before it says why); 1 when the leader has not
answered for the bound (Nodes.timeout).
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kslim_api.contract import EXIT_INTERNAL, EXIT_OK, Outcome, Reason, TerminationMessage

from kslim_runner.atomic import write_with
from kslim_runner.data.coco import CocoIndex
from kslim_runner.errors import KslimError, UserError
from kslim_runner.train.distributed import (
    JOB,
    PREFIX,
    Layout,
    gpu_count,
    local_results,
    run_workers,
    worker_error,
)
from kslim_runner.train.nodes import Nodes, check_same_data, fingerprint
from kslim_runner.train.nodes.handover import HandoverClient, HandoverRefused, LeaderUnreachable

#: How often a follower tells the leader it is alive (and hears whether the job is over): at most
#: this, and a quarter of the silence bound.
HEARTBEAT_SECONDS = 5.0
#: Between failed attempts to reach the leader.
RETRY_SECONDS = 1.0
CHECKPOINT_PREFIX = "checkpoint/"


@dataclass
class Part:
    """What this follower did: the leader's exit code once it said "done" (None: it never did), the
    sessions and steps this worker's processes took part in, and its own error if any."""

    sessions: int = 0
    steps: int = 0
    leader_code: int | None = None
    error: str | None = None
    reason: str | None = None
    stage: str | None = None
    silent_for: float | None = None
    last_error: str | None = None
    """Why the last request to a silent leader failed."""

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.leader_code is not None else EXIT_INTERNAL

    def summary(self, nodes: Nodes) -> str:
        sessions = f"{self.sessions} training session" + "s" * (self.sessions != 1)
        took = f"{nodes.worker()}: took part in {sessions}, {self.steps} steps"
        if self.leader_code is not None:
            end = f"worker 0 ended the job with exit {self.leader_code}"
        else:
            end = f"worker 0 (the leader) has not answered for {self.silent_for or nodes.timeout:.0f} s"
            end += f" ({self.last_error})" if self.last_error else ""
        return "; ".join([took, *([self.error] if self.error else []), end])

    def message(self, nodes: Nodes) -> TerminationMessage:
        if self.error is None and self.leader_code is not None:
            return TerminationMessage(
                outcome=Outcome.SUCCEEDED,
                reason=Reason.COMPLETED,
                message=self.summary(nodes),
                stage=self.stage,
            )
        reason = self.reason or Reason.INTERNAL_ERROR
        return TerminationMessage.failed(reason, self.summary(nodes), self.stage)

    def failed(self, error: BaseException, stage: str | None) -> dict[str, Any]:
        """Record this worker's error; returns the report that tells the leader."""
        if isinstance(error, KslimError):
            message, reason = error.summary, error.reason
        else:
            message = " ".join(f"internal error: {type(error).__name__}: {error}".split())[:1000]
            reason = Reason.INTERNAL_ERROR
        self.error, self.reason, self.stage = message, reason, stage or self.stage
        return {"state": "failed", "message": message, "reason": reason, "user": isinstance(error, UserError)}


class Heartbeat:
    """Asks the leader's /status every HEARTBEAT_SECONDS in a thread: the leader hears this worker
    is alive, and this worker learns when the job is over and how long the leader has been silent.
    Only verified answers count."""

    def __init__(self, client: HandoverClient, interval: float = HEARTBEAT_SECONDS) -> None:
        self.client, self.interval = client, interval
        self.done: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._heard = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kslim-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def heard(self, answer: dict[str, Any]) -> None:
        self._heard = time.monotonic()
        if answer.get("kind") == "done":
            self.done = answer
        elif isinstance(answer.get("done"), dict):
            self.done = answer["done"]

    def silent_for(self) -> float:
        return time.monotonic() - self._heard

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.heard(self.client.status())
            except (LeaderUnreachable, HandoverRefused) as e:
                self.last_error = str(e)
            self._stop.wait(self.interval)


def follow(nodes: Nodes, prepare: Callable[[], CocoIndex], scratch: Path) -> Part:
    """The follower's whole run: `prepare` (the pipeline's prepare stage in `scratch`, returning the
    train split), then each session the leader hands over, until "done" or the leader's silence."""
    client = HandoverClient(nodes.handover_url, nodes.token, nodes.rank, timeout=min(30.0, nodes.timeout))
    beat = Heartbeat(client, min(HEARTBEAT_SECONDS, nodes.timeout / 4))
    beat.start()
    part = Part(stage="prepare")
    try:
        index: CocoIndex | None = None
        try:
            index = prepare()
        except Exception as e:  # the leader ends the job with this worker's error
            _tell(client, {"seq": 0, **part.failed(e, "prepare")})
        _sessions(nodes, client, beat, index, scratch, part)
    finally:
        beat.stop()
    return part


def _tell(client: HandoverClient, report: dict[str, Any]) -> None:
    """Best effort: a leader that does not hear it times this worker out, or has ended anyway."""
    with contextlib.suppress(LeaderUnreachable, HandoverRefused):
        client.report(report)


def _sessions(
    nodes: Nodes, client: HandoverClient, beat: Heartbeat, index: CocoIndex | None, scratch: Path, part: Part
) -> None:
    after, run = 0, ""
    while True:
        if beat.done is not None:
            part.leader_code = int(beat.done.get("code", EXIT_INTERNAL))
            return
        try:
            msg = client.next(after, run)
        except (LeaderUnreachable, HandoverRefused) as e:
            beat.last_error = str(e)
            if beat.silent_for() > nodes.timeout:
                part.silent_for, part.last_error = beat.silent_for(), beat.last_error
                return
            time.sleep(RETRY_SECONDS)
            continue
        beat.heard(msg)  # "done" ends the loop at its top
        if str(msg.get("run", "")) != run:  # a (re)started leader counts its sessions from 1
            run, after = str(msg.get("run", "")), 0
        if msg.get("kind") != "session" or int(msg.get("seq", 0)) <= after:
            continue
        after = int(msg["seq"])
        if index is None:
            continue  # this worker could not prepare; the leader has been told and ends the job
        stage = str(msg.get("stage", ""))
        part.stage = stage
        folder = scratch / "sessions" / str(after)
        try:
            steps = _take(nodes, client, beat, index, msg, folder)
        except Exception as e:
            _tell(client, {"seq": after, **part.failed(e, stage)})
            continue
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        part.sessions += 1
        part.steps += max((n for n in steps.values() if n is not None), default=0)
        _tell(client, {"seq": after, "state": "finished", "steps": {str(k): v for k, v in steps.items()}})


def _take(
    nodes: Nodes, client: HandoverClient, beat: Heartbeat, index: CocoIndex, msg: dict[str, Any], folder: Path
) -> dict[int, int | None]:
    """Download the session, check it trains on this worker's data, spawn this node's workers with
    their global ranks; returns the steps each ran, by global rank."""
    seq, stage = int(msg["seq"]), str(msg["stage"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, meta in dict(msg["files"]).items():
        client.download(
            seq, name, folder / _safe_name(name), size=int(meta["size"]), sha256=str(meta["sha256"])
        )
    check_same_data(dict(msg["data"]), fingerprint(index), nodes.rank)
    # signed by the leader and of the digest its signed session names: only now is it unpickled
    task, _leader_index, cfg, _ = pickle.loads((folder / JOB).read_bytes())
    write_with(folder / JOB, lambda tmp: tmp.write_bytes(pickle.dumps((task, index, cfg, stage))))
    local, world, backend = int(msg["local"]), int(msg["world"]), str(msg["backend"])
    if world != local * nodes.count:
        raise RuntimeError(
            f"{stage}: the session's world ({world}) is not {local} processes x {nodes.count} nodes"
        )
    if backend == "nccl" and gpu_count() < local:
        raise UserError(
            f"{stage}: worker 0 trains on {local} GPU(s) per node but {nodes.worker()} sees {gpu_count()}; "
            "every worker needs spec.resources.gpus GPUs"
        )
    layout = Layout(
        local=local, world=world, offset=nodes.rank * local, master=nodes.master, nodes=nodes.count
    )
    client.report({"seq": seq, "state": "joined"})

    def abort() -> str | None:
        if beat.done is not None:
            return f"worker 0 ended the job (exit {beat.done.get('code')})"
        if beat.silent_for() > nodes.timeout:
            return f"worker 0 (the leader) has not answered for {beat.silent_for():.0f} s"
        return None

    codes, aborted = run_workers(folder / JOB, layout, backend, abort=abort)
    error = worker_error(folder)
    if error is not None:
        raise error
    if aborted is not None:
        raise RuntimeError(f"{stage}: {aborted}")
    if any(codes):
        raise RuntimeError(f"{stage}: this worker's training processes failed (exit codes {codes})")
    return {rank: r.steps_run for rank, r in local_results(folder, layout).items()}


def _safe_name(name: str) -> str:
    """A session's file name as the leader writes them: PREFIX* or checkpoint/<file>, nothing else."""
    path = PurePosixPath(name)
    plain = len(path.parts) == 1 and path.name.startswith(PREFIX)
    ckpt = len(path.parts) == 2 and name.startswith(CHECKPOINT_PREFIX) and path.name not in ("", ".", "..")
    if not (plain or ckpt) or ".." in path.parts:
        raise RuntimeError(f"the session names a file {name!r} outside its work folder")
    return name
