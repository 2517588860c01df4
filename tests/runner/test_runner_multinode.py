"""Multi-node jobs (train/nodes/): the pod environment, the signed hand-over, the data check, and a
leader and a follower as two `kslim run` processes on this machine (docs/multinode.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kslim_api.contract import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_QUALITY_GATE,
    EXIT_USER,
    HANDOVER_PORT,
    HANDOVER_PORT_ENV,
    HANDOVER_TOKEN_ENV,
    NODE_RANK_ENV,
    NODE_TIMEOUT_ENV,
    NODE_TIMEOUT_SECONDS,
    NODES_ENV,
    PADDLE_MASTER_ENV,
    PADDLE_NNODES_ENV,
    PVC_ROOT_ENV,
    TERMINATION_MESSAGE_PATH_ENV,
    Reason,
    parse_termination_message,
)
from kslim_runner.data.coco import CocoIndex, load_coco
from kslim_runner.errors import UserError
from kslim_runner.models import DetectorConfig, build_detector
from kslim_runner.report.markdown import processes
from kslim_runner.train import distributed
from kslim_runner.train.config import TrainConfig
from kslim_runner.train.detector import train_detector
from kslim_runner.train.loop import default_loss
from kslim_runner.train.nodes import Nodes, check_same_data, fingerprint, leader
from kslim_runner.train.nodes.follower import _safe_name
from kslim_runner.train.nodes.handover import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    HandoverClient,
    HandoverRefused,
    HandoverServer,
    digest_file,
    signature,
    verify,
)
from runner_helpers import progress_lines

TOKEN = "t" * 32


def _env(**extra: str) -> dict[str, str]:
    return {
        NODES_ENV: "2",
        NODE_RANK_ENV: "1",
        PADDLE_MASTER_ENV: "tiny-worker-0:36543",
        HANDOVER_TOKEN_ENV: TOKEN,
        **extra,
    }


# --- the environment ---------------------------------------------------------------------------------


def test_a_single_node_run_has_no_nodes() -> None:
    assert Nodes.from_env({}) is None
    assert Nodes.from_env({NODES_ENV: "1"}) is None
    assert Nodes.from_env({NODES_ENV: "1", NODE_RANK_ENV: "0"}) is None


def test_a_worker_reads_its_place_from_the_pod() -> None:
    nodes = Nodes.from_env(_env(**{PADDLE_NNODES_ENV: "2"}))
    assert nodes is not None and not nodes.leader
    assert (nodes.count, nodes.rank, nodes.master_host, nodes.master_port) == (2, 1, "tiny-worker-0", 36543)
    assert nodes.master == "tiny-worker-0:36543"
    assert nodes.handover_url == f"http://tiny-worker-0:{HANDOVER_PORT}"
    assert nodes.timeout == NODE_TIMEOUT_SECONDS and TOKEN not in repr(nodes)
    leader0 = Nodes.from_env(_env(**{NODE_RANK_ENV: "0", HANDOVER_PORT_ENV: "4100", NODE_TIMEOUT_ENV: "7.5"}))
    assert leader0 is not None and leader0.leader and (leader0.handover_port, leader0.timeout) == (4100, 7.5)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (_env(**{NODE_RANK_ENV: "2"}), ["KSLIM_NODE_RANK is 2", "KSLIM_NODES is 2"]),
        (_env(**{NODE_RANK_ENV: ""}), ["KSLIM_NODE_RANK is not set"]),
        (_env(**{NODE_RANK_ENV: "one"}), ["KSLIM_NODE_RANK is 'one'"]),
        (_env(**{NODES_ENV: "0"}), ["KSLIM_NODES is 0"]),
        (_env(**{PADDLE_MASTER_ENV: ""}), ["PADDLE_MASTER is not set"]),
        (_env(**{PADDLE_MASTER_ENV: "tiny-worker-0"}), ["PADDLE_MASTER is 'tiny-worker-0', not host:port"]),
        (_env(**{HANDOVER_TOKEN_ENV: ""}), ["KSLIM_HANDOVER_TOKEN is not set"]),
        (_env(**{HANDOVER_TOKEN_ENV: "short"}), ["shorter than 16 characters"]),
        (_env(**{PADDLE_NNODES_ENV: "3"}), ["PADDLE_NNODES is 3"]),
        (_env(**{HANDOVER_PORT_ENV: "70000"}), ["KSLIM_HANDOVER_PORT is 70000"]),
        (_env(**{NODE_TIMEOUT_ENV: "0"}), ["KSLIM_NODE_TIMEOUT_SECONDS is 0"]),
    ],
)
def test_inconsistent_settings_are_refused_by_name(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(UserError) as e:
        Nodes.from_env(env)
    assert all(n in e.value.summary for n in names), e.value.summary
    assert TOKEN not in e.value.summary


def test_workers_get_global_ranks_and_the_master_store_only() -> None:
    layout = distributed.Layout(local=2, world=4, offset=2, master="tiny-worker-0:36543", nodes=2)
    os.environ["MASTER_ADDR"] = "elsewhere"  # paddle's Python side reads it; its store does not
    try:
        env = distributed.worker_env(layout, 1, "gloo")
    finally:
        del os.environ["MASTER_ADDR"]
    assert env["PADDLE_TRAINER_ID"] == "3" and env["PADDLE_TRAINERS_NUM"] == "4"
    assert env["PADDLE_MASTER"] == "tiny-worker-0:36543" and "MASTER_ADDR" not in env
    assert (env["PADDLE_LOCAL_RANK"], env["PADDLE_LOCAL_SIZE"]) == ("1", "2")
    assert "PADDLE_TRAINER_ENDPOINTS" not in env and env["PADDLE_CURRENT_ENDPOINT"] == ""
    one = distributed.worker_env(distributed.Layout(2, 2), 1, "nccl", ["127.0.0.1:1", "127.0.0.1:2"])
    assert one["PADDLE_MASTER"] == "127.0.0.1:1" and one["PADDLE_CURRENT_ENDPOINT"] == "127.0.0.1:2"
    assert one["FLAGS_selected_gpus"] == "1"


# --- the hand-over's signing ---------------------------------------------------------------------------


def test_a_signature_covers_the_nonce_the_request_and_the_body() -> None:
    good = signature(TOKEN, "n" * 32, "/next?node=1", [b'{"a": 1}'])
    assert verify(TOKEN, "n" * 32, "/next?node=1", b'{"a": 1}', good)
    assert not verify(TOKEN, "n" * 32, "/next?node=1", b'{"a": 2}', good)  # tampered body
    assert not verify(TOKEN, "m" * 32, "/next?node=1", b'{"a": 1}', good)  # replayed to another request
    assert not verify(TOKEN, "n" * 32, "/status?node=1", b'{"a": 1}', good)  # another route's answer
    assert not verify("u" * 32, "n" * 32, "/next?node=1", b'{"a": 1}', good)  # another job's token
    assert not verify(TOKEN, "n" * 32, "/next?node=1", b'{"a": 1}', None)


@pytest.fixture
def server() -> Iterator[HandoverServer]:
    srv = HandoverServer(TOKEN, 0, 2, host="127.0.0.1", poll_seconds=0.5)
    srv.start()
    yield srv
    srv.stop()


def _client(srv: HandoverServer, token: str = TOKEN) -> HandoverClient:
    return HandoverClient(f"http://127.0.0.1:{srv.port}", token, 1, timeout=10)


def test_a_session_goes_over_signed_and_a_wrong_token_is_refused(
    server: HandoverServer, tmp_path: Path
) -> None:
    weights = tmp_path / "dp-init.pdparams"
    weights.write_bytes(b"weights" * 1000)
    announced = digest_file(weights)
    seq = server.publish({"stage": "baseline"}, {"dp-init.pdparams": weights})
    client = _client(server)
    msg = client.next(0, "")
    assert (msg["kind"], msg["seq"], msg["stage"]) == ("session", seq, "baseline")
    client.download(seq, "dp-init.pdparams", tmp_path / "got", size=7000, sha256=announced)
    assert (tmp_path / "got").read_bytes() == weights.read_bytes()
    client.report({"seq": seq, "state": "joined"})
    assert server.reports(1) == [{"seq": seq, "state": "joined", "node": 1}]
    assert server.last_contact(1) is not None
    with pytest.raises(HandoverRefused, match="token"):
        _client(server, "w" * 32).status()
    assert server.reports(1)[-1]["state"] == "joined"  # nothing recorded from the wrong token

    weights.write_bytes(b"other" * 1400)  # changed after it was announced
    with pytest.raises(HandoverRefused, match="not the one the session announced"):
        client.download(seq, "dp-init.pdparams", tmp_path / "bad", size=7000, sha256=announced)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob("*.part"))
    server.close(seq)
    assert client.next(seq, msg["run"])["kind"] == "wait"
    server.finish({"code": 3})
    assert client.next(seq, msg["run"]) == {"code": 3, "kind": "done", "run": server.run}
    assert 1 in server.state.told_done


class _Forger(BaseHTTPRequestHandler):
    """A server on the pod network that answers in the leader's place."""

    how = "tampered"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"kind": "done", "code": 0}'
        nonce = self.headers.get(NONCE_HEADER, "")
        signed = {
            "tampered": signature(TOKEN, nonce, self.path, [b'{"kind": "wait"}']),
            "foreign token": signature("f" * 32, nonce, self.path, [body]),
            "replayed": signature(TOKEN, "an-earlier-nonce-of-this-worker", self.path, [body]),
            "unsigned": None,
        }[self.how]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if signed is not None:
            self.send_header(SIGNATURE_HEADER, signed)
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("how", ["tampered", "foreign token", "replayed", "unsigned"])
def test_a_follower_refuses_an_answer_not_signed_for_its_request(how: str) -> None:
    handler = type("Forger", (_Forger,), {"how": how})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        client = HandoverClient(f"http://127.0.0.1:{httpd.server_address[1]}", TOKEN, 1, timeout=10)
        with pytest.raises(HandoverRefused, match="not signed"):
            client.status()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_session_names_only_files_of_its_work_folder() -> None:
    assert _safe_name("dp-job.pickle") == "dp-job.pickle"
    assert _safe_name("checkpoint/model.pdparams") == "checkpoint/model.pdparams"
    for bad in (
        "../etc/passwd",
        "/etc/passwd",
        "checkpoint/../../x",
        "model.pdparams",
        "dp-x/../../y",
        "a/b/c",
    ):
        with pytest.raises(RuntimeError, match="outside its work folder"):
            _safe_name(bad)


# --- the data check -------------------------------------------------------------------------------------


def _index(tiny_data: Path) -> CocoIndex:
    return load_coco(tiny_data / "train" / "annotations.json", tiny_data / "train" / "images", 3)


def test_a_follower_trains_only_on_the_leaders_data(tiny_data: Path, tmp_path: Path) -> None:
    index = _index(tiny_data)
    mine = fingerprint(index)
    elsewhere = dataclasses.replace(
        index, images_dir=tmp_path, files=[tmp_path / f.name for f in index.files]
    )
    check_same_data(fingerprint(elsewhere), mine, 1)  # other paths, same data
    changes = {
        "images differ (worker 0: 23, worker 1: 24)": dataclasses.replace(
            index,
            image_ids=index.image_ids[1:],
            files=index.files[1:],
            boxes=index.boxes[1:],
            labels=index.labels[1:],
        ),
        "image ids or file names differ": dataclasses.replace(
            index, files=[*index.files[1:], index.files[0]]
        ),
        "boxes or labels differ": dataclasses.replace(index, boxes=[b + np.float32(1) for b in index.boxes]),
    }
    for what, other in changes.items():
        with pytest.raises(UserError) as e:
            check_same_data(fingerprint(other), mine, 1)
        assert what in e.value.summary and e.value.summary.startswith(
            "its train split differs from worker 0's"
        )


# --- the leader's trainings ------------------------------------------------------------------------------


def test_a_training_workers_cannot_rebuild_is_refused_in_a_multi_node_job(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = Nodes(2, 0, "127.0.0.1", 1, TOKEN)
    monkeypatch.setattr(leader, "_ACTIVE", leader.Leader(nodes))  # the server is never started
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25))
    cfg = TrainConfig(iterations=2, batch_size=2, workers=0)
    index = _index(tiny_data)
    with pytest.raises(UserError) as e:
        train_detector(
            det, index, cfg, tmp_path, stage="distill", loss_fn=lambda d, b, f=None: default_loss(d, b, f)
        )
    assert e.value.reason == Reason.NOT_MULTI_NODE and e.value.summary.startswith("distill: this training")
    assert "spec.resources.workers to 1" in e.value.summary
    with pytest.raises(UserError, match="the pruner's masks") as e:
        train_detector(det, index, cfg, tmp_path, stage="sparsify", in_process="the pruner's masks")
    assert e.value.reason == Reason.NOT_MULTI_NODE


def test_the_training_table_shows_every_workers_steps() -> None:
    assert processes({"ranks": 1}) == "1" and processes({}) == "1"  # a report of an older run
    two = {"ranks": 4, "nodes": 2, "worker_steps": [8, 8, None, 8]}
    assert processes(two) == "4 on 2 nodes (steps 8, 8, -, 8)"


# --- a leader and a follower: two `kslim run` processes ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job_doc(**spec: Any) -> dict[str, Any]:
    """Synthetic data (each worker generates its own copy), a trained baseline and a pruning step that
    fine-tunes: two training sessions."""
    doc: dict[str, Any] = {
        "model": {"architecture": "yolov3_mobilenet_v1", "width": "0.25", "numClasses": 3, "inputSize": 96},
        "dataset": {
            "format": "synthetic",
            "synthetic": {"trainImages": 16, "valImages": 4, "imageSize": 96, "classes": 3, "seed": 3},
        },
        "strategy": [{"prune": {"ratio": "0.2", "criterion": "l1_norm", "fineTune": {"iterations": 4}}}],
        "train": {
            "iterations": 6,
            "batchSize": 2,
            "workers": 0,
            "logEveryIterations": 2,
            "checkpointEveryIterations": 4,
            "warmupIterations": 1,
            "learningRate": "0.002",
        },
        "benchmark": {"device": "cpu", "iterations": 3, "warmup": 1, "threads": 1},
        "evaluation": {"batchSize": 4},
        "resources": {"gpus": 0, "workers": 2},
    }
    doc.update(spec)
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": "duo"},
        "spec": doc,
    }


@dataclasses.dataclass
class Worker:
    rank: int
    proc: subprocess.Popen[bytes]
    log: Path
    term: Path
    out: Path

    def text(self) -> str:
        return self.log.read_text()

    def message(self) -> Any:
        return parse_termination_message(self.term.read_text())


def _start(
    tmp: Path, doc: dict[str, Any], timeout: float = 60.0, own: dict[int, dict[str, str]] | None = None
) -> tuple[Worker, Worker]:
    """Worker 0 and worker 1 of a 2-node job, as training-operator starts them (here on one machine)."""
    job = tmp / "job.yaml"
    job.write_text(yaml.safe_dump(doc, sort_keys=False))
    common = {
        NODES_ENV: "2",
        PADDLE_NNODES_ENV: "2",
        PADDLE_MASTER_ENV: f"127.0.0.1:{_free_port()}",
        HANDOVER_PORT_ENV: str(_free_port()),
        HANDOVER_TOKEN_ENV: TOKEN,
        NODE_TIMEOUT_ENV: str(timeout),
        "KSLIM_NO_TQDM": "1",
    }
    workers = []
    for rank in (0, 1):
        log, term, out = tmp / f"worker{rank}.log", tmp / f"term{rank}", tmp / f"out{rank}"
        env = {**os.environ, **common, NODE_RANK_ENV: str(rank), TERMINATION_MESSAGE_PATH_ENV: str(term)}
        env.update((own or {}).get(rank, {}))
        with open(log, "wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kslim_runner.cli", "run", str(job), "--output", str(out)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
            )
        workers.append(Worker(rank, proc, log, term, out))
    return workers[0], workers[1]


def _wait(w: Worker, timeout: float = 300) -> int:
    try:
        return w.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        w.proc.kill()
        raise AssertionError(f"worker {w.rank} did not end:\n{w.text()[-3000:]}") from None


@pytest.mark.slow
def test_two_workers_train_each_session_together_and_only_the_leader_reports(tmp_path: Path) -> None:
    lead, follower = _start(tmp_path, _job_doc())
    assert _wait(lead) == EXIT_OK, lead.text()[-3000:]
    assert _wait(follower, 60) == EXIT_OK, follower.text()[-3000:]
    report = json.loads((lead.out / "report.json").read_text())
    trains = {row["name"]: row["train"] for row in report["rows"]}
    assert trains["baseline"]["ranks"] == 2 and trains["baseline"]["nodes"] == 2
    assert trains["baseline"]["worker_steps"] == [6, 6] and trains["baseline"]["global_batch"] == 4
    assert trains["step1-prune"]["worker_steps"] == [4, 4]
    assert "| 2 on 2 nodes (steps 6, 6) | 4 |" in (lead.out / "report.md").read_text()
    text = lead.text()
    assert text.count("data parallel over 2 processes on 2 nodes (1 per node, gloo)") == 2
    assert {p["stage"] for p in progress_lines(text)} >= {"baseline", "prune"}

    assert not follower.out.exists()  # its --output (in a pod: the same volume) is never touched
    ftext = follower.text()
    assert not progress_lines(ftext)
    scratch = Path(ftext.split("work folder ", 1)[1].split()[0])
    assert not scratch.exists()  # its private copy of the data is gone
    msg = follower.message()
    assert (msg.outcome, msg.reason, msg.stage) == ("Succeeded", Reason.COMPLETED, "prune")
    assert msg.message == (
        "worker 1 of 2: took part in 2 training sessions, 10 steps; worker 0 ended the job with exit 0"
    )
    assert lead.message().artifacts  # the leader's message is the job's


@pytest.mark.slow
def test_a_leader_that_fails_after_training_still_releases_its_follower(tmp_path: Path) -> None:
    lead, follower = _start(tmp_path, _job_doc(strategy=[], qualityGate={"maxLatencyMs": "0.001"}))
    assert _wait(lead) == EXIT_QUALITY_GATE, lead.text()[-3000:]
    assert _wait(follower, 60) == EXIT_OK, follower.text()[-3000:]
    assert "took part in 1 training session, 6 steps; worker 0 ended the job with exit 3" in follower.text()
    assert lead.message().reason == Reason.QUALITY_GATE_FAILED


@pytest.mark.slow
def test_a_follower_whose_data_differ_fails_the_job_with_the_difference(
    tmp_path: Path, tiny_data: Path
) -> None:
    """Each pod mounts its own copy of a pvc:// claim here; the follower's lacks an image."""
    for rank in (0, 1):
        shutil.copytree(tiny_data, tmp_path / f"pvc{rank}" / "data")
    ann = tmp_path / "pvc1" / "data" / "train" / "annotations.json"
    doc = json.loads(ann.read_text())
    gone = doc["images"].pop(0)["id"]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != gone]
    ann.write_text(json.dumps(doc))
    split = {
        s: {"images": f"pvc://data/{s}/images", "annotations": f"pvc://data/{s}/annotations.json"}
        for s in ("train", "val")
    }
    own = {rank: {PVC_ROOT_ENV: str(tmp_path / f"pvc{rank}")} for rank in (0, 1)}
    lead, follower = _start(tmp_path, _job_doc(strategy=[], dataset={"format": "coco", **split}), own=own)
    assert _wait(lead) == EXIT_USER, lead.text()[-3000:]
    assert _wait(follower, 60) == EXIT_OK, follower.text()[-3000:]
    msg = lead.message()
    assert (msg.reason, msg.stage) == (Reason.INVALID_INPUT, "baseline")
    assert msg.message.startswith(
        "worker 1 of 2: its train split differs from worker 0's: "
        "the images differ (worker 0: 24, worker 1: 23)"
    )
    fmsg = follower.message()
    assert fmsg.outcome == "Failed" and "its train split differs" in fmsg.message
    assert fmsg.message.endswith("worker 0 ended the job with exit 2")


@pytest.mark.slow
def test_a_job_a_follower_cannot_train_is_refused_before_anything_trains(tmp_path: Path) -> None:
    sparsify = [{"sparsify": {"ratio": "0.5", "fineTune": {"iterations": 2}}}]
    lead, follower = _start(tmp_path, _job_doc(strategy=sparsify))
    assert _wait(lead) == EXIT_USER, lead.text()[-3000:]
    assert _wait(follower, 60) == EXIT_OK, follower.text()[-3000:]
    msg = lead.message()
    assert msg.reason == Reason.NOT_MULTI_NODE and "sparsify" in msg.message
    assert "took part in 0 training sessions" in follower.text()


@pytest.mark.slow
def test_a_follower_whose_leader_dies_exits_1_within_the_bound(tmp_path: Path) -> None:
    bound = 6.0
    doc = _job_doc(strategy=[])
    doc["spec"]["train"] |= {"iterations": 400, "checkpointEveryIterations": 1000}
    lead, follower = _start(tmp_path, doc, timeout=bound)
    deadline = time.monotonic() + 240
    while not any(p["stage"] == "baseline" for p in progress_lines(lead.text())):  # both are training
        assert lead.proc.poll() is None and time.monotonic() < deadline, lead.text()[-3000:]
        time.sleep(0.1)
    lead.proc.kill()  # as when its node dies (its training processes die with it)
    killed = time.monotonic()
    assert _wait(follower, 120) == EXIT_INTERNAL, follower.text()[-3000:]
    assert time.monotonic() - killed < bound + 20
    lead.proc.wait()
    msg = follower.message()
    assert (msg.outcome, msg.reason) == ("Failed", Reason.INTERNAL_ERROR)
    assert "worker 0 (the leader) has not answered for" in msg.message


def test_a_session_hands_over_its_inputs_and_the_checkpoint_it_resumes(tmp_path: Path) -> None:
    for name in (distributed.JOB, distributed.INIT, "dp-teacher.pdparams", distributed.FINAL):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / distributed.result_name(0)).write_text("{}")
    (tmp_path / "model.pdparams").write_bytes(b"not handed over")
    assert sorted(leader.session_files(tmp_path)) == [
        "dp-init.pdparams",
        "dp-job.pickle",
        "dp-teacher.pdparams",
    ]
    old = tmp_path / "checkpoint.old"  # a save was interrupted: load_checkpoint reads the previous one
    old.mkdir()
    (old / "checkpoint.json").write_text('{"step": 4}')
    (old / "model.pdparams").write_bytes(b"m")
    files = leader.session_files(tmp_path)
    assert files["checkpoint/checkpoint.json"] == old / "checkpoint.json"
    assert files["checkpoint/model.pdparams"] == old / "model.pdparams"
    assert all(_safe_name(name) == name for name in files)
