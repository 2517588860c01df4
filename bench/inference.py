"""Inference-side benchmark: evaluation throughput (exported model through Paddle Inference, COCO
AP by pycocotools) and int8 vs fp32 latency (oneDNN, batch 1), each measured side by side so that
a shared machine's load weighs on both sides of every ratio alike.

    python bench/inference.py [--work .kslim/bench/compression/budget1-n2000-200-s0] [--larger 320,608]

Uses the models and data of a `bench/compression.py` run (its baseline, and whichever of its QAT,
PACT QAT, PTQ, FPGM and L1-norm rows exist; run `python bench/compression.py` first). Also exports
the same rows' weights at larger inputs (--larger; 608 px is the seed's YOLOv3 input) and times
them too, to show how the int8 speed-up and the pruned model's latency cut grow with the work per
call; the PTQ row there is a PTQ (hist) of the baseline's larger export. Prints the tables and
writes bench/results/inference.json with the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)

HERE = Path(__file__).resolve().parent
#: Where bench/compression.py's jobs leave the exported models (bench/gpu_inference.py reads them too).
BASELINE_MODEL = "baseline/out/models/baseline"
INT8_ROWS = {"qat": "qat/out/models/step1-qat", "qat_pact": "qat_pact/out/models/step1-qat"}
INT8_ROWS["ptq"] = "ptq/out/models/step1-ptq"
#: Pruned fp32 models, timed with the rest so that their latency cut is measured side by side too.
PRUNED_ROWS = {"fpgm": "fpgm/out/models/step1-prune", "l1_norm": "l1_norm/out/models/step1-prune"}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def eval_rows(work: Path, reps: int, batch: int, threads: int) -> list[dict[str, Any]]:
    """The runner's evaluation (evaluate_model) of the baseline, repeated; and, alternating with it,
    the same detections scored by stock pycocotools (the evaluator before this benchmark)."""
    from kslim_runner.api import (
        PredictorOptions,
        coco_stats,
        create_predictor,
        evaluate_model,
        load_coco,
        model_files,
        predict,
    )

    model = work / BASELINE_MODEL
    val = load_coco(work / "data/val/annotations.json", work / "data/val/images", 3)
    opts = PredictorOptions(threads=threads)
    predictor = create_predictor(model_files(model), opts)
    runs: dict[str, list[dict[str, float]]] = {"runner": [], "stock": []}
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(reps):
            r = evaluate_model(model, val, batch_size=batch, opts=opts)
            runs["runner"].append(
                {"seconds": r.seconds, "coco": r.cocoSeconds, "ap": r.ap, "detections": r.detections}
            )
            t0 = time.monotonic()
            dets = predict(model, val, batch_size=batch, opts=opts, predictor=predictor, score_threshold=0.01)
            t1 = time.monotonic()
            stats = coco_stats(val.annotations, dets, reference=True)
            t2 = time.monotonic()
            runs["stock"].append(
                {"seconds": t2 - t0, "coco": t2 - t1, "ap": stats["ap"], "detections": len(dets)}
            )
    rows = []
    for name, rs in runs.items():
        best = min(rs, key=lambda r: r["seconds"])
        med = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
        rows.append(
            {
                "evaluator": "runner (faster-coco-eval)" if name == "runner" else "stock pycocotools",
                "images": len(val),
                "detections": best["detections"],
                "batchSize": batch,
                "threads": threads,
                "ap": best["ap"],
                "imagesPerSecondMedian": round(len(val) / med["seconds"], 1),
                "imagesPerSecondBest": round(len(val) / best["seconds"], 1),
                "cocoSecondsMedian": round(med["coco"], 3),
                "inferenceSecondsMedian": round(med["seconds"] - med["coco"], 3),
            }
        )
    return rows


def kernel_ms(model: Path, precision: str, threads: int, runs: int = 30) -> float | None:
    """oneDNN primitive time per call (ONEDNN_VERBOSE, in a child process): what the convolutions
    themselves cost, without Paddle's per-operator overhead and the fp32 postprocess."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    cmd = [sys.executable, __file__, "--child-kernels", str(model), precision, str(threads), str(runs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stdout
    if "=====MARK" not in out:
        return None
    total = 0.0
    for line in out.split("=====MARK", 1)[1].splitlines():
        if line.startswith("onednn_verbose") and ",exec," in line:
            with contextlib.suppress(ValueError):
                total += float(line.rsplit(",", 1)[1])
    return round(total / runs, 3)


def child_kernels(model: str, precision: str, threads: int, runs: int) -> None:
    from kslim_runner.api import PredictorOptions, create_predictor, latency_inputs, model_files, run_detector

    opts = PredictorOptions(precision=precision, threads=threads)
    predictor = create_predictor(model_files(Path(model)), opts)
    inputs = latency_inputs(Path(model), 1)
    for _ in range(10):
        run_detector(predictor, *inputs)
    print("=====MARK", flush=True)
    for _ in range(runs):
        run_detector(predictor, *inputs)
    sys.stdout.flush()


def row_recipe(work: Path, export: str) -> tuple[dict[str, Any], list[str], Callable[[str], Path]]:
    """The model recipe (state.json) of the job row exported at `export` ("<job>/out/models/<row>"),
    its labels, and how its relative paths resolve."""
    job, row = export.split("/")[0], export.rsplit("/", 1)[1]
    out = work / job / "out"
    state = json.loads((out / "state.json").read_text())
    model = next(r["model"] for r in state["rows"] if r["name"] == row)
    return model, state["done"]["prepare"]["result"]["labels"], lambda p: out / p


def at_input_size(model: dict[str, Any], size: int) -> dict[str, Any]:
    """The recipe with every detector config in its chain (pruned -> source -> ...) set to `size` px."""
    model = copy.deepcopy(model)
    node: dict[str, Any] | None = model
    while node is not None:
        if "config" in node:
            node["config"]["input_size"] = size
        node = node.get("source")
    return model


def export_row_at(work: Path, export: str, size: int, dest: Path) -> Path:
    """A job row's trained weights exported again at `size` px: fp32 rows as a float model, QAT rows
    quantized alike and exported int8, as the job itself does at its own input size."""
    from kslim_runner.api import export_detector, export_quantized, load_row_model, rebuild_quantized

    if (dest / "model.pdmodel").is_file():
        return dest
    model, labels, path_of = row_recipe(work, export)
    if model["kind"] == "qat":
        return export_quantized(*rebuild_quantized(at_input_size(model, size), path_of), dest, labels)
    return export_detector(load_row_model(at_input_size(model, size), path_of), dest, labels)


def ptq_at(work: Path, fp32: Path, dest: Path) -> Path:
    """PTQ (hist, 10 batches of 8 training images) of an fp32 export, like the bench's PTQ row: the
    runner's own PTQ (what a ptq step runs)."""
    from kslim_api.v1alpha1 import PTQStep
    from kslim_runner.api import load_coco, quantize_post_training

    if (dest / "model.pdmodel").is_file():
        return dest
    train = load_coco(work / "data/train/annotations.json", work / "data/train/images", 3)
    quantize_post_training(fp32, dest, train, PTQStep(algo="hist", batch_num=10, batch_size=8), seed=0)
    return dest


def larger_models(work: Path, size: int, rows: list[str]) -> dict[str, tuple[Path, str]]:
    """The baseline and each of `rows` (the job rows present) re-exported at `size` px, and a PTQ of
    the baseline's export in place of the PTQ row (which quantized the 160 px program)."""
    folder = work / f"inference-{size}"
    models = {"baseline": (export_row_at(work, BASELINE_MODEL, size, folder / "baseline"), "fp32")}
    for name in rows:
        if name == "ptq":
            models[name] = (ptq_at(work, folder / "baseline", folder / name), "int8")
        elif name in INT8_ROWS:
            models[name] = (export_row_at(work, INT8_ROWS[name], size, folder / name), "int8")
        else:
            models[name] = (export_row_at(work, PRUNED_ROWS[name], size, folder / name), "fp32")
    return models


def latency_rows(
    models: dict[str, tuple[Path, str]], size: int, threads: int, iterations: int, kernels: bool
) -> list[dict[str, Any]]:
    """Each model (path, precision; the first is the fp32 reference), timed in alternating rounds
    at batch 1."""
    from kslim_runner.api import PredictorOptions, compare_latency, model_cost

    names = list(models)
    precs = [models[n][1] for n in names]
    specs = [(models[n][0], PredictorOptions(precision=models[n][1], threads=threads)) for n in names]
    before = load()
    lats = compare_latency(specs, batch_size=1, iterations=iterations, warmup=20)
    rows = []
    for name, prec, lat in zip(names, precs, lats, strict=True):
        k = kernel_ms(models[name][0], prec, threads) if kernels else None
        rows.append(
            {
                "model": name,
                "inputSize": size,
                "precision": prec,
                "gflops": model_cost(models[name][0])["gflops"],
                "threads": threads,
                "p50": lat.p50,
                "p90": lat.p90,
                "speedup": round(lats[0].p50 / lat.p50, 2),
                "kernelMs": k,
                "load": before,
            }
        )
    if kernels and rows[0]["kernelMs"]:
        for r in rows:
            if r["kernelMs"]:
                r["kernelSpeedup"] = round(rows[0]["kernelMs"] / r["kernelMs"], 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=".kslim/bench/compression/budget1-n2000-200-s0")
    ap.add_argument("--eval-reps", type=int, default=3)
    ap.add_argument("--eval-batch", type=int, default=8)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts for the latency table")
    ap.add_argument("--iterations", type=int, default=200, help="timed calls per model and thread count")
    ap.add_argument(
        "--larger",
        default="320,608",
        help="comma-separated input sizes to re-export every row at and time too (608: the seed's; 0: none)",
    )
    ap.add_argument("--no-kernels", action="store_true", help="skip the ONEDNN_VERBOSE kernel timings")
    ap.add_argument("--results", default=str(HERE / "results" / "inference.json"))
    ap.add_argument("--child-kernels", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_kernels:
        m, p, t, n = args.child_kernels
        child_kernels(m, p, int(t), int(n))
        return 0
    work = Path(args.work).absolute()
    if not (work / BASELINE_MODEL / "model.pdmodel").is_file():
        raise SystemExit(f"{work}: no baseline model; run bench/compression.py first")
    t0, load0 = time.monotonic(), load()
    threads = [int(t) for t in args.threads.split(",")]
    evals = eval_rows(work, args.eval_reps, args.eval_batch, 2)
    small = {"baseline": (work / BASELINE_MODEL, "fp32")}
    for rows, precision in ((INT8_ROWS, "int8"), (PRUNED_ROWS, "fp32")):
        small |= {k: (work / v, precision) for k, v in rows.items() if (work / v / "model.pdmodel").is_file()}
    size = row_recipe(work, BASELINE_MODEL)[0]["config"]["input_size"]  # the jobs' own
    lat = [r for t in threads for r in latency_rows(small, size, t, args.iterations, not args.no_kernels)]
    for size in [int(x) for x in args.larger.split(",") if int(x)]:
        big = larger_models(work, size, [k for k in small if k != "baseline"])
        lat += [r for t in threads for r in latency_rows(big, size, t, args.iterations, not args.no_kernels)]
    import paddle

    doc = {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "paddle": paddle.__version__},
        "loadBefore": load0,
        "loadAfter": load(),
        "seconds": round(time.monotonic() - t0, 1),
        "evaluation": evals,
        "latency": lat,
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"load average {load0} -> {doc['loadAfter']} (1, 5, 15 min; {os.cpu_count()} cpus)\n")
    print(
        "| Evaluator | Images | Detections | Batch | Threads | Box AP | images/s median (best) "
        "| pycocotools s | inference s |"
    )
    print("| :-- | --: | --: | --: | --: | --: | --: | --: | --: |")
    for r in evals:
        print(
            f"| {r['evaluator']} | {r['images']} | {r['detections']} | {r['batchSize']} | {r['threads']} "
            f"| {r['ap'] * 100:.2f} | {r['imagesPerSecondMedian']} ({r['imagesPerSecondBest']}) "
            f"| {r['cocoSecondsMedian']} | {r['inferenceSecondsMedian']} |"
        )
    print()
    print(
        "| Model | Input | Precision | GFLOPs | Threads | p50 ms | p90 ms | vs fp32 | oneDNN kernels ms "
        "| kernels vs fp32 | load |"
    )
    print("| :-- | --: | :-- | --: | --: | --: | --: | --: | --: | --: | :-- |")
    for r in lat:
        ks = r.get("kernelSpeedup")
        print(
            f"| {r['model']} | {r['inputSize']} | {r['precision']} | {r['gflops']} | {r['threads']} "
            f"| {r['p50']:.2f} "
            f"| {r['p90']:.2f} | {r['speedup']:.2f}x | {r['kernelMs'] if r['kernelMs'] is not None else '-'} "
            f"| {'-' if ks is None else f'{ks:.2f}x'} | {r['load'][0]} |"
        )
    print(f"\n{re.sub(r'^.*/bench', 'bench', str(path))} written in {doc['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
