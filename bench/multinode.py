"""Multi-node training throughput: one worker against two, on the same fine-tune, side by side.

    .venv/bin/python bench/multinode.py [--steps 60] [--rounds 2] [--batch 4]

Runs the same baseline training (YOLOv3-MobileNetV1 x0.25 on the synthetic set, --steps steps of
--batch images per process) as `kslim run` jobs in three settings, --rounds times in alternation so
that a shared machine's load weighs on each alike:

- 1 node: one worker, one process, pinned to CPU core 0;
- 2 nodes: two workers as a multi-node job runs them (KSLIM_NODES=2, ranks 0 and 1, worker 0's
  rendezvous and hand-over on loopback), each pinned to its own core, as two single-core machines;
- 1 node, 2 processes: one worker with train.dataParallel 2 on both cores (the same world size on
  one node, for comparison).

Images/s is the training's own figure (global batch / step time, the report's train row). Prints a
table and writes bench/results/multinode.json. On this 2-core machine the two "nodes" are two cores
of one VM talking over loopback: the figure bounds what gloo's all-reduce and the hand-over cost,
not what a network between machines would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kslim_api.contract import (
    HANDOVER_PORT_ENV,
    HANDOVER_TOKEN_ENV,
    NODE_RANK_ENV,
    NODES_ENV,
    PADDLE_MASTER_ENV,
    PADDLE_NNODES_ENV,
)

HERE = Path(__file__).resolve().parent
KSLIM = Path(sys.executable).with_name("kslim")


def job(steps: int, batch: int, data_parallel: int | None) -> dict[str, Any]:
    train: dict[str, Any] = {
        "iterations": steps,
        "batchSize": batch,
        "workers": 0,
        "logEveryIterations": max(1, steps // 4),
        "checkpointEveryIterations": steps * 10,
        "warmupIterations": 1,
        "ema": False,
    }
    if data_parallel:
        train["dataParallel"] = data_parallel
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": "bench-multinode"},
        "spec": {
            "model": {
                "architecture": "yolov3_mobilenet_v1",
                "width": "0.25",
                "numClasses": 3,
                "inputSize": 160,
            },
            "dataset": {
                "format": "synthetic",
                "synthetic": {"trainImages": 64, "valImages": 8, "imageSize": 160, "classes": 3},
            },
            "strategy": [],
            "train": train,
            "benchmark": {"device": "cpu", "iterations": 2, "warmup": 1, "threads": 1},
            "evaluation": {"batchSize": 8},
            "resources": {"gpus": 0},
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int | None) -> Callable[[], None] | None:
    return None if core is None else lambda: os.sched_setaffinity(0, {core})


def run_workers(work: Path, doc: dict[str, Any], cores: list[int | None]) -> dict[str, Any]:
    """`kslim run` once per worker (several: a multi-node job on loopback); worker 0's train row."""
    job_file = work / "job.yaml"
    job_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    common = {"KSLIM_NO_TQDM": "1"}
    if len(cores) > 1:
        common |= {
            NODES_ENV: str(len(cores)),
            PADDLE_NNODES_ENV: str(len(cores)),
            PADDLE_MASTER_ENV: f"127.0.0.1:{free_port()}",
            HANDOVER_PORT_ENV: str(free_port()),
            HANDOVER_TOKEN_ENV: secrets.token_urlsafe(24),
        }
    procs = []
    for rank, core in enumerate(cores):
        env = {**os.environ, **common, NODE_RANK_ENV: str(rank)}
        log = (work / f"worker{rank}.log").open("wb")
        command = [str(KSLIM), "run", str(job_file), "--output", str(work / f"out{rank}")]
        procs.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=pinned(core))
        )
    codes = [p.wait(timeout=1800) for p in procs]
    if any(codes):
        tail = (work / "worker0.log").read_text()[-2000:]
        raise SystemExit(f"bench/multinode.py: a worker failed ({codes}):\n{tail}")
    report = json.loads((work / "out0" / "report.json").read_text())
    return dict(next(row["train"] for row in report["rows"] if row["name"] == "baseline"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="images per process and step")
    ap.add_argument("--results", default=str(HERE / "results" / "multinode.json"))
    args = ap.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench/multinode.py needs 2 CPU cores (one per simulated node)")
    settings: dict[str, tuple[dict[str, Any], list[int | None]]] = {
        "1 node x 1 process": (job(args.steps, args.batch, None), [0]),
        "2 nodes x 1 process": (job(args.steps, args.batch, None), [0, 1]),
        "1 node x 2 processes": (job(args.steps, args.batch, 2), [None]),
    }
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    load = [os.getloadavg()[0]]
    started = time.monotonic()
    for round_ in range(args.rounds):
        for name, (doc, cores) in settings.items():
            with tempfile.TemporaryDirectory(prefix="kslim-bench-multinode-") as tmp:
                train = run_workers(Path(tmp), doc, cores)
            figures[name].append(train)
            print(f"round {round_ + 1}: {name}: {train['images_per_second']} images/s", flush=True)
    load.append(os.getloadavg()[0])

    base = statistics.median(t["images_per_second"] for t in figures["1 node x 1 process"])
    rows = []
    for name, trains in figures.items():
        ips = statistics.median(t["images_per_second"] for t in trains)
        step = statistics.median(t["step_seconds"] for t in trains)
        rows.append(
            {
                "setting": name,
                "ranks": trains[0].get("ranks", 1),
                "globalBatch": trains[0].get("global_batch", args.batch),
                "imagesPerSecond": ips,
                "stepSeconds": step,
                "speedup": round(ips / base, 2),
                "workerSteps": trains[0].get("worker_steps"),
            }
        )
    print()
    print("| setting | ranks | global batch | images/s (median) | step s | vs 1 node |")
    print("| :-- | --: | --: | --: | --: | --: |")
    for r in rows:
        print(
            f"| {r['setting']} | {r['ranks']} | {r['globalBatch']} | {r['imagesPerSecond']:.1f} | "
            f"{r['stepSeconds']:.3f} | {r['speedup']:.2f}x |"
        )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "steps": args.steps,
        "rounds": args.rounds,
        "batchPerProcess": args.batch,
        "loadAverage": load,
        "seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nload average {load[0]:.1f} -> {load[1]:.1f}; {result['seconds']} s; wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
