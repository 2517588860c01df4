"""Training throughput, one process against data-parallel processes, measured side by side.

    python bench/train_speed.py [--steps 30] [--rounds 2] [--width 0.5] [--size 160]

Trains YOLOv3-MobileNetV1 on the synthetic set for --steps steps in each setting (1 process with
batch 8; 2 processes with batch 4 and with batch 8 each), --rounds times in alternation so that a
shared machine's load weighs on every setting alike, and prints images/s per setting and its ratio
to one process. Writes bench/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import kslim_runner  # noqa: F401  (zlib before paddle)

HERE = Path(__file__).resolve().parent
SETTINGS = ((1, 8), (2, 4), (2, 8))  # (processes, batch size per process)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--images", type=int, default=200, help="synthetic training images to generate")
    ap.add_argument("--results", default=str(HERE / "results" / "train_speed.json"))
    args = ap.parse_args(argv)

    import paddle
    from kslim_runner.api import (
        AugmentConfig,
        DetectorConfig,
        SynthConfig,
        TrainConfig,
        build_detector,
        generate,
        load_coco,
        train_detector,
        use_cpu_threads,
    )

    threads = use_cpu_threads()
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="kslim-train-speed-"))
    try:
        generate(scratch / "data", SynthConfig(images=args.images, size=args.size, classes=3, seed=0))
        index = load_coco(scratch / "data" / "annotations.json", scratch / "data" / "images", 3)
        speeds: dict[tuple[int, int], list[float]] = {s: [] for s in SETTINGS}
        for _ in range(args.rounds):
            for processes, batch in SETTINGS:
                paddle.seed(0)
                det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, args.size, args.width))
                cfg = TrainConfig(
                    iterations=args.steps,
                    batch_size=batch,
                    workers=1,
                    log_every=10**6,
                    checkpoint_every=10**6,
                    processes=processes,
                    augment=AugmentConfig(expand_prob=0.0, crop_prob=0.0),
                )
                work = scratch / f"run-{processes}x{batch}"
                shutil.rmtree(work, ignore_errors=True)
                result = train_detector(det, index, cfg, work, stage="baseline")
                speeds[(processes, batch)].append(result.images_per_second or 0.0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base = statistics.median(speeds[SETTINGS[0]])
    rows = [
        {
            "processes": p,
            "batchPerProcess": b,
            "imagesPerSecond": round(statistics.median(speeds[(p, b)]), 2),
            "runs": speeds[(p, b)],
            "vsOneProcess": round(statistics.median(speeds[(p, b)]) / base, 2),
        }
        for p, b in SETTINGS
    ]
    print(f"\nYOLOv3-MobileNetV1 x{args.width}, {args.size} px, {args.steps} steps, {args.rounds} rounds")
    print("\n| processes x batch | images/s (median) | vs 1 process |\n| :-- | --: | --: |")
    for r in rows:
        print(
            f"| {r['processes']} x {r['batchPerProcess']} | {r['imagesPerSecond']} | {r['vsOneProcess']}x |"
        )
    out = {
        "model": f"yolov3_mobilenet_v1 x{args.width}",
        "inputSize": args.size,
        "steps": args.steps,
        "rounds": args.rounds,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "threads": threads, "paddle": paddle.__version__},
        "loadBefore": [round(x, 2) for x in load_before],
        "loadAfter": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.results).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
