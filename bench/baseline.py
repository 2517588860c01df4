"""Baseline benchmark: YOLOv3-MobileNetV1 (width 0.5, 160 px) trained from scratch on synthetic COCO
for a fixed CPU budget, then evaluated as shipped (exported model, Paddle Inference, pycocotools).

    python bench/baseline.py [--budget-seconds 480] [--out .kslim/bench]

Prints a table (AP, AP50, step time, images/s, evaluation throughput) and writes
bench/results/baseline.json. Targets: AP >= 0.30, AP50 >= 0.60, evaluation >= 100 images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import kslim_runner  # noqa: F401  (zlib before paddle)

HERE = Path(__file__).resolve().parent
TARGETS = {"ap": 0.30, "ap50": 0.60, "evalImagesPerSecond": 100.0}


def _commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--budget-seconds", type=float, default=480.0, help="training time budget, wall-clock seconds"
    )
    ap.add_argument("--out", default=".kslim/bench", help="scratch folder for data, checkpoints, model")
    ap.add_argument("--train-images", type=int, default=1000)
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=4, help="images per step per process")
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--workers", type=int, default=1, help="data-loader workers per training process")
    ap.add_argument(
        "--processes",
        type=int,
        default=0,
        help="data-parallel training processes (default: one per CPU core; batch size is per process)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--augment",
        choices=("light", "full"),
        default="light",
        help="light: flips and colour only (short budgets converge faster); full: + expand/crop",
    )
    ap.add_argument("--results", default=str(HERE / "results" / "baseline.json"))
    args = ap.parse_args(argv)

    import paddle
    from kslim_runner.api import (
        AugmentConfig,
        DetectorConfig,
        PredictorOptions,
        SynthConfig,
        TrainConfig,
        build_detector,
        evaluate_model,
        export_detector,
        generate,
        load_coco,
        measure_latency,
        model_cost,
        train_detector,
        use_cpu_threads,
    )

    threads = use_cpu_threads()
    processes = args.processes or threads
    t_all = time.monotonic()
    out = Path(args.out).absolute()
    splits = {}
    for split, n in (("train", args.train_images), ("val", args.val_images)):
        folder = out / f"data-{args.size}-{n}-s{args.seed}" / split
        if not (folder / "annotations.json").is_file():
            generate(folder, SynthConfig(images=n, size=args.size, classes=3, seed=args.seed), split=split)
        splits[split] = load_coco(folder / "annotations.json", folder / "images", 3)
    t_data = time.monotonic() - t_all

    paddle.seed(args.seed)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, args.size, args.width))
    cfg = TrainConfig(
        iterations=100_000,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_iterations=args.warmup,
        workers=args.workers,
        seed=args.seed,
        log_every=20,
        checkpoint_every=10**9,
        time_budget_seconds=args.budget_seconds,
        augment=AugmentConfig() if args.augment == "full" else AugmentConfig(expand_prob=0.0, crop_prob=0.0),
        processes=processes,
    )
    work = out / f"run-{int(time.time())}"
    train = train_detector(det, splits["train"], cfg, work, stage="baseline")
    model_dir = export_detector(det, work / "model", splits["val"].category_names)
    opts = PredictorOptions(threads=2)
    ev = evaluate_model(model_dir, splits["val"], batch_size=8, score_threshold=0.01, opts=opts)
    cost = model_cost(model_dir)
    lat = measure_latency(model_dir, opts=opts, warmup=10, iterations=100)
    total = time.monotonic() - t_all
    measured = {"ap": ev.ap, "ap50": ev.ap50, "evalImagesPerSecond": ev.imagesPerSecond}

    result = {
        "benchmark": "baseline",
        "model": f"yolov3_mobilenet_v1 x{args.width}",
        "inputSize": args.size,
        "ap": ev.ap,
        "ap50": ev.ap50,
        "ap75": ev.ap75,
        "apSmall": ev.apSmall,
        "apMedium": ev.apMedium,
        "apLarge": ev.apLarge,
        "trainSteps": train.iterations,
        "batchSize": args.batch_size,
        "processes": processes,
        "trainSeconds": train.seconds,
        "stepSeconds": train.step_seconds,
        "trainImagesPerSecond": train.images_per_second,
        "evalImages": ev.images,
        "evalSeconds": ev.seconds,
        "evalImagesPerSecond": ev.imagesPerSecond,
        "gflops": cost["gflops"],
        "params": cost["params"],
        "sizeBytes": cost["sizeBytes"],
        "latencyMsFp32": {"p50": lat.p50, "p90": lat.p90, "mean": lat.mean, "threads": lat.threads},
        "budgetSeconds": args.budget_seconds,
        "dataSeconds": round(t_data, 1),
        "totalSeconds": round(total, 1),
        "trainImages": args.train_images,
        "valImages": args.val_images,
        "seed": args.seed,
        "targets": TARGETS,
        "met": {k: measured[k] >= v for k, v in TARGETS.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "threads": threads,
            "platform": platform.platform(),
            "paddle": paddle.__version__,
            "loadAverage": os.getloadavg(),
        },
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = [
        ("AP", f"{ev.ap:.3f}", f">= {TARGETS['ap']}"),
        ("AP50", f"{ev.ap50:.3f}", f">= {TARGETS['ap50']}"),
        ("AP75", f"{ev.ap75:.3f}", ""),
        ("train steps x batch x processes", f"{train.iterations} x {args.batch_size} x {processes}", ""),
        ("step time (s)", f"{train.step_seconds}", ""),
        ("train images/s", f"{train.images_per_second}", ""),
        (
            "eval images/s (incl. pycocotools)",
            f"{ev.imagesPerSecond}",
            f">= {TARGETS['evalImagesPerSecond']}",
        ),
        ("latency fp32 p50 (ms, batch 1)", f"{lat.p50:.2f}", ""),
        ("GFLOPs", f"{cost['gflops']}", ""),
        ("total wall time (s)", f"{total:.0f}", "<= 600"),
    ]
    print("\n| figure | value | target |\n| :-- | --: | :-- |")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
