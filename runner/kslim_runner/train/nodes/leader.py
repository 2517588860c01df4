"""Worker 0 of a multi-node job: it runs the whole pipeline, and each of its training sessions runs
across every node. Before spawning its own workers it hands the session to the followers (the
pickled recipe, the starting weights, the checkpoint it resumes, the task's own files), waits until
each has taken it, trains, and collects how many steps each follower's workers ran. At the end it
tells the followers "done" with its exit code (docs/multinode.md)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kslim_api.contract import Reason

from kslim_runner.data.coco import CocoIndex
from kslim_runner.errors import KslimError, UserError
from kslim_runner.models.base import Detector
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.distributed import (
    PREFIX,
    Layout,
    WorkerTask,
    finish_session,
    local_processes,
    outputs,
    run_workers,
    stage_session,
    worker_error,
)
from kslim_runner.train.loop import TrainResult
from kslim_runner.train.nodes import Nodes, fingerprint
from kslim_runner.train.nodes.handover import HandoverServer, digest_file

#: How long the leader waits, after its own workers finished, for the followers' step counts (they
#: finish the same step at the same time; a missing count is recorded as None), or for the error of a
#: follower when the session failed.
COLLECT_SECONDS = 60.0
FAILED_COLLECT_SECONDS = 10.0
#: After this long waiting for followers to take a session, the leader's log says so.
WAITING_NOTE_SECONDS = 30.0
#: How long the leader stays up after "done" for followers that have not heard it yet.
DONE_GRACE_SECONDS = 20.0
#: The checkpoint folder a session resumes from, as handed over (load_checkpoint's names).
CHECKPOINT = "checkpoint"

_ACTIVE: Leader | None = None


def active() -> Leader | None:
    """The leader of this process's multi-node job, while `kslim run` runs it (else None)."""
    return _ACTIVE


def lead(nodes: Nodes) -> Leader:
    """Become the job's leader: the hand-over server starts now, so that followers hear from it
    while the pipeline prepares (they give up on a silent leader)."""
    global _ACTIVE
    leader = Leader(nodes)
    leader.server.start()
    _ACTIVE = leader
    return leader


def step_down(leader: Leader, code: int) -> None:
    global _ACTIVE
    _ACTIVE = None
    leader.finish(code)


def not_multi_node(stage: str, nodes: int, why: str | None = None, fix: str | None = None) -> UserError:
    """The NotMultiNode error of a training (of the `stage` step) that only this process can run."""
    why = why or (
        "its model or loss cannot be rebuilt in a worker process; data parallel covers built-in and "
        "PaddleDetection detectors, pruned, quantized or not, trained with the detection or a "
        "distillation loss"
    )
    return UserError(
        f"{stage}: this training cannot run across the job's {nodes} workers ({why}); set "
        f"spec.resources.workers to 1, {fix or 'change the step'}, or remove the {stage} step",
        reason=Reason.NOT_MULTI_NODE,
    )


class Leader:
    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.server = HandoverServer(nodes.token, nodes.handover_port, nodes.count)
        self.sessions = 0

    @property
    def followers(self) -> range:
        return range(1, self.nodes.count)

    # --- one training session ------------------------------------------------------------------------
    def train(
        self,
        detector: Detector,
        task: WorkerTask,
        index: CocoIndex,
        cfg: TrainConfig,
        workdir: Path,
        *,
        stage: str,
    ) -> TrainResult:
        """train_spawned across every node: this node's processes are global ranks 0..P-1, node k's
        k*P..k*P+P-1, with P = cfg.processes resolved here (1 on CPU by default)."""
        count = self.nodes.count
        per_node, backend = local_processes(cfg)
        layout = Layout(local=per_node, world=per_node * count, master=self.nodes.master, nodes=count)
        workdir = Path(workdir)
        print(
            f"kslim: {stage}: data parallel over {layout.world} processes on {count} nodes "
            f"({per_node} per node, {backend})",
            flush=True,
        )
        job = stage_session(detector, task, index, replace(cfg, processes=per_node), workdir, stage=stage)
        files = session_files(workdir)
        manifest = {
            "stage": stage,
            "backend": backend,
            "local": per_node,
            "world": layout.world,
            "master": self.nodes.master,
            "data": fingerprint(index),
            "files": {
                name: {"size": p.stat().st_size, "sha256": digest_file(p)} for name, p in files.items()
            },
        }
        seq = self.server.publish(manifest, files)
        self.sessions += 1
        try:
            self._wait_joined(seq, stage)
            codes, aborted = run_workers(job, layout, backend, abort=lambda: self._abort(seq))
            failed = aborted is not None or any(codes)
            steps = self._collect(seq, FAILED_COLLECT_SECONDS if failed else COLLECT_SECONDS)
            error: BaseException | None = worker_error(workdir) or self._follower_error(seq)
            if error is None and aborted is not None:
                error = RuntimeError(f"{stage}: {aborted}")
            if error is not None:
                raise error
            return finish_session(detector, workdir, codes, layout, stage=stage, worker_steps=steps)
        finally:
            self.server.close(seq)

    def _reports(self, seq: int, state: str) -> dict[int, dict[str, Any]]:
        """Each follower's last report of this state for session seq (a failure at start-up, seq 0,
        counts for every session)."""
        found = {}
        for node in self.followers:
            for r in self.server.reports(node):
                if r.get("state") == state and r.get("seq") in (seq, 0 if state == "failed" else seq):
                    found[node] = r
        return found

    def _silent(self, since: float) -> int | None:
        """A follower not heard from for the bound (counting from `since` at the latest)."""
        now = time.monotonic()
        for node in self.followers:
            heard = max(self.server.last_contact(node) or 0.0, since)
            if now - heard > self.nodes.timeout:
                return node
        return None

    def _wait_joined(self, seq: int, stage: str) -> None:
        published = time.monotonic()
        said = False
        while True:
            error = self._follower_error(seq)
            if error is not None:  # it could not take the session (its data differ, ...)
                raise error
            if len(self._reports(seq, "joined")) == len(self.followers):
                return
            if not said and time.monotonic() - published > WAITING_NOTE_SECONDS:
                waiting = sorted(set(self.followers) - set(self._reports(seq, "joined")))
                names = ", ".join(str(k) for k in waiting)
                print(f"kslim: {stage}: waiting for worker(s) {names} of {self.nodes.count}", flush=True)
                said = True
            node = self._silent(published)
            if node is not None:
                raise RuntimeError(
                    f"{stage}: {self.nodes.worker(node)} did not take the training session: not heard "
                    f"from for {self.nodes.timeout:.0f} s"
                )
            time.sleep(0.25)

    def _abort(self, seq: int) -> str | None:
        failed = self._reports(seq, "failed")
        if failed:
            first = min(failed)
            return f"{self.nodes.worker(first)} failed: {failed[first].get('message', '')}"
        silent = self._silent(0.0)
        if silent is not None:
            return f"{self.nodes.worker(silent)} stopped answering for {self.nodes.timeout:.0f} s"
        return None

    def _collect(self, seq: int, wait: float) -> dict[int, int | None]:
        """The followers' workers' step counts, by global rank."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            done = {**self._reports(seq, "finished"), **self._reports(seq, "failed")}
            if len(done) == len(self.followers):
                break
            time.sleep(0.25)
        steps: dict[int, int | None] = {}
        for r in self._reports(seq, "finished").values():
            for rank, n in (r.get("steps") or {}).items():
                steps[int(rank)] = None if n is None else int(n)
        return steps

    def _follower_error(self, seq: int) -> KslimError | RuntimeError | None:
        failed = self._reports(seq, "failed")
        if not failed:
            return None
        first = min(failed)
        r = failed[first]
        message = f"{self.nodes.worker(first)}: {r.get('message', 'failed')}"
        if r.get("user"):
            return UserError(message, reason=r.get("reason") or Reason.INVALID_INPUT)
        return RuntimeError(message)

    # --- the end ---------------------------------------------------------------------------------------
    def finish(self, code: int) -> None:
        """Tell the followers the job is over (with the leader's exit code); wait a little for those
        that have not heard it, then stop the server."""
        self.server.start()
        self.server.finish({"code": code, "sessions": self.sessions})
        followers = set(self.followers)
        self.server.wait_until(lambda st: followers <= st.told_done, timeout=DONE_GRACE_SECONDS)
        self.server.stop()


def session_files(workdir: Path) -> dict[str, Path]:
    """What a follower needs besides the data: the recipe (JOB), the starting weights (INIT), the
    task's own files (a teacher's weights: PREFIX*), and the checkpoint the session resumes, if any
    (the folder load_checkpoint would read), as checkpoint/<file>."""
    written = set(outputs(workdir))
    files = {p.name: p for p in sorted(workdir.glob(f"{PREFIX}*")) if p.is_file() and p not in written}
    for folder in (workdir / CHECKPOINT, workdir / f"{CHECKPOINT}.old"):
        if (folder / "checkpoint.json").is_file():
            files |= {f"{CHECKPOINT}/{p.name}": p for p in sorted(folder.iterdir()) if p.is_file()}
            break
    return files
