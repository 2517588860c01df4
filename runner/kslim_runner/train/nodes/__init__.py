"""Multi-node jobs (spec.resources.workers > 1, one Kubeflow PaddleJob worker pod per node; see
docs/multinode.md): which worker this process is, read from the pod's environment
(kslim_api.contract.nodes), and the check that a follower trains on the leader's data.

- `leader`    worker 0: runs the pipeline; each training session also runs on the followers
- `follower`  workers 1..N-1: prepare the same data, then train the sessions the leader hands over
- `handover`  the leader's signed HTTP hand-over (server and client)

Stdlib only here (no paddle): `kslim run` reads the environment before anything heavy loads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kslim_api.contract import (
    HANDOVER_PORT,
    HANDOVER_PORT_ENV,
    HANDOVER_TOKEN_ENV,
    LEADER_RANK,
    NODE_RANK_ENV,
    NODE_TIMEOUT_ENV,
    NODE_TIMEOUT_SECONDS,
    NODES_ENV,
    PADDLE_MASTER_ENV,
    PADDLE_NNODES_ENV,
)

from kslim_runner.errors import UserError

if TYPE_CHECKING:
    from kslim_runner.data.coco import CocoIndex

#: A shorter token is refused: it signs the weights and recipes the followers load.
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Nodes:
    """This pod's place in a multi-node job: `rank` of `count` workers; worker 0 (the leader) hosts
    paddle's rendezvous store at master_host:master_port and the hand-over server at handover_port."""

    count: int
    rank: int
    master_host: str
    master_port: int
    token: str = field(repr=False)
    handover_port: int = HANDOVER_PORT
    timeout: float = NODE_TIMEOUT_SECONDS
    """Seconds of silence after which a follower gives up on its leader (and the leader on it)."""

    @property
    def leader(self) -> bool:
        return self.rank == LEADER_RANK

    @property
    def master(self) -> str:
        """host:port of paddle's rendezvous store (global rank 0's TCPStore), as PADDLE_MASTER says."""
        return f"{self.master_host}:{self.master_port}"

    @property
    def handover_url(self) -> str:
        host = f"[{self.master_host}]" if ":" in self.master_host else self.master_host
        return f"http://{host}:{self.handover_port}"

    def worker(self, rank: int | None = None) -> str:
        """'worker 1 of 2' (this worker by default)."""
        return f"worker {self.rank if rank is None else rank} of {self.count}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Nodes | None:
        """The multi-node settings of this pod; None for a single-node run (no KSLIM_NODES, or 1).
        Inconsistent settings are a UserError naming the variable."""
        env = os.environ if env is None else env
        raw = env.get(NODES_ENV, "").strip()
        if not raw:
            return None
        count = _int(env, NODES_ENV, minimum=1)
        rank = _int(env, NODE_RANK_ENV, minimum=0) if env.get(NODE_RANK_ENV, "").strip() else None
        if rank is not None and rank >= count:
            raise UserError(
                f"{NODE_RANK_ENV} is {rank} but {NODES_ENV} is {count}: the rank must be below it"
            )
        if count == 1:
            return None
        if rank is None:
            raise UserError(
                f"{NODES_ENV} is {count} but {NODE_RANK_ENV} is not set: each worker needs its rank"
            )
        nnodes = env.get(PADDLE_NNODES_ENV, "").strip()
        if nnodes.isdigit() and int(nnodes) != count:
            raise UserError(
                f"{NODES_ENV} is {count} but {PADDLE_NNODES_ENV} is {nnodes}: the worker counts disagree"
            )
        master = env.get(PADDLE_MASTER_ENV, "").strip()
        if not master:
            raise UserError(
                f"{NODES_ENV} is {count} but {PADDLE_MASTER_ENV} is not set: a multi-node worker runs in a "
                "PaddleJob, whose training-operator sets it to worker 0's host:port"
            )
        host, sep, port = master.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"{PADDLE_MASTER_ENV} is {master!r}, not host:port")
        token = env.get(HANDOVER_TOKEN_ENV, "")
        if len(token) < MIN_TOKEN_CHARS:
            raise UserError(
                f"{NODES_ENV} is {count} but {HANDOVER_TOKEN_ENV} is "
                + ("not set" if not token else f"shorter than {MIN_TOKEN_CHARS} characters")
                + ": the workers sign their hand-over with it (the operator sets it from the job's Secret)"
            )
        handover = (
            _int(env, HANDOVER_PORT_ENV, minimum=1, maximum=65535)
            if env.get(HANDOVER_PORT_ENV, "").strip()
            else HANDOVER_PORT
        )
        timeout = (
            _float(env, NODE_TIMEOUT_ENV) if env.get(NODE_TIMEOUT_ENV, "").strip() else NODE_TIMEOUT_SECONDS
        )
        return cls(count, rank, host, int(port), token, handover, timeout)


def _int(env: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name} is {raw!r}, not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise UserError(f"{name} is {value}; it must be {bounds}")
    return value


def _float(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name} is {raw!r}, not a number of seconds") from None
    if not value > 0:
        raise UserError(f"{name} is {raw}; it must be above 0")
    return value


# --- the data a session trains on --------------------------------------------------------------------


def fingerprint(index: CocoIndex) -> dict[str, Any]:
    """What must be the same in every worker's copy of the train split for them to share one shuffled
    stream: the images (ids and file names, in order) and the boxes. Paths differ between pods and are
    left out; pixels are not hashed (see docs/multinode.md)."""
    images = hashlib.sha256()
    boxes = hashlib.sha256()
    for iid, path in zip(index.image_ids, index.files, strict=True):
        images.update(f"{iid}\t{_relative(Path(path), Path(index.images_dir))}\n".encode())
    for b, labels in zip(index.boxes, index.labels, strict=True):
        boxes.update(b.astype("float32").tobytes())
        boxes.update(labels.astype("int32").tobytes())
        boxes.update(b"|")
    return {
        "images": len(index),
        "annotations": index.num_annotations,
        "categories": list(index.category_ids),
        "imagesDigest": images.hexdigest(),
        "boxesDigest": boxes.hexdigest(),
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def check_same_data(leader: dict[str, Any], mine: dict[str, Any], rank: int) -> None:
    """A UserError naming the first difference between the leader's train split and worker `rank`'s
    (fingerprints); the leader reports it prefixed with the worker's name."""
    for key, what in (
        ("images", "images"),
        ("annotations", "boxes"),
        ("categories", "category ids"),
        ("imagesDigest", "image ids or file names"),
        ("boxesDigest", "boxes or labels"),
    ):
        if leader.get(key) != mine.get(key):
            detail = (
                f" (worker 0: {leader.get(key)}, worker {rank}: {mine.get(key)})"
                if key in ("images", "annotations", "categories")
                else ""
            )
            raise UserError(
                f"its train split differs from worker 0's: the {what} differ{detail}; every worker must "
                "resolve spec.dataset to the same data (the same volume or bucket, or the synthetic "
                "generator)"
            )
