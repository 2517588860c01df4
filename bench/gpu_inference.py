"""GPU rows of the compression benchmark: TensorRT fp32, fp16 and int8 latency of the models a
`bench/compression.py` run exported, timed side by side on one GPU (a few minutes).

    python bench/gpu_inference.py [--work .kslim/bench/compression/budget1-n2000-200-s0] [--gpu 0]

Needs the GPU build of paddle (the runner's GPU image) and a GPU it can run: compute capability
6.1-8.9 (paddlepaddle-gpu 2.6.2 has no Hopper kernels); anything else ends with exit 2 and the
reason. Rows: the baseline on the GPU without TensorRT, with TensorRT fp32 and fp16; each int8 row
of the run (QAT, PACT QAT, PTQ) with TensorRT int8 (scales from the model, no calibration).
Batch 1 and 8. Prints the table and writes bench/results/gpu_inference.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)
from inference import BASELINE_MODEL, INT8_ROWS  # bench/inference.py: where the compression jobs export

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = ".kslim/bench/compression/budget1-n2000-200-s0"


def usable_gpu() -> str:
    """The GPUs' description, or a DeviceError saying why this machine cannot run the benchmark."""
    from kslim_runner.api import DeviceError, decide_device, probe

    compiled, gpus = probe()
    if not compiled:
        raise DeviceError(
            "this paddle is the CPU build; run it in the runner image (Dockerfile target runner)"
        )
    if not gpus:
        raise DeviceError("paddle sees no CUDA device")
    return decide_device("gpu", compiled, gpus).reason  # raises for a GPU paddle 2.6.2 cannot run


def variants(work: Path, gpu: int) -> list[tuple[str, Path, Any]]:
    """(row label, model folder, predictor options) of every row whose model exists."""
    from kslim_runner.api import PredictorOptions

    base = work / BASELINE_MODEL
    if not (base / "model.pdmodel").is_file():
        raise FileNotFoundError(f"{base} has no exported model; run bench/compression.py first")
    rows = [
        ("baseline, GPU (no TensorRT)", base, PredictorOptions(device="gpu", gpu_id=gpu)),
        ("baseline, TensorRT fp32", base, PredictorOptions(device="gpu", tensorrt=True, gpu_id=gpu)),
        (
            "baseline, TensorRT fp16",
            base,
            PredictorOptions(device="gpu", tensorrt=True, precision="fp16", gpu_id=gpu),
        ),
    ]
    for name, rel in INT8_ROWS.items():
        if (work / rel / "model.pdmodel").is_file():
            opts = PredictorOptions(device="gpu", tensorrt=True, precision="int8", gpu_id=gpu)
            rows.append((f"{name}, TensorRT int8", work / rel, opts))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=DEFAULT_WORK, help="a bench/compression.py job folder")
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--results", default=str(HERE / "results" / "gpu_inference.json"))
    args = ap.parse_args(argv)

    from kslim_runner.api import DeviceError, compare_latency

    try:
        gpus = usable_gpu()
        rows = variants(Path(args.work), args.gpu)
    except (DeviceError, FileNotFoundError) as e:
        print(f"bench/gpu_inference.py cannot run here: {e}", file=sys.stderr)
        return 2
    results = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        lat = compare_latency(
            [(folder, opts) for _, folder, opts in rows], batch_size=batch, iterations=args.iterations
        )
        ref = lat[1].p50  # TensorRT fp32
        for (label, folder, opts), latency in zip(rows, lat, strict=True):
            results.append(
                {
                    "row": label,
                    "model": str(folder),
                    "precision": opts.precision,
                    "tensorrt": opts.tensorrt,
                    "batchSize": batch,
                    "p50Ms": latency.p50,
                    "p90Ms": latency.p90,
                    "vsTensorrtFp32": round(ref / latency.p50, 2),
                }
            )
    print("| row | batch | p50 (ms) | p90 (ms) | vs TensorRT fp32 |")
    print("| :-- | --: | --: | --: | --: |")
    for r in results:
        ms = f"{r['p50Ms']:.3f} | {r['p90Ms']:.3f}"
        print(f"| {r['row']} | {r['batchSize']} | {ms} | {r['vsTensorrtFp32']}x |")
    out = {
        "rows": results,
        "gpus": gpus,
        "date": time.strftime("%Y-%m-%d"),
        "platform": platform.platform(),
    }
    Path(args.results).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
