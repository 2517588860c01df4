"""The seed guide's rows, each as its example job (examples/ppdet-*.yaml), run end to end at tiny size.

    python bench/zoo_rows.py [--size 96] [--only ppyolo] [--timeout 900]

Each example names a PaddleDetection config and checkpoint on a volume this machine does not have,
so the job is shrunk: the config becomes kslim's own config of the same model (runner/kslim_runner/
zoo/configs: the same modules, parameter names and shapes as PaddleDetection's, so the example's
conv2d_N.w_0 lists resolve to the same layers), 3 classes at --size px on synthetic data, no
weights (the baseline trains one step from scratch), one training step per stage, a few PTQ
batches, CPU timing. The strategy stays as the example wrote it: methods, criteria, ratios, named
convs, quantization settings. Each job runs in its own process (`kslim run`).

Prints a table: per example, the rows the job reported (GFLOPs and parameters from the baseline to
the last row, AP per row, whether the last row is int8) and the seconds it took. The AP is near 0
after one step from scratch: a row shows that the path works, not accuracy.
tests/zoo/test_zoo_rows.py runs a few of these in the test suite, through `tiny_job` below.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
KSLIM_CONFIGS = REPO / "runner" / "kslim_runner" / "zoo" / "configs"
CLASSES = 3

#: PaddleDetection 2.6 config (in its configs/ tree) -> kslim's config of the same model
#: (bench/zoo_fidelity.py checks that each pair builds the same parameters)
SAME_MODEL = {
    "yolov3/yolov3_mobilenet_v1_270e_coco.yml": "yolov3_mobilenet_v1",
    "yolov3/yolov3_mobilenet_v1_270e_voc.yml": "yolov3_mobilenet_v1",
    "yolov3/yolov3_mobilenet_v3_large_270e_coco.yml": "yolov3_mobilenet_v3",
    "yolov3/yolov3_darknet53_270e_coco.yml": "yolov3_darknet53",
    "yolov3/yolov3_r34_270e_coco.yml": "yolov3_resnet34",
    "ppyolo/ppyolo_mbv3_large_coco.yml": "ppyolo_mbv3_large",
    "ppyolo/ppyolo_r50vd_dcn_1x_coco.yml": "ppyolo_r50vd_dcn",
    "ppyolo/ppyolov2_r50vd_dcn_365e_coco.yml": "ppyolov2_r50vd_dcn",
    "ssd/ssd_mobilenet_v1_300_120e_voc.yml": "ssd_mobilenet_v1",
    "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml": "mask_rcnn_r50_fpn",
    "ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml": "ppyoloe_plus_crn_s",
    "ppyoloe/ppyoloe_plus_crn_m_80e_coco.yml": "ppyoloe_plus_crn_m",
    "ppyoloe/ppyoloe_plus_crn_l_80e_coco.yml": "ppyoloe_plus_crn_l",
    "picodet/legacy_model/picodet_m_320_coco.yml": "picodet_esnet_m",
}


def row_examples(only: str = "") -> list[Path]:
    """The examples on a PaddleDetection config, by name."""
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if "config" in doc["spec"]["model"] and only in path.stem:
            found.append(path)
    return found


def kslim_config(uri: str) -> str:
    """file:// URI of kslim's config of the model a PaddleDetection config URI names."""
    for ppdet_path, name in SAME_MODEL.items():
        if uri.endswith(f"/configs/{ppdet_path}"):
            return f"file://{KSLIM_CONFIGS / name}.yml"
    raise KeyError(f"{uri}: no kslim config of this model in bench/zoo_rows.py SAME_MODEL")


def _tiny_step(method: str, step: dict[str, Any]) -> dict[str, Any]:
    step = copy.deepcopy(step)
    if "fineTune" in step or method in ("prune", "qat", "distill"):
        skipped = step.get("fineTune", {}).get("iterations") == 0  # a prune right before distill/qat
        step["fineTune"] = {"iterations": 0 if skipped else 1}
    if method == "ptq":
        step.update(batchNum=2, batchSize=2)
    if method == "sparsify" and "gmp" in step:
        # the shortest schedule PaddleSlim's GMP accepts (more than 10 iterations per ratio step)
        step["gmp"] = {
            "pruning": 11,
            "pruningSteps": 1,
            "initialRatio": step["gmp"].get("initialRatio", "0.15"),
        }
    teacher = step.get("teacher")
    if isinstance(teacher, dict):
        teacher.pop("weights", None)  # trained in the job, one step
        if "config" in teacher:
            teacher["config"] = {"uri": kslim_config(teacher["config"]["uri"])}
    return step


def tiny_job(example: dict[str, Any], data: Path, size: int) -> dict[str, Any]:
    """The example job at tiny size on kslim's config of its model (see the module's docstring)."""
    doc = copy.deepcopy(example)
    spec = doc["spec"]
    model = spec["model"]
    model["config"] = {"uri": kslim_config(model["config"]["uri"])}
    model.pop("weights", None)
    model.update(numClasses=CLASSES, inputSize=size)
    spec["dataset"] = {
        "format": "coco",
        **{
            split: {
                "images": f"file://{data / split / 'images'}",
                "annotations": f"file://{data / split / 'annotations.json'}",
            }
            for split in ("train", "val")
        },
    }
    spec["train"] = {"iterations": 1, "batchSize": 2, "workers": 0, "warmupIterations": 1}
    spec["strategy"] = [
        {method: _tiny_step(method, step or {}) for method, step in entry.items()}
        for entry in spec["strategy"]
    ]
    precisions = spec.get("benchmark", {}).get("precisions", ["fp32"])
    spec["benchmark"] = {
        "device": "cpu",
        "iterations": 3,
        "warmup": 1,
        "threads": 1,
        "precisions": precisions,
    }
    spec["evaluation"] = {"batchSize": 2}
    spec["resources"] = {"gpus": 0}
    for key in ("output", "qualityGate"):  # a gate on one step's AP would fail the job, not the path
        spec.pop(key, None)
    return doc


def run_example(path: Path, data: Path, work: Path, size: int, timeout: float) -> dict[str, Any]:
    job = work / "job.yaml"
    job.write_text(yaml.safe_dump(tiny_job(yaml.safe_load(path.read_text()), data, size), sort_keys=False))
    out = work / "out"
    cmd = [sys.executable, "-m", "kslim_runner.cli", "run", str(job), "--output", str(out)]  # `kslim run`
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, timeout=timeout)
        error = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
        sys.stderr.write(proc.stderr)
    except subprocess.TimeoutExpired:
        error = f"killed after {timeout:.0f} s"
    seconds = time.monotonic() - t0
    report = out / "report.json"
    rows = json.loads(report.read_text())["rows"] if report.is_file() and not error else []
    return {"rows": rows, "error": error, "seconds": seconds}


def table(results: list[tuple[str, dict[str, Any]]]) -> str:
    cols = ("example", "rows", "GFLOPs", "params", "AP per row", "int8", "seconds", "error")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, r in results:
        rows = r["rows"]
        first, last = (rows[0], rows[-1]) if rows else ({}, {})
        cells = (
            name,
            str(len(rows)),
            f"{first.get('gflops', 0):.3f} → {last.get('gflops', 0):.3f}" if rows else "–",
            f"{first.get('params', 0):,} → {last.get('params', 0):,}" if rows else "–",
            " / ".join(f"{row['ap']:.4f}" for row in rows) or "–",
            ("yes" if last.get("cost", {}).get("quantized") else "no") if rows else "–",
            f"{r['seconds']:.0f}",
            r["error"][:160].replace("|", "\\|"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96, help="input size, px")
    ap.add_argument("--only", default="", help="run the examples whose name contains this text")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds one job may take")
    args = ap.parse_args(argv)
    import kslim_runner  # noqa: F401  (zlib before paddle)
    from kslim_runner.api import SynthConfig, generate

    results = []
    with tempfile.TemporaryDirectory(prefix="kslim-zoo-rows-") as tmp:
        data = Path(tmp) / "data"
        for split, images in (("train", 16), ("val", 8)):
            generate(data / split, SynthConfig(images=images, size=args.size, classes=CLASSES), split=split)
        examples = row_examples(args.only)
        for i, path in enumerate(examples):
            print(f"[{i + 1}/{len(examples)}] {path.name}", file=sys.stderr, flush=True)
            work = Path(tmp) / path.stem
            work.mkdir()
            results.append((path.stem, run_example(path, data, work, args.size, args.timeout)))
    print(table(results))
    return 0 if all(not r["error"] for _, r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
