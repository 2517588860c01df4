"""Paddle's bundled MKL on an AMD CPU: its default SGEMM path against the AVX2 one that kslim_runner
selects (MKL_DEBUG_CPU_TYPE=5), measured side by side in fresh processes.

    python bench/mkl_path.py [--rounds 3]

Each round times, in one child process per path: a 3x3 convolution forward + backward
(8 x 128 x 20 x 20 -> 256 channels, the im2col + SGEMM that dominates training) and whole training
steps of YOLOv3-MobileNetV1 x0.5 at 160 px (batch 8, one thread). Prints the medians and ratios;
writes bench/results/mkl_path.json. On an Intel CPU both paths are MKL's own choice and kslim
leaves the variable unset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = {"MKL default": "", "AVX2 (kslim on AMD)": "5"}  # "" counts as unset for MKL

CHILD = r"""
import json, time
import kslim_runner  # zlib first; keeps an MKL_DEBUG_CPU_TYPE that is already set, even empty
import paddle
from kslim_runner.api import DetectorConfig, build_detector

paddle.base.core.set_num_threads(1)
x = paddle.randn([8, 128, 20, 20])
x.stop_gradient = False
conv = paddle.nn.Conv2D(128, 256, 3, padding=1)
for _ in range(3):
    conv(x).sum().backward()
t = time.perf_counter()
for _ in range(10):
    conv(x).sum().backward()
conv_ms = (time.perf_counter() - t) * 100

paddle.seed(0)
det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 160, 0.5))
det.train()
opt = paddle.optimizer.AdamW(1e-3, parameters=det.parameters())
img = paddle.randn([8, 3, 160, 160])
box = paddle.to_tensor([[[0.5, 0.5, 0.3, 0.3], [0.3, 0.6, 0.2, 0.25]]] * 8, dtype="float32")
label = paddle.zeros([8, 2], dtype="int32")
steps = []
for i in range(6):
    t = time.perf_counter()
    det.loss(det(img), box, label).backward()
    opt.step()
    opt.clear_grad()
    if i >= 2:
        steps.append(time.perf_counter() - t)
print(json.dumps({"convMs": conv_ms, "stepSeconds": sorted(steps)[len(steps) // 2]}))
"""


def measure(value: str) -> dict[str, float]:
    env = {**os.environ, "MKL_DEBUG_CPU_TYPE": value}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True, cwd=HERE.parent
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results", default=str(HERE / "results" / "mkl_path.json"))
    args = ap.parse_args(argv)

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PATHS}
    for _ in range(args.rounds):
        for name, value in PATHS.items():
            runs[name].append(measure(value))
    rows = []
    for name, samples in runs.items():
        conv = statistics.median(s["convMs"] for s in samples)
        step = statistics.median(s["stepSeconds"] for s in samples)
        rows.append({"path": name, "convFwdBwdMs": round(conv, 1), "trainStepSeconds": round(step, 3)})
    base = rows[0]
    print("| MKL path | conv 3x3 fwd+bwd ms | vs default | train step s (batch 8) | images/s | vs default |")
    print("| :-- | --: | --: | --: | --: | --: |")
    for r in rows:
        print(
            f"| {r['path']} | {r['convFwdBwdMs']} | {base['convFwdBwdMs'] / r['convFwdBwdMs']:.2f}x "
            f"| {r['trainStepSeconds']} | {8 / r['trainStepSeconds']:.1f} "
            f"| {base['trainStepSeconds'] / r['trainStepSeconds']:.2f}x |"
        )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    result = {
        "rows": rows,
        "rounds": args.rounds,
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadAfter": os.getloadavg(),
    }
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
